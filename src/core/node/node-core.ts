// The node's brain, sans-IO: pools (a replicated LWW map), targets, placement (who checks
// what), the scheduler, each owner's rise/fall observation, the replicated observation map
// and the verdict projection. The shell (src/runtime/node.ts) and the simulator (sim/) drive
// the same code: they feed it time, check results, membership changes and peer messages, and
// carry out what it asks for (start a check, send a sync request, record an event).
//
// What travels: only changes of state. An owner writes its observation register when its
// observation flips, and once after it gains a target (so the new owner "reports" and the
// old owner's vote can be retired). Raw results stay local.

import type { CheckResult } from "../../checkers/types.ts";
import type { PoolSpec, TargetAddr } from "../../config/types.ts";
import { assert } from "../assert.ts";
import { BroadcastQueue } from "../membership/broadcast-queue.ts";
import { applyResult, checkMode, initialObservation, type Observation } from "../observation/observation.ts";
import { Placement } from "../placement/placement.ts";
import type { Random } from "../random.ts";
import { Scheduler } from "../scheduler/scheduler.ts";
import { compareHlc, type Hlc, HybridClock, isHlc } from "../state/hlc.ts";
import { stateLimits } from "../state/limits.ts";
import { type LwwChange, type LwwEntry, LwwMap } from "../state/lww.ts";
import { type ExchangeReply, ObservationMap, type Register } from "../state/observations.ts";
import {
  type AdminState,
  computeVerdict,
  type Effective,
  effectiveState,
  type Health,
} from "../verdict/verdict.ts";
import {
  type AdminValue,
  decodeAdmin,
  decodePoolDoc,
  decodeWire,
  encodeWire,
  type WireMessage,
} from "./wire.ts";

export const nodeCoreLimits = {
  /** Registers in one anti-entropy reply; the rest follows in the next round. */
  maxRegistersPerExchange: 20_000,
  maxBytesPerExchange: 4 * 1024 * 1024,
  /**
   * Queued replication broadcasts; beyond it the most-sent, oldest are dropped. The queue sends
   * least-sent first, so a fresh item gets its first sends at once but then waits behind every
   * item sent fewer times: a long backlog (a cluster starting) starves fresh news. Gossip is
   * for fresh news; bulk is anti-entropy's job, so the queue is short. Measured in
   * bench/convergence.ts: with 1,024 the spread of a verdict change at 100 nodes had p99 9.2 s,
   * with 128 it is under 1 s.
   */
  maxQueuedBroadcasts: 128,
  /** Received observation changes older than this are not relayed (anti-entropy has them). */
  relayMaxAgeMs: 15_000,
  /** A replication message larger than this is dropped and counted. */
  maxWireBytes: 64 * 1024 * 1024,
  /** A replication message larger than this is not gossiped but left to anti-entropy. */
  maxBroadcastBytes: 1_000,
  /** Sync requests in flight at once. */
  maxSyncsInFlight: 8,
  /** Peers a node exchanges state with at once after learning of a pool change. */
  fanoutPeers: 3,
} as const;

export type MemberState = "alive" | "suspect" | "dead" | "left";

export interface MemberInfo {
  name: string;
  zone: string;
  weight: number;
  state: MemberState;
}

export interface NodeCoreOptions {
  name: string;
  zone: string;
  weight: number;
  random: Random;
  maxConcurrentChecks: number;
  /** The last observation counter used before this boot (persisted, or a boot epoch). */
  counterStart: number;
  /** Validates a pool document; throws VigilError(config) with a path relative to the pool. */
  parsePool: (name: string, doc: unknown) => PoolSpec;
  /** Anti-entropy with one random peer this often. */
  antiEntropyIntervalMs: number;
  /** Each replication broadcast is sent retransmitMult × ceil(log10(n+1)) times. */
  retransmitMult: number;
  /** Pool tombstones and removed targets are kept this long (24 h by default). */
  tombstoneRetentionMs?: number;
  /** Dead or left members' registers are reaped this long after they were last seen alive. */
  reapAfterMs?: number;
}

/** Which replicated LWW map a state entry belongs to. */
export type StateKind = "pool" | "admin";

/**
 * One entry of the node's replicated LWW state with its HLC stamp, as the shell persists it:
 * a pool document (key: the pool name) or an admin state (key: the target id), or a tombstone.
 */
export interface StateEntry {
  readonly kind: StateKind;
  readonly key: string;
  readonly ts: Hlc;
  /** The pool document or the AdminValue; undefined exactly when `deleted`. */
  readonly value: unknown;
  readonly deleted: boolean;
}

/** What restoreState did with the entries it was given. */
export interface RestoreReport {
  /** Merged: newer than what the core held. */
  applied: number;
  /** Not newer than what the core holds: the newer state stays. */
  superseded: number;
  /** Refused by the merge: stamped too far ahead of the clock, or before the gc horizon. */
  refused: number;
  /** Not a valid entry (a bad key or stamp, a value that is no pool document or admin state). */
  invalid: number;
}

export interface EventInit {
  ts: number;
  type: string;
  pool?: string;
  target?: string;
  node?: string;
  from?: string;
  to?: string;
  cause?: string;
  [k: string]: unknown;
}

export type CoreOutput =
  | {
      kind: "check";
      id: string;
      pool: string;
      spec: PoolSpec;
      target: TargetAddr;
      lagMs: number;
    }
  | { kind: "event"; event: EventInit }
  /** Open a stream to member `to`, send `bytes`, hand the reply to handleSyncReply(reqId). */
  | { kind: "sync"; to: string; reqId: number; bytes: Uint8Array }
  /** The observation counter moved: persist it when convenient. */
  | { kind: "counter"; value: number };

interface TargetRt {
  id: string;
  pool: string;
  addr: TargetAddr;
  verdict: Health;
  verdictSinceWallMs: number;
  /** This node's running observation while it owns the target. */
  own: Observation | undefined;
  /** The first result after gaining the target is written even without a flip. */
  mustReport: boolean;
  /** Recent results of this node's own checks (newest last). */
  recent: { ts: number; ok: boolean; latencyMs: number; reason: string }[];
}

interface PoolRt {
  spec: PoolSpec;
  doc: unknown;
  targets: Map<string, TargetRt>; // by host:port
}

