/**
 * Confirm in chat: for integrations with `requireConfirmationCode`, the result page shows the end
 * user a code once, and the sign-in completes only when that code comes back through the
 * conversation (`confirmEndUserAuth`). It proves that the person who signed in at the provider
 * is the person in the conversation: a link forwarded to someone else, or an attacker's own link
 * sent to a victim, ends with a code the attacker's conversation never receives.
 *
 * Rules:
 * - The code is sealed until the result page shows it, then only its keyed hash is kept; it is
 *   valid for CONFIRMATION.validMs from then on and never past the session's expiry.
 * - It is shown once, to the browser bound to the session only.
 * - Codes are compared in constant time. Each wrong code costs one of CONFIRMATION.attempts
 *   attempts (atomically: concurrent wrong codes each cost one); the last one fails the sign-in
 *   (`confirmation_failed`). The right code completes it once (compare-and-set).
 * - `conversationId`, when given, must be the session's: a code typed into another conversation
 *   is NOT_FOUND, as for another tenant's session.
 */
import { recordSessionEnded } from '../observability/metrics.ts'
import { timingSafeEqual } from 'node:crypto'
import { authFailure } from '../core/auth-failure.ts'
import { asSeenAt, isTerminal, type AuthSession } from '../core/auth-session.ts'
import { BadUserInputError, NotFoundError } from '../core/errors.ts'
import type { SealContext } from '../crypto/sealer.ts'
import * as sessions from '../db/auth-sessions.ts'
import { CONFIRMATION, confirmationSealContext, updateContact } from './complete-sign-in.ts'
import { tenantById } from './tenants.ts'
import type { Deps } from './deps.ts'
import { getIntegrationIncludingDeleted } from './integrations.ts'
import { isBoundTo, isUuid, type CookieLookup } from './sign-in.ts'

export interface ConfirmInput {
  readonly id: string
  readonly code: string
  readonly conversationId?: string | null | undefined
}

/** Where the hash of a shown code belongs. */
function hashContext(session: Pick<AuthSession, 'id' | 'tenantId'>): SealContext {
  return { ...confirmationSealContext(session), column: 'confirmation_code_hash' }
}

export async function confirmSignIn(
  deps: Deps,
  tenantId: string,
  input: ConfirmInput,
): Promise<AuthSession> {
  const record = isUuid(input.id)
    ? await sessions.findRecord(deps.db, tenantId, input.id)
    : undefined
  const conversation = input.conversationId?.trim()
  if (!record || (conversation !== undefined && conversation !== record.session.conversationId)) {
    throw NotFoundError.of('auth session', input.id)
  }
  const now = deps.now()
  const session = asSeenAt(record.session, now)
  // A finished session answers as it is: the status says why the code changed nothing.
  if (isTerminal(session.status)) return session
  if (session.status !== 'AWAITING_CONFIRMATION') {
    throw BadUserInputError.of([
      {
        field: 'input.id',
        message: `the sign-in is not waiting for a confirmation code (it is ${session.status})`,
      },
    ])
  }
  const typed = input.code.replace(/[\s-]/g, '')
  const expected =
    record.confirmationCodeSealed !== null
      ? deps.sealer.digest(
          deps.sealer.open(record.confirmationCodeSealed, confirmationSealContext(session)),
          hashContext(session),
        )
      : record.confirmationCodeHash
  const given = deps.sealer.digest(typed, hashContext(session))
  const right =
    expected !== null && expected.length === given.length && timingSafeEqual(expected, given)
  return right ? complete(deps, session) : wrongCode(deps, session)
}

async function complete(deps: Deps, session: AuthSession): Promise<AuthSession> {
  const integration = await getIntegrationIncludingDeleted(
    deps,
    session.tenantId,
    session.integrationId,
  )
  const identity = session.identity
  if (identity === null)
    throw new Error(`session ${session.id} awaits confirmation without an identity`)
  const done = await deps.db
    .transaction()
    .execute(async (trx) => {
      const now = deps.now()
      const contactUpdate = await updateContact(trx, deps, session, identity, integration, now)
      const confirmed = await sessions.confirmSession(
        trx,
        session.tenantId,
        session.id,
        contactUpdate,
        now,
      )
      if (!confirmed) throw new NotConfirmed()
      return confirmed
    })
    .catch((error: unknown) => {
      if (error instanceof NotConfirmed) return undefined
      throw error
    })
  if (!done) return current(deps, session)
  deps.events.publish(session.id)
  recordSessionEnded(done)
  deps.logger.info(
    { sessionId: session.id, contactUpdate: done.contactUpdate },
    'sign-in confirmed',
  )
  return done
}

