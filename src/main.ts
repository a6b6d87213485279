// `npm start`: migrate the database, then serve on HOST:PORT until SIGTERM/SIGINT.
import { ConfigError, loadConfig } from './config.ts'

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
  // Traces: started before the modules they instrument (pg, node:http) are loaded by the imports
  // below; without an OTLP endpoint nothing of OpenTelemetry is loaded.
  const tracing = config.tracing
    ? (await import('./observability/tracing.ts')).startTracing()
    : null
  // Loaded only once the configuration is good, so that a bad one is refused at once.
  const [{ createLogger }, { DataDirInUseError, startService }] = await Promise.all([
    import('./logger.ts'),
    import('./runtime/server.ts'),
  ])
  const logger = createLogger({ level: config.logLevel })
  let service
  try {
    service = await startService(config, logger)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`could not start: ${message}\n`)
    logger.flush()
    process.exit(error instanceof DataDirInUseError ? 75 : 1)
  }
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down')
    service
      .close()
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

await main()
