/**
 * SSRF tripwires for tests.
 *
 * - `startCanary()`: a TCP listener on 127.0.0.1 and ::1 (same port) that counts every connection
 *   it accepts. A test points a URL that must be refused at it and asserts `hits === 0`: any hit,
 *   even a bare TCP handshake, means the guard let the call out.
 * - `forbidOffMachineConnections()`: wraps `net.connect` and `tls.connect` (what undici calls) so
 *   that a connection to anything but a loopback address fails at once and is recorded. Tests that
 *   name private or metadata addresses (10.0.0.5, 169.254.169.254, ...) can then assert that no
 *   packet would have left the machine even if the guard under test were broken.
 */
import net from 'node:net'
import tls from 'node:tls'

export interface Canary {
  readonly port: number
  /** Connections accepted on either address since start (or the last `reset`). */
  readonly hits: number
  /** Remote ends of those connections, e.g. `127.0.0.1`. */
  readonly from: readonly string[]
  reset(): void
  close(): Promise<void>
}

export async function startCanary(
  options: { hosts?: readonly string[]; port?: number } = {},
): Promise<Canary> {
  const hosts = options.hosts ?? ['127.0.0.1', '::1']
  for (let attempt = 0; ; attempt++) {
    const from: string[] = []
    const servers: net.Server[] = []
    try {
      let port = options.port ?? 0
      for (const host of hosts) {
        const server = net.createServer((socket) => {
          from.push(socket.remoteAddress ?? '?')
          socket.on('error', () => {})
          socket.destroy()
        })
        servers.push(server)
        await listen(server, port, host)
        port = (server.address() as net.AddressInfo).port
      }
      return {
        port,
        get hits() {
          return from.length
        },
        from,
        reset: () => {
          from.length = 0
        },
        close: async () => {
          await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
        },
      }
    } catch (error) {
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
      // The port picked for the first address may be taken on the second: try another.
      if (attempt >= 10 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    }
  }
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

export interface OffMachineGuard {
  /** Hosts that something tried to connect to and that are not on this machine. */
  readonly attempts: readonly string[]
  restore(): void
}

const LOOPBACK =
  /^(127\.\d+\.\d+\.\d+|::1|0\.0\.0\.0|::|::ffff:127\.\d+\.\d+\.\d+|::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}|localhost)$/i

export function forbidOffMachineConnections(): OffMachineGuard {
  const attempts: string[] = []
  const originalNet = net.connect
  const originalTls = tls.connect
  const check = (args: unknown[]): Error | null => {
    const first = args[0]
    const host =
      typeof first === 'object' && first !== null && 'host' in first
        ? String((first as { host?: unknown }).host)
        : typeof args[1] === 'string'
          ? args[1]
          : 'localhost'
    if (LOOPBACK.test(host.replace(/^\[|\]$/g, ''))) return null
    attempts.push(host)
    return new Error(`test guard: connection to ${host} refused (tests stay on this machine)`)
  }
  const failingSocket = (error: Error): net.Socket => {
    const socket = new net.Socket()
    process.nextTick(() => socket.destroy(error))
    return socket
  }
  const patchedNet = function (this: unknown, ...args: unknown[]) {
    const refused = check(args)
    return refused
      ? failingSocket(refused)
      : (originalNet as (...a: unknown[]) => net.Socket).apply(this, args)
  }
  const patchedTls = function (this: unknown, ...args: unknown[]) {
    const refused = check(args)
    return refused
      ? failingSocket(refused)
      : (originalTls as (...a: unknown[]) => tls.TLSSocket).apply(this, args)
  }
  ;(net as { connect: unknown }).connect = patchedNet
  ;(tls as { connect: unknown }).connect = patchedTls
  return {
    attempts,
    restore() {
      ;(net as { connect: unknown }).connect = originalNet
      ;(tls as { connect: unknown }).connect = originalTls
    },
  }
}
