// The check scheduler: decides when each owned target is checked, sans-IO.
//
// Every target is in exactly one of three places:
//   waiting  — in `waiting`, a heap keyed by due time, not yet due;
//   ready    — in `ready`, a heap keyed by due time: due, but every check slot is taken;
//   inFlight — started by poll(), until the shell calls complete().
// poll(now) starts the oldest due rounds of both heaps while slots are free, then moves what is
// still due into `ready`: O((started + queued) × log n), nothing for targets not yet due. The
// shell keeps one timer set to nextDeadline() and calls poll() when it fires, and again after
// complete() or upsert() (either may make a check startable at once).
//
// The schedule does not depend on how long checks take: the next due time is the previous due
// time plus one jittered interval, so a target checked every 10 s is checked 360 times an hour
// whatever its latency. A target that fell more than one interval behind is rescheduled from
// the present instead of firing back to back to catch up.

import { assert } from "../assert.ts";
import { limits } from "../limits.ts";
import type { Random } from "../random.ts";
import { KeyedMinHeap } from "./heap.ts";

/** Beyond ±50% a jittered interval no longer resembles the configured one, and at ±100% two
 * checks of one target could run back to back; the config schema should reject more. */
export const jitterMax = 0.5;

/** Which interval applies, in HAProxy's terms: `inter`, `fastinter` while the observation is
 * unknown or has a streak toward the other state in progress, `downinter` while down. */
export type CheckMode = "normal" | "transitioning" | "down";

/** The timing of one target's checks; a PoolSpec has these fields and can be passed as is. */
export interface CheckTiming {
  intervalMs: number;
  fastIntervalMs: number;
  downIntervalMs: number;
  /** Each interval is drawn uniformly from interval × [1 − jitter, 1 + jitter]. */
  jitter: number;
  /** Passed back in each start so the shell can hand it to the checker. */
  timeoutMs: number;
}

/** `spread`: first check at a random phase within one interval, so a config load of thousands
 * of targets does not fire at once. `immediate`: at once (ownership handoff). */
export type FirstRun = "spread" | "immediate";

export interface CheckStart {
  key: string;
  /** When the check was due by the schedule. */
  dueMs: number;
  /** How long the check waited on this scheduler: start minus the later of its due time and
   * the end of the target's previous check. Time spent behind the target's own slow check is
   * not the scheduler's lag, and is left out. */
  lagMs: number;
  timeoutMs: number;
  mode: CheckMode;
}

export interface PollOutput {
  start: CheckStart[];
}

export interface SchedulerOptions {
  random: Random;
  /** Checks in flight at once; due checks beyond it queue FIFO by due time. */
  maxConcurrent?: number;
}

export interface SchedulerStats {
  /** Targets scheduled (removed targets whose check is still running are not counted). */
  targets: number;
  /** Targets waiting for their due time. */
  scheduled: number;
  /** Targets due and waiting for a free slot. */
  queued: number;
  /** Checks started and not yet completed, including those of removed targets. */
  inFlight: number;
}

type Place = "waiting" | "ready" | "inFlight";

interface Target {
  readonly key: string;
  timing: CheckTiming;
  mode: CheckMode;
  place: Place;
  /** Set when removed while in flight: the record only holds the slot until complete(). */
  removed: boolean;
  /** The current round's due time is derived from these three, so a change of timing or mode
   * can re-derive it instead of drawing a new phase: due = anchorMs + span(u). */
  anchorMs: number;
  /** The uniform draw for this round: the phase on the first round, the jitter afterwards. */
  u: number;
  firstRound: boolean;
  dueMs: number;
  /** Not startable before this (the later of due and the time it was scheduled); lag counts
   * from here. */
  eligibleMs: number;
}

export class Scheduler {
  private readonly random: Random;
  private readonly maxConcurrent: number;
  private readonly targets = new Map<string, Target>();
  private readonly waiting = new KeyedMinHeap<string>();
  private readonly ready = new KeyedMinHeap<string>();
  private inFlightCount = 0;
  private liveCount = 0;
  private lastNowMs = Number.NEGATIVE_INFINITY;

  constructor(opts: SchedulerOptions) {
    const maxConcurrent = opts.maxConcurrent ?? limits.maxConcurrentChecksDefault;
    assert(
      Number.isInteger(maxConcurrent) &&
        maxConcurrent >= 1 &&
        maxConcurrent <= limits.maxConcurrentChecksCeiling,
      `maxConcurrent ${maxConcurrent} outside [1, ${limits.maxConcurrentChecksCeiling}]`,
    );
    this.random = opts.random;
    this.maxConcurrent = maxConcurrent;
  }

