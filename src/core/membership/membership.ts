// SWIM membership with the Lifeguard extensions, as in hashicorp/memberlist, as a sans-IO
// state machine. Inputs: handlePacket / handleStream / handleStreamReply / tick / join / leave /
// setMeta, each with `now`. Outputs: poll() (packets, stream requests, events) and
// nextDeadline(). No clock, timer, socket or Math.random in here.
//
// The protocol in brief (docs/protocol.md has the wire layout):
// - Every probe interval, ping the next member of a shuffled round-robin list. No ack within the
//   probe timeout: ask `indirectChecks` random members to ping it for us (they nack if they get
//   nothing either, so we learn whether *we* are the problem) and try a TCP ping in parallel.
//   Nothing by the end of the interval: suspect it.
// - A suspicion becomes a death after a timeout that starts long and shrinks as other members
//   independently confirm it. The suspect refutes by raising its incarnation number.
// - Facts (alive / suspect / dead) are piggybacked on every packet and on a gossip timer, each
//   sent a bounded number of times. Periodic push-pull over TCP repairs whatever gossip missed.
// - Lifeguard: a node that fails probes or is suspected raises its local health score and slows
//   its probing, so a sick node does not accuse healthy ones.

import { assert } from "../assert.ts";
import { bytesEqual, DECODE_ERROR_REASONS, type DecodeErrorReason, utf8Length } from "../codec/bytes.ts";
import {
  type AliveMsg,
  COMPOUND_HEADER_BYTES,
  COMPOUND_PART_OVERHEAD_BYTES,
  type DeadMsg,
  decodePacket,
  decodeStream,
  encodeMessage,
  encodePacket,
  encodeStream,
  MAX_ADDR_BYTES,
  MAX_NODE_NAME_BYTES,
  MESSAGE_TYPE_NAMES,
  type MessageTypeName,
  type PacketMessage,
  type PushPullMember,
  type PushPullMsg,
  type StreamMessage,
  type SuspectMsg,
  typeOfEncoded,
} from "../codec/membership-wire.ts";
import { ErrorCode, VigilError } from "../errors.ts";
import { limits } from "../limits.ts";
import { type Random, shuffle } from "../random.ts";
import { Awareness } from "./awareness.ts";
import { BroadcastQueue } from "./broadcast-queue.ts";
import { type MembershipConfig, membershipConfig, pushPullIntervalScaledMs } from "./config.ts";
import {
  expectedConfirmations,
  remainingSuspicionTimeMs,
  suspicionTimeoutMs,
  suspicionTimeoutMsMax,
} from "./suspicion.ts";
import { type Timer, TimerQueue } from "./timers.ts";
import type {
  Addr,
  AppDelegate,
  MemberEventType,
  MemberState,
  MembershipEvent,
  MembershipStats,
  MemberView,
  Output,
  TrafficCounter,
} from "./types.ts";

/** Relays (ping_req we serve for others) in flight; more are refused and counted. */
export const MAX_PENDING_RELAYS = 1_024;
/** Streams in flight; each is a socket in the shell. More are refused and counted. */
export const MAX_PENDING_STREAMS = 64;
/** Timers fired by one tick(); the rest stay due, so nextDeadline() is already in the past. */
export const MAX_TIMERS_PER_TICK = 10_000;
/** Seed addresses one join() contacts. */
export const MAX_JOIN_SEEDS = 64;
/** Probe round-trip samples kept until drained; older ones are overwritten. */
export const MAX_RTT_SAMPLES = 1_024;
/** Outputs not yet polled. The shell drains after every call; this many means it does not. */
export const MAX_PENDING_OUTPUTS = 1_000_000;
/**
 * A relay sends its nack this far into the probe timeout (Lifeguard's recommendation), so the
 * nack reaches the prober before its probe interval ends.
 */
export const NACK_TIMEOUT_FRACTION = 0.8;
/** What an application payload costs inside a packet beyond its bytes: part length and type. */
export const APP_MESSAGE_OVERHEAD_BYTES = COMPOUND_PART_OVERHEAD_BYTES + 1;

const EMPTY = new Uint8Array(0);

interface MemberRecord {
  readonly name: string;
  addr: Addr;
  meta: Uint8Array;
  incarnation: number;
  state: MemberState;
  stateChangeMs: number;
  /** Position in `memberList`, for O(1) removal. */
  index: number;
  suspicion: Suspicion | undefined;
  reapTimer: Timer | undefined;
}

interface Suspicion {
  readonly k: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly startMs: number;
  /** Who has accused: the first accuser and each confirmation, counted once each. */
  readonly accusers: Set<string>;
  confirmations: number;
  timer: Timer;
}

interface ProbeRound {
  readonly seq: number;
  readonly target: MemberRecord;
  /** The incarnation probed; a suspicion raised for this round is about this incarnation. */
  readonly incarnation: number;
  readonly startMs: number;
  readonly deadlineMs: number;
  acked: boolean;
  indirectSent: boolean;
  expectedNacks: number;
  nacks: number;
  tcpContact: boolean;
  timeoutTimer: Timer | undefined;
}

type AckHandler =
  | { readonly kind: "probe"; readonly round: ProbeRound }
  | { readonly kind: "relay"; readonly requester: Addr; readonly seq: number; readonly timer: Timer };

interface JoinAttempt {
  readonly id: number;
  remaining: number;
  contacted: number;
  readonly failed: Addr[];
}

type PendingStream =
  | {
      readonly kind: "push_pull";
      readonly to: Addr;
      readonly join: boolean;
      readonly attempt: JoinAttempt | undefined;
      readonly timer: Timer;
    }
  | { readonly kind: "ping"; readonly round: ProbeRound; readonly timer: Timer };