export interface ObserverView {
  node: string;
  state: Health;
  since: number | null;
  reason: string;
  latencyMs: number | null;
  checkedAt: number | null;
  owner: boolean;
  voting: boolean;
}

export interface TargetView {
  target: string;
  state: Effective;
  verdict: Health;
  since: number;
  admin: AdminState;
  adminReason?: string;
  reason: string;
  owners: string[];
  observers: ObserverView[];
}

const RECENT_RESULTS = 10;

export class NodeCore {
  readonly name: string;
  private readonly opts: NodeCoreOptions;
  private readonly random: Random;
  private readonly hlc: HybridClock;
  private readonly poolMap: LwwMap<unknown>;
  private readonly adminMap: LwwMap<AdminValue>;
  readonly observations: ObservationMap<Observation>;
  private readonly placement = new Placement();
  readonly scheduler: Scheduler;
  private readonly broadcasts: BroadcastQueue;
  private readonly pools = new Map<string, PoolRt>();
  private readonly targets = new Map<string, TargetRt>();
  private readonly members = new Map<string, MemberInfo>();
  /** When each dead/left member went down, for reaping its registers. */
  private readonly downSince = new Map<string, number>();
  private readonly outputs: CoreOutput[] = [];
  private nowMs = 0;
  private wallMs = 0;
  private nextSyncMs: number;
  private nextGcMs: number;
  private reqSeq = 0;
  /** A change too big to gossip is waiting to be pushed to a few peers at the next tick. */
  private fanout = false;
  private checksHeld = false;
  private bootGapClosed = false;
  private readonly syncs = new Map<number, string>();
  /** LWW entries stored since the shell last took them (latest per key); off until watchState. */
  private stateChanges: Map<string, StateEntry> | undefined;
  private onStateChange: (() => void) | undefined;
  /** Targets whose agent-check reply and pools whose healthy list (DNS answer) may have changed
   * since the shell last took them, and (when asked for) targets whose whole view may have;
   * off until watchLookups. */
  private lookupChanges:
    | { targets: Set<string>; pools: Set<string>; views: Set<string> | undefined; onChange: () => void }
    | undefined;
  /** Counts the entries a restore stores, which are not changes to persist again. */
  private restoring: { stored: number } | undefined;
  readonly stats = {
    wireDropped: {} as Record<string, number>,
    deltasSent: 0,
    deltasReceived: 0,
    syncsStarted: 0,
    syncsFailed: 0,
    syncsServed: 0,
    registersPulled: 0,
    registersPushed: 0,
    poolsRejected: 0,
    broadcastsTooBig: 0,
  };

  /** Replication broadcasts dropped because the queue was full (the oldest, most-sent go). */
  get broadcastsDropped(): number {
    return this.broadcasts.dropped;
  }

  constructor(opts: NodeCoreOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.random = opts.random;
    this.hlc = new HybridClock(opts.name);
    this.poolMap = new LwwMap({ node: opts.name, clock: this.hlc, onStore: (e) => this.stored("pool", e) });
    this.adminMap = new LwwMap({ node: opts.name, clock: this.hlc, onStore: (e) => this.stored("admin", e) });
    this.observations = new ObservationMap<Observation>({
      self: opts.name,
      counterStart: opts.counterStart,
      ...(opts.tombstoneRetentionMs === undefined ? {} : { retentionMs: opts.tombstoneRetentionMs }),
      evict: (id, held, incoming) => this.registerToEvict(id, held, incoming),
    });
    this.scheduler = new Scheduler({ maxConcurrent: opts.maxConcurrentChecks, random: opts.random });
    this.broadcasts = new BroadcastQueue({
      // Verdict changes are what the cluster exists to spread, and they are small: each is sent
      // twice as often as a membership fact, so a node missed by every relay is rare (with the
      // membership multiplier alone, about 1 node in 40 waited for anti-entropy at n = 10).
      retransmitMult: opts.retransmitMult * 2,
      maxQueued: nodeCoreLimits.maxQueuedBroadcasts,
      numMembers: () => this.liveMemberCount(),
    });
    // The node is a member of its own cluster from the start, alone until it hears of others.
    this.members.set(opts.name, { name: opts.name, zone: opts.zone, weight: opts.weight, state: "alive" });
    this.placement.addMember({ name: opts.name, zone: opts.zone, weight: opts.weight });
    this.nextSyncMs = 0;
    this.nextGcMs = 0;
  }

  // ── time ─────────────────────────────────────────────────────────────────

  private advance(nowMs: number, wallMs: number): void {
    // Hot path (every check): the message is only built on failure.
    if (nowMs < this.nowMs) assert(false, `time went backwards: ${this.nowMs} -> ${nowMs}`);
    this.nowMs = nowMs;
    this.wallMs = wallMs;
  }

  /**
   * While joining, a node would own every target (it knows no one else yet) and start checks
   * it is about to hand over. The shell holds checks until the join completes.
   */
  holdChecks(held: boolean): void {
    this.checksHeld = held;
  }

  /** Starts due checks and runs the periodic work (anti-entropy, gc). */
  tick(nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    if (!this.checksHeld) for (const s of this.scheduler.poll(nowMs).start) this.startCheck(s.key, s.lagMs);
    if (nowMs >= this.nextSyncMs) {
      this.nextSyncMs = nowMs + this.opts.antiEntropyIntervalMs * (0.75 + 0.5 * this.random.next());
      this.startSync();
    }
    if (this.fanout) {
      this.fanout = false;
      for (let i = 0; i < nodeCoreLimits.fanoutPeers; i++) this.startSync();
    }
    if (nowMs >= this.nextGcMs) {
      this.nextGcMs = nowMs + 60_000;
      this.gc();
    }
  }

  /** Run anti-entropy at the next tick (after a join, so a new node catches up at once). */
  syncSoon(): void {
    this.nextSyncMs = this.nowMs;
  }

  nextDeadline(): number {
    if (this.fanout) return this.nowMs;
    const d = this.checksHeld ? undefined : this.scheduler.nextDeadline();
    return Math.min(d ?? Number.POSITIVE_INFINITY, this.nextSyncMs, this.nextGcMs);
  }

  /** Everything the core asked for since the last drain, in order. */
  drain(): CoreOutput[] {
    return this.outputs.splice(0, this.outputs.length);
  }

