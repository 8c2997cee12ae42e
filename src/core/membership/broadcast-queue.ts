// A transmit-limited broadcast queue (memberlist's TransmitLimitedQueue).
//
// Each broadcast is piggybacked on outgoing packets until it has been sent
// `retransmitMult × ceil(log10(n + 1))` times: enough, with gossip fan-out, to reach every
// member with high probability, and no more. The least-sent broadcasts go first, so fresh news
// overtakes old news; among broadcasts sent equally often the newest goes first (as in
// memberlist), so a backlog never delays a fresh fact. A broadcast about a key (a member name) replaces any queued broadcast
// about the same key: only the newest fact about a member is worth the bytes.

import { assert } from "../assert.ts";

export type BroadcastEnd = "sent" | "invalidated" | "dropped";

interface Item {
  readonly key: string | undefined;
  readonly bytes: Uint8Array;
  transmits: number;
  readonly onDone: ((end: BroadcastEnd) => void) | undefined;
  /** Where the item sits: its tier array and index there (slots are nulled on removal). */
  slot: number;
}

/** A tier: items sent equally often, oldest first; removed ones leave a null until compaction. */
interface Tier {
  items: (Item | null)[];
  live: number;
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
  private readonly tiers: Tier[] = [];
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
    const item: Item = { key, bytes, transmits: 0, onDone, slot: 0 };
    this.add(item);
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
      if (tier === undefined || tier.live === 0) continue;
      // Newest first within a tier.
      for (let i = tier.items.length - 1; i >= 0; i--) {
        const item = tier.items[i];
        if (item === null || item === undefined) continue;
        if (skip?.has(item.bytes)) continue;
        const cost = overheadBytes + item.bytes.length;
        if (used + cost > limitBytes) {
          if (++misses >= MAX_MISSES_PER_CALL || limitBytes - used < overheadBytes + this.minBytes) break;
          continue;
        }
        used += cost;
        out.push(item.bytes);
        this.unlink(item, false);
        item.transmits++;
        if (item.transmits >= limit) this.finish(item, "sent");
        else promoted.push(item);
      }
      if (limitBytes - used < overheadBytes + this.minBytes) break;
    }
    // Compacted and promoted after the scan: indices stay put while it runs, and an item is
    // not picked twice for the same packet.
    for (const tier of this.tiers) this.compact(tier);
    for (const item of promoted) this.add(item);
    return out;
  }

  /** Drops everything queued (e.g. the node is shutting down); nothing is reported as sent. */
  clear(): void {
    for (const tier of this.tiers) {
      for (const item of tier.items) item?.onDone?.("invalidated");
      tier.items.length = 0;
      tier.live = 0;
    }
    this.byKey.clear();
    this.count = 0;
  }

  private add(item: Item): void {
    while (this.tiers.length <= item.transmits) this.tiers.push({ items: [], live: 0 });
    const tier = this.tiers[item.transmits]!;
    item.slot = tier.items.length;
    tier.items.push(item);
    tier.live++;
  }

  /** Takes an item out of its tier, leaving a hole. */
  private unlink(item: Item, compact = true): void {
    const tier = this.tiers[item.transmits];
    assert(tier !== undefined && tier.items[item.slot] === item, "broadcast not in its tier");
    tier.items[item.slot] = null;
    tier.live--;
    if (compact) this.compact(tier);
  }

  /** Squeezes the holes out of a tier once it is mostly holes. */
  private compact(tier: Tier): void {
    if (tier.live === 0) tier.items.length = 0;
    else if (tier.items.length > 64 && tier.live * 2 < tier.items.length) {
      let j = 0;
      for (const it of tier.items) {
        if (it === null) continue;
        it.slot = j;
        tier.items[j++] = it;
      }
      tier.items.length = j;
    }
  }

  private remove(item: Item, end: BroadcastEnd): void {
    this.unlink(item);
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
      if (tier.live === 0) continue;
      const first = tier.items.find((it) => it !== null);
      if (first === undefined || first === null) continue;
      this.remove(first, "dropped");
      this.dropped++;
      return;
    }
    assert(false, "queue count positive but no item found");
  }
}
