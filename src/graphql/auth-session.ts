/**
 * Sign-in sessions: startEndUserAuth and cancelEndUserAuth, authSession(s) for bots that poll,
 * authSessionUpdated for bots that would rather wait (server-sent events), and contact.
 */
import { z } from 'zod'
import { AUTH_FAILURE_CODES, type AuthFailure } from '../core/auth-failure.ts'
import { isTerminal, type AuthSession } from '../core/auth-session.ts'
import type { Identity } from '../core/identity.ts'
import { NotFoundError } from '../core/errors.ts'
import { isVerified } from '../core/contact.ts'
import { findContact, type Contact } from '../db/contacts.ts'
import { isDatabaseUnavailable } from '../db/unavailable.ts'
import { confirmSignIn } from '../services/confirm-sign-in.ts'
import {
  cancelSignIn,
  getSession,
  integrationOfSession,
  isUuid,
  listSessions,
  startSignIn,
  type StartedSignIn,
} from '../services/sign-in.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'
import { OAuthIntegrationRef } from './oauth-integration.ts'

const AuthSessionStatusEnum = builder.enumType('AuthSessionStatus', {
  description:
    'Where a sign-in stands. PENDING, OPENED and AWAITING_CONFIRMATION are open; the other four are final.',
  values: {
    PENDING: { description: 'The link was created and has not been opened yet.' },
    OPENED: {
      description:
        'A browser opened the link and was sent to the provider; it is bound to this session.',
    },
    AWAITING_CONFIRMATION: {
      description:
        'The end user signed in at the provider and was shown a code to type into the conversation (integrations with requireConfirmationCode); identity stays null and the contact untouched until confirmEndUserAuth gets that code. The code works for 5 minutes after it was shown, and never past expiresAt.',
    },
    AUTHENTICATED: { description: 'The end user signed in; `identity` holds who they are.' },
    FAILED: { description: 'The sign-in ended without an identity; `failure` says why.' },
    EXPIRED: { description: 'The link was not completed in time.' },
    CANCELLED: {
      description:
        'Cancelled by cancelEndUserAuth, by a newer link for the same conversation and integration, or by deleting the integration.',
    },
  } as const,
})

const RedirectRouteEnum = builder.enumType('RedirectRoute', {
  description:
    'Which of the three callback URLs the provider returns to. Each completes the flow the same way; a session completes only through the route it was started with.',
  values: {
    IDP: { description: '/idp/eu/oauth/callback (web; the default).' },
    ABC: { description: '/web/inbound/abc/oauth/redirect (Apple Messages for Business).' },
    ABC_AUTH2: {
      description: '/web/inbound/abc/oauth/abcAuth2Redirect (Apple Messages for Business).',
    },
  } as const,
})

const ContactUpdateEnum = builder.enumType('ContactUpdate', {
  description: 'What a sign-in did to its contact record (null until the session ends).',
  values: {
    FILLED: {
      description:
        'The contact was created, or got values (or its first verified subject) from this sign-in.',
    },
    UNCHANGED: {
      description:
        'The contact, verified as the same person, already held everything this sign-in found; only its verification time was renewed.',
    },
    CONFLICT: {
      description:
        "The sign-in proved another person (issuer or integration, and subject) than the one who verified the contact, so the contact was left as it is; the session still holds this sign-in's identity, and an audit record was written.",
    },
  } as const,
})