  // ── pools (local writes: config file and API) ────────────────────────────

  /** Validates and writes a pool; replicated to every node. Throws VigilError on a bad document. */
  putPool(name: string, doc: unknown, nowMs: number, wallMs: number, cause = "api"): { created: boolean } {
    this.advance(nowMs, wallMs);
    this.opts.parsePool(name, doc); // validate before it can reach anyone
    const created = !this.pools.has(name);
    const delta = this.poolMap.set(name, doc, wallMs);
    this.queueBroadcast({ t: "pools", entries: [...delta] }, `p:${name}`);
    this.applyPoolChange({ key: name, before: undefined, after: doc }, cause);
    return { created };
  }

  deletePool(name: string, nowMs: number, wallMs: number, cause = "api"): boolean {
    this.advance(nowMs, wallMs);
    if (!this.pools.has(name)) return false;
    const delta = this.poolMap.delete(name, wallMs);
    this.queueBroadcast({ t: "pools", entries: [...delta] }, `p:${name}`);
    this.applyPoolChange({ key: name, before: undefined, after: undefined }, cause);
    return true;
  }

  setAdmin(
    pool: string,
    target: string,
    state: AdminState,
    reason: string | undefined,
    nowMs: number,
    wallMs: number,
  ): boolean {
    this.advance(nowMs, wallMs);
    const t = this.pools.get(pool)?.targets.get(target);
    if (t === undefined) return false;
    const delta =
      state === "none"
        ? this.adminMap.delete(t.id, wallMs)
        : this.adminMap.set(t.id, reason === undefined ? { state } : { state, reason }, wallMs);
    this.queueBroadcast({ t: "admin", entries: [...delta] }, `a:${t.id}`);
    this.applyAdminChanges([{ key: t.id, before: undefined, after: this.adminMap.get(t.id) }], this.name);
    return true;
  }

  private applyPoolChange(change: LwwChange<unknown>, cause: string): void {
    const name = change.key;
    const existing = this.pools.get(name);
    const doc = this.poolMap.get(name);
    if (doc === undefined) {
      if (existing === undefined) return;
      for (const t of [...existing.targets.values()]) this.dropTarget(existing, t);
      this.pools.delete(name);
      this.lookupChanged(undefined, name);
      this.emit({ type: "pool.deleted", pool: name, node: this.name, cause });
      return;
    }
    let spec: PoolSpec;
    try {
      spec = this.opts.parsePool(name, doc);
    } catch {
      // A peer running a newer schema, or a corrupt write: keep what we have, count it.
      this.stats.poolsRejected++;
      return;
    }
    const ps: PoolRt = existing ?? { spec, doc, targets: new Map() };
    const placementChanged =
      existing !== undefined &&
      (existing.spec.observers !== spec.observers || existing.spec.spread !== spec.spread);
    ps.spec = spec;
    ps.doc = doc;
    this.pools.set(name, ps);
    this.lookupChanged(undefined, name); // fail_open, or the pool itself, may be new
    const keep = new Set(spec.targets.map((a) => a.key));
    for (const t of [...ps.targets.values()]) if (!keep.has(t.addr.key)) this.dropTarget(ps, t);
    for (const addr of spec.targets) {
      let t = ps.targets.get(addr.key);
      if (t === undefined) {
        t = {
          id: `${name}/${addr.key}`,
          pool: name,
          addr,
          verdict: "unknown",
          verdictSinceWallMs: this.wallMs,
          own: undefined,
          mustReport: false,
          recent: [],
        };
        ps.targets.set(addr.key, t);
        this.targets.set(t.id, t);
        this.lookupChanged(t.id, name);
        this.observations.restoreTarget(t.id);
        this.ownerChanges(this.placement.addTarget({ id: t.id, k: spec.observers, spread: spec.spread }));
      } else if (placementChanged) {
        this.placement.removeTarget(t.id);
        this.ownerChanges(this.placement.addTarget({ id: t.id, k: spec.observers, spread: spec.spread }));
      } else if (t.own !== undefined) {
        // Timing may have changed: the scheduler takes the new intervals for the next round.
        this.scheduler.upsert(t.id, spec, this.nowMs);
      }
      this.recomputeVerdict(t);
    }
    this.emit({
      type: existing === undefined ? "pool.created" : "pool.updated",
      pool: name,
      node: this.name,
      cause,
      targets: spec.targets.length,
    });
  }

  private dropTarget(ps: PoolRt, t: TargetRt): void {
    this.ownerChanges(this.placement.removeTarget(t.id));
    this.scheduler.remove(t.id, this.nowMs);
    this.observations.removeTarget(t.id, this.wallMs);
    ps.targets.delete(t.addr.key);
    this.targets.delete(t.id);
    this.lookupChanged(t.id, t.pool);
  }

  private applyAdminChanges(changes: readonly LwwChange<AdminValue>[], source: string): void {
    for (const c of changes) {
      const t = this.targets.get(c.key);
      if (t === undefined) continue;
      this.lookupChanged(t.id, t.pool);
      const after = c.after;
      this.emit({
        type: "target.admin",
        pool: t.pool,
        target: t.addr.key,
        node: source,
        to: after?.state ?? "none",
        ...(after?.reason === undefined ? {} : { cause: after.reason }),
      });
    }
  }

  // ── membership ───────────────────────────────────────────────────────────

  /** A member's state or metadata as membership sees it. */
  memberUpdate(m: MemberInfo, nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    if (m.name === this.name) return;
    const prev = this.members.get(m.name);
    this.members.set(m.name, m);
    const wasIn = prev !== undefined && (prev.state === "alive" || prev.state === "suspect");
    const isIn = m.state === "alive" || m.state === "suspect";
    if (isIn) {
      this.downSince.delete(m.name);
      this.observations.admitObserver(m.name);
      const metaChanged = prev !== undefined && (prev.zone !== m.zone || prev.weight !== m.weight);
      if (!wasIn || metaChanged) {
        if (wasIn) this.ownerChanges(this.placement.removeMember(m.name));
        this.ownerChanges(this.placement.addMember({ name: m.name, zone: m.zone, weight: m.weight }));
      }
    } else {
      if (!this.downSince.has(m.name)) this.downSince.set(m.name, nowMs);
      if (wasIn) this.ownerChanges(this.placement.removeMember(m.name));
      // Its votes stop counting at once, not only on targets whose owners moved.
      for (const t of this.targetsObservedBy(m.name)) this.recomputeVerdict(t);
    }
  }

