/**
 * The embedded database may be opened by one process only. The owner holds DATA_DIR/owner.lock
 * (created exclusively, holding its pid and control socket); another process finds the lock and
 * hands its work to the owner instead of opening the files.
 */
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import path from 'node:path'

export interface OwnerInfo {
  readonly pid: number
  readonly socket: string | null
}

export interface OwnerLock {
  /** Records where the control socket listens, once it does. */
  setSocket(socket: string): void
  release(): void
}

export function lockPath(dataDir: string): string {
  return path.join(dataDir, 'owner.lock')
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function readOwner(dataDir: string): OwnerInfo | null {
  try {
    const info = JSON.parse(readFileSync(lockPath(dataDir), 'utf8')) as Partial<OwnerInfo>
    if (typeof info.pid !== 'number') return null
    return { pid: info.pid, socket: typeof info.socket === 'string' ? info.socket : null }
  } catch {
    return null
  }
}

/** The live process that holds the lock, if any (without trying to take it). */
export function liveOwner(dataDir: string): OwnerInfo | null {
  const owner = readOwner(dataDir)
  return owner && owner.pid !== process.pid && isAlive(owner.pid) ? owner : null
}

/** Takes the lock, or returns the live owner that holds it. A dead owner's lock is taken over. */
export function acquireOwnerLock(dataDir: string): { lock: OwnerLock } | { owner: OwnerInfo } {
  mkdirSync(dataDir, { recursive: true })
  const file = lockPath(dataDir)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600)
      const write = (socket: string | null) => {
        const body = JSON.stringify({ pid: process.pid, socket })
        ftruncateSync(fd, 0)
        writeSync(fd, body, 0)
      }
      write(null)
      let released = false
      return {
        lock: {
          setSocket: (socket) => write(socket),
          release: () => {
            if (released) return
            released = true
            closeSync(fd)
            try {
              unlinkSync(file)
            } catch {
              // Already gone: nothing to release.
            }
          },
        },
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = readOwner(dataDir)
      if (owner && owner.pid !== process.pid && isAlive(owner.pid)) return { owner }
      if (owner === null && attempt === 0) {
        // The owner may be between creating the file and writing its pid.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
        continue
      }
      try {
        unlinkSync(file)
      } catch {
        // Someone else removed the stale lock first; try again.
      }
    }
  }
  throw new Error(`could not take the lock ${file}`)
}
