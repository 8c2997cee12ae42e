// A last-writer-wins map keyed by string (pool specs, admin states), ordered by hybrid logical
// clock timestamps with the writer's node name as the final tie-break. A write is a whole
// value; a delete is a tombstone that wins like any write and is dropped after a retention
// period. Merge keeps the greater timestamp, so it is commutative, associative and idempotent.
//
// Two guards keep collected or bogus history out:
// - An entry for an absent key stamped before the gc horizon (the newest "now − retention"
//   used by gc) is refused: its tombstone may have been collected already.
// - An entry stamped further ahead of the local wall clock than `maxClockSkewMs` is refused
//   for now; anti-entropy offers it again, and it is accepted once the local clock catches up.
//   Without this one node with a clock years ahead would pin every HLC in the cluster.

import { assert } from "../assert.ts";
import type { Hlc } from "./hlc.ts";
import { compareHlc, HybridClock } from "./hlc.ts";
import { stateLimits } from "./limits.ts";

export interface LwwEntry<V> {
  readonly key: string;
  readonly ts: Hlc;
  /** undefined exactly when `deleted`. */
  readonly value: V | undefined;
  readonly deleted: boolean;
}

export type LwwDelta<V> = readonly LwwEntry<V>[];

/** A visible change: before/after are undefined when the key was absent or deleted. */
export interface LwwChange<V> {
  readonly key: string;
  readonly before: V | undefined;
  readonly after: V | undefined;
}

/** A cheap summary: equal digests mean (with overwhelming probability) equal maps. */
export interface LwwDigest {
  readonly count: number;
  readonly hash: string;
}

export interface LwwMapOptions<V = unknown> {
  node: string;
  /** Shared clock (e.g. one per node for all LWW maps); default: a fresh one for `node`. */
  clock?: HybridClock;
  maxClockSkewMs?: number;
  /**
   * Called with every entry the map stores (a local write, or a merged entry that was newer),
   * tombstones included, so a shell can persist it. Not called for what gc drops.
   */
  onStore?: (e: LwwEntry<V>) => void;
}

export interface LwwStats {
  live: number;
  tombstones: number;
  /** Entries refused for being too far ahead of the local clock (or a runaway logical counter). */
  refusedFuture: number;
  /** Entries refused for being older than the gc horizon. */
  refusedStale: number;
}

export class LwwMap<V> {
  readonly clock: HybridClock;
  private readonly maxClockSkewMs: number;
  private readonly onStore: ((e: LwwEntry<V>) => void) | undefined;
  private readonly map = new Map<string, LwwEntry<V>>();
  private horizonMs = 0;
  private refusedFuture = 0;
  private refusedStale = 0;

  constructor(opts: LwwMapOptions<V>) {
    this.clock = opts.clock ?? new HybridClock(opts.node);
    assert(this.clock.node === opts.node, "the clock must belong to this node");
    this.maxClockSkewMs = opts.maxClockSkewMs ?? stateLimits.maxClockSkewMsDefault;
    this.onStore = opts.onStore;
  }

  // ── reads ──

  get(key: string): V | undefined {
    const e = this.map.get(key);
    return e === undefined || e.deleted ? undefined : e.value;
  }

  has(key: string): boolean {
    const e = this.map.get(key);
    return e !== undefined && !e.deleted;
  }

  /** The stored entry, tombstones included. */
  entry(key: string): LwwEntry<V> | undefined {
    return this.map.get(key);
  }

