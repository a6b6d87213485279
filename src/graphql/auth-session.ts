/**
 * Sign-in sessions: startEndUserAuth and cancelEndUserAuth, authSession(s) for bots that poll,
 * authSessionUpdated for bots that would rather wait (server-sent events), and contact.
 */
import { z } from 'zod'
import { AUTH_FAILURE_CODES, type AuthFailure } from '../core/auth-failure.ts'
import { isTerminal, type AuthSession } from '../core/auth-session.ts'
import type { Identity } from '../core/identity.ts'
import { NotFoundError } from '../core/errors.ts'
import { findContact, type Contact } from '../db/contacts.ts'
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
  description: 'Where a sign-in stands. PENDING and OPENED are open; the other four are final.',
  values: {
    PENDING: { description: 'The link was created and has not been opened yet.' },
    OPENED: {
      description:
        'A browser opened the link and was sent to the provider; it is bound to this session.',
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

export const IdentityRef = builder.objectRef<Identity>('Identity').implement({
  description:
    'Who the end user is, as the WhoAmI answer (after the JMESPath mapping) says. Standard fields are taken only when they are strings, trimmed, normalised and bounded; when only fullName is given (and the integration splits names) firstName is its first word and lastName the rest, "Last, First" is understood, and nothing is lost or reordered.',
  fields: (t) => ({
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
      description: 'Set when AUTHENTICATED.',
      resolve: (s) => (s.status === 'AUTHENTICATED' ? s.identity : null),
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
    const timer = setTimeout(() => deps.events.publish(id), Math.max(0, expiry) + 50)
    try {
      for await (const _ of updates) {
        const current = await getSession(deps, tenantId, id)
        if (current.status !== last.status) {
          last = current
          yield current
        }
        if (isTerminal(current.status)) return
      }
    } finally {
      clearTimeout(timer)
    }
  } finally {
    await updates.return?.()
  }
}
