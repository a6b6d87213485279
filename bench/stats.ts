/** Small statistics helpers shared by the bench processes. */

export interface Percentiles {
  readonly count: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

/** Nearest-rank percentiles of `values` (milliseconds), rounded to 0.01. */
export function percentile(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number) => {
    if (sorted.length === 0) return 0
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
    return round2(sorted[rank]!)
  }
  return { count: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: at(100) }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100
}
