// A deterministic cluster simulator: N copies of the real membership core in one process, on a
// virtual clock, over the simulated network. An event queue (a heap by time, FIFO among equal
// times) holds packet deliveries, stream legs, node timers and scenario steps. Nodes can be
// paused (a stalled event loop: inputs queue up, timers do not fire, then all at once), slowed,
// crashed (state lost) and restarted (same name and address, fresh state, joins again).
// Everything random derives from one seed.

import { assert } from "../src/core/assert.ts";
import { type MembershipConfig, membershipConfig, type ProfileName } from "../src/core/membership/config.ts";
import { Membership } from "../src/core/membership/membership.ts";
import type { Addr, AppDelegate, MemberState, MembershipEvent } from "../src/core/membership/types.ts";
import { SeededRandom } from "../src/core/random.ts";
import { KeyedMinHeap } from "../src/core/scheduler/heap.ts";
import { type NetworkOptions, SimNetwork } from "./network.ts";

export interface SimClusterOptions {
  seed: number;
  profile?: ProfileName;
  config?: Partial<MembershipConfig>;
  network?: Partial<NetworkOptions>;
  /** The application delegate of each node (created again on restart). */
  delegate?: (name: string) => AppDelegate | undefined;
  meta?: (name: string) => Uint8Array;
}

export interface SimNode {
  readonly index: number;
  readonly name: string;
  readonly addr: Addr;
  /** undefined while crashed. */
  core: Membership | undefined;
  /** Incremented on crash and restart: replies to a previous life are dropped. */
  life: number;
  pausedUntilMs: number;
  /** Extra delay on everything the node handles: a slow, overloaded process. */
  slowMs: number;
  /** Inputs that arrived while paused, handled on resume. */
  inbox: Array<(core: Membership) => void>;
  tickAtMs: number | undefined;
  seeds: Addr[];
}

/** Inputs a paused node buffers, like a socket receive buffer; beyond this they are lost. */
export const MAX_PAUSED_INBOX = 10_000;
/** Events one run call processes; a runaway feedback loop fails loudly instead of hanging. */
export const MAX_EVENTS_PER_RUN = 200_000_000;

type SimEvent =
  | { readonly kind: "packet"; readonly node: SimNode; readonly from: Addr; readonly bytes: Uint8Array }
  | { readonly kind: "tick"; readonly node: SimNode; readonly life: number; readonly atMs: number }
  | {
      readonly kind: "stream_request";
      readonly server: SimNode;
      readonly client: SimNode;
      readonly clientLife: number;
      readonly reqId: number;
      readonly bytes: Uint8Array;
    }
  | {
      readonly kind: "stream_reply";
      readonly node: SimNode;
      readonly life: number;
      readonly reqId: number;
      readonly reply: Uint8Array | Error;
    }
  | { readonly kind: "resume"; readonly node: SimNode; readonly life: number }
  | { readonly kind: "call"; readonly fn: () => void };

export type EventListener = (node: SimNode, event: MembershipEvent, nowMs: number) => void;

export interface TrafficTotals {
  udpPackets: number;
  udpBytes: number;
  streams: number;
  streamBytes: number;
}

export class SimCluster {
  readonly seed: number;
  readonly config: MembershipConfig;
  readonly net: SimNetwork;
  readonly nodes: SimNode[] = [];
  readonly traffic: TrafficTotals = { udpPackets: 0, udpBytes: 0, streams: 0, streamBytes: 0 };
  private readonly opts: SimClusterOptions;
  private readonly random: SeededRandom;
  private readonly queue = new KeyedMinHeap<SimEvent>();
  private readonly byAddr = new Map<Addr, SimNode>();
  private readonly byName = new Map<string, SimNode>();
  private readonly listeners: EventListener[] = [];
  private nowMs = 0;

  constructor(opts: SimClusterOptions) {
    this.opts = opts;
    this.seed = opts.seed;
    this.random = new SeededRandom(opts.seed);
    this.net = new SimNetwork(this.random.fork(), opts.network);
    this.config = membershipConfig(opts.profile ?? "lan", opts.config);
  }

  get now(): number {
    return this.nowMs;
  }

  // ── nodes ──

