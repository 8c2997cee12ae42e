// A whole Vigil cluster in one process: each node is the real membership core plus the real
// node core (pools, placement, scheduler, observations, CRDT replication, verdicts), on the
// simulated network and a virtual clock. Checks hit scripted origins whose health is a
// function of virtual time. One seed reproduces the run, faults included.

import { parsePoolDocument } from "../src/config/load.ts";
import { assert } from "../src/core/assert.ts";
import { type MembershipConfig, membershipConfig, type ProfileName } from "../src/core/membership/config.ts";
import { Membership } from "../src/core/membership/membership.ts";
import type { Addr, MembershipEvent } from "../src/core/membership/types.ts";
import { type CoreOutput, type EventInit, NodeCore } from "../src/core/node/node-core.ts";
import { SeededRandom } from "../src/core/random.ts";
import { KeyedMinHeap } from "../src/core/scheduler/heap.ts";
import { type NetworkOptions, SimNetwork } from "./network.ts";

export interface VigilSimOptions {
  seed: number;
  profile?: ProfileName;
  membership?: Partial<MembershipConfig>;
  network?: Partial<NetworkOptions>;
  /** Node i's zone; default `z${i % 3}`. */
  zoneOf?: (index: number) => string;
  /** Whether an origin answers well at a virtual time, to a node; default: always. */
  originUp?: (targetKey: string, nowMs: number, node: string) => boolean;
  /** Check latency; default 1–5 ms. */
  checkLatencyMs?: (random: SeededRandom) => number;
  antiEntropyIntervalMs?: number;
  /** Keep each node's events (verdict changes are always counted). */
  keepEvents?: boolean;
}

/** Virtual wall clock: the epoch the simulated cluster lives at. */
export const SIM_WALL_EPOCH_MS = 1_800_000_000_000;

export interface VigilSimNode {
  readonly index: number;
  readonly name: string;
  readonly addr: Addr;
  membership: Membership | undefined;
  core: NodeCore | undefined;
  life: number;
  tickAtMs: number | undefined;
  events: EventInit[];
  /** Checks this node ran. */
  checks: number;
}

type SimEvent =
  | { kind: "packet"; node: VigilSimNode; life: number; from: Addr; bytes: Uint8Array }
  | { kind: "tick"; node: VigilSimNode; life: number; atMs: number }
  | {
      kind: "stream";
      server: VigilSimNode;
      client: VigilSimNode;
      clientLife: number;
      channel: "m" | "r";
      reqId: number;
      bytes: Uint8Array;
    }
  | {
      kind: "reply";
      node: VigilSimNode;
      life: number;
      channel: "m" | "r";
      reqId: number;
      reply: Uint8Array | Error;
    }
  | {
      kind: "check";
      node: VigilSimNode;
      life: number;
      id: string;
      spec: unknown;
      ok: boolean;
      latencyMs: number;
    }
  | { kind: "call"; fn: () => void };

export class VigilSim {
  readonly seed: number;
  readonly net: SimNetwork;
  readonly nodes: VigilSimNode[] = [];
  readonly membershipConfig: MembershipConfig;
  private readonly opts: VigilSimOptions;
  private readonly random: SeededRandom;
  private readonly queue = new KeyedMinHeap<SimEvent>();
  private readonly byAddr = new Map<Addr, VigilSimNode>();
  private readonly byName = new Map<string, VigilSimNode>();
  private nowMs = 0;
  /** Bytes put on the simulated wire (before encryption overhead), by kind. */
  readonly traffic = { udpPackets: 0, udpBytes: 0, streams: 0, streamBytes: 0 };
  /** Every check start, by target id: virtual times, for at-least-once assertions. */
  readonly checkTimes = new Map<string, number[]>();
  /** Set false to stop recording check times (long benchmark runs). */
  recordChecks = true;
  private pools: [string, unknown][] = [];
  private steps = 0;

  constructor(opts: VigilSimOptions) {
    this.opts = opts;
    this.seed = opts.seed;
    this.random = new SeededRandom(opts.seed);
    this.net = new SimNetwork(this.random.fork(), opts.network);
    this.membershipConfig = membershipConfig(opts.profile ?? "lan", opts.membership);
  }

  get now(): number {
    return this.nowMs;
  }

  private wall(): number {
    return SIM_WALL_EPOCH_MS + this.nowMs;
  }

  /** Pools every node loads at start (as from its config file). */
  setPools(pools: [string, unknown][]): void {
    this.pools = pools;
  }

  addNode(name = `n${this.nodes.length}`): VigilSimNode {
    assert(!this.byName.has(name), `duplicate node ${name}`);
    const index = this.nodes.length;
    const node: VigilSimNode = {
      index,
      name,
      addr: `10.0.${index >> 8}.${index & 255}:7946`,
      membership: undefined,
      core: undefined,
      life: 0,
      tickAtMs: undefined,
      events: [],
      checks: 0,
    };
    this.nodes.push(node);
    this.byAddr.set(node.addr, node);
    this.byName.set(name, node);
    this.boot(node);
    return node;
  }

