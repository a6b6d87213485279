/**
 * The local-only channel through which the CLI hands a command to the service that owns the
 * embedded database: a Unix socket in DATA_DIR (mode 0600, so only the same user can connect),
 * one JSON request and one JSON response per connection.
 */
import { createHash } from 'node:crypto'
import { chmodSync, existsSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export type ControlResponse =
  | { readonly ok: true; readonly output: unknown }
  | { readonly ok: false; readonly error: string; readonly exitCode: number }

export type ControlHandler = (argv: readonly string[]) => Promise<ControlResponse>

const MAX_REQUEST_BYTES = 64 * 1024

export function controlSocketPath(dataDir: string): string {
  const inDir = path.join(dataDir, 'control.sock')
  // Unix socket paths are limited to ~107 bytes; long DATA_DIRs get a hashed name in the tmp dir.
  if (Buffer.byteLength(inDir) < 100) return inDir
  const hash = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16)
  return path.join(os.tmpdir(), `end-user-oauth-${hash}.sock`)
}

export async function startControlServer(
  socketPath: string,
  handler: ControlHandler,
): Promise<{ close(): Promise<void> }> {
  if (existsSync(socketPath)) unlinkSync(socketPath) // left by a process that died; we hold the lock
  const server = net.createServer((socket) => {
    let buffer = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      buffer += chunk
      if (buffer.length > MAX_REQUEST_BYTES) socket.destroy()
      const newline = buffer.indexOf('\n')
      if (newline < 0) return
      let argv: unknown
      try {
        argv = (JSON.parse(buffer.slice(0, newline)) as { argv?: unknown }).argv
      } catch {
        argv = undefined
      }
      const respond = (response: ControlResponse) => socket.end(`${JSON.stringify(response)}\n`)
      if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
        respond({ ok: false, error: 'malformed control request', exitCode: 2 })
        return
      }
      handler(argv).then(respond, (error: unknown) =>
        respond({
          ok: false,
          error: error instanceof Error ? error.message : String(error),
          exitCode: 1,
        }),
      )
    })
    socket.on('error', () => socket.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => resolve())
  })
  chmodSync(socketPath, 0o600)
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        try {
          unlinkSync(socketPath)
        } catch {
          // already removed
        }
      }),
  }
}

export function sendControlCommand(
  socketPath: string,
  argv: readonly string[],
  timeoutMs = 30_000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath)
    let buffer = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('the running service did not answer the command in time'))
    }, timeoutMs)
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(`${JSON.stringify({ argv })}\n`))
    socket.on('data', (chunk: string) => (buffer += chunk))
    socket.on('end', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(buffer) as ControlResponse)
      } catch {
        reject(new Error('the running service sent a malformed answer'))
      }
    })
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`could not reach the running service at ${socketPath}: ${error.message}`))
    })
  })
}