export const IdentityRef = builder.objectRef<Identity>('Identity').implement({
  description:
    'Who the end user is. Sources, in order: the validated ID token of an OpenID Connect sign-in (sub, email, email_verified, preferred_username, name, given_name, family_name, auth_time, acr, amr), then the WhoAmI answer after the JMESPath mapping, which fills only what the ID token does not say (a WhoAmI or mapped subject other than the ID token\'s fails the sign-in). Standard fields are taken only when they are strings, trimmed, normalised and bounded; when only fullName is given (and the integration splits names) firstName is its first word and lastName the rest, "Last, First" is understood, and nothing is lost or reordered.',
  fields: (t) => ({
    subject: t.field({
      type: 'String',
      nullable: true,
      description:
        "The provider's stable id of the person: the ID token's sub, or the mapping's subject. With issuer (or, without one, the integration), what recognises the same person again; an email alone does not.",
      resolve: (i) => i.subject ?? null,
    }),
    issuer: t.field({
      type: 'String',
      nullable: true,
      description: "Who vouches for subject: the ID token's iss, or the integration's issuer.",
      resolve: (i) => i.issuer ?? null,
    }),
    emailVerified: t.field({
      type: 'Boolean',
      nullable: true,
      description:
        "Whether the provider verified email (email_verified, or the mapping's emailVerified); null: it did not say. An email marked false never fills the contact unless the integration sets trustUnverifiedEmail.",
      resolve: (i) => i.emailVerified ?? null,
    }),
    authTime: t.field({
      type: 'DateTime',
      nullable: true,
      description: "When the end user authenticated at the provider (the ID token's auth_time).",
      resolve: (i) => (i.authTime ? new Date(i.authTime) : null),
    }),
    acr: t.field({
      type: 'String',
      nullable: true,
      description: "How the end user authenticated (the ID token's acr).",
      resolve: (i) => i.acr ?? null,
    }),
    amr: t.field({
      type: ['String'],
      nullable: true,
      description: "The authentication methods used (the ID token's amr, e.g. pwd, mfa, otp).",
      resolve: (i) => (i.amr ? [...i.amr] : null),
    }),
    email: t.exposeString('email', {
      nullable: true,
      description: 'An email address; absent when the value was not one.',
    }),
    userName: t.exposeString('userName', {
      nullable: true,
      description: 'The user name or id at the provider.',
    }),
    fullName: t.exposeString('fullName', { nullable: true, description: 'The full display name.' }),
    firstName: t.exposeString('firstName', {
      nullable: true,
      description: 'Given name (explicit, or split from fullName).',
    }),
    lastName: t.exposeString('lastName', {
      nullable: true,
      description: 'Family name (explicit, or the rest of fullName).',
    }),
    attributes: t.field({
      type: 'JSON',
      description: 'Everything the mapping produced, standard fields included.',
      resolve: (identity) => identity.attributes,
    }),
  }),
})