  stats(): SchedulerStats {
    return {
      targets: this.liveCount,
      scheduled: this.waiting.size,
      queued: this.ready.size,
      inFlight: this.inFlightCount,
    };
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get queued(): number {
    return this.ready.size;
  }

  get scheduled(): number {
    return this.waiting.size;
  }

  has(key: string): boolean {
    const t = this.targets.get(key);
    return t !== undefined && !t.removed;
  }

  /** The due time of a target's pending round; undefined when in flight or unknown. */
  dueOf(key: string): number | undefined {
    const t = this.targets.get(key);
    return t === undefined || t.place === "inFlight" ? undefined : t.dueMs;
  }

  /**
   * Adds a target or changes its timing. A new target starts in mode `normal` with its first
   * check placed by `firstRun`. For a known target the pending round is re-derived from the new
   * timing (never earlier than now); a check in flight keeps running and the new timing applies
   * from the next round. `immediate` on a known target that is waiting pulls its check to now.
   */
  upsert(key: string, timing: CheckTiming, nowMs: number, firstRun: FirstRun = "spread"): void {
    this.advanceTo(nowMs);
    assertTiming(timing);
    const t = this.targets.get(key);
    if (t === undefined) {
      const u = firstRun === "immediate" ? 0 : this.random.next();
      const target: Target = {
        key,
        timing: copyTiming(timing),
        mode: "normal",
        place: "waiting",
        removed: false,
        anchorMs: nowMs,
        u,
        firstRound: true,
        dueMs: 0,
        eligibleMs: 0,
      };
      target.dueMs = target.eligibleMs = dueFrom(target);
      this.targets.set(key, target);
      this.waiting.push(key, target.dueMs);
      this.liveCount++;
      return;
    }
    if (t.removed) {
      t.removed = false;
      this.liveCount++;
    }
    t.timing = copyTiming(timing);
    // Only a waiting round moves; one already queued or running is sooner than this anyway, and
    // complete() re-anchors the next round.
    if (firstRun === "immediate") {
      t.anchorMs = nowMs;
      t.u = 0;
      t.firstRound = true;
    }
    this.rederive(t, nowMs);
  }

  /** Stops checking a target. A check in flight keeps its slot until complete(), which then does
   * nothing. Returns false for a key that is not scheduled. */
  remove(key: string, nowMs: number): boolean {
    this.advanceTo(nowMs);
    const t = this.targets.get(key);
    if (t === undefined || t.removed) return false;
    this.liveCount--;
    switch (t.place) {
      case "waiting":
        this.waiting.delete(key);
        this.targets.delete(key);
        break;
      case "ready":
        this.ready.delete(key);
        this.targets.delete(key);
        break;
      case "inFlight":
        t.removed = true;
        break;
    }
    return true;
  }

  /** Selects the interval for the target's rounds. A waiting round past its first is re-derived
   * at once; the first round keeps its phase over the normal interval so a mass load stays
   * spread. Returns false for a key that is not scheduled. */
  setMode(key: string, mode: CheckMode, nowMs: number): boolean {
    this.advanceTo(nowMs);
    const t = this.targets.get(key);
    if (t === undefined || t.removed) return false;
    if (t.mode === mode) return true;
    t.mode = mode;
    this.rederive(t, nowMs);
    return true;
  }

  /** Starts what is due, up to the free slots, oldest due first. */
  poll(nowMs: number): PollOutput {
    this.advanceTo(nowMs);
    const start: CheckStart[] = [];
    while (this.inFlightCount < this.maxConcurrent) {
      // Everything in `ready` is due; a waiting round that is due and older goes first (on a tie
      // the one queued earlier). Starting straight from `waiting` spares the common case, where
      // nothing is queued, a trip through `ready`.
      const readyDue = this.ready.peekPriority();
      const waitingDue = this.waiting.peekPriority();
      let key: string | undefined;
      if (
        waitingDue !== undefined &&
        waitingDue <= nowMs &&
        (readyDue === undefined || waitingDue < readyDue)
      ) {
        key = this.waiting.pop();
      } else {
        key = this.ready.pop();
      }
      if (key === undefined) break;
      const t = this.targets.get(key)!;
      t.place = "inFlight";
      this.inFlightCount++;
      start.push({
        key,
        dueMs: t.dueMs,
        lagMs: Math.max(0, nowMs - t.eligibleMs),
        timeoutMs: t.timing.timeoutMs,
        mode: t.mode,
      });
    }
    // What came due beyond the free slots queues for the next one.
    for (let due = this.waiting.peekPriority(); due !== undefined && due <= nowMs; ) {
      const key = this.waiting.pop()!;
      this.targets.get(key)!.place = "ready";
      this.ready.push(key, due);
      due = this.waiting.peekPriority();
    }
    return { start };
  }

  /**
   * A started check finished (whatever its result). Schedules the next round, in `mode` when
   * given (the mode the result just led to). Does nothing for a target removed meanwhile or
   * unknown; returns whether a next round was scheduled.
   */
  complete(key: string, nowMs: number, mode?: CheckMode): boolean {
    this.advanceTo(nowMs);
    const t = this.targets.get(key);
    if (t === undefined) return false;
    // Hot path: the message is only built on failure.
    if (t.place !== "inFlight") assert(false, `complete() for ${key}, which is ${t.place}, not in flight`);
    this.inFlightCount--;
    if (t.removed) {
      this.targets.delete(key);
      return false;
    }
    if (mode !== undefined) t.mode = mode;
    t.anchorMs = t.dueMs;
    t.u = this.random.next();
    t.firstRound = false;
    let due = dueFrom(t);
    if (due < nowMs - intervalFor(t)) {
      t.anchorMs = nowMs;
      due = dueFrom(t);
    }
    t.dueMs = due;
    t.eligibleMs = Math.max(due, nowMs);
    t.place = "waiting";
    this.waiting.push(key, due);
    return true;
  }

  /** The earliest time poll() has something to do; undefined when nothing is scheduled. May be in
   * the past (a slot freed with checks queued): poll at once. */
  nextDeadline(): number | undefined {
    const waiting = this.waiting.peekPriority();
    const ready = this.inFlightCount < this.maxConcurrent ? this.ready.peekPriority() : undefined;
    if (ready === undefined) return waiting;
    if (waiting === undefined) return ready;
    return Math.min(ready, waiting);
  }

  /** Crashes if the bookkeeping is inconsistent; for tests. */
  checkInvariants(): void {
    this.waiting.checkInvariants();
    this.ready.checkInvariants();
    let inFlight = 0;
    let live = 0;
    for (const t of this.targets.values()) {
      if (!t.removed) live++;
      assert(!t.removed || t.place === "inFlight", `removed ${t.key} outside flight`);
      assert(this.waiting.has(t.key) === (t.place === "waiting"), `${t.key} waiting mismatch`);
      assert(this.ready.has(t.key) === (t.place === "ready"), `${t.key} ready mismatch`);
      if (t.place === "inFlight") inFlight++;
      else assert(t.eligibleMs >= t.dueMs, `${t.key} eligible before due`);
    }
    assert(inFlight === this.inFlightCount, "in-flight count drifted");
    assert(live === this.liveCount, "live count drifted");
    assert(this.waiting.size + this.ready.size + inFlight === this.targets.size, "a target is in no place");
    assert(this.inFlightCount <= this.maxConcurrent, "more in flight than the cap");
  }

  /** Time is monotonic; a shell feeding it backwards has a bug that would corrupt every due. */
  private advanceTo(nowMs: number): void {
    if (!(Number.isFinite(nowMs) && nowMs >= this.lastNowMs)) {
      assert(false, `time went from ${this.lastNowMs} to ${nowMs}`);
    }
    this.lastNowMs = nowMs;
  }

  /** A change of timing or mode moves a waiting round, but never makes it more overdue than it
   * already was: the lag it would then report would be the change's, not the scheduler's. */
  private rederive(t: Target, nowMs: number): void {
    if (t.place !== "waiting") return;
    const due = Math.max(dueFrom(t), Math.min(nowMs, t.dueMs));
    if (due === t.dueMs) return;
    t.dueMs = t.eligibleMs = due;
    this.waiting.update(t.key, due);
  }
}

function intervalFor(t: Target): number {
  switch (t.mode) {
    case "normal":
      return t.timing.intervalMs;
    case "transitioning":
      return t.timing.fastIntervalMs;
    case "down":
      return t.timing.downIntervalMs;
  }
}

/** The due time of the target's current round as its anchor, draw and timing place it. */
function dueFrom(t: Target): number {
  const span = t.firstRound
    ? t.u * t.timing.intervalMs
    : intervalFor(t) * (1 + t.timing.jitter * (2 * t.u - 1));
  return t.anchorMs + span;
}

/** Only the five fields: a PoolSpec passed as timing must not be kept alive by every target. */
function copyTiming(t: CheckTiming): CheckTiming {
  return {
    intervalMs: t.intervalMs,
    fastIntervalMs: t.fastIntervalMs,
    downIntervalMs: t.downIntervalMs,
    jitter: t.jitter,
    timeoutMs: t.timeoutMs,
  };
}

function assertTiming(timing: CheckTiming): void {
  for (const name of ["intervalMs", "fastIntervalMs", "downIntervalMs"] as const) {
    const v = timing[name];
    if (!(v >= limits.intervalMsMin && v <= limits.intervalMsMax)) {
      assert(false, `${name} ${v} outside [${limits.intervalMsMin}, ${limits.intervalMsMax}]`);
    }
  }
  const { timeoutMs, jitter } = timing;
  if (!(timeoutMs >= limits.timeoutMsMin && timeoutMs <= limits.timeoutMsMax)) {
    assert(false, `timeoutMs ${timeoutMs} outside [${limits.timeoutMsMin}, ${limits.timeoutMsMax}]`);
  }
  if (!(jitter >= 0 && jitter <= jitterMax)) assert(false, `jitter ${jitter} outside [0, ${jitterMax}]`);
}
