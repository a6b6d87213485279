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
import { isDatabaseUnavailable } from '../db/unavailable.ts'
import type { Deps } from '../services/deps.ts'
import { startMetricsServer, type MetricsServer } from '../observability/metrics.ts'
import {
  MAINTENANCE_INTERVAL_MS,
  RETENTION_INTERVAL_MS,
  runMaintenance,
} from '../services/maintenance.ts'
import { startWebhookWorker } from './webhook-worker.ts'

export interface RunningService {
  readonly server: Server
  readonly url: string
  /** The use cases' deps of this service (the demo seeds its tenant through them). */
  readonly deps: Deps
  close(graceMs?: number): Promise<void>
}

export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError'
}

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const runtime = await openRuntime(config, logger, { listen: true })
  if ('owner' in runtime) {
    throw new DataDirInUseError(
      `DATA_DIR ${config.dataDir} is in use by process ${runtime.owner.pid}; stop it or use another DATA_DIR`,
    )
  }
  const { deps, database } = runtime
  const app = createApp(
    deps,
    { ping: (timeoutMs) => database.ping(timeoutMs), listening: runtime.cluster.listening },
    endUserRoutes,
  )
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
  let metrics: MetricsServer | null = null
  if (config.metricsPort !== null) {
    try {
      metrics = await startMetricsServer({ host: config.host, port: config.metricsPort })
    } catch (error) {
      server.close()
      await runtime.close()
      throw error
    }
    logger.info({ url: metrics.url }, 'metrics listening')
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
  const sweeper = startMaintenance(deps, logger)
  const webhooks = startWebhookWorker(deps, deps.webhookWake, logger)
  const { port } = server.address() as AddressInfo
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  logger.info({ url, database: database.kind }, 'listening')
  // At once: whoever started the service (an orchestrator, a test) waits for this line.
  logger.flush()

  let closing: Promise<void> | undefined
  return {
    server,
    url,
    deps,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        const webhooksStopped = webhooks.stop()
        await sweeper.stop()
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        // Long-lived requests (subscriptions) get a grace period, then are cut.
        const timer = setTimeout(() => server.closeAllConnections(), graceMs)
        timer.unref()
        await app.close()
        await closed
        clearTimeout(timer)
        await metrics?.close()
        await webhooksStopped
        await control?.close()
        await runtime.close()
        logger.info('stopped')
      })()
      return closing
    },
  }
}

/**
 * The maintenance round every MAINTENANCE_INTERVAL_MS (retention every RETENTION_INTERVAL_MS),
 * one at a time. While the database is away a round fails; that is logged once, not every round.
 */
function startMaintenance(
  deps: Parameters<typeof runMaintenance>[0],
  logger: Logger,
): { stop(): Promise<void> } {
  let running: Promise<void> | null = null
  let lastRetention = 0
  let unavailable = false
  const round = async () => {
    const retention = Date.now() - lastRetention >= RETENTION_INTERVAL_MS
    try {
      await runMaintenance(deps, { retention })
      if (retention) lastRetention = Date.now()
      if (unavailable) logger.info('maintenance resumed: the database answers again')
      unavailable = false
    } catch (error) {
      if (!isDatabaseUnavailable(error)) logger.error({ err: error }, 'maintenance failed')
      else if (!unavailable) {
        unavailable = true
        logger.warn({ err: error }, 'maintenance waits: the database is unavailable')
      }
    }
  }
  const timer = setInterval(() => {
    running ??= round().finally(() => (running = null))
  }, MAINTENANCE_INTERVAL_MS)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
