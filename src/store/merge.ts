// Merging rollups: the same arithmetic for an upsert of a minute written twice, for a late
// minute folded into its compacted hour, and for rolling an hour of minutes into one row.

import { LatencySketch } from "./sketch.ts";
import type { RollupBucket } from "./types.ts";

export type RollupValues = Pick<
  RollupBucket,
  "count" | "failures" | "latencyMsMin" | "latencyMsMax" | "latencyMsSum" | "sketch"
>;

/**
 * Sketch bytes of the union. Incoming sketches were validated on write, so a stored one that
 * does not decode is damage on disk: the incoming one replaces it rather than failing forever.
 */
export function mergeSketchBytes(stored: Uint8Array, incoming: Uint8Array): Uint8Array {
  const a = LatencySketch.decode(stored);
  const b = LatencySketch.decode(incoming);
  if (!a.ok) return incoming;
  if (!b.ok) return stored;
  return a.value.merge(b.value).encode();
}

export function mergeRollupValues<T extends RollupValues>(stored: T, incoming: RollupValues): T {
  return {
    ...stored,
    count: stored.count + incoming.count,
    failures: stored.failures + incoming.failures,
    latencyMsMin: Math.min(stored.latencyMsMin, incoming.latencyMsMin),
    latencyMsMax: Math.max(stored.latencyMsMax, incoming.latencyMsMax),
    latencyMsSum: stored.latencyMsSum + incoming.latencyMsSum,
    sketch: mergeSketchBytes(stored.sketch, incoming.sketch),
  };
}

export interface MinuteRow extends RollupValues {
  node: string;
  pool: string;
  target: string;
  startMs: number;
}

/**
 * Folds one hour's minute rows, fed grouped by (pool, target, node), into hour rows. Holds one
 * group at a time, so memory does not grow with the number of targets.
 */
export class HourAccumulator {
  private readonly hourStartMs: number;
  private current: { key: string; row: MinuteRow; sketch: LatencySketch } | undefined;
  badSketches = 0;

  constructor(hourStartMs: number) {
    this.hourStartMs = hourStartMs;
  }

  /** Adds a row; returns the previous group's hour row when this row starts a new group. */
  push(row: MinuteRow): RollupBucket | undefined {
    const key = JSON.stringify([row.pool, row.target, row.node]);
    const decoded = LatencySketch.decode(row.sketch);
    if (!decoded.ok) this.badSketches++;
    const sketch = decoded.ok ? decoded.value : new LatencySketch();
    const cur = this.current;
    if (cur !== undefined && cur.key === key) {
      cur.row = { ...cur.row, ...mergeNumbers(cur.row, row) };
      cur.sketch.merge(sketch);
      return undefined;
    }
    const done = this.finish();
    this.current = { key, row, sketch };
    return done;
  }

  /** The last group's hour row, if any; the accumulator is then empty. */
  finish(): RollupBucket | undefined {
    const cur = this.current;
    if (cur === undefined) return undefined;
    this.current = undefined;
    return {
      node: cur.row.node,
      pool: cur.row.pool,
      target: cur.row.target,
      startMs: this.hourStartMs,
      stepMs: 3_600_000,
      count: cur.row.count,
      failures: cur.row.failures,
      latencyMsMin: cur.row.latencyMsMin,
      latencyMsMax: cur.row.latencyMsMax,
      latencyMsSum: cur.row.latencyMsSum,
      sketch: cur.sketch.encode(),
    };
  }
}

function mergeNumbers(a: RollupValues, b: RollupValues): Omit<RollupValues, "sketch"> {
  return {
    count: a.count + b.count,
    failures: a.failures + b.failures,
    latencyMsMin: Math.min(a.latencyMsMin, b.latencyMsMin),
    latencyMsMax: Math.max(a.latencyMsMax, b.latencyMsMax),
    latencyMsSum: a.latencyMsSum + b.latencyMsSum,
  };
}

export function hourStartOf(ms: number): number {
  return ms - (ms % 3_600_000);
}

interface Fold {
  count: number;
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  sketch: LatencySketch;
}

/**
 * Folds rows arriving in any order into one row per key. Holds every key at once, so callers
 * bound the keys per fold (SQLite compacts a chunk of series at a time).
 */
export class KeyedFold<K> {
  private readonly folds = new Map<K, Fold>();
  badSketches = 0;

  add(key: K, v: RollupValues): void {
    const decoded = LatencySketch.decode(v.sketch);
    if (!decoded.ok) this.badSketches++;
    const had = this.folds.get(key);
    if (had === undefined) {
      this.folds.set(key, {
        count: v.count,
        failures: v.failures,
        latencyMsMin: v.latencyMsMin,
        latencyMsMax: v.latencyMsMax,
        latencyMsSum: v.latencyMsSum,
        sketch: decoded.ok ? decoded.value : new LatencySketch(),
      });
      return;
    }
    had.count += v.count;
    had.failures += v.failures;
    had.latencyMsMin = Math.min(had.latencyMsMin, v.latencyMsMin);
    had.latencyMsMax = Math.max(had.latencyMsMax, v.latencyMsMax);
    had.latencyMsSum += v.latencyMsSum;
    if (decoded.ok) had.sketch.merge(decoded.value);
  }

  *entries(): IterableIterator<[K, RollupValues]> {
    for (const [k, f] of this.folds) {
      yield [
        k,
        {
          count: f.count,
          failures: f.failures,
          latencyMsMin: f.latencyMsMin,
          latencyMsMax: f.latencyMsMax,
          latencyMsSum: f.latencyMsSum,
          sketch: f.sketch.encode(),
        },
      ];
    }
  }
}
