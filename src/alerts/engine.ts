// The alert rules as a sans-IO state machine. Every node runs one over every target's verdict
// changes, so every node knows which alerts are pending, open and due; the shell (manager.ts)
// sends only those whose target it is the sender for. When the sender changes (it died, a
// member joined), the new one already holds the same state and carries on: no handover.
//
// Time is wall-clock milliseconds passed in by the caller; the engine never reads a clock.
// Inputs: verdictChanged(now, change, totalTargets) and tick(now). Outputs: the alerts to
// enqueue, nextDeadline(), and the open alerts that changed (takeDirty) for the shell to persist.

import { createHash } from "node:crypto";
import type { AlertRuleSpec, AlertStormSpec } from "../config/types.ts";
import { assert } from "../core/assert.ts";
import { KeyedMinHeap } from "../core/scheduler/heap.ts";
import type { Health } from "../core/verdict/verdict.ts";
import { alertLimits } from "./limits.ts";

/** A verdict.changed event, as the engine needs it. */
export interface VerdictChange {
  pool: string;
  /** `host:port` inside the pool. */
  target: string;
  from: Health;
  to: Health;
  /** Wall ms of the change on this node: with the rule and target, it names the episode. */
  ts: number;
  cause?: string;
  /** `node:state,…` of the voting observers. */
  observers?: string;
}

/**
 * firing: a target entered a rule's state (down or unknown) and stayed `for`.
 * recovered: a target came back up from down (a rule with `up` in its transitions).
 * resolved: a fired alert's target is up again. reminder: a fired alert is still not resolved.
 */
export type TargetAlertKind = "firing" | "recovered" | "resolved" | "reminder";

export interface TargetAlert {
  kind: TargetAlertKind;
  /** The idempotency key: the same notice always has the same id. */
  id: string;
  rule: string;
  pool: string;
  target: string;
  /** The verdict now: the fired state, or up for recovered and resolved. */
  state: Health;
  /** The verdict before the change that started the episode (for resolved: the fired state). */
  from: Health;
  /** Wall ms the target entered `state` (for a reminder: when the alert's episode began). */
  sinceMs: number;
  /** Wall ms the engine made the notice. */
  atMs: number;
  cause: string;
  observers: string;
  /** resolved and reminder: the id of the firing notice they follow up. */
  firingId?: string;
  /** resolved: when the resolved episode began. */
  firedSinceMs?: number;
  /** reminder: 1 for the first reminder. */
  reminder?: number;
  sinks: string[];
}

export interface StormSampleEntry {
  pool: string;
  target: string;
  from: Health;
  to: Health;
}

/** storm: many targets flipped at once. storm_resolved: the flips have calmed down. */
export interface StormAlert {
  kind: "storm" | "storm_resolved";
  id: string;
  startedMs: number;
  /** storm_resolved only. */
  endedMs?: number;
  atMs: number;
  windowMs: number;
  share: number;
  totalTargets: number;
  /** storm: targets that flipped within the window; storm_resolved: during the whole storm. */
  flipped: number;
  /** storm: the flips by the verdict moved to; storm_resolved: the flipped targets by verdict now. */
  byState: Record<Health, number>;
  /** Flipped targets per pool, largest first, at most alertLimits.maxStormPools. */
  pools: Record<string, number>;
  /** Flipped targets in pools past maxStormPools. */
  otherPools: number;
  /** storm: some of the flips; storm_resolved: some of the flipped targets still not up. */
  sample: StormSampleEntry[];
  /** storm_resolved: individual notices the storm suppressed. */
  suppressed?: number;
  sinks: string[];
}

export type Alert = TargetAlert | StormAlert;

export function isStormAlert(a: Alert): a is StormAlert {
  return a.kind === "storm" || a.kind === "storm_resolved";
}

/** An open (fired, not yet resolved) alert: what the shell persists so a restart does not repeat it. */
export interface OpenAlertRecord {
  rule: string;
  pool: string;
  target: string;
  state: Health;
  from: Health;
  sinceMs: number;
  /** False when a storm suppressed the firing notice: no reminders or resolve for it then. */
  told: boolean;
  reminders: number;
  /** Wall ms of the next reminder; +Infinity when none. */
  nextRemindMs: number;
  cause: string;
}