  /** A member that is gone for good (reaped by membership): forget its registers. */
  memberReaped(name: string, nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    if (name === this.name) return;
    const m = this.members.get(name);
    if (m !== undefined && (m.state === "alive" || m.state === "suspect")) return;
    this.members.delete(name);
    this.downSince.delete(name);
    const touched = this.targetsObservedBy(name);
    this.observations.reapObserver(name, wallMs);
    for (const t of touched) this.recomputeVerdict(t);
  }

  private targetsObservedBy(name: string): TargetRt[] {
    const out: TargetRt[] = [];
    for (const t of this.targets.values()) if (this.observations.get(t.id, name) !== undefined) out.push(t);
    return out;
  }

  private liveMemberCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.state === "alive" || m.state === "suspect") n++;
    return n;
  }

  private ownerChanges(
    changes: readonly { targetId: string; before: readonly string[]; after: readonly string[] }[],
  ): void {
    for (const c of changes) {
      const t = this.targets.get(c.targetId);
      if (t === undefined) continue;
      const had = c.before.includes(this.name);
      const has = c.after.includes(this.name);
      if (has && !had) this.gain(t);
      else if (had && !has) this.lose(t);
      this.recomputeVerdict(t);
    }
  }

  /** This node became an owner: seed from the newest observation anyone holds, check soon. */
  private gain(t: TargetRt): void {
    const spec = this.pools.get(t.pool)!.spec;
    let newest: Observation | undefined;
    for (const r of this.observations.observationsOf(t.id)) {
      if (newest === undefined || (r.value.lastCheckedWallMs ?? 0) > (newest.lastCheckedWallMs ?? 0))
        newest = r.value;
    }
    t.own = newest ?? initialObservation(this.wallMs);
    t.mustReport = true;
    // A handoff (someone observed it before, but not within an interval) is checked at once so
    // the target stays checked at least once per interval. A target nobody has observed yet
    // (a new pool, a fresh cluster) gets a random first slot in its interval instead, so ten
    // thousand new targets do not fire together.
    const last = newest?.lastCheckedWallMs;
    const handoff = last != null && this.wallMs - last >= spec.intervalMs;
    this.scheduler.upsert(t.id, spec, this.nowMs, handoff ? "immediate" : "spread");
    this.scheduler.setMode(t.id, checkMode(t.own), this.nowMs);
  }

  private lose(t: TargetRt): void {
    // An in-flight check finishes; it is just not scheduled again.
    this.scheduler.remove(t.id, this.nowMs);
    t.own = undefined;
    t.mustReport = false;
  }

  // ── checks ───────────────────────────────────────────────────────────────

  private startCheck(id: string, lagMs: number): void {
    const t = this.targets.get(id);
    const ps = t === undefined ? undefined : this.pools.get(t.pool);
    if (t === undefined || ps === undefined) {
      this.scheduler.complete(id, this.nowMs);
      return;
    }
    this.outputs.push({ kind: "check", id, pool: t.pool, spec: ps.spec, target: t.addr, lagMs });
  }

  /** The result of a check the core asked for. */
  checkDone(id: string, spec: PoolSpec, r: CheckResult, nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    const t = this.targets.get(id);
    // The pool changed or the target left while the check ran: the result no longer counts.
    if (t === undefined || t.own === undefined || this.pools.get(t.pool)?.spec !== spec) {
      this.scheduler.complete(id, nowMs);
      return;
    }
    // The newest RECENT_RESULTS, oldest first. Dropping the oldest moves nine references in a
    // plain loop: shift() re-lays the array out and copyWithin() goes through the generic
    // property path, each several times the cost (perf, bench/checks.ts --prober=stub).
    const recent = t.recent;
    if (recent.length >= RECENT_RESULTS) for (let i = 1; i < recent.length; i++) recent[i - 1] = recent[i]!;
    recent[Math.min(recent.length, RECENT_RESULTS - 1)] = {
      ts: wallMs,
      ok: r.ok,
      latencyMs: r.latencyMs,
      reason: r.reason,
    };
    const { next, transition } = applyResult(t.own, r, spec, wallMs);
    t.own = next;
    this.viewChanged(t.id); // its latency, time and recent results, at least
    this.scheduler.complete(id, nowMs, checkMode(next));
    if (transition !== undefined) {
      this.emit({
        type: "observation.changed",
        pool: t.pool,
        target: t.addr.key,
        node: this.name,
        from: transition.from,
        to: transition.to,
        cause: transition.cause,
      });
    }
    // A down target's reply names this node's latest reason when it votes, flip or not.
    if (t.verdict === "down") this.lookupChanged(t.id, undefined);
    if (transition !== undefined || t.mustReport) {
      t.mustReport = false;
      const delta = this.observations.localWrite(id, next);
      this.outputs.push({ kind: "counter", value: this.observations.counter });
      this.queueBroadcast({ t: "obs", registers: [...delta] }, `o:${id}`);
      this.recomputeVerdict(t);
    }
  }

  // ── verdicts ─────────────────────────────────────────────────────────────

  private isLive(name: string): boolean {
    const m = this.members.get(name);
    return m !== undefined && (m.state === "alive" || m.state === "suspect");
  }

  /**
   * The registers that vote: the current owners' registers; an owner that has not reported yet
   * is stood in for by the newest register of a live former owner, so a handoff never leaves
   * a target without votes. Dead, left and reaped observers never vote.
   */
  private voters(t: TargetRt): Register<Observation>[] {
    return this.votersOf(this.placement.owners(t.id), this.observations.observationsOf(t.id));
  }

  /** voters() over a target's owners and registers already in hand (view() needs both too). */
  private votersOf(
    owners: readonly string[],
    regs: readonly Register<Observation>[],
  ): Register<Observation>[] {
    const out: Register<Observation>[] = [];
    let missing = 0;
    for (const o of owners) {
      let r: Register<Observation> | undefined;
      for (const x of regs) {
        if (x.observer === o) {
          r = x;
          break;
        }
      }
      if (r !== undefined) out.push(r);
      else missing++;
    }
    if (missing > 0) {
      const standIns = regs
        .filter((r) => !owners.includes(r.observer) && this.isLive(r.observer))
        .sort((a, b) => (b.value.lastCheckedWallMs ?? 0) - (a.value.lastCheckedWallMs ?? 0));
      out.push(...standIns.slice(0, missing));
    }
    return out;
  }

  /**
   * A target holds the most registers the map keeps and one more observer reports: which
   * register gives way. Owners' never; then observers no longer live; then the non-owner
   * checked longest ago. Nodes that each ran alone for a while (seeds unreachable at start)
   * leave a register on every target; refusing newcomers would keep the owners' out for good.
   */
  private registerToEvict(
    targetId: string,
    held: readonly Register<Observation>[],
    incoming: Register<Observation>,
  ): string {
    const owners = this.placement.owners(targetId);
    const worth = (r: Register<Observation>): number =>
      owners.includes(r.observer)
        ? Number.POSITIVE_INFINITY
        : this.isLive(r.observer)
          ? (r.value.lastCheckedWallMs ?? 0)
          : Number.NEGATIVE_INFINITY;
    let victim = incoming;
    let least = worth(incoming);
    for (const r of held) {
      const w = worth(r);
      if (w < least || (w === least && r.observer > victim.observer)) {
        victim = r;
        least = w;
      }
    }
    return victim.observer;
  }

  private recomputeVerdict(t: TargetRt): void {
    const ps = this.pools.get(t.pool);
    if (ps === undefined) return;
    // Called whenever its registers, owners or observers' liveness may have moved: what its
    // view shows (observers, owners, voting) with them.
    this.viewChanged(t.id);
    const voters = this.voters(t);
    const v = computeVerdict(
      ps.spec.verdict,
      voters.map((r) => r.value.state),
      t.verdict,
    );
    // A down target's reply carries the reason its votes give, which moves without a flip.
    if (v !== t.verdict) this.lookupChanged(t.id, t.pool);
    else if (v === "down") this.lookupChanged(t.id, undefined);
    if (v === t.verdict) return;
    const from = t.verdict;
    t.verdict = v;
    t.verdictSinceWallMs = this.wallMs;
    const cause =
      voters.find((r) => r.value.state === v)?.value.lastReason ??
      (v === "unknown" ? "no live observer" : "");
    // When the change happened in the cluster's terms: the latest flip among the votes that
    // carry the new verdict. Every node computes the same from the same registers, so it
    // names the episode (alerts use it for idempotency keys) whenever a node learns of it.
    let episodeMs = 0;
    for (const r of voters) {
      if (r.value.state === v && r.value.sinceWallMs !== null)
        episodeMs = Math.max(episodeMs, r.value.sinceWallMs);
    }
    this.emit({
      type: "verdict.changed",
      pool: t.pool,
      target: t.addr.key,
      node: this.name,
      from,
      to: v,
      cause,
      observers: voters.map((r) => `${r.observer}:${r.value.state}`).join(","),
      ...(episodeMs > 0 ? { episodeMs } : {}),
    });
  }

  // ── replication ──────────────────────────────────────────────────────────

  private queueBroadcast(m: WireMessage, key: string): void {
    if (this.liveMemberCount() <= 1) return; // nobody to tell; anti-entropy covers joiners
    const bytes = encodeWire(m);
    if (bytes.length > nodeCoreLimits.maxBroadcastBytes) {
      // Too big to piggyback on a packet (a pool of many targets): exchange state with a few
      // peers now; each that learns something new does the same (see mergePools).
      this.stats.broadcastsTooBig++;
      this.fanout = true;
      return;
    }
    this.broadcasts.queue(key, bytes);
    this.stats.deltasSent++;
  }

  /** Membership's AppDelegate: payloads to piggyback on an outgoing packet. */
  getBroadcasts(overheadBytes: number, limitBytes: number): Uint8Array[] {
    return this.broadcasts.getBroadcasts(overheadBytes, limitBytes);
  }

  private drop(reason: string): void {
    this.stats.wireDropped[reason] = (this.stats.wireDropped[reason] ?? 0) + 1;
  }

  /** A payload piggybacked by a peer. */
  notifyMsg(bytes: Uint8Array, nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    const d = decodeWire(bytes, nodeCoreLimits.maxWireBytes);
    if (!d.ok) {
      this.drop(d.reason);
      return;
    }
    this.stats.deltasReceived++;
    const m = d.msg;
    // Epidemic dissemination: what was news to us is passed on, with its own transmit limit,
    // so a change reaches everyone in O(log n) gossip rounds, not at the next anti-entropy.
    // What we already knew is not, so the rumour dies out once everyone has it.
    if (m.t === "obs") {
      const changed = this.observations.applyDelta(m.registers);
      for (const r of changed) {
        // Only fresh news is relayed: after a burst (a cluster starting, a partition healing)
        // relaying stale registers would crowd fresh flips out of every packet for minutes,
        // and anti-entropy delivers them anyway. Clock skew only shifts the cut-off.
        const checked = r.value.lastCheckedWallMs;
        if (checked !== null && this.wallMs - checked > nodeCoreLimits.relayMaxAgeMs) continue;
        this.queueBroadcast({ t: "obs", registers: [r] }, `o:${r.targetId}:${r.observer}`);
      }
      this.mergeRegisters(changed);
    } else if (m.t === "pools") this.mergePools(m.entries);
    else if (m.t === "admin") this.mergeAdmin(m.entries);
    else this.drop("unexpected_type");
  }

  /** Merges pool entries from a peer and passes on what was news (pools are rare). */
  private mergePools(entries: readonly LwwEntry<unknown>[]): void {
    // Every node writes its config file's pools at start with its own clock, so each node
    // joining with the cluster's config puts a newer stamp on the same document. Only a change
    // of content is applied and passed on: passing on every stamp started one fan-out epidemic
    // per joiner (O(n²) exchanges, each carrying the pool, at 500 nodes). A newer stamp alone
    // is merged (LWW stays convergent) and left to periodic anti-entropy.
    const news = newsIn(this.poolMap, entries).filter((e) => !sameContent(this.poolMap.entry(e.key), e));
    for (const c of this.poolMap.applyDelta(entries, this.wallMs)) {
      if (c.before !== undefined && c.after !== undefined && sameJson(c.before, c.after)) continue;
      this.applyPoolChange(c, "replicated");
    }
    for (const e of news) this.queueBroadcast({ t: "pools", entries: [e] }, `p:${e.key}`);
  }

  private mergeAdmin(entries: readonly LwwEntry<AdminValue>[]): void {
    const news = newsIn(this.adminMap, entries);
    const changes = this.adminMap.applyDelta(entries, this.wallMs);
    this.applyAdminChanges(changes, "replicated");
    for (const c of changes) {
      const t = this.targets.get(c.key);
      if (t !== undefined) this.recomputeVerdict(t);
    }
    for (const e of news) this.queueBroadcast({ t: "admin", entries: [e] }, `a:${e.key}`);
  }

  private mergeRegisters(changed: readonly Register<Observation>[]): void {
    for (const r of changed) {
      const t = this.targets.get(r.targetId);
      if (t === undefined) continue;
      if (r.observer !== this.name) {
        this.emit({
          type: "observation.changed",
          pool: t.pool,
          target: t.addr.key,
          node: r.observer,
          to: r.value.state,
          cause: r.value.lastReason,
          replicated: true,
        });
      }
      this.recomputeVerdict(t);
    }
  }

  private startSync(): void {
    if (this.syncs.size >= nodeCoreLimits.maxSyncsInFlight) return;
    const peers = [...this.members.values()].filter((m) => m.name !== this.name && m.state === "alive");
    if (peers.length === 0) return;
    const peer = peers[this.random.int(peers.length)]!;
    const reqId = ++this.reqSeq;
    this.syncs.set(reqId, peer.name);
    this.stats.syncsStarted++;
    this.outputs.push({
      kind: "sync",
      to: peer.name,
      reqId,
      bytes: encodeWire({
        t: "pull",
        vector: this.observations.vector(),
        pools: this.poolMap.versions(),
        admin: this.adminMap.versions(),
      }),
    });
  }

  private exchangeBudget() {
    return {
      maxRegisters: nodeCoreLimits.maxRegistersPerExchange,
      maxBytes: nodeCoreLimits.maxBytesPerExchange,
      // An estimate, not JSON.stringify per register: exchanges carry thousands of them.
      sizeOf: (r: Register<unknown>) =>
        96 + r.targetId.length + r.observer.length + ((r.value as Observation).lastReason?.length ?? 0),
    };
  }

  /** A peer's sync stream request; returns the reply to send back. */
  handleSync(bytes: Uint8Array, nowMs: number, wallMs: number): Uint8Array | undefined {
    this.advance(nowMs, wallMs);
    const d = decodeWire(bytes, nodeCoreLimits.maxWireBytes);
    if (!d.ok) {
      this.drop(d.reason);
      return undefined;
    }
    const m = d.msg;
    this.stats.syncsServed++;
    if (m.t === "pull") {
      return encodeWire({
        t: "pulled",
        reply: this.observations.missingFor(m.vector, this.exchangeBudget()),
        pools: this.poolMap.missingFor(m.pools),
        admin: this.adminMap.missingFor(m.admin),
        poolVersions: this.poolMap.versions(),
        adminVersions: this.adminMap.versions(),
      });
    }
    if (m.t === "push") {
      this.mergeExchangeReply(m.reply);
      this.mergePools(m.pools);
      this.mergeAdmin(m.admin);
      return encodeWire({ t: "ack" });
    }
    this.drop("unexpected_type");
    return undefined;
  }

  private mergeExchangeReply(reply: ExchangeReply<Observation>): void {
    const changed = this.observations.mergeExchange(reply.registers, reply.vector, reply.complete);
    // After a restart our own older registers may live on at peers; one complete exchange has
    // brought back what this peer held of them, and our new writes supersede the rest. Until
    // then our vector entry stays low so peers keep offering them (see ObservationMap).
    if (reply.complete && !this.bootGapClosed) {
      this.bootGapClosed = true;
      this.observations.closeBootGap();
    }
    this.stats.registersPulled += reply.registers.length;
    this.mergeRegisters(changed);
  }

  /** The reply (or failure) of a sync request the core asked for. */
  handleSyncReply(reqId: number, reply: Uint8Array | Error, nowMs: number, wallMs: number): void {
    this.advance(nowMs, wallMs);
    const peer = this.syncs.get(reqId);
    if (peer === undefined) return;
    this.syncs.delete(reqId);
    if (reply instanceof Error) {
      this.stats.syncsFailed++;
      return;
    }
    const d = decodeWire(reply, nodeCoreLimits.maxWireBytes);
    if (!d.ok) {
      this.stats.syncsFailed++;
      this.drop(d.reason);
      return;
    }
    const m = d.msg;
    if (m.t === "ack") return;
    if (m.t !== "pulled") {
      this.drop("unexpected_type");
      return;
    }
    this.mergeExchangeReply(m.reply);
    this.mergePools(m.pools);
    this.mergeAdmin(m.admin);
    // Push back what the peer lacks, judged by its vector and versions.
    const peerVector = new Map(m.reply.vector);
    const back = this.observations.missingFor(peerVector, this.exchangeBudget());
    const pools = this.poolMap.missingFor(m.poolVersions);
    const admin = this.adminMap.missingFor(m.adminVersions);
    if (back.registers.length > 0 || pools.length > 0 || admin.length > 0) {
      this.stats.registersPushed += back.registers.length;
      const id = ++this.reqSeq;
      this.syncs.set(id, peer);
      this.outputs.push({
        kind: "sync",
        to: peer,
        reqId: id,
        bytes: encodeWire({ t: "push", reply: back, pools, admin }),
      });
    }
  }

  private gc(): void {
    const reapAfter = this.opts.reapAfterMs ?? 24 * 3600_000;
    for (const [name, since] of [...this.downSince]) {
      if (this.nowMs - since >= reapAfter) this.memberReaped(name, this.nowMs, this.wallMs);
    }
    this.observations.gc(this.wallMs);
    const retention = this.opts.tombstoneRetentionMs;
    this.poolMap.gc(this.wallMs, retention);
    this.adminMap.gc(this.wallMs, retention);
  }

  private emit(e: Omit<EventInit, "ts">): void {
    this.outputs.push({ kind: "event", event: { ...e, ts: this.wallMs } as EventInit });
  }

  // ── persistence of the replicated state (pool documents, admin states) ─────

  /** Every LWW entry with its stamp, tombstones included: pools first, each map oldest first. */
  exportState(): StateEntry[] {
    return [
      ...this.poolMap.entriesNewerThan(undefined).map((e) => stateEntry("pool", e)),
      ...this.adminMap.entriesNewerThan(undefined).map((e) => stateEntry("admin", e)),
    ];
  }

  /**
   * Merges persisted entries through the ordinary LWW merge: an entry older than what the core
   * holds loses, a tombstone keeps its pool deleted, and the clock moves past every merged stamp
   * (a later local write wins over restored state). Call at start, before the config's pools and
   * before joining; restored changes are not gossiped (anti-entropy carries them) and not
   * reported to watchState (they came from the store). Events say cause "restored".
   */
  restoreState(entries: readonly StateEntry[], nowMs: number, wallMs: number): RestoreReport {
    this.advance(nowMs, wallMs);
    const report: RestoreReport = { applied: 0, superseded: 0, refused: 0, invalid: 0 };
    const pools: LwwEntry<unknown>[] = [];
    const admin: LwwEntry<AdminValue>[] = [];
    for (const s of entries) {
      const e = validStateEntry(s);
      if (e === undefined) report.invalid++;
      else if (e.kind === "pool") pools.push(e.entry);
      else admin.push(e.entry as LwwEntry<AdminValue>);
    }
    const refusedBefore = refusedCount(this.poolMap) + refusedCount(this.adminMap);
    const restoring = { stored: 0 };
    this.restoring = restoring;
    try {
      // Pools first: an admin state's event names its target, which a restored pool brings.
      for (const c of this.poolMap.applyDelta(pools, wallMs)) this.applyPoolChange(c, "restored");
      const changes = this.adminMap.applyDelta(admin, wallMs);
      this.applyAdminChanges(changes, "restored");
      for (const c of changes) {
        const t = this.targets.get(c.key);
        if (t !== undefined) this.recomputeVerdict(t);
      }
    } finally {
      this.restoring = undefined;
    }
    report.applied = restoring.stored;
    report.refused = refusedCount(this.poolMap) + refusedCount(this.adminMap) - refusedBefore;
    report.superseded = pools.length + admin.length - report.applied - report.refused;
    return report;
  }

  /**
   * Starts recording every LWW entry the core stores (local writes, merged news) for the shell
   * to persist. `onChange` is called when a change arrives while none was waiting: take them
   * with takeStateChanges, off the caller's stack.
   */
  watchState(onChange: () => void): void {
    this.stateChanges ??= new Map();
    this.onStateChange = onChange;
  }

  /**
   * Starts recording which lookup answers may have changed. Per target (its agent-check reply):
   * a verdict that flipped, a down verdict whose reason may have moved (its votes, or this
   * node's own check), an admin state, the target added or removed. Per pool (its healthy list,
   * the DNS answer): a flip, an admin state, a target added or removed, the pool's spec
   * (fail_open) or the pool itself. `onChange` is called when the first change arrives while
   * none was waiting: take them with takeLookupChanges, off the caller's stack. Feeds the
   * lookup thread's tables (src/serve/lookup-thread.ts).
   */
  watchLookups(onChange: () => void, opts: { views?: boolean } = {}): void {
    this.lookupChanges = {
      targets: new Set(),
      pools: new Set(),
      views: opts.views === true ? new Set() : undefined,
      onChange,
    };
  }

  /**
   * Target ids (`pool/host:port`) and pool names touched since the last call; some may be gone.
   * `views` (with `watchLookups(…, { views: true })`, else empty): targets whose view (the HTTP
   * API's answer for it, `view()`) may have changed in any way, `targets` included: a check's
   * latency and time, an observer's register, owners, voting.
   */
  takeLookupChanges(): { targets: string[]; pools: string[]; views: string[] } {
    const c = this.lookupChanges;
    if (c === undefined) return { targets: [], pools: [], views: [] };
    const out = {
      targets: [...c.targets],
      pools: [...c.pools],
      views: c.views === undefined ? [] : [...c.views],
    };
    c.targets.clear();
    c.pools.clear();
    c.views?.clear();
    return out;
  }

  /** Notes a target's reply (`id`) and/or a pool's healthy list (`pool`) as possibly changed. */
  private lookupChanged(id: string | undefined, pool: string | undefined): void {
    const c = this.lookupChanges;
    if (c === undefined) return;
    const first = nothingTaken(c);
    if (id !== undefined) {
      c.targets.add(id);
      c.views?.add(id);
    }
    if (pool !== undefined) c.pools.add(pool);
    if (first) c.onChange();
  }

  /** Notes a target's view as possibly changed (when views are watched). */
  private viewChanged(id: string): void {
    const c = this.lookupChanges;
    if (c?.views === undefined) return;
    const first = nothingTaken(c);
    c.views.add(id);
    if (first) c.onChange();
  }

  /** The entries stored since the last call, the latest per key. */
  takeStateChanges(): StateEntry[] {
    const m = this.stateChanges;
    if (m === undefined || m.size === 0) return [];
    const out = [...m.values()];
    m.clear();
    return out;
  }

  /** Changed entries waiting for takeStateChanges. */
  get pendingStateChanges(): number {
    return this.stateChanges?.size ?? 0;
  }

  /** How long LWW tombstones are kept: a persisted one older than this may be pruned. */
  get stateTombstoneRetentionMs(): number {
    return this.opts.tombstoneRetentionMs ?? stateLimits.tombstoneRetentionMsDefault;
  }

  private stored(kind: StateKind, e: LwwEntry<unknown>): void {
    if (this.restoring !== undefined) {
      this.restoring.stored++;
      return;
    }
    const m = this.stateChanges;
    if (m === undefined) return;
    const first = m.size === 0;
    m.set(`${kind}\u0000${e.key}`, stateEntry(kind, e));
    if (first) this.onStateChange?.();
  }

  // ── views ────────────────────────────────────────────────────────────────

  poolNames(): string[] {
    return [...this.pools.keys()].sort();
  }

  poolSpec(name: string): { spec: PoolSpec; doc: unknown } | undefined {
    const ps = this.pools.get(name);
    return ps === undefined ? undefined : { spec: ps.spec, doc: ps.doc };
  }

  targetsOf(pool: string): TargetRt[] | undefined {
    const ps = this.pools.get(pool);
    return ps === undefined ? undefined : [...ps.targets.values()];
  }

  allTargets(): IterableIterator<TargetRt> {
    return this.targets.values();
  }

  targetCount(): number {
    return this.targets.size;
  }

  admin(id: string): { state: AdminState; reason: string | undefined } {
    const a = this.adminMap.get(id);
    return a === undefined ? { state: "none", reason: undefined } : { state: a.state, reason: a.reason };
  }

  effective(t: TargetRt): Effective {
    return effectiveState(t.verdict, this.admin(t.id).state);
  }

  target(pool: string, key: string): TargetRt | undefined {
    return this.pools.get(pool)?.targets.get(key);
  }

  owners(id: string): readonly string[] {
    return this.placement.owners(id);
  }

  isOwner(id: string): boolean {
    return this.placement.isOwner(id, this.name);
  }

  ownedCount(name: string = this.name): number {
    let n = 0;
    for (const _ of this.placement.ownedBy(name)) n++;
    return n;
  }

  memberList(): MemberInfo[] {
    return [...this.members.values()];
  }

  view(t: TargetRt): TargetView {
    const admin = this.admin(t.id);
    // Both are fresh arrays, read once: this runs for every HTTP lookup of a target.
    const owners = this.placement.owners(t.id);
    const regs = this.observations.observationsOf(t.id);
    const voters = this.votersOf(owners, regs);
    const votes = (name: string): boolean => {
      for (const r of voters) if (r.observer === name) return true;
      return false;
    };
    const observers: ObserverView[] = regs.map((r) => ({
      node: r.observer,
      state: r.value.state,
      since: r.value.sinceWallMs,
      reason: r.value.lastReason,
      latencyMs: r.value.lastLatencyMs,
      checkedAt: r.value.lastCheckedWallMs,
      owner: owners.includes(r.observer),
      voting: votes(r.observer),
    }));
    // This node's running observation is fresher than its last written register.
    if (t.own !== undefined) {
      const mine = observers.find((o) => o.node === this.name);
      const o: ObserverView = {
        node: this.name,
        state: t.own.state,
        since: t.own.sinceWallMs,
        reason: t.own.lastReason,
        latencyMs: t.own.lastLatencyMs,
        checkedAt: t.own.lastCheckedWallMs,
        owner: true,
        voting: votes(this.name),
      };
      if (mine === undefined) observers.push(o);
      else Object.assign(mine, o);
    }
    const state = effectiveState(t.verdict, admin.state);
    const v: TargetView = {
      target: t.addr.key,
      state,
      verdict: t.verdict,
      since: t.verdictSinceWallMs,
      admin: admin.state,
      reason:
        admin.state !== "none"
          ? (admin.reason ?? admin.state)
          : (observers.find((o) => o.voting && o.state === t.verdict)?.reason ?? observers[0]?.reason ?? ""),
      owners,
      observers,
    };
    if (admin.reason !== undefined) v.adminReason = admin.reason;
    return v;
  }

  /** Addresses to route to (after fail_open), or undefined for an unknown pool. */
  healthy(pool: string): TargetAddr[] | undefined {
    const ps = this.pools.get(pool);
    if (ps === undefined) return undefined;
    const all = [...ps.targets.values()];
    const up = all.filter((t) => this.effective(t) === "up");
    if (up.length > 0 || !ps.spec.failOpen) return up.map((t) => t.addr);
    return all.filter((t) => this.admin(t.id).state !== "maint").map((t) => t.addr);
  }

  failOpenActive(pool: string): boolean {
    const ps = this.pools.get(pool);
    if (ps === undefined || !ps.spec.failOpen) return false;
    return ![...ps.targets.values()].some((t) => this.effective(t) === "up");
  }
}

