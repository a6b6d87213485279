/**
 * startService: the running service (database, app, HTTP listener, control socket), with an
 * orderly close: stop accepting, let in-flight requests finish, then release the database.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createApp } from './app.ts'
import { runCommand, UsageError } from './cli-commands.ts'
import type { Config } from '../config.ts'
import { controlSocketPath, startControlServer } from './control.ts'
import { AppError } from '../core/errors.ts'
import type { Logger } from '../logger.ts'
import { openRuntime } from './open.ts'
import { endUserRoutes } from '../http/index.ts'
import { sweepExpiredSessions } from '../services/sign-in.ts'
import { startWebhookWorker } from './webhook-worker.ts'

export interface RunningService {
  readonly server: Server
  readonly url: string
  close(graceMs?: number): Promise<void>
}

const SWEEP_INTERVAL_MS = 30_000

export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError'
}

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const runtime = await openRuntime(config, logger)
  if ('owner' in runtime) {
    throw new DataDirInUseError(
      `DATA_DIR ${config.dataDir} is in use by process ${runtime.owner.pid}; stop it or use another DATA_DIR`,
    )
  }
  const { deps, database } = runtime
  const app = createApp(deps, database, endUserRoutes)
  const server = createServer(app.handleNode)
  // Slow-loris guard: a client must send its headers promptly.
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, () => resolve())
    })
  } catch (error) {
    await runtime.close()
    throw error
  }
  let control: { close(): Promise<void> } | null = null
  if (runtime.lock) {
    const socket = controlSocketPath(config.dataDir)
    control = await startControlServer(socket, async (argv) => {
      try {
        return { ok: true, output: await runCommand(deps, argv) }
      } catch (error) {
        if (error instanceof UsageError) return { ok: false, error: error.message, exitCode: 2 }
        if (error instanceof AppError) return { ok: false, error: error.message, exitCode: 1 }
        logger.error({ err: error }, 'control command failed')
        return { ok: false, error: 'unexpected error (see the service log)', exitCode: 1 }
      }
    })
    runtime.lock.setSocket(socket)
  }
  const sweeper = setInterval(() => {
    sweepExpiredSessions(deps).catch((error: unknown) =>
      logger.error({ err: error }, 'expiry sweep failed'),
    )
  }, SWEEP_INTERVAL_MS)
  sweeper.unref()
  const webhooks = startWebhookWorker(deps, deps.webhookWake, logger)
  const { port } = server.address() as AddressInfo
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  logger.info({ url, database: database.kind }, 'listening')

  let closing: Promise<void> | undefined
  return {
    server,
    url,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        clearInterval(sweeper)
        const webhooksStopped = webhooks.stop()
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        // Long-lived requests (subscriptions) get a grace period, then are cut.
        const timer = setTimeout(() => server.closeAllConnections(), graceMs)
        timer.unref()
        await app.close()
        await closed
        clearTimeout(timer)
        await webhooksStopped
        await control?.close()
        await runtime.close()
        logger.info('stopped')
      })()
      return closing
    },
  }
}