const AuthFailureRef = builder.objectRef<AuthFailure>('AuthFailure').implement({
  description: `Why a sign-in failed. Codes: ${Object.entries(AUTH_FAILURE_CODES)
    .map(([code, text]) => `\`${code}\`: ${text}`)
    .join(' ')}`,
  fields: (t) => ({
    code: t.exposeString('code', {
      description: 'One of the documented codes; bots branch on it.',
    }),
    message: t.exposeString('message', {
      description:
        "For support staff: which step failed and how, and the provider's error code when it sent one. Never the provider's raw answer.",
    }),
  }),
})

export const AuthSessionRef = builder.objectRef<AuthSession>('AuthSession').implement({
  description: 'One sign-in: a link sent into a conversation and what became of it.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The session id.' }),
    status: t.field({
      type: AuthSessionStatusEnum,
      description: 'Where it stands (past its expiry an open session reads EXPIRED).',
      resolve: (s) => s.status,
    }),
    conversationId: t.exposeString('conversationId', {
      description: 'The conversation the link was sent to.',
    }),
    contactId: t.exposeString('contactId', {
      description: 'The contact record the identity fills.',
    }),
    redirectRoute: t.field({
      type: RedirectRouteEnum,
      description: 'The callback route of this session.',
      resolve: (s) => s.redirectRoute,
    }),
    integration: t.field({
      type: OAuthIntegrationRef,
      description: 'The integration used (still readable after it was deleted).',
      resolve: (s, _args, ctx) => integrationOfSession(ctx.deps, s),
    }),
    createdAt: t.field({
      type: 'DateTime',
      description: 'When the link was created.',
      resolve: (s) => s.createdAt,
    }),
    expiresAt: t.field({
      type: 'DateTime',
      description: 'When the link stops working.',
      resolve: (s) => s.expiresAt,
    }),
    openedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a browser first opened the link.',
      resolve: (s) => s.openedAt,
    }),
    completedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When it reached a final status.',
      resolve: (s) => s.completedAt,
    }),
    identity: t.field({
      type: IdentityRef,
      nullable: true,
      description: 'Set when AUTHENTICATED (and never before, AWAITING_CONFIRMATION included).',
      resolve: (s) => (s.status === 'AUTHENTICATED' ? s.identity : null),
    }),
    confirmationAttemptsLeft: t.field({
      type: 'Int',
      nullable: true,
      description:
        'How many more codes confirmEndUserAuth will try (5 to start with; at 0 the sign-in ends FAILED with confirmation_failed). Null when the sign-in involves no code.',
      resolve: (s) => s.confirmationAttemptsLeft,
    }),
    contactUpdate: t.field({
      type: ContactUpdateEnum,
      nullable: true,
      description: 'What the sign-in did to the contact; null until the session is AUTHENTICATED.',
      resolve: (s) => (s.status === 'AUTHENTICATED' ? s.contactUpdate : null),
    }),
    callbackIssuer: t.field({
      type: 'String',
      nullable: true,
      description:
        "The issuer the provider named in its answer (RFC 9207 iss), as it came; checked against the integration's issuer when that is set, recorded otherwise.",
      resolve: (s) => s.callbackIssuer,
    }),
    failure: t.field({
      type: AuthFailureRef,
      nullable: true,
      description: 'Set when FAILED.',
      resolve: (s) => (s.status === 'FAILED' ? s.failure : null),
    }),
  }),
})

const externalId = (field: string) =>
  z
    .string()
    .trim()
    .min(1, `${field} must not be empty`)
    .max(256, `${field} must be at most 256 characters`)
    .refine((v) => !/[\u0000-\u001f\u007f]/.test(v), `${field} must not contain control characters`)

const AuthenticationMessageRef = builder
  .objectRef<StartedSignIn['message']>('AuthenticationMessage')
  .implement({
    description:
      'The authentication message, ready to send into the conversation (snippet or bot).',
    fields: (t) => ({
      text: t.exposeString('text', { description: 'The message text.' }),
      buttonLabel: t.exposeString('buttonLabel', {
        description: 'The label of the button that opens the link.',
      }),
      url: t.exposeString('url', { description: 'The sign-in link (same as authorizationLink).' }),
    }),
  })

const StartEndUserAuthPayload = builder
  .objectRef<StartedSignIn>('StartEndUserAuthPayload')
  .implement({
    description: 'A new sign-in.',
    fields: (t) => ({
      session: t.field({
        type: AuthSessionRef,
        description: 'The new PENDING session.',
        resolve: (p) => p.session,
      }),
      authorizationLink: t.exposeString('authorizationLink', {
        description:
          'The link to put in the snippet or authentication message. A bearer link: it works once, for one browser, until expiresAt.',
      }),
      message: t.field({
        type: AuthenticationMessageRef,
        description: 'A ready authentication message.',
        resolve: (p) => p.message,
      }),
    }),
  })

const AuthSessionPayload = builder
  .objectRef<{ session: AuthSession }>('AuthSessionPayload')
  .implement({
    description: 'A session after a change.',
    fields: (t) => ({
      session: t.field({
        type: AuthSessionRef,
        description: 'The session.',
        resolve: (p) => p.session,
      }),
    }),
  })

const StartEndUserAuthInput = builder.inputType('StartEndUserAuthInput', {
  description: 'What to start a sign-in for.',
  fields: (t) => ({
    integrationId: t.id({ required: true, description: 'The integration to sign in with.' }),
    conversationId: t.string({
      required: true,
      description: 'The conversation the link is sent to.',
      validate: externalId('conversationId'),
    }),
    contactId: t.string({
      description:
        'The contact record to fill; defaults to one contact per conversation (the conversationId).',
      validate: externalId('contactId').optional().nullable(),
    }),
    redirectRoute: t.field({
      type: RedirectRouteEnum,
      description: 'Which callback the provider returns to (default IDP).',
    }),
    prompt: t.string({
      description:
        'Sent as the prompt parameter (OpenID Connect Core §3.1.2.1), e.g. login to make the end user sign in again, or consent; up to 5 space-separated values, none alone. Passed on to any provider.',
    }),
    maxAgeSeconds: t.int({
      description:
        "Sent as max_age: the end user must have authenticated at most this many seconds ago, which the ID token's auth_time must show, or the sign-in ends FAILED with insufficient_authentication. Needs an OpenID Connect integration (openid in scope and an issuer).",
    }),
    loginHint: t.string({
      description:
        'Sent as login_hint: who the provider should expect (an email or user name), at most 256 characters. Passed on to any provider.',
    }),
    acrValues: t.stringList({
      description:
        "Sent as acr_values: the ID token's acr must be one of them, or the sign-in ends FAILED with insufficient_authentication. Needs an OpenID Connect integration (openid in scope and an issuer).",
    }),
  }),
})

const ConfirmEndUserAuthInput = builder.inputType('ConfirmEndUserAuthInput', {
  description: 'The code an end user typed into the conversation.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The session id.' }),
    code: t.string({
      required: true,
      description: 'The code as typed (spaces and hyphens are ignored).',
      validate: z.string().max(64, 'must be at most 64 characters'),
    }),
    conversationId: t.string({
      description:
        "The conversation the code was typed into: NOT_FOUND when it is not the session's, so a code only counts in the conversation the link was sent to.",
      validate: externalId('conversationId').optional().nullable(),
    }),
  }),
})

builder.mutationField('startEndUserAuth', (t) =>
  t.field({
    type: StartEndUserAuthPayload,
    description:
      'Creates a PENDING sign-in and its link. A newer link for the same conversation and integration cancels the older open ones.',
    authScopes: { agent: true },
    args: { input: t.arg({ type: StartEndUserAuthInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      startSignIn(ctx.deps, principalOf(ctx), {
        integrationId: String(input.integrationId),
        conversationId: input.conversationId.trim(),
        contactId: input.contactId?.trim() ?? null,
        redirectRoute: input.redirectRoute ?? null,
        prompt: input.prompt ?? null,
        maxAgeSeconds: input.maxAgeSeconds ?? null,
        loginHint: input.loginHint ?? null,
        acrValues: input.acrValues ?? null,
      }),
  }),
)

builder.mutationField('confirmEndUserAuth', (t) =>
  t.field({
    type: AuthSessionPayload,
    description:
      'Completes an AWAITING_CONFIRMATION sign-in with the code the end user typed into the conversation: the right code makes it AUTHENTICATED (and fills the contact); a wrong one lowers confirmationAttemptsLeft, and the last one ends it FAILED with confirmation_failed. A finished session is returned unchanged; one not yet waiting for a code is BAD_USER_INPUT.',
    authScopes: { agent: true },
    args: { input: t.arg({ type: ConfirmEndUserAuthInput, required: true }) },
    resolve: async (_root, { input }, ctx) => ({
      session: await confirmSignIn(ctx.deps, principalOf(ctx).tenantId, {
        id: String(input.id),
        code: input.code,
        conversationId: input.conversationId ?? null,
      }),
    }),
  }),
)

builder.mutationField('cancelEndUserAuth', (t) =>
  t.field({
    type: AuthSessionPayload,
    description:
      'Cancels an open sign-in (its link stops working). A finished one is returned unchanged.',
    authScopes: { agent: true },
    args: { id: t.arg.id({ required: true, description: 'The session id.' }) },
    resolve: async (_root, { id }, ctx) => ({
      session: await cancelSignIn(ctx.deps, principalOf(ctx).tenantId, String(id)),
    }),
  }),
)

builder.queryField('authSession', (t) =>
  t.field({
    type: AuthSessionRef,
    nullable: true,
    description:
      'One session, for bots that poll. Null when no session of this tenant has this id.',
    authScopes: { agent: true },
    args: { id: t.arg.id({ required: true, description: 'The session id.' }) },
    resolve: async (_root, { id }, ctx) => {
      try {
        return await getSession(ctx.deps, principalOf(ctx).tenantId, String(id))
      } catch (error) {
        if (error instanceof NotFoundError) return null
        throw error
      }
    },
  }),
)

builder.queryField('authSessions', (t) =>
  t.field({
    type: [AuthSessionRef],
    description: 'The sessions of one conversation, newest first (at most 100).',
    authScopes: { agent: true },
    args: {
      conversationId: t.arg.string({
        required: true,
        description: 'The conversation.',
        validate: externalId('conversationId'),
      }),
    },
    resolve: (_root, { conversationId }, ctx) =>
      listSessions(ctx.deps, principalOf(ctx).tenantId, conversationId.trim()),
  }),
)

const ContactRef = builder.objectRef<Contact>('Contact').implement({
  description:
    "The contact record sign-ins fill: a field gets the identity's value where it has none yet (or always, when the integration says to overwrite).",
  fields: (t) => ({
    contactId: t.exposeString('contactId', { description: 'The contact id.' }),
    email: t.exposeString('email', { nullable: true, description: 'Email address.' }),
    userName: t.exposeString('userName', {
      nullable: true,
      description: 'User name at the provider.',
    }),
    fullName: t.exposeString('fullName', { nullable: true, description: 'Full name.' }),
    firstName: t.exposeString('firstName', { nullable: true, description: 'Given name.' }),
    lastName: t.exposeString('lastName', { nullable: true, description: 'Family name.' }),
    verifiedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a sign-in last verified this contact.',
      resolve: (c) => c.verifiedAt,
    }),
    verifiedBySessionId: t.exposeID('verifiedSessionId', {
      nullable: true,
      description: 'The session that last verified it.',
    }),
    verifiedSubject: t.exposeString('verifiedSubject', {
      nullable: true,
      description:
        'The subject of the person who verified it: a sign-in as another person leaves the contact unchanged (contactUpdate CONFLICT).',
    }),
    verifiedIssuer: t.exposeString('verifiedIssuer', {
      nullable: true,
      description: 'The issuer that vouched for verifiedSubject (null: the integration did).',
    }),
    verifiedIntegrationId: t.exposeID('verifiedIntegrationId', {
      nullable: true,
      description: 'The integration of the sign-in that last verified it.',
    }),
    verifiedUntil: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        "Until when the verification counts: the last verification plus its integration's verificationTtlSeconds; null: it does not expire.",
      resolve: (c) => c.verifiedUntil,
    }),
    verified: t.boolean({
      description: 'Whether a sign-in verified it and verifiedUntil has not passed.',
      resolve: (c, _args, ctx) => isVerified(c, ctx.deps.now()),
    }),
  }),
})

builder.queryField('contact', (t) =>
  t.field({
    type: ContactRef,
    nullable: true,
    description: 'A contact of this tenant; null when none has this id.',
    authScopes: { agent: true },
    args: {
      contactId: t.arg.string({
        required: true,
        description: 'The contact id.',
        validate: externalId('contactId'),
      }),
    },
    resolve: async (_root, { contactId }, ctx) =>
      (await findContact(ctx.deps.db, principalOf(ctx).tenantId, contactId.trim())) ?? null,
  }),
)

builder.subscriptionType({
  description: 'Events, over server-sent events (Accept: text/event-stream).',
})

builder.subscriptionField('authSessionUpdated', (t) =>
  t.field({
    type: AuthSessionRef,
    description:
      'The session now, then again at every status change, until it is final (AUTHENTICATED, FAILED, EXPIRED or CANCELLED).',
    authScopes: { agent: true },
    args: { id: t.arg.id({ required: true, description: 'The session id.' }) },
    subscribe: (_root, { id }, ctx) =>
      watchSession(ctx.deps, principalOf(ctx).tenantId, String(id)),
    resolve: (session) => session,
  }),
)

/** How soon a subscription tries again when the database did not answer its read. */
const REREAD_AFTER_OUTAGE_MS = 2_000
/** How often an open subscription reads its session anyway. */
const REREAD_BACKSTOP_MS = 30_000

async function* watchSession(
  deps: Parameters<typeof getSession>[0],
  tenantId: string,
  id: string,
): AsyncGenerator<AuthSession> {
  // Not an id at all: NOT_FOUND without subscribing (getSession says the same for a valid one).
  if (!isUuid(id)) throw NotFoundError.of('auth session', id)
  // Subscribe before reading, so a change between the read and the subscription is not lost.
  const updates = deps.events.subscribe(id)
  try {
    let last = await getSession(deps, tenantId, id) // NOT_FOUND for another tenant's id
    yield last
    if (isTerminal(last.status)) return
    const expiry = last.expiresAt.getTime() - deps.now().getTime()
    const timer = setTimeout(() => deps.events.wake(id), Math.max(0, expiry) + 50)
    // A change is announced right after its commit; an instance that died in between took its
    // notice with it. Reading again now and then bounds how late such a change is seen.
    const backstop = setInterval(() => deps.events.wake(id), REREAD_BACKSTOP_MS)
    let retry: NodeJS.Timeout | undefined
    try {
      for await (const _ of updates) {
        let current: AuthSession
        try {
          current = await getSession(deps, tenantId, id)
        } catch (error) {
          // The database is away: the subscription stays open and reads again a little later
          // (and once this instance hears other instances again, it is woken anyway).
          if (!isDatabaseUnavailable(error)) throw error
          clearTimeout(retry)
          retry = setTimeout(() => deps.events.wake(id), REREAD_AFTER_OUTAGE_MS)
          continue
        }
        if (current.status !== last.status) {
          last = current
          yield current
        }
        if (isTerminal(current.status)) return
      }
    } finally {
      clearTimeout(timer)
      clearInterval(backstop)
      clearTimeout(retry)
    }
  } finally {
    await updates.return?.()
  }
}