function stateEntry(kind: StateKind, e: LwwEntry<unknown>): StateEntry {
  return { kind, key: e.key, ts: e.ts, value: e.deleted ? undefined : e.value, deleted: e.deleted };
}

function refusedCount<V>(map: LwwMap<V>): number {
  const s = map.stats();
  return s.refusedFuture + s.refusedStale;
}

/** A persisted entry as the merge takes it, or undefined when it is damaged (checked like the wire). */
function validStateEntry(s: StateEntry): { kind: StateKind; entry: LwwEntry<unknown> } | undefined {
  if (typeof s !== "object" || s === null) return undefined;
  if (s.kind !== "pool" && s.kind !== "admin") return undefined;
  if (typeof s.key !== "string" || s.key.length === 0 || s.key.length > stateLimits.maxIdChars)
    return undefined;
  if (!isHlc(s.ts) || s.ts.node.length > stateLimits.maxIdChars) return undefined;
  const ts: Hlc = { wallMs: s.ts.wallMs, logical: s.ts.logical, node: s.ts.node };
  if (s.deleted === true) return { kind: s.kind, entry: { key: s.key, ts, value: undefined, deleted: true } };
  if (s.deleted !== false) return undefined;
  const value = s.kind === "pool" ? decodePoolDoc(s.value) : decodeAdmin(s.value);
  if (value === undefined) return undefined;
  return { kind: s.kind, entry: { key: s.key, ts, value, deleted: false } };
}

/** Whether an entry changes nothing but the stamp of the one held. */
function sameContent<V>(held: LwwEntry<V> | undefined, e: LwwEntry<V>): boolean {
  if (held === undefined) return false;
  if (held.deleted || e.deleted) return held.deleted && e.deleted;
  return sameJson(held.value, e.value);
}

/** Equal JSON documents; a different key order counts as different (it only costs a re-apply). */
function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** The entries newer than what the map holds for their key: news to pass on. */
function newsIn<V>(map: LwwMap<V>, entries: readonly LwwEntry<V>[]): LwwEntry<V>[] {
  return entries.filter((e) => {
    const held = map.entry(e.key);
    return held === undefined || compareHlc(e.ts, held.ts) > 0;
  });
}

/** No lookup change is waiting to be taken: the next one calls onChange. */
function nothingTaken(c: {
  targets: Set<string>;
  pools: Set<string>;
  views: Set<string> | undefined;
}): boolean {
  return c.targets.size === 0 && c.pools.size === 0 && (c.views === undefined || c.views.size === 0);
}
