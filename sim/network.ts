// The simulated network between simulated nodes: per-link latency with jitter, loss,
// duplication, reordering, and partitions one-way or two-way. Nodes are small integers.
// All randomness comes from the Random handed in, so one seed reproduces every fate.

import { assert } from "../src/core/assert.ts";
import type { Random } from "../src/core/random.ts";

export interface NetworkOptions {
  /** Each link's base one-way latency is fixed per link, uniform in [min, max]. */
  baseLatencyMsMin: number;
  baseLatencyMsMax: number;
  /** Per-packet extra delay, exponentially distributed with this mean. */
  jitterMsMean: number;
  /** Probability a packet is lost, on every link unless a link overrides it. */
  loss: number;
  /** Probability a packet arrives twice. */
  duplicate: number;
  /** Probability a packet is held back by up to `reorderDelayMsMax`, overtaken by later ones. */
  reorder: number;
  reorderDelayMsMax: number;
  /** Streams are TCP: loss does not lose them but costs a retransmission timeout per lost segment. */
  streamRtoMs: number;
  /** A stream to an unreachable peer (partitioned) fails after this long. */
  streamConnectTimeoutMs: number;
}

export const defaultNetworkOptions: NetworkOptions = {
  baseLatencyMsMin: 0.2,
  baseLatencyMsMax: 2,
  jitterMsMean: 0.5,
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelayMsMax: 20,
  streamRtoMs: 200,
  streamConnectTimeoutMs: 1_000,
};

interface Partition {
  readonly a: ReadonlySet<number>;
  readonly b: ReadonlySet<number>;
  readonly oneWay: boolean;
}

export interface NetworkCounters {
  packetsSent: number;
  packetsDelivered: number;
  packetsLost: number;
  packetsBlocked: number;
  packetsDuplicated: number;
}

export class SimNetwork {
  readonly opts: NetworkOptions;
  private readonly random: Random;
  private readonly salt: number;
  private readonly partitions = new Set<Partition>();
  private readonly linkLoss = new Map<number, number>();
  readonly counters: NetworkCounters = {
    packetsSent: 0,
    packetsDelivered: 0,
    packetsLost: 0,
    packetsBlocked: 0,
    packetsDuplicated: 0,
  };

  constructor(random: Random, opts: Partial<NetworkOptions> = {}) {
    this.opts = { ...defaultNetworkOptions, ...opts };
    assert(this.opts.baseLatencyMsMin <= this.opts.baseLatencyMsMax, "latency range");
    assert(this.opts.loss >= 0 && this.opts.loss <= 1, "loss is a probability");
    this.random = random;
    this.salt = random.int(0x7fff_ffff);
  }

  setLoss(loss: number): void {
    assert(loss >= 0 && loss <= 1, "loss is a probability");
    this.opts.loss = loss;
  }

  /** Loss on the directed link from → to only; undefined restores the network-wide value. */
  setLinkLoss(from: number, to: number, loss: number | undefined): void {
    const key = from * 1_048_576 + to;
    if (loss === undefined) this.linkLoss.delete(key);
    else this.linkLoss.set(key, loss);
  }

  /** Cuts a from b (and b from a unless oneWay: then only packets a → b are lost). Returns a handle for heal(). */
  partition(a: Iterable<number>, b: Iterable<number>, oneWay = false): object {
    const p: Partition = { a: new Set(a), b: new Set(b), oneWay };
    this.partitions.add(p);
    return p;
  }

  heal(handle: object): void {
    this.partitions.delete(handle as Partition);
  }

  healAll(): void {
    this.partitions.clear();
  }

  blocked(from: number, to: number): boolean {
    for (const p of this.partitions) {
      if (p.a.has(from) && p.b.has(to)) return true;
      if (!p.oneWay && p.b.has(from) && p.a.has(to)) return true;
    }
    return false;
  }

  /** The fixed base latency of a link: a hash of the pair, so it needs no table. */
  linkBaseMs(from: number, to: number): number {
    let h = (Math.imul(from + 1, 0x9e3779b1) ^ Math.imul(to + 1, 0x85ebca77) ^ this.salt) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    const u = h / 0x1_0000_0000;
    const { baseLatencyMsMin: lo, baseLatencyMsMax: hi } = this.opts;
    return lo + u * (hi - lo);
  }

  private oneWayMs(from: number, to: number): number {
    const jitter =
      this.opts.jitterMsMean > 0 ? -Math.log(1 - this.random.next()) * this.opts.jitterMsMean : 0;
    let ms = this.linkBaseMs(from, to) + jitter;
    if (this.opts.reorder > 0 && this.random.next() < this.opts.reorder)
      ms += this.random.next() * this.opts.reorderDelayMsMax;
    return ms;
  }

  /** When the copies of one packet arrive (0, 1 or 2 delays): lost, delivered, or duplicated. */
  packetDelays(from: number, to: number): number[] {
    this.counters.packetsSent++;
    if (this.blocked(from, to)) {
      this.counters.packetsBlocked++;
      return [];
    }
    const loss = this.linkLoss.get(from * 1_048_576 + to) ?? this.opts.loss;
    if (loss > 0 && this.random.next() < loss) {
      this.counters.packetsLost++;
      return [];
    }
    this.counters.packetsDelivered++;
    const first = this.oneWayMs(from, to);
    if (this.opts.duplicate > 0 && this.random.next() < this.opts.duplicate) {
      this.counters.packetsDuplicated++;
      return [first, this.oneWayMs(from, to)];
    }
    return [first];
  }

  /** One leg of a stream exchange, or undefined when the path is cut. */
  streamLegMs(from: number, to: number): number | undefined {
    if (this.blocked(from, to)) return undefined;
    let ms = this.oneWayMs(from, to);
    const loss = this.linkLoss.get(from * 1_048_576 + to) ?? this.opts.loss;
    // A lost segment is resent after an RTO; a handful of losses in a row is the practical cap.
    for (let i = 0; i < 6 && loss > 0 && this.random.next() < loss; i++) ms += this.opts.streamRtoMs * 2 ** i;
    return ms;
  }
}