class NotConfirmed extends Error {}

async function wrongCode(deps: Deps, session: AuthSession): Promise<AuthSession> {
  const now = deps.now()
  const left = await sessions.spendConfirmationAttempt(deps.db, session.tenantId, session.id, now)
  deps.logger.warn({ sessionId: session.id, attemptsLeft: left }, 'wrong confirmation code')
  if (left === 0) {
    const failed = await sessions.rejectConfirmation(
      deps.db,
      session.tenantId,
      session.id,
      authFailure(
        'confirmation_failed',
        `confirmation: the code was typed wrongly ${CONFIRMATION.attempts} times`,
      ).failure,
      now,
    )
    if (failed) {
      deps.events.publish(session.id)
      recordSessionEnded(failed)
      return failed
    }
  } else if (left !== undefined) {
    deps.events.publish(session.id)
  }
  return current(deps, session)
}

async function current(deps: Deps, session: AuthSession): Promise<AuthSession> {
  const now = await sessions.findSession(deps.db, session.tenantId, session.id)
  if (!now) throw NotFoundError.of('auth session', session.id)
  return asSeenAt(now, deps.now())
}

// ---------------------------------------------------------------------------------------------
// The end user's result page, where the callback sends the browser (a 303, so that no code or
// state stays in the address bar or the history).

export type ResultView =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'in_progress' }
  | { readonly kind: 'authenticated' }
  | { readonly kind: 'failed'; readonly reasonCode: string }
  | { readonly kind: 'expired' }
  | { readonly kind: 'cancelled' }
  /** The code, shown now and never again. */
  | {
      readonly kind: 'code'
      readonly code: string
      readonly validUntil: Date
      /** The tenant's name, which the page names. */
      readonly business: string
    }
  /** The code was shown before (to this browser), or this is not the browser it is for. */
  | { readonly kind: 'code_shown' }

/** What the result page shows this browser, and whether its binding cookie is done with. */
export async function viewResult(
  deps: Deps,
  sessionId: string,
  cookieFor: CookieLookup,
): Promise<{ readonly view: ResultView; readonly clearCookie: boolean }> {
  const record = isUuid(sessionId) ? await sessions.findRecordById(deps.db, sessionId) : undefined
  if (!record) return { view: { kind: 'unknown' }, clearCookie: false }
  const now = deps.now()
  const session = asSeenAt(record.session, now)
  const bound = isBoundTo(record, cookieFor(session.id))
  switch (session.status) {
    case 'PENDING':
    case 'OPENED':
      return { view: { kind: 'in_progress' }, clearCookie: false }
    case 'AUTHENTICATED':
      return { view: { kind: 'authenticated' }, clearCookie: bound }
    case 'FAILED':
      return {
        view: { kind: 'failed', reasonCode: session.failure?.code ?? '' },
        clearCookie: bound,
      }
    case 'EXPIRED':
      return { view: { kind: 'expired' }, clearCookie: bound }
    case 'CANCELLED':
      return { view: { kind: 'cancelled' }, clearCookie: bound }
    case 'AWAITING_CONFIRMATION':
      break
  }
  if (!bound || record.confirmationCodeSealed === null) {
    return { view: { kind: 'code_shown' }, clearCookie: false }
  }
  const code = deps.sealer.open(record.confirmationCodeSealed, confirmationSealContext(session))
  const shown = await sessions.markConfirmationShown(
    deps.db,
    session.id,
    deps.sealer.digest(code, hashContext(session)),
    CONFIRMATION.validMs,
    now,
  )
  // Another request showed it a moment ago: this one does not show it again.
  if (!shown) return { view: { kind: 'code_shown' }, clearCookie: false }
  deps.events.publish(session.id)
  const business = (await tenantById(deps, session.tenantId))?.name ?? ''
  return { view: { kind: 'code', code, validUntil: shown.expiresAt, business }, clearCookie: true }
}