  /** Starts a node (not yet joined to anyone). */
  addNode(name = `n${this.nodes.length}`): SimNode {
    assert(!this.byName.has(name), `duplicate node ${name}`);
    const i = this.nodes.length;
    const node: SimNode = {
      index: i,
      name,
      addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7946`,
      core: undefined,
      life: 0,
      pausedUntilMs: 0,
      slowMs: 0,
      inbox: [],
      tickAtMs: undefined,
      seeds: [],
    };
    this.nodes.push(node);
    this.byAddr.set(node.addr, node);
    this.byName.set(name, node);
    this.boot(node);
    return node;
  }

  /** Starts `count` nodes; all but the first join through the first. */
  addNodes(count: number, opts: { staggerMs?: number } = {}): SimNode[] {
    const out: SimNode[] = [];
    for (let i = 0; i < count; i++) out.push(this.addNode());
    const seed = out[0]!;
    for (let i = 1; i < out.length; i++) {
      const n = out[i]!;
      const at = this.nowMs + (opts.staggerMs ?? 0) * this.random.next();
      this.at(at, () => this.join(n, [seed]));
    }
    return out;
  }

  node(name: string): SimNode {
    const n = this.byName.get(name);
    assert(n !== undefined, `no node ${name}`);
    return n;
  }

  join(node: SimNode, seeds: SimNode[]): void {
    node.seeds = seeds.map((s) => s.addr);
    this.input(node, (core) => core.join(this.nowMs, node.seeds));
  }

  /** The process dies: all its state is lost, its address goes quiet. */
  crash(node: SimNode): void {
    node.core = undefined;
    node.life++;
    node.inbox = [];
    node.tickAtMs = undefined;
    node.pausedUntilMs = 0;
  }

  /** A crashed node starts again with the same name and address, and joins its seeds again. */
  restart(node: SimNode, seeds?: SimNode[]): void {
    assert(node.core === undefined, "restart of a running node");
    this.boot(node);
    const addrs = seeds?.map((s) => s.addr) ?? node.seeds;
    node.seeds = addrs;
    this.input(node, (core) => core.join(this.nowMs, addrs));
  }

  /** The node stops handling anything for `durationMs` (a stalled event loop), then catches up. */
  pause(node: SimNode, durationMs: number): void {
    if (node.core === undefined) return;
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + durationMs);
    this.push(node.pausedUntilMs, { kind: "resume", node, life: node.life });
  }

  setSlow(node: SimNode, extraMs: number): void {
    node.slowMs = extraMs;
  }

  leave(node: SimNode): void {
    this.input(node, (core) => core.leave(this.nowMs));
  }

  setMeta(node: SimNode, meta: Uint8Array): void {
    this.input(node, (core) => core.setMeta(this.nowMs, meta));
  }

  onEvent(listener: EventListener): void {
    this.listeners.push(listener);
  }

  /** `observer`'s view of `target`, undefined when unknown (or observer is down). */
  view(observer: SimNode, target: SimNode): MemberState | undefined {
    return observer.core?.member(target.name)?.state;
  }

  /** Running nodes (not crashed). */
  live(): SimNode[] {
    return this.nodes.filter((n) => n.core !== undefined);
  }

  // ── time ──

  /** Runs `fn` at virtual time `atMs`. */
  at(atMs: number, fn: () => void): void {
    this.push(Math.max(atMs, this.nowMs), { kind: "call", fn });
  }

  runFor(durationMs: number): void {
    this.runUntilTime(this.nowMs + durationMs);
  }

  runUntilTime(endMs: number): void {
    let processed = 0;
    for (;;) {
      const at = this.queue.peekPriority();
      if (at === undefined || at > endMs) break;
      const ev = this.queue.pop()!;
      this.nowMs = at;
      this.process(ev);
      processed++;
      assert(processed < MAX_EVENTS_PER_RUN, "simulation event budget exhausted");
    }
    this.nowMs = Math.max(this.nowMs, endMs);
  }

  /** Runs until `done()` holds (checked every `checkEveryMs`); the time it held, or undefined after `maxMs`. */
  runUntil(done: () => boolean, maxMs: number, checkEveryMs = 100): number | undefined {
    const endMs = this.nowMs + maxMs;
    for (;;) {
      if (done()) return this.nowMs;
      if (this.nowMs >= endMs) return undefined;
      this.runUntilTime(Math.min(endMs, this.nowMs + checkEveryMs));
    }
  }

  // ── plumbing ──

  private boot(node: SimNode): void {
    node.life++;
    node.core = new Membership({
      name: node.name,
      addr: node.addr,
      now: this.nowMs,
      random: this.random.fork(),
      config: this.config,
      meta: this.opts.meta?.(node.name),
      delegate: this.opts.delegate?.(node.name),
    });
    node.tickAtMs = undefined;
    this.flush(node);
  }

  private push(atMs: number, ev: SimEvent): void {
    this.queue.push(ev, atMs);
  }

  /** Hands an input to a node now, or queues it while the node is paused. */
  private input(node: SimNode, fn: (core: Membership) => void): void {
    const core = node.core;
    if (core === undefined) return;
    if (this.nowMs < node.pausedUntilMs) {
      if (node.inbox.length < MAX_PAUSED_INBOX) node.inbox.push(fn);
      return;
    }
    fn(core);
    this.flush(node);
  }

  private process(ev: SimEvent): void {
    switch (ev.kind) {
      case "packet":
        this.input(ev.node, (core) => core.handlePacket(this.nowMs, ev.from, ev.bytes));
        return;
      case "tick": {
        const node = ev.node;
        if (node.life !== ev.life || node.tickAtMs !== ev.atMs || node.core === undefined) return;
        node.tickAtMs = undefined;
        // A paused node's timers fire when it resumes.
        if (this.nowMs < node.pausedUntilMs) return;
        node.core.tick(this.nowMs);
        this.flush(node);
        return;
      }
      case "stream_request":
        this.serveStream(ev.server, ev.client, ev.clientLife, ev.reqId, ev.bytes);
        return;
      case "stream_reply": {
        const node = ev.node;
        if (node.life !== ev.life) return;
        this.input(node, (core) => core.handleStreamReply(this.nowMs, ev.reqId, ev.reply));
        return;
      }
      case "resume": {
        const node = ev.node;
        if (node.life !== ev.life || node.core === undefined || this.nowMs < node.pausedUntilMs) return;
        // Like Node's event loop after a long block: overdue timers first, then queued I/O.
        node.core.tick(this.nowMs);
        this.flush(node);
        const inbox = node.inbox;
        node.inbox = [];
        for (const fn of inbox) {
          if (node.core === undefined) break;
          fn(node.core);
          this.flush(node);
        }
        return;
      }
      case "call":
        ev.fn();
        return;
    }
  }

  private flush(node: SimNode): void {
    const core = node.core;
    if (core === undefined) return;
    for (let o = core.poll(); o !== undefined; o = core.poll()) {
      switch (o.kind) {
        case "send":
          this.sendPacket(node, o.to, o.bytes);
          break;
        case "stream":
          this.openStream(node, o.to, o.bytes, o.reqId);
          break;
        case "event":
          for (const l of this.listeners) l(node, o.event, this.nowMs);
          break;
      }
    }
    const d = core.nextDeadline();
    if (d === undefined) return;
    const at = Math.max(d, this.nowMs) + node.slowMs;
    if (node.tickAtMs === undefined || at < node.tickAtMs) {
      node.tickAtMs = at;
      this.push(at, { kind: "tick", node, life: node.life, atMs: at });
    }
  }

  private sendPacket(from: SimNode, to: Addr, bytes: Uint8Array): void {
    this.traffic.udpPackets++;
    this.traffic.udpBytes += bytes.length;
    const dst = this.byAddr.get(to);
    if (dst === undefined) return;
    for (const delayMs of this.net.packetDelays(from.index, dst.index))
      this.push(this.nowMs + delayMs + dst.slowMs, { kind: "packet", node: dst, from: from.addr, bytes });
  }

  private openStream(client: SimNode, to: Addr, bytes: Uint8Array, reqId: number): void {
    this.traffic.streams++;
    this.traffic.streamBytes += bytes.length;
    const server = this.byAddr.get(to);
    const fail = (afterMs: number, why: string): void =>
      this.push(this.nowMs + afterMs, {
        kind: "stream_reply",
        node: client,
        life: client.life,
        reqId,
        reply: new Error(why),
      });
    if (server === undefined) {
      fail(this.net.opts.streamConnectTimeoutMs, "no such host");
      return;
    }
    // Connect (SYN, SYN-ACK) and the request: three one-way legs.
    const syn = this.net.streamLegMs(client.index, server.index);
    const synAck = this.net.streamLegMs(server.index, client.index);
    const data = this.net.streamLegMs(client.index, server.index);
    if (syn === undefined || synAck === undefined || data === undefined) {
      fail(this.net.opts.streamConnectTimeoutMs, "connect timed out");
      return;
    }
    this.push(this.nowMs + syn + synAck + data + server.slowMs, {
      kind: "stream_request",
      server,
      client,
      clientLife: client.life,
      reqId,
      bytes,
    });
  }

  private serveStream(
    server: SimNode,
    client: SimNode,
    clientLife: number,
    reqId: number,
    bytes: Uint8Array,
  ): void {
    const replyWith = (reply: Uint8Array | Error): void => {
      const back = this.net.streamLegMs(server.index, client.index);
      const afterMs = back ?? this.net.opts.streamConnectTimeoutMs;
      const r = back === undefined ? new Error("reply lost: path cut") : reply;
      if (!(r instanceof Error)) this.traffic.streamBytes += r.length;
      this.push(this.nowMs + afterMs + client.slowMs, {
        kind: "stream_reply",
        node: client,
        life: clientLife,
        reqId,
        reply: r,
      });
    };
    if (server.core === undefined) {
      replyWith(new Error("connection refused"));
      return;
    }
    this.input(server, (core) => {
      const reply = core.handleStream(this.nowMs, client.addr, bytes);
      replyWith(reply ?? new Error("closed without a reply"));
    });
  }
}