export interface MembershipOptions {
  /** This node's name: unique in the cluster, 1..128 bytes of UTF-8. */
  name: string;
  /** The address peers reach us at, "host:port" (UDP and TCP). */
  addr: Addr;
  /** `now` at creation; timers start from it. */
  now: number;
  random: Random;
  config?: MembershipConfig;
  meta?: Uint8Array;
  delegate?: AppDelegate;
}

function trafficRecord(): Record<MessageTypeName, TrafficCounter> {
  const r = {} as Record<MessageTypeName, TrafficCounter>;
  for (const t of MESSAGE_TYPE_NAMES) r[t] = { messages: 0, bytes: 0 };
  return r;
}

function zeroByReason(): Record<DecodeErrorReason, number> {
  const r = {} as Record<DecodeErrorReason, number>;
  for (const reason of DECODE_ERROR_REASONS) r[reason] = 0;
  return r;
}

export class Membership {
  readonly config: MembershipConfig;
  private readonly random: Random;
  private readonly delegate: AppDelegate | undefined;
  private readonly self: MemberRecord;
  private readonly byName = new Map<string, MemberRecord>();
  private readonly memberList: MemberRecord[] = [];
  private readonly counts: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
  private readonly timers = new TimerQueue();
  private readonly queue: BroadcastQueue;
  private readonly awareness: Awareness;
  private readonly ackHandlers = new Map<number, AckHandler>();
  private relayCount = 0;
  private readonly pendingStreams = new Map<number, PendingStream>();
  private outputs: Output[] = [];
  private outputHead = 0;
  private lastNow: number;
  private seqNo = 0;
  private reqId = 0;
  private joinId = 0;
  private probeList: MemberRecord[] = [];
  private probeIndex = 0;
  private seeds: Addr[] = [];
  private leaving = false;
  private leaveDone = false;
  private leaveTimer: Timer | undefined;
  private readonly rttSamplesMs: number[] = [];
  private rttNext = 0;
  private readonly counters = {
    suspicionsRaised: 0,
    suspicionsRefuted: 0,
    selfRefutations: 0,
    deathsDeclared: 0,
    probes: { sent: 0, ackedDirect: 0, ackedIndirect: 0, ackedTcpOnly: 0, failed: 0 },
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    messagesIn: trafficRecord(),
    messagesOut: trafficRecord(),
    streamsOut: 0,
    streamsIn: 0,
    streamFailures: 0,
    droppedByReason: zeroByReason(),
    misdirectedPings: 0,
    addressConflicts: 0,
    membersRefused: 0,
    relaysRefused: 0,
    streamsRefused: 0,
    lateStreamReplies: 0,
    staleCorrections: 0,
  };

  constructor(opts: MembershipOptions) {
    const nameBytes = utf8Length(opts.name);
    if (nameBytes < 1 || nameBytes > MAX_NODE_NAME_BYTES)
      throw new VigilError(ErrorCode.config, `node name must be 1..${MAX_NODE_NAME_BYTES} bytes`, {
        path: "node.name",
      });
    const addrBytes = utf8Length(opts.addr);
    if (addrBytes < 1 || addrBytes > MAX_ADDR_BYTES)
      throw new VigilError(ErrorCode.config, `gossip address must be 1..${MAX_ADDR_BYTES} bytes`, {
        path: "node.gossip",
      });
    const meta = opts.meta ?? EMPTY;
    checkMeta(meta);
    this.config = opts.config ?? membershipConfig("lan");
    this.random = opts.random;
    this.delegate = opts.delegate;
    this.lastNow = opts.now;
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.queue = new BroadcastQueue({
      retransmitMult: this.config.retransmitMult,
      maxQueued: this.config.maxQueuedBroadcasts,
      numMembers: () => this.liveCount(),
    });
    this.self = {
      name: opts.name,
      addr: opts.addr,
      meta: meta.slice(),
      // memberlist starts at 1: a fresh alive must beat a record created at 0.
      incarnation: 1,
      state: "alive",
      stateChangeMs: opts.now,
      index: 0,
      suspicion: undefined,
      reapTimer: undefined,
    };
    this.addMember(this.self);
    this.emitMember("member.joined", this.self);
    // Random phases, so nodes started together do not probe and gossip in lock-step.
    const c = this.config;
    const now = opts.now;
    this.timers.schedule(now + this.random.next() * c.probeIntervalMs, (t) => this.probeTick(t));
    this.timers.schedule(now + this.random.next() * c.gossipIntervalMs, (t) => this.gossipTick(t));
    this.timers.schedule(now + this.random.next() * c.pushPullIntervalMs, (t) => this.pushPullTick(t));
    this.timers.schedule(now + this.random.next() * c.reconnectIntervalMs, (t) => this.reconnectTick(t));
  }

  // ── inputs ──

