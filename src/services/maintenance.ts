/**
 * The background work of the service, run by every instance on a timer (runtime/server.ts) and
 * safe to run on any number of them: each batch runs under an advisory lock (db/exclusive.ts) and
 * every statement is a compare-and-set, so no session is expired, failed or deleted twice.
 *
 * - Abandoned code exchanges: a session whose exchange was claimed and is still OPENED past the
 *   outbound deadline plus ABANDONED_GRACE_MS had its instance die mid-callback; it ends FAILED
 *   (`internal_error`) rather than waiting for its expiry.
 * - Expiry: open sessions past their expiry are written EXPIRED (readers see them so already).
 * - Retention: finished sessions are deleted SESSION_RETENTION_DAYS after they ended, with the
 *   identity they hold, at most once per RETENTION_INTERVAL_MS per instance.
 * Each changed session is announced to its subscribers (by the database to other instances).
 */
import { authFailure } from '../core/auth-failure.ts'
import * as sessions from '../db/auth-sessions.ts'
import { exclusively } from '../db/exclusive.ts'
import type { Deps } from './deps.ts'
import type { AuthSession } from '../core/auth-session.ts'
import { recordSessionEnded } from '../observability/metrics.ts'

/** How often an instance runs the maintenance round. */
export const MAINTENANCE_INTERVAL_MS = 5_000
/** Time beyond the outbound deadline a live callback gets to store its outcome. */
export const ABANDONED_GRACE_MS = 5_000
export const RETENTION_INTERVAL_MS = 60_000
const DAY_MS = 24 * 60 * 60 * 1000

const ABANDONED = authFailure(
  'internal_error',
  'the service stopped while completing the sign-in; start a new one',
).failure

export interface MaintenanceReport {
  readonly abandoned: number
  readonly expired: number
  readonly deleted: number
}

/** Runs each job until it has nothing left (or another instance holds it). */
export async function runMaintenance(
  deps: Deps,
  options: { readonly retention: boolean },
): Promise<MaintenanceReport> {
  const abandoned = await batches(deps, 'abandoned-exchanges', async (trx) => {
    const now = deps.now()
    const claimedBefore = new Date(now.getTime() - deps.provider.deadlineMs - ABANDONED_GRACE_MS)
    return sessions.failAbandonedExchanges(trx, claimedBefore, ABANDONED, now)
  })
  for (const session of abandoned) {
    deps.logger.warn(
      { sessionId: session.id, failureCode: ABANDONED.code },
      'sign-in failed: its code exchange was claimed by an instance that did not finish it',
    )
  }
  const expired = await batches(deps, 'expire', (trx) => sessions.expireSessions(trx, deps.now()))
  let deleted = 0
  if (options.retention) {
    const before = new Date(deps.now().getTime() - deps.config.sessionRetentionDays * DAY_MS)
    for (;;) {
      const batch = await exclusively(deps.db, 'retention', (trx) =>
        sessions.deleteFinishedSessions(trx, before),
      )
      deleted += batch?.value ?? 0
      if (!batch || batch.value === 0) break
    }
  }
  const report = { abandoned: abandoned.length, expired: expired.length, deleted }
  if (report.abandoned + report.expired + report.deleted > 0) {
    deps.logger.info(report, 'maintenance')
  }
  return report
}

/** Expiry as a use case of its own (tests, and readers that want the table honest now). */
export async function sweepExpiredSessions(deps: Deps): Promise<number> {
  const expired = await batches(deps, 'expire', (trx) => sessions.expireSessions(trx, deps.now()))
  return expired.length
}

/** Sessions one job ended, a batch at a time; subscribers and the metrics hear of each. */
async function batches(
  deps: Deps,
  job: string,
  batch: (trx: Deps['db']) => Promise<AuthSession[]>,
): Promise<AuthSession[]> {
  const all: AuthSession[] = []
  for (;;) {
    const done = await exclusively(deps.db, job, batch)
    if (!done || done.value.length === 0) return all
    // After the commit, so that subscribers who read the session again see the change.
    for (const session of done.value) {
      deps.events.publish(session.id)
      recordSessionEnded(session)
    }
    all.push(...done.value)
  }
}