  private boot(node: VigilSimNode): void {
    const zone = this.opts.zoneOf?.(node.index) ?? `z${node.index % 3}`;
    const random = this.random.fork();
    const core = new NodeCore({
      name: node.name,
      zone,
      weight: 1,
      random,
      maxConcurrentChecks: 512,
      counterStart: this.wall() * 1000,
      parsePool: (n, d) => parsePoolDocument(n, d),
      antiEntropyIntervalMs: this.opts.antiEntropyIntervalMs ?? 10_000,
      retransmitMult: this.membershipConfig.retransmitMult,
    });
    node.core = core;
    node.membership = new Membership({
      name: node.name,
      addr: node.addr,
      now: this.nowMs,
      random: random.fork(),
      config: this.membershipConfig,
      meta: new TextEncoder().encode(JSON.stringify({ z: zone, w: 1 })),
      delegate: {
        getBroadcasts: (overhead, limit) => core.getBroadcasts(overhead, limit),
        notifyMsg: (_from, payload) => core.notifyMsg(payload, this.nowMs, this.wall()),
        localState: () => new Uint8Array(0),
        mergeRemoteState: () => {},
      },
    });
    for (const [name, doc] of this.pools) core.putPool(name, doc, this.nowMs, this.wall(), "config");
    this.drive(node);
  }

  node(name: string): VigilSimNode {
    const n = this.byName.get(name);
    assert(n !== undefined, `no node ${name}`);
    return n;
  }

  live(): VigilSimNode[] {
    return this.nodes.filter((n) => n.core !== undefined);
  }

  join(node: VigilSimNode, seeds: VigilSimNode[]): void {
    node.core!.holdChecks(true);
    node.membership!.join(
      this.nowMs,
      seeds.map((s) => s.addr),
    );
    this.drive(node);
  }

  crash(node: VigilSimNode): void {
    node.membership = undefined;
    node.core = undefined;
    node.life++;
    node.tickAtMs = undefined;
  }

  restart(node: VigilSimNode, seeds: VigilSimNode[]): void {
    assert(node.core === undefined, "restart of a running node");
    node.life++;
    this.boot(node);
    this.join(node, seeds);
  }

  leave(node: VigilSimNode): void {
    node.membership?.leave(this.nowMs);
    this.drive(node);
  }

  at(atMs: number, fn: () => void): void {
    this.push(atMs, { kind: "call", fn });
  }

  private push(atMs: number, e: SimEvent): void {
    this.queue.push(e, Math.max(atMs, this.nowMs));
  }

  /** Runs both cores of a node until quiet, then schedules its next tick. */
  private drive(node: VigilSimNode): void {
    const m = node.membership;
    const core = node.core;
    if (m === undefined || core === undefined) return;
    m.tick(this.nowMs);
    for (let o = m.poll(); o !== undefined; o = m.poll()) {
      if (o.kind === "send") this.sendPacket(node, o.to, o.bytes);
      else if (o.kind === "stream") this.openStream(node, o.to, "m", o.reqId, o.bytes);
      else this.membershipEvent(node, o.event);
    }
    core.tick(this.nowMs, this.wall());
    for (const o of core.drain()) this.coreOutput(node, o);
    const next = Math.min(core.nextDeadline(), m.nextDeadline() ?? Number.POSITIVE_INFINITY);
    if (Number.isFinite(next) && (node.tickAtMs === undefined || next < node.tickAtMs)) {
      node.tickAtMs = Math.max(next, this.nowMs);
      this.push(node.tickAtMs, { kind: "tick", node, life: node.life, atMs: node.tickAtMs });
    }
  }

  private membershipEvent(node: VigilSimNode, e: MembershipEvent): void {
    const core = node.core!;
    if (e.type === "join.done") {
      core.holdChecks(false);
      core.syncSoon();
      return;
    }
    if (e.type === "leave.done") return;
    const m = e.member;
    if (e.type === "member.reaped") {
      core.memberReaped(m.name, this.nowMs, this.wall());
      return;
    }
    let zone = "default";
    try {
      zone = (JSON.parse(new TextDecoder().decode(m.meta)) as { z: string }).z;
    } catch {
      // default zone
    }
    core.memberUpdate({ name: m.name, zone, weight: 1, state: m.state }, this.nowMs, this.wall());
  }

