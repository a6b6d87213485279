import type { Config } from '../config.ts'
import type { Sealer } from '../crypto/sealer.ts'
import type { Db } from '../db/database.ts'
import type { Logger } from '../logger.ts'

/** What use cases need from the outside world, passed in so tests can pin the clock. */
export interface Deps {
  readonly db: Db
  readonly config: Config
  readonly sealer: Sealer
  readonly logger: Logger
  readonly now: () => Date
}
