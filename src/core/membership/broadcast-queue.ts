// A transmit-limited broadcast queue (memberlist's TransmitLimitedQueue).
//
// Each broadcast is piggybacked on outgoing packets until it has been sent
// `retransmitMult × ceil(log10(n + 1))` times: enough, with gossip fan-out, to reach every
// member with high probability, and no more. The least-sent broadcasts go first, so fresh news
// overtakes old news. A broadcast about a key (a member name) replaces any queued broadcast
// about the same key: only the newest fact about a member is worth the bytes.

import { assert } from "../assert.ts";

export type BroadcastEnd = "sent" | "invalidated" | "dropped";

interface Item {
  readonly key: string | undefined;
  readonly bytes: Uint8Array;
  transmits: number;
  readonly onDone: ((end: BroadcastEnd) => void) | undefined;
}

export interface BroadcastQueueOptions {
  retransmitMult: number;
  /** Beyond this many queued broadcasts the most-sent (oldest) one is dropped and counted. */
  maxQueued: number;
  /** The cluster size the retransmit limit is computed from, read at each use. */
  numMembers: () => number;
}

/** Each broadcast is sent this many times. */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/** Items that did not fit looked at in one call before giving up; bounds a call's work. */
const MAX_MISSES_PER_CALL = 64;

export class BroadcastQueue {
  private readonly opts: BroadcastQueueOptions;
  /** tiers[t] holds the items sent t times, oldest first. */
  private readonly tiers: Set<Item>[] = [];
  private readonly byKey = new Map<string, Item>();
  private count = 0;
  /** The shortest broadcast ever queued: once less room than that is left, stop looking. */
  private minBytes = Number.POSITIVE_INFINITY;
  /** Broadcasts dropped because the queue was full. */
  dropped = 0;

  constructor(opts: BroadcastQueueOptions) {
    assert(opts.retransmitMult > 0 && opts.maxQueued > 0, "broadcast queue bounds");
    this.opts = opts;
  }

  get length(): number {
    return this.count;
  }

  /** Queues a broadcast; one with the same key, if queued, is invalidated. */
  queue(key: string | undefined, bytes: Uint8Array, onDone?: (end: BroadcastEnd) => void): void {
    assert(bytes.length > 0, "empty broadcast");
    if (key !== undefined) {
      const old = this.byKey.get(key);
      if (old !== undefined) this.remove(old, "invalidated");
    }
    this.minBytes = Math.min(this.minBytes, bytes.length);
    const item: Item = { key, bytes, transmits: 0, onDone };
    this.tierOf(0).add(item);
    if (key !== undefined) this.byKey.set(key, item);
    this.count++;
    while (this.count > this.opts.maxQueued) this.dropOldest();
  }

  /**
   * Broadcasts to piggyback on one packet: least-sent first, each costing its length plus
   * `overheadBytes`, together at most `limitBytes`. Each returned one counts as sent once.
   * `already` holds broadcasts the same packet carries from an earlier call: skipped.
   */
  getBroadcasts(overheadBytes: number, limitBytes: number, already?: readonly Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.count === 0 || limitBytes <= overheadBytes) return out;
    const limit = retransmitLimit(this.opts.retransmitMult, this.opts.numMembers());
    const skip = already !== undefined && already.length > 0 ? new Set(already) : undefined;
    const promoted: Item[] = [];
    let used = 0;
    let misses = 0;
    for (let t = 0; t < this.tiers.length && misses < MAX_MISSES_PER_CALL; t++) {
      const tier = this.tiers[t];
      if (tier === undefined || tier.size === 0) continue;
      for (const item of tier) {
        if (skip?.has(item.bytes)) continue;
        const cost = overheadBytes + item.bytes.length;
        if (used + cost > limitBytes) {
          if (++misses >= MAX_MISSES_PER_CALL || limitBytes - used < overheadBytes + this.minBytes) break;
          continue;
        }
        used += cost;
        out.push(item.bytes);
        tier.delete(item);
        item.transmits++;
        if (item.transmits >= limit) this.finish(item, "sent");
        else promoted.push(item);
      }
      if (limitBytes - used < overheadBytes + this.minBytes) break;
    }
    // Promoted after the scan, so an item is not picked twice for the same packet.
    for (const item of promoted) this.tierOf(item.transmits).add(item);
    return out;
  }

  /** Drops everything queued (e.g. the node is shutting down); nothing is reported as sent. */
  clear(): void {
    for (const tier of this.tiers) {
      for (const item of tier) item.onDone?.("invalidated");
      tier.clear();
    }
    this.byKey.clear();
    this.count = 0;
  }

  private tierOf(t: number): Set<Item> {
    while (this.tiers.length <= t) this.tiers.push(new Set());
    return this.tiers[t]!;
  }

  private remove(item: Item, end: BroadcastEnd): void {
    const removed = this.tiers[item.transmits]?.delete(item) ?? false;
    assert(removed, "broadcast not in its tier");
    this.finish(item, end);
  }

  /** The item is out of every tier already; forget its key and report how it ended. */
  private finish(item: Item, end: BroadcastEnd): void {
    if (item.key !== undefined && this.byKey.get(item.key) === item) this.byKey.delete(item.key);
    this.count--;
    item.onDone?.(end);
  }

  private dropOldest(): void {
    for (let t = this.tiers.length - 1; t >= 0; t--) {
      const tier = this.tiers[t]!;
      const first = tier.values().next();
      if (first.done === true) continue;
      this.remove(first.value, "dropped");
      this.dropped++;
      return;
    }
    assert(false, "queue count positive but no item found");
  }
}
