// `npm start`: migrate the database, then serve on HOST:PORT until SIGTERM/SIGINT.
import { ConfigError, loadConfig } from './config.ts'

/** In-flight requests and open subscriptions get this long to finish after a signal. */
const SHUTDOWN_GRACE_MS = 10_000
/** Then the database is released; past this the process exits anyway (code 1). */
const SHUTDOWN_LIMIT_MS = SHUTDOWN_GRACE_MS + 5_000

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`invalid configuration: ${error.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw error
  }
  // Loaded only once the configuration is good, so that a bad one is refused at once.
  const [{ createLogger }, { DataDirInUseError, startService }] = await Promise.all([
    import('./logger.ts'),
    import('./runtime/server.ts'),
  ])
  const logger = createLogger({ level: config.logLevel, format: config.logFormat })
  let service
  try {
    service = await startService(config, logger)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`could not start: ${message}\n`)
    logger.flush()
    process.exit(error instanceof DataDirInUseError ? 75 : 1)
  }
  // A terminal's Ctrl-C reaches the whole process group, so npm passes a second SIGINT on: every
  // signal after the first is noted and ignored, and the shutdown runs to its "stopped" line.
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      logger.info({ signal }, 'already shutting down')
      return
    }
    stopping = true
    logger.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'shutting down')
    // A shutdown that hangs (a database that never answers) still ends, with a non-zero code.
    setTimeout(() => {
      logger.error({ afterMs: SHUTDOWN_LIMIT_MS }, 'shutdown did not finish in time')
      logger.flush()
      process.exit(1)
    }, SHUTDOWN_LIMIT_MS).unref()
    service.close(SHUTDOWN_GRACE_MS).then(
      () => {
        logger.flush()
        process.exit(0)
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed')
        logger.flush()
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

await main()