  private coreOutput(node: VigilSimNode, o: CoreOutput): void {
    switch (o.kind) {
      case "check": {
        node.checks++;
        if (this.recordChecks) {
          let times = this.checkTimes.get(o.id);
          if (times === undefined) {
            times = [];
            this.checkTimes.set(o.id, times);
          }
          times.push(this.nowMs);
        }
        const up = this.opts.originUp?.(o.target.key, this.nowMs, node.name) ?? true;
        const latencyMs = up ? (this.opts.checkLatencyMs?.(this.random) ?? 1 + this.random.next() * 4) : 2;
        this.push(this.nowMs + latencyMs, {
          kind: "check",
          node,
          life: node.life,
          id: o.id,
          spec: o.spec,
          ok: up,
          latencyMs,
        });
        return;
      }
      case "event":
        if (this.opts.keepEvents || o.event.type === "verdict.changed") node.events.push(o.event);
        return;
      case "sync": {
        const peer = this.byName.get(o.to);
        if (peer === undefined) {
          node.core!.handleSyncReply(o.reqId, new Error("unknown peer"), this.nowMs, this.wall());
          return;
        }
        this.openStream(node, peer.addr, "r", o.reqId, o.bytes);
        return;
      }
      case "counter":
        return;
    }
  }

  private sendPacket(from: VigilSimNode, to: Addr, bytes: Uint8Array): void {
    const dst = this.byAddr.get(to);
    if (dst === undefined) return;
    this.traffic.udpPackets++;
    this.traffic.udpBytes += bytes.length;
    for (const d of this.net.packetDelays(from.index, dst.index)) {
      this.push(this.nowMs + d, { kind: "packet", node: dst, life: dst.life, from: from.addr, bytes });
    }
  }

  private openStream(
    client: VigilSimNode,
    to: Addr,
    channel: "m" | "r",
    reqId: number,
    bytes: Uint8Array,
  ): void {
    const server = this.byAddr.get(to);
    const leg = server === undefined ? undefined : this.net.streamLegMs(client.index, server.index);
    if (server === undefined || leg === undefined) {
      this.push(this.nowMs + this.net.opts.streamConnectTimeoutMs, {
        kind: "reply",
        node: client,
        life: client.life,
        channel,
        reqId,
        reply: new Error("connect timeout"),
      });
      return;
    }
    this.push(this.nowMs + leg, {
      kind: "stream",
      server,
      client,
      clientLife: client.life,
      channel,
      reqId,
      bytes,
    });
  }

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case "call":
        e.fn();
        return;
      case "tick":
        if (e.life !== e.node.life || e.node.tickAtMs !== e.atMs) return;
        e.node.tickAtMs = undefined;
        this.drive(e.node);
        return;
      case "packet":
        if (e.life !== e.node.life || e.node.membership === undefined) return;
        e.node.membership.handlePacket(this.nowMs, e.from, e.bytes);
        this.drive(e.node);
        return;
      case "check":
        if (e.life !== e.node.life || e.node.core === undefined) return;
        e.node.core.checkDone(
          e.id,
          e.spec as never,
          { ok: e.ok, latencyMs: e.latencyMs, reason: e.ok ? "status 200" : "status 503" },
          this.nowMs,
          this.wall(),
        );
        this.drive(e.node);
        return;
      case "stream": {
        const s = e.server;
        let reply: Uint8Array | Error;
        if (s.membership === undefined || s.core === undefined) reply = new Error("connection refused");
        else {
          const r =
            e.channel === "m"
              ? s.membership.handleStream(this.nowMs, e.client.addr, e.bytes)
              : s.core.handleSync(e.bytes, this.nowMs, this.wall());
          reply = r ?? new Error("closed without reply");
          this.drive(s);
        }
        if (!(reply instanceof Error)) this.traffic.streamBytes += reply.length;
        const back = this.net.streamLegMs(s.index, e.client.index);
        this.push(this.nowMs + (back ?? this.net.opts.streamConnectTimeoutMs), {
          kind: "reply",
          node: e.client,
          life: e.clientLife,
          channel: e.channel,
          reqId: e.reqId,
          reply: back === undefined ? new Error("reply lost") : reply,
        });
        return;
      }
      case "reply":
        if (e.life !== e.node.life || e.node.core === undefined) return;
        if (e.channel === "m") e.node.membership!.handleStreamReply(this.nowMs, e.reqId, e.reply);
        else e.node.core.handleSyncReply(e.reqId, e.reply, this.nowMs, this.wall());
        this.drive(e.node);
        return;
    }
  }

  runUntilTime(endMs: number): void {
    for (;;) {
      const at = this.queue.peekPriority();
      if (at === undefined || at > endMs) break;
      const e = this.queue.pop()!;
      this.nowMs = at;
      this.handle(e);
      assert(++this.steps < 500_000_000, "runaway simulation");
    }
    this.nowMs = Math.max(this.nowMs, endMs);
  }

  runFor(ms: number): void {
    this.runUntilTime(this.nowMs + ms);
  }

  /** Runs until `done()` holds (checked every `everyMs`), returning the time, or undefined. */
  runUntil(done: () => boolean, maxMs: number, everyMs = 100): number | undefined {
    const end = this.nowMs + maxMs;
    while (this.nowMs < end) {
      if (done()) return this.nowMs;
      this.runUntilTime(Math.min(end, this.nowMs + everyMs));
    }
    return done() ? this.nowMs : undefined;
  }
}