export interface DirtyOpenAlert {
  rule: string;
  pool: string;
  target: string;
  /** undefined: the alert closed; delete it. */
  record: OpenAlertRecord | undefined;
}

export interface AlertEngineOptions {
  rules: readonly AlertRuleSpec[];
  storm: AlertStormSpec;
}

export interface AlertEngineStats {
  /** Individual notices not sent because a storm covered them. */
  suppressed: number;
  /** Failing targets not tracked because alertLimits.maxTrackedTargets was reached. */
  untracked: number;
  storms: number;
}

/** The deterministic id of a notice: receivers drop a repeat by it. 128 bits of SHA-256. */
export function alertId(parts: readonly (string | number)[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}

interface Pending {
  state: Health;
  from: Health;
  sinceMs: number;
  fireAtMs: number;
  /** Its change was part of a storm: it never sends, even if it fires after the storm. */
  suppressed: boolean;
  cause: string;
  observers: string;
}

interface RuleState {
  pending: Pending | undefined;
  open: OpenAlertRecord | undefined;
}

interface Track {
  pool: string;
  target: string;
  verdict: Health;
  /** The last up/down verdict seen here; undefined until one is (a target just learned of). */
  lastKnown: "up" | "down" | undefined;
  /** False for a track restored from disk until its verdict is heard again. */
  learned: boolean;
  cause: string;
  observers: string;
  rules: Map<string, RuleState>;
}

interface Flip extends StormSampleEntry {
  atMs: number;
}

interface Storm {
  startedMs: number;
  /** Targets that flipped during the storm (and in the window that started it). */
  affected: Map<string, StormSampleEntry>;
  /** Affected targets past maxFlipsTracked, counted only. */
  affectedUncounted: number;
  suppressedAtStart: number;
}

const SEP = "\u0000";

export class AlertEngine {
  private readonly rules: readonly AlertRuleSpec[];
  private readonly rulesByName = new Map<string, AlertRuleSpec>();
  private readonly poolSets: (ReadonlySet<string> | undefined)[];
  private readonly stormSpec: AlertStormSpec;
  private readonly tracks = new Map<string, Track>();
  /** Per (rule, target): the earliest of its pending fire time and next reminder. */
  private readonly deadlines = new KeyedMinHeap<string>();
  /** Recent flips by target id, oldest first (a repeat flip moves to the end). */
  private readonly flips = new Map<string, Flip>();
  private storm: Storm | undefined;
  private totalTargets = 0;
  private readonly dirty = new Map<string, DirtyOpenAlert>();
  readonly stats: AlertEngineStats = { suppressed: 0, untracked: 0, storms: 0 };

  constructor(opts: AlertEngineOptions) {
    this.rules = opts.rules;
    for (const r of opts.rules) {
      assert(!this.rulesByName.has(r.name), `duplicate rule ${r.name}`);
      this.rulesByName.set(r.name, r);
    }
    this.poolSets = opts.rules.map((r) => (r.pools === undefined ? undefined : new Set(r.pools)));
    this.stormSpec = opts.storm;
  }

  get stormActive(): boolean {
    return this.storm !== undefined;
  }

  /** Open alerts held, for tests and metrics. */
  openCount(): number {
    let n = 0;
    for (const t of this.tracks.values()) for (const st of t.rules.values()) if (st.open !== undefined) n++;
    return n;
  }

  /** The earliest wall ms at which tick() has work; +Infinity when none. */
  nextDeadline(): number {
    const due = this.deadlines.peekPriority() ?? Number.POSITIVE_INFINITY;
    return Math.min(due, this.stormEndCheckMs());
  }

  /**
   * A target's verdict changed. `totalTargets` is how many targets the cluster has now: the
   * storm threshold is a share of it.
   */
  verdictChanged(nowMs: number, ch: VerdictChange, totalTargets: number): Alert[] {
    const out: Alert[] = [];
    if (ch.from === ch.to) return out;
    const id = targetId(ch.pool, ch.target);
    let track = this.tracks.get(id);
    // A change out of unknown is a flip only if this node knew the target before: a node that
    // starts (or joins) learns every verdict as unknown → up/down, and that is not news.
    const prevKnown = ch.from !== "unknown" ? ch.from : track?.lastKnown;
    this.totalTargets = totalTargets;
    if (prevKnown !== undefined) this.recordFlip(nowMs, id, ch, out);
    else this.pruneFlips(nowMs);

    if (track === undefined) {
      if (ch.to === "up" && prevKnown !== "down") return out; // nothing to remember
      if (this.tracks.size >= alertLimits.maxTrackedTargets) {
        this.stats.untracked++;
        return out;
      }
      track = {
        pool: ch.pool,
        target: ch.target,
        verdict: ch.from,
        lastKnown: undefined,
        learned: true,
        cause: "",
        observers: "",
        rules: new Map(),
      };
      this.tracks.set(id, track);
    }
    track.verdict = ch.to;
    track.learned = true;
    if (ch.to !== "unknown") track.lastKnown = ch.to;
    track.cause = cut(ch.cause ?? "");
    track.observers = ch.observers ?? "";

    for (let i = 0; i < this.rules.length; i++) {
      const pools = this.poolSets[i];
      if (pools !== undefined && !pools.has(ch.pool)) continue;
      this.applyRule(nowMs, this.rules[i]!, id, track, ch, prevKnown, out);
    }
    if (track.verdict === "up" && track.rules.size === 0) this.tracks.delete(id);
    return out;
  }

  /** Fires what is due: pending alerts whose `for` elapsed, reminders, the end of a storm. */
  tick(nowMs: number): Alert[] {
    const out: Alert[] = [];
    for (let at = this.deadlines.peekPriority(); at !== undefined && at <= nowMs; ) {
      const key = this.deadlines.pop()!;
      const [ruleName = "", id = ""] = key.split(SEP);
      const rule = this.rulesByName.get(ruleName);
      const track = this.tracks.get(id);
      const st = track?.rules.get(ruleName);
      assert(rule !== undefined && track !== undefined && st !== undefined, `stale alert deadline ${key}`);
      if (st.pending !== undefined && st.pending.fireAtMs <= nowMs) this.fire(nowMs, rule, track, st, out);
      if (st.open !== undefined && st.open.nextRemindMs <= nowMs) this.remind(nowMs, rule, track, st, out);
      this.settle(rule.name, id, track, st);
      at = this.deadlines.peekPriority();
    }
    if (this.storm !== undefined && this.stormEndCheckMs() <= nowMs) {
      this.pruneFlips(nowMs);
      if (!this.overThreshold()) this.endStorm(nowMs, out);
    }
    return out;
  }

  /**
   * Drops the state of targets that no longer exist (a pool was deleted or shrank), so their
   * open alerts stop reminding. Nothing is sent for them.
   */
  forget(keep: (pool: string, target: string) => boolean): number {
    let dropped = 0;
    for (const [id, track] of this.tracks) {
      if (keep(track.pool, track.target)) continue;
      for (const [ruleName, st] of track.rules) {
        this.deadlines.delete(ruleKey(ruleName, id));
        if (st.open !== undefined) this.markDirty(ruleName, track, undefined);
      }
      this.tracks.delete(id);
      dropped++;
    }
    return dropped;
  }

  /**
   * Open alerts read back after a restart. Their targets' verdicts are re-learned from the
   * cluster (unknown → down is then no news; unknown → up resolves them).
   */
  restore(records: readonly OpenAlertRecord[]): void {
    for (const r of records) {
      const rule = this.rulesByName.get(r.rule);
      const id = targetId(r.pool, r.target);
      // The rule was removed, or no longer watches the pool: nothing would ever close it.
      if (rule === undefined || (rule.pools !== undefined && !rule.pools.includes(r.pool))) {
        this.dirty.set(ruleKey(r.rule, id), {
          rule: r.rule,
          pool: r.pool,
          target: r.target,
          record: undefined,
        });
        continue;
      }
      let track = this.tracks.get(id);
      if (track === undefined) {
        if (this.tracks.size >= alertLimits.maxTrackedTargets) {
          this.stats.untracked++;
          continue;
        }
        track = {
          pool: r.pool,
          target: r.target,
          verdict: "unknown",
          lastKnown: undefined,
          learned: false,
          cause: r.cause,
          observers: "",
          rules: new Map(),
        };
        this.tracks.set(id, track);
      }
      // A reminder setting changed across the restart takes effect from now on.
      const nextRemindMs =
        r.told && rule.remindMs > 0
          ? Number.isFinite(r.nextRemindMs)
            ? r.nextRemindMs
            : r.sinceMs + rule.remindMs
          : Number.POSITIVE_INFINITY;
      const st: RuleState = { pending: undefined, open: { ...r, nextRemindMs } };
      this.settle(rule.name, id, track, st);
    }
  }

  /** Open alerts that changed since the last call: the shell writes them through to disk. */
  takeDirty(): DirtyOpenAlert[] {
    const out = [...this.dirty.values()];
    this.dirty.clear();
    return out;
  }

  // ── rules ────────────────────────────────────────────────────────────────

  private applyRule(
    nowMs: number,
    rule: AlertRuleSpec,
    id: string,
    track: Track,
    ch: VerdictChange,
    prevKnown: Health | undefined,
    out: Alert[],
  ): void {
    const st = track.rules.get(rule.name) ?? { pending: undefined, open: undefined };
    // Any change cancels a pending alert: the state it waited on did not last `for`.
    st.pending = undefined;
    const open = st.open;
    if (open !== undefined && ch.to === "up") {
      if (open.told && rule.resolve) {
        const alert = this.targetAlert("resolved", rule, track, ch.to, open.state, ch.ts, nowMs, ch.cause);
        alert.firingId = firingIdOf(rule.name, track, open);
        alert.firedSinceMs = open.sinceMs;
        alert.id = alertId(["resolved", rule.name, track.pool, track.target, open.state, open.sinceMs]);
        this.emitOrSuppress(alert, false, out);
      }
      st.open = undefined;
      this.markDirty(rule.name, track, undefined);
    }
    // An open alert stays open, and quiet, while the target moves between down and unknown.
    const eligible =
      rule.transitions.includes(ch.to) &&
      (ch.to === "up"
        ? prevKnown === "down" && !(open !== undefined && rule.resolve)
        : st.open === undefined);
    if (eligible) {
      st.pending = {
        state: ch.to,
        from: ch.from,
        sinceMs: ch.ts,
        fireAtMs: nowMs + rule.forMs,
        suppressed: this.storm !== undefined,
        cause: track.cause,
        observers: track.observers,
      };
      if (rule.forMs === 0) this.fire(nowMs, rule, track, st, out);
    }
    this.settle(rule.name, id, track, st);
  }

  private fire(nowMs: number, rule: AlertRuleSpec, track: Track, st: RuleState, out: Alert[]): void {
    const p = st.pending;
    assert(p !== undefined, "fire without a pending alert");
    st.pending = undefined;
    const suppressed = p.suppressed || this.storm !== undefined;
    const kind: TargetAlertKind = p.state === "up" ? "recovered" : "firing";
    const alert = this.targetAlert(kind, rule, track, p.state, p.from, p.sinceMs, nowMs, p.cause);
    alert.observers = p.observers;
    alert.id = alertId([kind, rule.name, track.pool, track.target, p.state, p.sinceMs]);
    this.emitOrSuppress(alert, suppressed, out);
    if (kind === "recovered") return; // a one-shot notice: nothing stays open
    st.open = {
      rule: rule.name,
      pool: track.pool,
      target: track.target,
      state: p.state,
      from: p.from,
      sinceMs: p.sinceMs,
      told: !suppressed,
      reminders: 0,
      nextRemindMs: !suppressed && rule.remindMs > 0 ? nowMs + rule.remindMs : Number.POSITIVE_INFINITY,
      cause: p.cause,
    };
    this.markDirty(rule.name, track, st.open);
  }

  private remind(nowMs: number, rule: AlertRuleSpec, track: Track, st: RuleState, out: Alert[]): void {
    const open = st.open;
    assert(open !== undefined && rule.remindMs > 0, "reminder without an open alert");
    // A restored alert waits for its target's verdict before saying it is still not up.
    if (track.learned && track.verdict !== "up") {
      open.reminders++;
      const alert = this.targetAlert(
        "reminder",
        rule,
        track,
        track.verdict,
        open.from,
        open.sinceMs,
        nowMs,
        track.cause || open.cause,
      );
      alert.reminder = open.reminders;
      alert.firingId = firingIdOf(rule.name, track, open);
      alert.id = alertId([
        "reminder",
        rule.name,
        track.pool,
        track.target,
        open.state,
        open.sinceMs,
        open.reminders,
      ]);
      this.emitOrSuppress(alert, false, out);
    }
    open.nextRemindMs += rule.remindMs;
    // After a long pause (a restart, a stopped process) remind once, not once per missed period.
    if (open.nextRemindMs <= nowMs) open.nextRemindMs = nowMs + rule.remindMs;
    this.markDirty(rule.name, track, open);
  }

  private targetAlert(
    kind: TargetAlertKind,
    rule: AlertRuleSpec,
    track: Track,
    state: Health,
    from: Health,
    sinceMs: number,
    atMs: number,
    cause: string | undefined,
  ): TargetAlert {
    return {
      kind,
      id: "",
      rule: rule.name,
      pool: track.pool,
      target: track.target,
      state,
      from,
      sinceMs,
      atMs,
      cause: cut(cause ?? ""),
      observers: track.observers,
      sinks: [...rule.sinks],
    };
  }

  private emitOrSuppress(alert: Alert, suppressed: boolean, out: Alert[]): void {
    if (suppressed || this.storm !== undefined) this.stats.suppressed++;
    else out.push(alert);
  }

  /** Files the rule state back: its deadline in the heap, or away when it holds nothing. */
  private settle(ruleName: string, id: string, track: Track, st: RuleState): void {
    const key = ruleKey(ruleName, id);
    if (st.pending === undefined && st.open === undefined) {
      track.rules.delete(ruleName);
      this.deadlines.delete(key);
      return;
    }
    track.rules.set(ruleName, st);
    const at = Math.min(
      st.pending?.fireAtMs ?? Number.POSITIVE_INFINITY,
      st.open?.nextRemindMs ?? Number.POSITIVE_INFINITY,
    );
    if (!Number.isFinite(at)) this.deadlines.delete(key);
    else if (this.deadlines.has(key)) this.deadlines.update(key, at);
    else this.deadlines.push(key, at);
  }

  private markDirty(ruleName: string, track: Track, record: OpenAlertRecord | undefined): void {
    this.dirty.set(ruleKey(ruleName, targetId(track.pool, track.target)), {
      rule: ruleName,
      pool: track.pool,
      target: track.target,
      record: record === undefined ? undefined : { ...record },
    });
  }

  // ── storms ───────────────────────────────────────────────────────────────

  private threshold(): number {
    return this.stormSpec.share * this.totalTargets;
  }

  private overThreshold(): boolean {
    return this.flips.size > this.threshold() && this.flips.size >= this.stormSpec.minTargets;
  }

  private stormEndCheckMs(): number {
    if (this.storm === undefined) return Number.POSITIVE_INFINITY;
    const oldest = this.flips.values().next().value;
    // No flips left in the window: the storm is over as soon as anyone looks.
    return oldest === undefined ? Number.NEGATIVE_INFINITY : oldest.atMs + this.stormSpec.windowMs;
  }

  private pruneFlips(nowMs: number): void {
    const cutoffMs = nowMs - this.stormSpec.windowMs;
    for (const [id, f] of this.flips) {
      if (f.atMs > cutoffMs) break;
      this.flips.delete(id);
    }
  }

  private recordFlip(nowMs: number, id: string, ch: VerdictChange, out: Alert[]): void {
    this.flips.delete(id);
    const flip: Flip = { pool: ch.pool, target: ch.target, from: ch.from, to: ch.to, atMs: nowMs };
    this.flips.set(id, flip);
    if (this.flips.size > alertLimits.maxFlipsTracked) {
      const oldest = this.flips.keys().next().value;
      if (oldest !== undefined) this.flips.delete(oldest);
    }
    this.pruneFlips(nowMs);
    const storm = this.storm;
    if (storm !== undefined) {
      this.noteAffected(storm, id, flip);
      return;
    }
    if (this.overThreshold()) this.startStorm(nowMs, out);
  }

  private noteAffected(storm: Storm, id: string, e: StormSampleEntry): void {
    if (storm.affected.has(id) || storm.affected.size < alertLimits.maxFlipsTracked) {
      storm.affected.set(id, { pool: e.pool, target: e.target, from: e.from, to: e.to });
    } else storm.affectedUncounted++;
  }

  private startStorm(nowMs: number, out: Alert[]): void {
    const storm: Storm = {
      startedMs: nowMs,
      affected: new Map(),
      affectedUncounted: 0,
      suppressedAtStart: this.stats.suppressed,
    };
    this.storm = storm;
    this.stats.storms++;
    const byState: Record<Health, number> = { up: 0, down: 0, unknown: 0 };
    const pools = new Map<string, number>();
    const sample: StormSampleEntry[] = [];
    for (const [id, f] of this.flips) {
      this.noteAffected(storm, id, f);
      byState[f.to]++;
      pools.set(f.pool, (pools.get(f.pool) ?? 0) + 1);
      // The alerts these flips would have caused are covered by the storm notice.
      const track = this.tracks.get(id);
      if (track !== undefined)
        for (const st of track.rules.values()) if (st.pending) st.pending.suppressed = true;
    }
    // The newest flips are the sample: the oldest may already have been sent individually.
    const flipsNewestFirst = [...this.flips.values()].reverse();
    for (const f of flipsNewestFirst.slice(0, this.stormSpec.sampleSize)) {
      sample.push({ pool: f.pool, target: f.target, from: f.from, to: f.to });
    }
    out.push({
      kind: "storm",
      id: alertId(["storm", nowMs]),
      startedMs: nowMs,
      atMs: nowMs,
      windowMs: this.stormSpec.windowMs,
      share: this.stormSpec.share,
      totalTargets: this.totalTargets,
      flipped: this.flips.size,
      byState,
      ...topPools(pools),
      sample,
      sinks: [...this.stormSpec.sinks],
    });
  }

  private endStorm(nowMs: number, out: Alert[]): void {
    const storm = this.storm;
    assert(storm !== undefined, "no storm to end");
    this.storm = undefined;
    const byState: Record<Health, number> = { up: 0, down: 0, unknown: 0 };
    const pools = new Map<string, number>();
    const sample: StormSampleEntry[] = [];
    for (const [id, e] of storm.affected) {
      // Targets that are up hold no track.
      const now = this.tracks.get(id)?.verdict ?? "up";
      byState[now]++;
      pools.set(e.pool, (pools.get(e.pool) ?? 0) + 1);
      if (now !== "up" && sample.length < this.stormSpec.sampleSize) {
        sample.push({ pool: e.pool, target: e.target, from: e.from, to: now });
      }
    }
    out.push({
      kind: "storm_resolved",
      id: alertId(["storm_resolved", storm.startedMs]),
      startedMs: storm.startedMs,
      endedMs: nowMs,
      atMs: nowMs,
      windowMs: this.stormSpec.windowMs,
      share: this.stormSpec.share,
      totalTargets: this.totalTargets,
      flipped: storm.affected.size + storm.affectedUncounted,
      byState,
      ...topPools(pools),
      sample,
      suppressed: this.stats.suppressed - storm.suppressedAtStart,
      sinks: [...this.stormSpec.sinks],
    });
  }
}

export function targetId(pool: string, target: string): string {
  return `${pool}/${target}`;
}

function ruleKey(ruleName: string, id: string): string {
  return `${ruleName}${SEP}${id}`;
}

function firingIdOf(ruleName: string, track: Track, open: OpenAlertRecord): string {
  return alertId(["firing", ruleName, track.pool, track.target, open.state, open.sinceMs]);
}

function topPools(counts: Map<string, number>): { pools: Record<string, number>; otherPools: number } {
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const pools: Record<string, number> = {};
  let otherPools = 0;
  sorted.forEach(([pool, n], i) => {
    if (i < alertLimits.maxStormPools) pools[pool] = n;
    else otherPools += n;
  });
  return { pools, otherPools };
}

function cut(s: string): string {
  return s.length > alertLimits.maxCauseChars ? `${s.slice(0, alertLimits.maxCauseChars)}…` : s;
}