  /** A UDP packet arrived. Bad packets are counted in droppedByReason and otherwise ignored. */
  handlePacket(now: number, from: Addr, bytes: Uint8Array): void {
    this.advance(now);
    this.counters.packetsIn++;
    this.counters.bytesIn += bytes.length;
    const r = decodePacket(bytes);
    if (!r.ok) {
      this.counters.droppedByReason[r.reason]++;
      return;
    }
    const { messages, sizes } = r.value;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const c = this.counters.messagesIn[m.type];
      c.messages++;
      c.bytes += sizes[i]!;
      this.dispatch(now, from, m);
    }
  }

  /**
   * A stream request arrived (push-pull or fallback ping); returns the reply to write, or
   * undefined to close the stream without one (bad or misdirected request).
   */
  handleStream(now: number, _from: Addr, bytes: Uint8Array): Uint8Array | undefined {
    this.advance(now);
    this.counters.streamsIn++;
    const r = decodeStream(bytes);
    if (!r.ok) {
      this.counters.droppedByReason[r.reason]++;
      return undefined;
    }
    const m = r.value;
    this.countIn(m.type, bytes.length - 1);
    switch (m.type) {
      case "push_pull":
        // Merge before answering, so the reply already carries any refutation the request
        // provoked (the requester listed us as suspect or dead) and heals in one exchange.
        this.mergeRemote(now, m);
        return this.encodeStreamOut(this.localState(m.join));
      case "ping":
        if (m.target !== "" && m.target !== this.self.name) {
          this.counters.misdirectedPings++;
          return undefined;
        }
        return this.encodeStreamOut({ type: "ack", seq: m.seq });
      case "ack":
        this.counters.droppedByReason.malformed++;
        return undefined;
    }
  }

  /** The reply (or failure) of a stream this node requested through a `stream` output. */
  handleStreamReply(now: number, reqId: number, reply: Uint8Array | Error): void {
    this.advance(now);
    const p = this.pendingStreams.get(reqId);
    if (p === undefined) {
      this.counters.lateStreamReplies++;
      return;
    }
    this.pendingStreams.delete(reqId);
    this.timers.cancel(p.timer);
    if (reply instanceof Error) {
      this.streamFailed(now, p);
      return;
    }
    const r = decodeStream(reply);
    if (!r.ok) {
      this.counters.droppedByReason[r.reason]++;
      this.streamFailed(now, p);
      return;
    }
    const m = r.value;
    this.countIn(m.type, reply.length - 1);
    if (p.kind === "push_pull" && m.type === "push_pull") {
      this.mergeRemote(now, m);
      if (p.attempt !== undefined) this.joinAttemptDone(p.attempt, true, p.to);
    } else if (p.kind === "ping" && m.type === "ack" && m.seq === p.round.seq) {
      p.round.tcpContact = true;
    } else {
      this.counters.droppedByReason.malformed++;
      this.streamFailed(now, p);
    }
  }

  /** Fires every timer due at `now`. Call when nextDeadline() is reached. */
  tick(now: number): void {
    this.advance(now);
    this.timers.runDue(now, MAX_TIMERS_PER_TICK);
  }

  /**
   * Joins a cluster through seed addresses: a push-pull state exchange with each. A
   * `join.done` event tells how many answered. The seeds are remembered and tried again
   * whenever this node finds itself alone.
   */
  join(now: number, seeds: readonly Addr[]): number {
    this.advance(now);
    assert(!this.leaving, "join after leave");
    const unique = [...new Set(seeds)].filter((s) => s !== this.self.addr).slice(0, MAX_JOIN_SEEDS);
    this.seeds = unique;
    const attempt: JoinAttempt = { id: ++this.joinId, remaining: 0, contacted: 0, failed: [] };
    for (const s of unique) {
      if (this.startPushPull(now, s, true, attempt)) attempt.remaining++;
      else attempt.failed.push(s);
    }
    if (attempt.remaining === 0) this.emitJoinDone(attempt);
    return attempt.id;
  }

  /**
   * Leaves gracefully: announces itself as left (a dead message from itself), stops probing,
   * and emits `leave.done` once the announcement has been gossiped or leaveTimeoutMs passed.
   */
  leave(now: number): void {
    this.advance(now);
    if (this.leaving) return;
    this.leaving = true;
    const self = this.self;
    this.setState(self, "left", now);
    this.emitMember("member.left", self);
    const msg: DeadMsg = { type: "dead", incarnation: self.incarnation, node: self.name, from: self.name };
    if (this.liveCount() === 0) {
      this.finishLeave();
      return;
    }
    this.queue.queue(self.name, encodeMessage(msg), () => this.finishLeave());
    this.leaveTimer = this.timers.schedule(now + this.config.leaveTimeoutMs, () => this.finishLeave());
  }

  /** New metadata for this node: raises the incarnation and gossips it. */
  setMeta(now: number, meta: Uint8Array): void {
    this.advance(now);
    checkMeta(meta);
    if (this.leaving) return;
    const self = this.self;
    self.meta = meta.slice();
    self.incarnation++;
    this.broadcastAliveOf(self);
    this.emitMember("member.updated", self);
  }

  // ── outputs ──

  /** The next output, or undefined when there is none. Drain after every input. */
  poll(): Output | undefined {
    if (this.outputHead < this.outputs.length) {
      const o = this.outputs[this.outputHead]!;
      this.outputs[this.outputHead++] = undefined as unknown as Output;
      return o;
    }
    if (this.outputs.length > 0) {
      this.outputs = [];
      this.outputHead = 0;
    }
    return undefined;
  }

  /** When tick() must be called next (on the same clock as `now`); undefined: never. */
  nextDeadline(): number | undefined {
    return this.timers.next();
  }

  // ── queries ──

  get name(): string {
    return this.self.name;
  }

  get incarnation(): number {
    return this.self.incarnation;
  }

  get healthScore(): number {
    return this.awareness.score;
  }

  /** A live, read-only view of a member; undefined when unknown or reaped. */
  member(name: string): MemberView | undefined {
    return this.byName.get(name);
  }

  /** Every known member, this node included (live views; do not mutate). */
  members(): MemberView[] {
    return this.memberList.slice();
  }

  /** Members counted by state, this node included. */
  countByState(): Record<MemberState, number> {
    return { ...this.counts };
  }

  /** A snapshot of the counters. */
  stats(): MembershipStats {
    const c = this.counters;
    const copyTraffic = (
      t: Record<MessageTypeName, TrafficCounter>,
    ): Record<MessageTypeName, TrafficCounter> => {
      const r = {} as Record<MessageTypeName, TrafficCounter>;
      for (const k of MESSAGE_TYPE_NAMES) r[k] = { ...t[k] };
      return r;
    };
    return {
      ...c,
      membersByState: { ...this.counts },
      localHealthScore: this.awareness.score,
      probes: { ...c.probes },
      messagesIn: copyTraffic(c.messagesIn),
      messagesOut: copyTraffic(c.messagesOut),
      droppedByReason: { ...c.droppedByReason },
      broadcastsDropped: this.queue.dropped,
    };
  }

  /** Round-trip times of direct probes since the last call, oldest first. */
  drainProbeRttSamplesMs(): number[] {
    const s = this.rttSamplesMs;
    const out =
      s.length < MAX_RTT_SAMPLES ? s.slice() : [...s.slice(this.rttNext), ...s.slice(0, this.rttNext)];
    s.length = 0;
    this.rttNext = 0;
    return out;
  }

  // ── message dispatch ──

  private dispatch(now: number, from: Addr, m: PacketMessage): void {
    switch (m.type) {
      case "ping":
        if (m.target !== "" && m.target !== this.self.name) {
          this.counters.misdirectedPings++;
          return;
        }
        this.sendPacket(from, [encodeMessage({ type: "ack", seq: m.seq })]);
        return;
      case "ping_req":
        this.relayPing(now, from, m.seq, m.target, m.targetAddr, m.nack);
        return;
      case "ack":
        this.onAck(now, m.seq);
        return;
      case "nack": {
        const h = this.ackHandlers.get(m.seq);
        if (h?.kind === "probe" && !h.round.acked)
          h.round.nacks = Math.min(h.round.nacks + 1, h.round.expectedNacks);
        return;
      }
      case "alive":
        this.aliveNode(now, m);
        return;
      case "suspect":
        this.correctStale(from, m);
        this.suspectNode(now, m);
        return;
      case "dead":
        this.correctStale(from, m);
        this.deadNode(now, m);
        return;
      case "app":
        this.delegate?.notifyMsg(from, m.payload);
        return;
    }
  }

  private onAck(now: number, seq: number): void {
    const h = this.ackHandlers.get(seq);
    if (h === undefined) return;
    if (h.kind === "relay") {
      this.ackHandlers.delete(seq);
      this.relayCount--;
      this.timers.cancel(h.timer);
      this.sendPacket(h.requester, [encodeMessage({ type: "ack", seq: h.seq })]);
      return;
    }
    const round = h.round;
    if (round.acked) return;
    round.acked = true;
    this.timers.cancel(round.timeoutTimer);
    round.timeoutTimer = undefined;
    if (!round.indirectSent) {
      this.counters.probes.ackedDirect++;
      this.recordRtt(now - round.startMs);
    } else {
      this.counters.probes.ackedIndirect++;
    }
    // Any answer is good news about our own health (memberlist applies -1 on every success).
    this.awareness.applyDelta(-1);
  }

  // ── probing ──

  private probeTick(now: number): void {
    if (this.leaving) return;
    const intervalMs = this.awareness.scaleTimeout(this.config.probeIntervalMs);
    const target = this.nextProbeTarget();
    if (target === undefined) {
      this.timers.schedule(now + intervalMs, (t) => this.probeTick(t));
      return;
    }
    const round: ProbeRound = {
      seq: this.nextSeq(),
      target,
      incarnation: target.incarnation,
      startMs: now,
      deadlineMs: now + intervalMs,
      acked: false,
      indirectSent: false,
      expectedNacks: 0,
      nacks: 0,
      tcpContact: false,
      timeoutTimer: undefined,
    };
    this.ackHandlers.set(round.seq, { kind: "probe", round });
    const parts = [
      encodeMessage({ type: "ping", seq: round.seq, target: target.name, source: this.self.name }),
    ];
    // A suspect learns of the accusation from the probe itself and can refute at once.
    if (target.state === "suspect")
      parts.push(
        encodeMessage({
          type: "suspect",
          incarnation: target.incarnation,
          node: target.name,
          from: this.self.name,
        }),
      );
    this.sendPacket(target.addr, parts);
    this.counters.probes.sent++;
    const timeoutMs = this.awareness.scaleTimeout(this.config.probeTimeoutMs);
    round.timeoutTimer = this.timers.schedule(now + timeoutMs, (t) => this.probeTimedOut(t, round));
    this.timers.schedule(round.deadlineMs, (t) => this.probeDeadline(t, round));
  }

  /** The direct ping went unanswered: ask helpers, and try TCP. */
  private probeTimedOut(now: number, round: ProbeRound): void {
    round.timeoutTimer = undefined;
    if (round.acked) return;
    round.indirectSent = true;
    const target = round.target;
    const helpers = this.randomMembers(
      this.config.indirectChecks,
      (m) => m !== this.self && m !== target && m.state === "alive",
    );
    for (const h of helpers) {
      this.sendPacket(h.addr, [
        encodeMessage({
          type: "ping_req",
          seq: round.seq,
          target: target.name,
          targetAddr: target.addr,
          nack: true,
        }),
      ]);
      round.expectedNacks++;
    }
    if (this.config.tcpFallbackPing) {
      const bytes = this.encodeStreamOut({
        type: "ping",
        seq: round.seq,
        target: target.name,
        source: this.self.name,
      });
      this.openStream(now, target.addr, bytes, round.deadlineMs, (timer) => ({ kind: "ping", round, timer }));
    }
  }

  /** The probe interval is over: judge the round, then start the next one. */
  private probeDeadline(now: number, round: ProbeRound): void {
    this.ackHandlers.delete(round.seq);
    this.timers.cancel(round.timeoutTimer);
    if (!round.acked && !this.leaving) {
      if (round.tcpContact) {
        // Reachable over TCP but not UDP: a network problem, not a dead member.
        this.counters.probes.ackedTcpOnly++;
        this.awareness.applyDelta(-1);
      } else {
        this.counters.probes.failed++;
        // Helpers that did not even nack suggest the fault is ours: each missing nack counts.
        const delta = round.expectedNacks > 0 ? round.expectedNacks - round.nacks : 1;
        this.awareness.applyDelta(delta);
        const target = round.target;
        if (this.byName.get(target.name) === target)
          this.suspectNode(now, {
            type: "suspect",
            incarnation: round.incarnation,
            node: target.name,
            from: this.self.name,
          });
      }
    }
    this.probeTick(now);
  }

  private nextProbeTarget(): MemberRecord | undefined {
    // Bounded: one rest-of-pass plus one full fresh pass.
    const maxChecks = this.probeList.length + this.memberList.length + 1;
    for (let checks = 0; checks < maxChecks; checks++) {
      if (this.probeIndex >= this.probeList.length) {
        this.resetProbeList();
        if (this.probeList.length === 0) return undefined;
      }
      const m = this.probeList[this.probeIndex++]!;
      if (m === this.self || this.byName.get(m.name) !== m) continue;
      if (m.state === "alive" || m.state === "suspect") return m;
    }
    return undefined;
  }

  /** A new pass: every live member once, in a fresh random order. */
  private resetProbeList(): void {
    this.probeList = this.memberList.filter(
      (m) => m !== this.self && (m.state === "alive" || m.state === "suspect"),
    );
    shuffle(this.random, this.probeList);
    this.probeIndex = 0;
  }

  private relayPing(
    now: number,
    requester: Addr,
    seq: number,
    target: string,
    targetAddr: Addr,
    nack: boolean,
  ): void {
    if (this.relayCount >= MAX_PENDING_RELAYS) {
      this.counters.relaysRefused++;
      return;
    }
    const localSeq = this.nextSeq();
    const nackAtMs = now + this.config.probeTimeoutMs * NACK_TIMEOUT_FRACTION;
    const timer = this.timers.schedule(nackAtMs, () => {
      // Still here: the target did not ack in time. Tell the prober we tried.
      this.ackHandlers.delete(localSeq);
      this.relayCount--;
      if (nack) this.sendPacket(requester, [encodeMessage({ type: "nack", seq })]);
    });
    this.ackHandlers.set(localSeq, { kind: "relay", requester, seq, timer });
    this.relayCount++;
    this.sendPacket(targetAddr, [
      encodeMessage({ type: "ping", seq: localSeq, target, source: this.self.name }),
    ]);
  }

  // ── state changes (memberlist's aliveNode / suspectNode / deadNode) ──

  private aliveNode(now: number, a: AliveMsg): void {
    const self = this.self;
    if (this.leaving && a.node === self.name) return;
    const m = this.byName.get(a.node);
    if (m === undefined) {
      if (this.memberList.length >= this.config.maxMembers) {
        this.counters.membersRefused++;
        return;
      }
      const rec: MemberRecord = {
        name: a.node,
        addr: a.addr,
        meta: a.meta,
        incarnation: a.incarnation,
        state: "alive",
        stateChangeMs: now,
        index: 0,
        suspicion: undefined,
        reapTimer: undefined,
      };
      this.addMember(rec);
      this.insertIntoProbeList(rec);
      this.broadcastAliveOf(rec);
      this.emitMember("member.joined", rec);
      return;
    }
    let addrChanged = false;
    if (m.addr !== a.addr) {
      const reclaimMs = this.config.deadNodeReclaimMs;
      const canReclaim = reclaimMs > 0 && now - m.stateChangeMs > reclaimMs;
      if (m === self || !(m.state === "left" || (m.state === "dead" && canReclaim))) {
        this.counters.addressConflicts++;
        return;
      }
      addrChanged = true;
    }
    if (m === self) {
      // Someone holds a newer or different view of us (an old life of ours, or a stale
      // rumour): outbid it so everyone converges on the current one.
      if (a.incarnation < m.incarnation) return;
      if (a.incarnation === m.incarnation && bytesEqual(a.meta, m.meta)) return;
      this.refute(a.incarnation);
      return;
    }
    if (a.incarnation <= m.incarnation && !addrChanged) return;
    this.clearSuspicion(m);
    const oldState = m.state;
    const metaChanged = !bytesEqual(m.meta, a.meta);
    m.incarnation = a.incarnation;
    m.meta = a.meta;
    m.addr = a.addr;
    if (oldState !== "alive") this.setState(m, "alive", now);
    this.broadcastAliveOf(m);
    if (oldState === "dead" || oldState === "left") this.emitMember("member.joined", m);
    else if (oldState === "suspect") {
      this.counters.suspicionsRefuted++;
      this.emitMember("member.alive", m);
      if (metaChanged) this.emitMember("member.updated", m);
    } else if (metaChanged) this.emitMember("member.updated", m);
  }

  private suspectNode(now: number, s: SuspectMsg): void {
    const m = this.byName.get(s.node);
    if (m === undefined || s.incarnation < m.incarnation) return;
    if (m.suspicion !== undefined) {
      // Already suspect: an accuser we have not heard from shortens the timer, and its
      // accusation is passed on so that others can count it too.
      if (this.confirmSuspicion(now, m.suspicion, s.from)) this.queue.queue(m.name, encodeMessage(s));
      return;
    }
    if (m.state !== "alive") return;
    if (m === this.self) {
      this.refute(s.incarnation);
      return;
    }
    this.queue.queue(m.name, encodeMessage(s));
    m.incarnation = s.incarnation;
    this.setState(m, "suspect", now);
    this.counters.suspicionsRaised++;
    const n = this.liveCount();
    const k = expectedConfirmations(this.config.indirectChecks, n);
    const minMs = suspicionTimeoutMs(n, this.config.suspicionMult, this.config.probeIntervalMs);
    const maxMs = suspicionTimeoutMsMax(minMs, this.config.suspicionMaxTimeoutMult);
    const susp: Suspicion = {
      k,
      minMs,
      maxMs,
      startMs: now,
      accusers: new Set([s.from]),
      confirmations: 0,
      timer: this.timers.schedule(now + (k < 1 ? minMs : maxMs), (t) => this.suspicionExpired(t, m, susp)),
    };
    m.suspicion = susp;
    this.emitMember("member.suspect", m);
  }

  private confirmSuspicion(now: number, susp: Suspicion, from: string): boolean {
    if (susp.confirmations >= susp.k || susp.accusers.has(from)) return false;
    susp.accusers.add(from);
    susp.confirmations++;
    const remainingMs = remainingSuspicionTimeMs(
      susp.confirmations,
      susp.k,
      now - susp.startMs,
      susp.minMs,
      susp.maxMs,
    );
    this.timers.cancel(susp.timer);
    susp.timer = this.timers.schedule(now + Math.max(0, remainingMs), susp.timer.fire);
    return true;
  }

  private suspicionExpired(now: number, m: MemberRecord, susp: Suspicion): void {
    if (m.suspicion !== susp || m.state !== "suspect" || this.byName.get(m.name) !== m) return;
    this.counters.deathsDeclared++;
    this.deadNode(now, { type: "dead", incarnation: m.incarnation, node: m.name, from: this.self.name });
  }

  private deadNode(now: number, d: DeadMsg): void {
    const m = this.byName.get(d.node);
    if (m === undefined || d.incarnation < m.incarnation) return;
    this.clearSuspicion(m);
    if (m.state === "dead" || m.state === "left") return;
    if (m === this.self) {
      // Our own leave comes back to us while leaving; anything else is a false death.
      if (!this.leaving) this.refute(d.incarnation);
      return;
    }
    this.queue.queue(m.name, encodeMessage(d));
    m.incarnation = d.incarnation;
    const left = d.from === d.node;
    this.setState(m, left ? "left" : "dead", now);
    this.emitMember(left ? "member.left" : "member.dead", m);
  }

  /**
   * The sender passes on an accusation older than the refutation we hold: it only relays what it
   * believes, so its view is stale and it may declare a live member dead on its own timer. Tell
   * it the current alive directly (not a memberlist behaviour). Bounded by the stale traffic.
   */
  private correctStale(from: Addr, accusation: SuspectMsg | DeadMsg): void {
    const m = this.byName.get(accusation.node);
    if (m === undefined || m.state !== "alive" || accusation.incarnation >= m.incarnation) return;
    if (m === this.self && this.leaving) return;
    this.counters.staleCorrections++;
    const alive: AliveMsg = {
      type: "alive",
      incarnation: m.incarnation,
      node: m.name,
      addr: m.addr,
      meta: m.meta,
    };
    this.sendPacket(from, [encodeMessage(alive)]);
  }

  /** We are accused (suspect or dead) at `accusedIncarnation`: outbid it and say so. */
  private refute(accusedIncarnation: number): void {
    const self = this.self;
    self.incarnation = Math.max(self.incarnation, accusedIncarnation) + 1;
    this.counters.selfRefutations++;
    // Lifeguard: being accused hints that we are the slow one.
    this.awareness.applyDelta(1);
    this.broadcastAliveOf(self);
  }

  private clearSuspicion(m: MemberRecord): void {
    if (m.suspicion === undefined) return;
    this.timers.cancel(m.suspicion.timer);
    m.suspicion = undefined;
  }

  private mergeRemote(now: number, msg: PushPullMsg): void {
    for (const e of msg.members) {
      switch (e.state) {
        case "alive":
          this.aliveNode(now, {
            type: "alive",
            incarnation: e.incarnation,
            node: e.name,
            addr: e.addr,
            meta: e.meta,
          });
          break;
        case "left":
          this.deadNode(now, { type: "dead", incarnation: e.incarnation, node: e.name, from: e.name });
          break;
        case "dead":
        case "suspect":
          // Another node's verdict is only a suspicion here: the member may refute it.
          this.suspectNode(now, {
            type: "suspect",
            incarnation: e.incarnation,
            node: e.name,
            from: this.self.name,
          });
          break;
      }
    }
    this.delegate?.mergeRemoteState(msg.appState, msg.join);
  }

  // ── periodic work ──

  private gossipTick(now: number): void {
    this.timers.schedule(now + this.config.gossipIntervalMs, (t) => this.gossipTick(t));
    if (this.queue.length === 0 && this.delegate === undefined) return;
    const deadWindowMs = this.config.gossipToTheDeadMs;
    const targets = this.randomMembers(
      this.config.gossipNodes,
      (m) =>
        m !== this.self &&
        (m.state === "alive" ||
          m.state === "suspect" ||
          (m.state === "dead" && now - m.stateChangeMs <= deadWindowMs)),
    );
    for (const m of targets) if (!this.sendPacket(m.addr, [])) break;
  }

  private pushPullTick(now: number): void {
    const intervalMs = pushPullIntervalScaledMs(this.config.pushPullIntervalMs, this.liveCount());
    this.timers.schedule(now + intervalMs, (t) => this.pushPullTick(t));
    if (this.leaving) return;
    const [peer] = this.randomMembers(1, (m) => m !== this.self && m.state === "alive");
    if (peer !== undefined) this.startPushPull(now, peer.addr, false, undefined);
  }

  /**
   * Serf's reconnect: now and then try a full exchange with a member we think is dead. If it
   * is alive on the far side of a healed partition, the exchange makes both sides refute and
   * the views merge again. Expected attempts per interval across the cluster: the dead count.
   */
  private reconnectTick(now: number): void {
    this.timers.schedule(now + this.config.reconnectIntervalMs, (t) => this.reconnectTick(t));
    if (this.leaving) return;
    const others = this.liveCount() - 1;
    if (others <= 0 && this.seeds.length > 0) {
      this.startPushPull(now, this.seeds[this.random.int(this.seeds.length)]!, true, undefined);
      return;
    }
    const dead = this.counts.dead;
    if (dead === 0 || this.random.next() >= dead / Math.max(1, others)) return;
    const candidates = this.memberList.filter((m) => m.state === "dead");
    const target = candidates[this.random.int(candidates.length)];
    if (target !== undefined) this.startPushPull(now, target.addr, false, undefined);
  }

  private finishLeave(): void {
    if (this.leaveDone) return;
    this.leaveDone = true;
    this.timers.cancel(this.leaveTimer);
    this.push({ kind: "event", event: { type: "leave.done" } });
  }

  // ── streams ──

  private startPushPull(now: number, to: Addr, join: boolean, attempt: JoinAttempt | undefined): boolean {
    const bytes = this.encodeStreamOut(this.localState(join));
    return this.openStream(now, to, bytes, now + this.config.streamTimeoutMs, (timer) => ({
      kind: "push_pull",
      to,
      join,
      attempt,
      timer,
    }));
  }

  private openStream(
    now: number,
    to: Addr,
    bytes: Uint8Array,
    deadlineMs: number,
    pending: (timer: Timer) => PendingStream,
  ): boolean {
    if (this.pendingStreams.size >= MAX_PENDING_STREAMS) {
      this.counters.streamsRefused++;
      return false;
    }
    const reqId = ++this.reqId;
    const timer = this.timers.schedule(Math.max(now, deadlineMs), (t) => {
      const p = this.pendingStreams.get(reqId);
      if (p === undefined) return;
      this.pendingStreams.delete(reqId);
      this.streamFailed(t, p);
    });
    this.pendingStreams.set(reqId, pending(timer));
    this.counters.streamsOut++;
    this.push({ kind: "stream", to, bytes, reqId });
    return true;
  }

  private streamFailed(_now: number, p: PendingStream): void {
    this.counters.streamFailures++;
    if (p.kind === "push_pull" && p.attempt !== undefined) this.joinAttemptDone(p.attempt, false, p.to);
  }

  private joinAttemptDone(attempt: JoinAttempt, ok: boolean, to: Addr): void {
    attempt.remaining--;
    if (ok) attempt.contacted++;
    else attempt.failed.push(to);
    if (attempt.remaining === 0) this.emitJoinDone(attempt);
  }

  private emitJoinDone(attempt: JoinAttempt): void {
    this.push({
      kind: "event",
      event: { type: "join.done", joinId: attempt.id, contacted: attempt.contacted, failed: attempt.failed },
    });
  }

  private localState(join: boolean): PushPullMsg {
    const members: PushPullMember[] = this.memberList.map((m) => ({
      name: m.name,
      addr: m.addr,
      incarnation: m.incarnation,
      state: m.state,
      meta: m.meta,
    }));
    return { type: "push_pull", join, members, appState: this.delegate?.localState(join) ?? EMPTY };
  }

  private encodeStreamOut(m: StreamMessage): Uint8Array {
    const bytes = encodeStream(m);
    const c = this.counters.messagesOut[m.type];
    c.messages++;
    c.bytes += bytes.length - 1;
    return bytes;
  }

  // ── packets ──

  /**
   * Sends `parts` to `to` with as many broadcasts piggybacked as fit. Membership and the
   * application each get half of the spare room first, then whatever the other left, so a
   * flood on one side cannot starve the other. Returns false when there was nothing to send.
   */
  private sendPacket(to: Addr, parts: Uint8Array[]): boolean {
    let used = COMPOUND_HEADER_BYTES;
    for (const p of parts) used += COMPOUND_PART_OVERHEAD_BYTES + p.length;
    const spare = this.config.packetBudgetBytes - used;
    assert(spare >= 0, "primary messages exceed the packet budget");
    if (spare > COMPOUND_PART_OVERHEAD_BYTES) {
      const first = this.queue.getBroadcasts(COMPOUND_PART_OVERHEAD_BYTES, Math.floor(spare / 2));
      let taken = addParts(parts, first, COMPOUND_PART_OVERHEAD_BYTES);
      if (this.delegate !== undefined) {
        const limit = spare - taken;
        const app = this.delegate.getBroadcasts(APP_MESSAGE_OVERHEAD_BYTES, limit);
        let appBytes = 0;
        for (const payload of app) {
          appBytes += APP_MESSAGE_OVERHEAD_BYTES + payload.length;
          parts.push(encodeMessage({ type: "app", payload }));
        }
        assert(appBytes <= limit, `app broadcasts of ${appBytes} bytes exceed their ${limit}-byte budget`);
        taken += appBytes;
      }
      // Membership may take what the application left (a large alive may not fit in half).
      if (this.queue.length > 0)
        addParts(
          parts,
          this.queue.getBroadcasts(COMPOUND_PART_OVERHEAD_BYTES, spare - taken, first),
          COMPOUND_PART_OVERHEAD_BYTES,
        );
    }
    if (parts.length === 0) return false;
    const bytes = encodePacket(parts);
    assert(bytes.length <= this.config.packetBudgetBytes, "packet exceeds budget");
    for (const p of parts) {
      const c = this.counters.messagesOut[typeOfEncoded(p)];
      c.messages++;
      c.bytes += p.length;
    }
    this.counters.packetsOut++;
    this.counters.bytesOut += bytes.length;
    this.push({ kind: "send", to, bytes });
    return true;
  }

  private broadcastAliveOf(m: MemberRecord): void {
    const msg: AliveMsg = {
      type: "alive",
      incarnation: m.incarnation,
      node: m.name,
      addr: m.addr,
      meta: m.meta,
    };
    this.queue.queue(m.name, encodeMessage(msg));
  }

  // ── bookkeeping ──

  private advance(now: number): void {
    if (!(Number.isFinite(now) && now >= this.lastNow))
      assert(false, `time went backwards: ${this.lastNow} -> ${now}`);
    this.lastNow = now;
  }

  private push(o: Output): void {
    assert(this.outputs.length - this.outputHead < MAX_PENDING_OUTPUTS, "outputs are not being polled");
    this.outputs.push(o);
  }

  private emitMember(type: MemberEventType, m: MemberRecord): void {
    const member: MemberView = {
      name: m.name,
      addr: m.addr,
      meta: m.meta,
      incarnation: m.incarnation,
      state: m.state,
      stateChangeMs: m.stateChangeMs,
    };
    this.push({ kind: "event", event: { type, member } satisfies MembershipEvent });
  }

  private countIn(type: MessageTypeName, bytes: number): void {
    const c = this.counters.messagesIn[type];
    c.messages++;
    c.bytes += bytes;
  }

  private liveCount(): number {
    return this.counts.alive + this.counts.suspect;
  }

  private nextSeq(): number {
    this.seqNo = (this.seqNo + 1) >>> 0;
    return this.seqNo;
  }

  private recordRtt(ms: number): void {
    if (this.rttSamplesMs.length < MAX_RTT_SAMPLES) {
      this.rttSamplesMs.push(ms);
      return;
    }
    this.rttSamplesMs[this.rttNext] = ms;
    this.rttNext = (this.rttNext + 1) % MAX_RTT_SAMPLES;
  }

  private addMember(m: MemberRecord): void {
    m.index = this.memberList.length;
    this.memberList.push(m);
    this.byName.set(m.name, m);
    this.counts[m.state]++;
  }

  private removeMember(m: MemberRecord): void {
    const last = this.memberList.pop()!;
    if (last !== m) {
      this.memberList[m.index] = last;
      last.index = m.index;
    }
    this.byName.delete(m.name);
    this.counts[m.state]--;
    this.clearSuspicion(m);
    this.timers.cancel(m.reapTimer);
  }

  /** A new member goes to a random place in the current pass, so it is probed soon on average. */
  private insertIntoProbeList(m: MemberRecord): void {
    const list = this.probeList;
    list.push(m);
    const j = this.random.int(list.length);
    const last = list.length - 1;
    list[last] = list[j]!;
    list[j] = m;
  }

  private setState(m: MemberRecord, state: MemberState, now: number): void {
    this.counts[m.state]--;
    this.counts[state]++;
    m.state = state;
    m.stateChangeMs = now;
    this.timers.cancel(m.reapTimer);
    m.reapTimer = undefined;
    if (m !== this.self && (state === "dead" || state === "left")) {
      const afterMs = state === "left" ? this.config.leftReapMs : this.config.deadReapMs;
      m.reapTimer = this.timers.schedule(now + afterMs, () => this.reap(m));
    }
  }

  private reap(m: MemberRecord): void {
    m.reapTimer = undefined;
    if (this.byName.get(m.name) !== m || (m.state !== "dead" && m.state !== "left")) return;
    this.removeMember(m);
    this.emitMember("member.reaped", m);
  }

  /** Up to k distinct members passing `ok`, uniformly at random; bounded work (memberlist's kRandomNodes). */
  private randomMembers(k: number, ok: (m: MemberRecord) => boolean): MemberRecord[] {
    const out: MemberRecord[] = [];
    const n = this.memberList.length;
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const m = this.memberList[this.random.int(n)]!;
      if (ok(m) && !out.includes(m)) out.push(m);
    }
    return out;
  }
}

function addParts(parts: Uint8Array[], more: Uint8Array[], overheadBytes: number): number {
  let bytes = 0;
  for (const p of more) {
    parts.push(p);
    bytes += overheadBytes + p.length;
  }
  return bytes;
}

function checkMeta(meta: Uint8Array): void {
  if (meta.length > limits.maxMetaBytes)
    throw new VigilError(
      ErrorCode.tooLarge,
      `node metadata of ${meta.length} bytes exceeds ${limits.maxMetaBytes}`,
    );
}
