/**
 * The counts that instances on one database share (services/rate-limits.ts): one statement adds
 * an instance's counts and returns the sums, another drops past windows.
 */
import { sql } from 'kysely'
import type { Db } from './database.ts'

export interface CountsToAdd {
  readonly bucket: string
  readonly windowStart: number
  readonly hits: number
}

export interface SharedSums {
  /** The sum of every instance's hits, per `bucket` + ' ' + `windowStart`. */
  readonly sums: ReadonlyMap<string, number>
  /** Instances that added counts in the last `liveMs`, this one included. */
  readonly instances: number
}

/**
 * Adds `hits` to the shared counts, records that `instance` is alive, and returns the new sums
 * and how many instances are: one round trip however many buckets.
 */
export async function addCounts(
  db: Db,
  instance: string,
  hits: readonly CountsToAdd[],
  liveMs: number,
): Promise<SharedSums> {
  const result = await sql<{
    bucket: string | null
    window_start: string | null
    hits: number | null
    instances: string
  }>`
    with seen as (
      insert into rate_limit_instances (id, seen_at) values (${instance}, now())
      on conflict (id) do update set seen_at = excluded.seen_at
    ), added as (
      insert into rate_limit_counters (bucket, window_start, hits)
      select * from unnest(${hits.map((h) => h.bucket)}::text[], ${hits.map((h) => h.windowStart)}::bigint[], ${hits.map((h) => h.hits)}::int[])
      on conflict (bucket, window_start) do update set hits = rate_limit_counters.hits + excluded.hits
      returning bucket, window_start, hits
    ), live as (
      -- The statement does not see its own heartbeat: this instance is added below.
      select count(*) as n from rate_limit_instances
      where id <> ${instance} and seen_at > now() - make_interval(secs => ${liveMs / 1000})
    )
    select added.bucket, added.window_start, added.hits, (select n from live) + 1 as instances
    from (select 1) as one left join added on true
  `.execute(db)
  const sums = new Map<string, number>()
  let instances = 1
  for (const row of result.rows) {
    instances = Number(row.instances)
    if (row.bucket !== null && row.window_start !== null && row.hits !== null) {
      sums.set(`${row.bucket} ${row.window_start}`, row.hits)
    }
  }
  return { sums, instances }
}

/** Deletes counts of windows that started before `before`, and instances silent since then. */
export async function pruneCounts(db: Db, before: number): Promise<void> {
  await db.deleteFrom('rate_limit_counters').where('window_start', '<', String(before)).execute()
  await db.deleteFrom('rate_limit_instances').where('seen_at', '<', new Date(before)).execute()
}
