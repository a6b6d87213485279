import type { Migration } from 'kysely'
import * as m0001 from './2026_11_27_0001_init.ts'
import * as m0002 from './2026_11_27_0002_integration_soft_delete.ts'
import * as m0010 from './2026_11_27_0010_session_expiry_idx.ts'
import * as m0011 from './2026_12_02_0011_session_finished_check.ts'
import * as m0012 from './2026_12_02_0012_sign_in_binding.ts'
import * as m0013 from './2026_12_02_0013_cluster.ts'
import * as m0014 from './2026_12_02_0014_webhooks.ts'
import * as m0020 from './2026_12_02_0020_rate_limits.ts'
import * as m0021 from './2026_12_03_0021_lean_session_indexes.ts'
import * as m0022 from './2026_12_06_0022_hot_claim.ts'

/**
 * Every migration, in order. A static list (not Kysely's FileMigrationProvider, which cannot
 * import .ts files under vitest) that works in tsx, vitest and any bundle.
 */
export const migrations: Record<string, Migration> = {
  '2026_11_27_0001_init': m0001,
  '2026_11_27_0002_integration_soft_delete': m0002,
  '2026_11_27_0010_session_expiry_idx': m0010,
  '2026_12_02_0011_session_finished_check': m0011,
  '2026_12_02_0012_sign_in_binding': m0012,
  '2026_12_02_0013_cluster': m0013,
  '2026_12_02_0014_webhooks': m0014,
  '2026_12_02_0020_rate_limits': m0020,
  '2026_12_03_0021_lean_session_indexes': m0021,
  '2026_12_06_0022_hot_claim': m0022,
}
