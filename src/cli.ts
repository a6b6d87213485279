/**
 * `npm run --silent cli -- <command>`: prints exactly one JSON object on stdout; errors go to
 * stderr with a non-zero exit (2 for usage). On the embedded database, when the service owns
 * DATA_DIR, the command is handed to it over the control socket.
 */
import { runCommand, USAGE, UsageError, validateArgs } from './runtime/cli-commands.ts'
import { ConfigError, loadConfig } from './config.ts'
import { sendControlCommand } from './runtime/control.ts'
import { AppError } from './core/errors.ts'
import { liveOwner, type OwnerInfo } from './runtime/owner-lock.ts'

function fail(message: string, exitCode: number): never {
  process.stderr.write(`error: ${message}\n`)
  if (exitCode === 2) process.stderr.write(`${USAGE}\n`)
  process.exit(exitCode)
}

async function handOver(owner: OwnerInfo, argv: readonly string[]): Promise<unknown> {
  if (!owner.socket) throw new Error(`the service (pid ${owner.pid}) is starting; try again`)
  const response = await sendControlCommand(owner.socket, argv)
  if (!response.ok) fail(response.error, response.exitCode)
  return response.output
}

async function main(argv: readonly string[]): Promise<unknown> {
  validateArgs(argv)
  const config = loadConfig(process.env)
  // When the service owns the embedded database, hand the command over without loading the
  // database code: that import is most of the CLI's start-up time (openRuntime checks again).
  const owner = config.database.kind === 'pglite' ? liveOwner(config.dataDir) : null
  if (owner?.socket) return handOver(owner, argv)
  const [{ createLogger }, { openRuntime }, { default: pino }] = await Promise.all([
    import('./logger.ts'),
    import('./runtime/open.ts'),
    import('pino'),
  ])
  // Logs go to stderr: stdout carries the one JSON object only.
  const logger = createLogger({ level: 'warn', name: 'cli' }, pino.destination(2))
  const runtime = await openRuntime(config, logger)
  if ('owner' in runtime) return handOver(runtime.owner, argv)
  try {
    return await runCommand(runtime.deps, argv)
  } finally {
    await runtime.close()
  }
}

try {
  const output = await main(process.argv.slice(2))
  process.stdout.write(`${JSON.stringify(output)}\n`)
} catch (error) {
  if (error instanceof UsageError) fail(error.message, 2)
  if (error instanceof ConfigError) fail(`invalid configuration: ${error.message}`, 78)
  if (error instanceof AppError) fail(error.message, 1)
  fail(error instanceof Error ? error.message : String(error), 1)
}