  get size(): number {
    let n = 0;
    for (const e of this.map.values()) if (!e.deleted) n++;
    return n;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const [k, e] of this.map) if (!e.deleted) yield [k, e.value as V];
  }

  stats(): LwwStats {
    let tombstones = 0;
    for (const e of this.map.values()) if (e.deleted) tombstones++;
    return {
      live: this.map.size - tombstones,
      tombstones,
      refusedFuture: this.refusedFuture,
      refusedStale: this.refusedStale,
    };
  }

  // ── writes ──

  set(key: string, value: V, nowWallMs: number): LwwDelta<V> {
    return this.write(key, value, false, nowWallMs);
  }

  /** Writes a tombstone, present or not, so the delete reaches nodes that have the key. */
  delete(key: string, nowWallMs: number): LwwDelta<V> {
    return this.write(key, undefined, true, nowWallMs);
  }

  /** Merges entries from a peer (a delta or an anti-entropy answer); returns visible changes. */
  applyDelta(delta: LwwDelta<V>, nowWallMs: number): LwwChange<V>[] {
    const changes: LwwChange<V>[] = [];
    for (const e of delta) {
      const cur = this.map.get(e.key);
      if (cur !== undefined && compareHlc(e.ts, cur.ts) <= 0) continue;
      if (e.ts.wallMs > nowWallMs + this.maxClockSkewMs || e.ts.logical > stateLimits.maxHlcLogical) {
        this.refusedFuture++;
        continue;
      }
      if (cur === undefined && e.ts.wallMs < this.horizonMs) {
        this.refusedStale++;
        continue;
      }
      const stored: LwwEntry<V> = e.deleted ? { key: e.key, ts: e.ts, value: undefined, deleted: true } : e;
      this.map.set(e.key, stored);
      this.clock.receive(e.ts, nowWallMs);
      this.onStore?.(stored);
      const before = cur === undefined || cur.deleted ? undefined : cur.value;
      const after = e.deleted ? undefined : e.value;
      if (before !== undefined || after !== undefined) changes.push({ key: e.key, before, after });
    }
    return changes;
  }

  // ── anti-entropy ──

  digest(): LwwDigest {
    // Order-independent: a sum of per-entry hashes, two 32-bit lanes.
    let a = 0;
    let b = 0;
    for (const e of this.map.values()) {
      const s = `${e.key}\u0000${e.ts.wallMs}\u0000${e.ts.logical}\u0000${e.ts.node}\u0000${e.deleted ? 1 : 0}`;
      a = (a + fnv1a(s, 0x811c9dc5)) >>> 0;
      b = (b + fnv1a(s, 0x01000193)) >>> 0;
    }
    return { count: this.map.size, hash: a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0") };
  }

  /** Every key's timestamp (tombstones included), sorted by key: what a peer diffs against. */
  versions(): [string, Hlc][] {
    const out: [string, Hlc][] = [];
    for (const [k, e] of this.map) out.push([k, e.ts]);
    out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return out;
  }

  /** Entries the peer lacks or holds older, given its `versions()`. */
  missingFor(peerVersions: Iterable<readonly [string, Hlc]>): LwwEntry<V>[] {
    const peer = new Map<string, Hlc>();
    for (const [k, ts] of peerVersions) peer.set(k, ts);
    const out: LwwEntry<V>[] = [];
    for (const [k, e] of this.map) {
      const theirs = peer.get(k);
      if (theirs === undefined || compareHlc(e.ts, theirs) > 0) out.push(e);
    }
    return out;
  }

  /** Entries stamped after `since` (all of them when undefined), oldest first. */
  entriesNewerThan(since: Hlc | undefined): LwwEntry<V>[] {
    const out: LwwEntry<V>[] = [];
    for (const e of this.map.values()) if (since === undefined || compareHlc(e.ts, since) > 0) out.push(e);
    out.sort((x, y) => compareHlc(x.ts, y.ts));
    return out;
  }

  /** Drops tombstones older than the retention; returns how many. */
  gc(nowWallMs: number, retentionMs: number = stateLimits.tombstoneRetentionMsDefault): number {
    const cutMs = nowWallMs - retentionMs;
    if (cutMs > this.horizonMs) this.horizonMs = cutMs;
    let dropped = 0;
    for (const [k, e] of this.map) {
      if (e.deleted && e.ts.wallMs < cutMs) {
        this.map.delete(k);
        dropped++;
      }
    }
    return dropped;
  }

  private write(key: string, value: V | undefined, deleted: boolean, nowWallMs: number): LwwDelta<V> {
    assert(key.length > 0 && key.length <= stateLimits.maxIdChars, "LWW key must be a valid id");
    const ts = this.clock.tick(nowWallMs);
    const e: LwwEntry<V> = { key, ts, value, deleted };
    this.map.set(key, e);
    this.onStore?.(e);
    return [e];
  }
}

function fnv1a(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche so that sums of similar strings do not cancel.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
