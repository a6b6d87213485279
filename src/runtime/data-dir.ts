/**
 * DATA_DIR holds the embedded database, the development encryption key, the owner lock and the
 * control socket: only the service's own user may read it. The folder is made (or, from an
 * earlier version, set to) 0700 and everything in it 0600 (folders 0700), and the process creates
 * files without group or other access from then on (umask 077), which PGlite's own files follow.
 */
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'

export function makeDataDirPrivate(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  process.umask(0o077)
  const walk = (dir: string): void => {
    chmodSync(dir, 0o700)
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.isFile() && (statSync(full).mode & 0o077) !== 0) chmodSync(full, 0o600)
    }
  }
  walk(dataDir)
}
