// `npm run migrate`: apply pending migrations and exit (0 when done, 1 with the reason otherwise).
import { ConfigError, loadConfig } from './config.ts'
import { createLogger } from './logger.ts'
import { openRuntime } from './runtime/open.ts'

try {
  const config = loadConfig(process.env)
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, sync: true })
  const runtime = await openRuntime(config, logger)
  if ('owner' in runtime) {
    // The running service migrated the database when it started: nothing is pending.
    process.stdout.write(
      `the service (pid ${runtime.owner.pid}) owns DATA_DIR and has migrated it\n`,
    )
  } else {
    await runtime.close()
    process.stdout.write('migrations applied\n')
  }
} catch (error) {
  const prefix = error instanceof ConfigError ? 'invalid configuration' : 'migration failed'
  process.stderr.write(`${prefix}: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
}
