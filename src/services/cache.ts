/**
 * A bounded cache whose entries are dropped when the rows they were read from change, on this
 * instance or any other (runtime/events.ts Invalidation), and which answers nothing while such
 * changes could go unheard. The TTL is a second line of defence only.
 *
 * A value read from the database before a change and stored after the change's invalidation
 * would be stale until its TTL: `set` takes the generation seen before the read, and stores
 * nothing if any invalidation came in between.
 */
import type { CacheTopic, Invalidation } from '../runtime/events.ts'

export interface InvalidatedCacheOptions<V> {
  readonly topics: readonly CacheTopic[]
  readonly ttlMs: number
  readonly maxEntries: number
  /** Whether a change to row `id` of one of the topics affects `value`; default: every value. */
  readonly affects?: (value: V, id: string) => boolean
}

export class InvalidatedCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>()
  private currentGeneration = 0
  private readonly invalidation: Invalidation
  private readonly options: InvalidatedCacheOptions<V>

  constructor(invalidation: Invalidation, options: InvalidatedCacheOptions<V>) {
    this.invalidation = invalidation
    this.options = options
    invalidation.register(options.topics, (id) => this.drop(id))
  }

  /** Take before reading what will be `set`. */
  generation(): number {
    return this.currentGeneration
  }

  get(key: string, nowMs: number): V | undefined {
    if (!this.invalidation.trusted()) return undefined
    const entry = this.entries.get(key)
    if (!entry) return undefined
    if (entry.until > nowMs) return entry.value
    this.entries.delete(key)
    return undefined
  }

  set(key: string, value: V, nowMs: number, generation: number): void {
    if (generation !== this.currentGeneration || !this.invalidation.trusted()) return
    if (this.entries.size >= this.options.maxEntries) this.entries.clear()
    this.entries.set(key, { value, until: nowMs + this.options.ttlMs })
  }

  get size(): number {
    return this.entries.size
  }

  private drop(id: string | null): void {
    this.currentGeneration += 1
    const affects = this.options.affects
    if (id === null || !affects) {
      this.entries.clear()
      return
    }
    for (const [key, entry] of this.entries) if (affects(entry.value, id)) this.entries.delete(key)
  }
}
