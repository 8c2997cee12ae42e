// One observer's view of one target, after rise/fall (HAProxy's semantics): `rise` consecutive
// successful checks make it up, `fall` consecutive failures make it down, and it is unknown
// until the first such streak completes. A success resets the failure streak and vice versa.
//
// An Observation is a plain value (strings, numbers, null) because it is replicated: the
// streaks travel with it, so a new owner that takes over a target does not start from zero.
// Its times are wall-clock milliseconds for the same reason: a monotonic reading from another
// process means nothing. They are only shown to people and compared across nodes, never used
// to decide anything here.

import type { CheckResult } from "../../checkers/types.ts";
import { assert } from "../assert.ts";
import { ErrorCode, VigilError } from "../errors.ts";
import { limits } from "../limits.ts";
import type { CheckMode } from "../scheduler/scheduler.ts";

export type ObservationState = "up" | "down" | "unknown";

export interface Observation {
  readonly state: ObservationState;
  /** Consecutive successes up to the last check, capped at `streakMax`; 0 after a failure. */
  readonly streakOk: number;
  /** Consecutive failures up to the last check, capped at `streakMax`; 0 after a success. */
  readonly streakFail: number;
  /** When `state` was entered; null while unknown since creation with no time given. */
  readonly sinceWallMs: number | null;
  /** The last check's reason, also the cause of the last transition. "" before any check. */
  readonly lastReason: string;
  readonly lastLatencyMs: number | null;
  readonly lastCheckedWallMs: number | null;
  /** Checks applied over this observation's life. */
  readonly checks: number;
}

/** How many consecutive results change the state; a PoolSpec can be passed as is. */
export interface RiseFall {
  readonly rise: number;
  readonly fall: number;
}

export interface Transition {
  readonly from: ObservationState;
  readonly to: ObservationState;
  /** The reason of the check that completed the streak. */
  readonly cause: string;
}

export interface Applied {
  next: Observation;
  /** Present when the state changed: each one becomes an event. */
  transition?: Transition;
}

/** Streaks stop counting here: the longest `rise` or `fall` a pool may ask for. Counting as far
 * as any rule can reach keeps a rule change exact (a longer `fall` sees the true streak) while
 * the replicated value stays bounded. */
export const streakMax = limits.riseFallMax;

export function initialObservation(nowWallMs?: number): Observation {
  return {
    state: "unknown",
    streakOk: 0,
    streakFail: 0,
    sinceWallMs: nowWallMs ?? null,
    lastReason: "",
    lastLatencyMs: null,
    lastCheckedWallMs: null,
    checks: 0,
  };
}

/** The observation after one more check result, and the transition it caused, if any. */
export function applyResult(
  prev: Observation,
  result: CheckResult,
  rule: RiseFall,
  nowWallMs: number,
): Applied {
  assertRule(rule);
  // Messages are built only on failure: this runs for every check.
  if (!(result.latencyMs >= 0 && result.latencyMs < Number.POSITIVE_INFINITY)) {
    assert(false, `latency ${result.latencyMs} ms`);
  }
  if (!Number.isFinite(nowWallMs)) assert(false, `time ${nowWallMs}`);
  const streakOk = result.ok ? Math.min(prev.streakOk + 1, streakMax) : 0;
  const streakFail = result.ok ? 0 : Math.min(prev.streakFail + 1, streakMax);
  // `>=`, not `===`: after a rule is shortened a streak may already be past it.
  let state = prev.state;
  if (state !== "up" && streakOk >= rule.rise) state = "up";
  else if (state !== "down" && streakFail >= rule.fall) state = "down";
  const reason = clipReason(result.reason);
  const next: Observation = {
    state,
    streakOk,
    streakFail,
    sinceWallMs: state === prev.state ? prev.sinceWallMs : nowWallMs,
    lastReason: reason,
    lastLatencyMs: result.latencyMs,
    lastCheckedWallMs: nowWallMs,
    checks: prev.checks + 1,
  };
  if (state === prev.state) return { next };
  return { next, transition: { from: prev.state, to: state, cause: reason } };
}

/** A streak toward the other state is under way, or no state has been reached yet: HAProxy
 * checks at `fastinter` then, to confirm or refute the change sooner. */
export function isTransitioning(obs: Observation): boolean {
  switch (obs.state) {
    case "unknown":
      return true;
    case "up":
      return obs.streakFail > 0;
    case "down":
      return obs.streakOk > 0;
  }
}

/** The check interval an observation calls for: fastinter while transitioning, downinter while
 * settled down, the normal interval while settled up. */
export function checkMode(obs: Observation): CheckMode {
  if (isTransitioning(obs)) return "transitioning";
  return obs.state === "down" ? "down" : "normal";
}

/**
 * Validates an observation that came from outside this process (a peer, the store). Throws a
 * VigilError (VIGIL_ERR_DECODE) naming the field; the caller drops the value and counts it.
 */
export function parseObservation(value: unknown): Observation {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw decodeError("expected an object", "");
  }
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!observationKeys.has(k)) throw decodeError("unknown field", k);
  }
  const state = o.state;
  if (state !== "up" && state !== "down" && state !== "unknown") {
    throw decodeError('expected "up", "down" or "unknown"', "state");
  }
  const streakOk = boundedInt(o.streakOk, streakMax, "streakOk");
  const streakFail = boundedInt(o.streakFail, streakMax, "streakFail");
  if (streakOk > 0 && streakFail > 0) throw decodeError("both streaks under way", "streakFail");
  const lastReason = o.lastReason;
  if (typeof lastReason !== "string") throw decodeError("expected a string", "lastReason");
  if (lastReason.length > limits.maxReasonChars) {
    throw decodeError(`longer than ${limits.maxReasonChars} characters`, "lastReason");
  }
  const lastLatencyMs = nullableNumber(o.lastLatencyMs, "lastLatencyMs");
  if (lastLatencyMs !== null && lastLatencyMs < 0) throw decodeError("negative", "lastLatencyMs");
  return {
    state,
    streakOk,
    streakFail,
    sinceWallMs: nullableNumber(o.sinceWallMs, "sinceWallMs"),
    lastReason,
    lastLatencyMs,
    lastCheckedWallMs: nullableNumber(o.lastCheckedWallMs, "lastCheckedWallMs"),
    checks: boundedInt(o.checks, Number.MAX_SAFE_INTEGER, "checks"),
  };
}

const observationKeys: ReadonlySet<string> = new Set(Object.keys(initialObservation()));

function assertRule(rule: RiseFall): void {
  for (const name of ["rise", "fall"] as const) {
    const n = rule[name];
    if (!(Number.isInteger(n) && n >= 1 && n <= limits.riseFallMax)) {
      assert(false, `${name} ${n} outside [1, ${limits.riseFallMax}]`);
    }
  }
}

/** Reasons are replicated and shown; a checker that forgot to cut one must not bloat them. */
function clipReason(reason: string): string {
  const max = limits.maxReasonChars;
  if (reason.length <= max) return reason;
  // Do not cut a surrogate pair in half: the rest would encode as a replacement character.
  const high = reason.charCodeAt(max - 1);
  return reason.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max);
}

function boundedInt(v: unknown, max: number, path: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw decodeError(`expected an integer in [0, ${max}]`, path);
  }
  return v;
}

function nullableNumber(v: unknown, path: string): number | null {
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw decodeError("expected a finite number or null", path);
  return v;
}

function decodeError(message: string, path: string): VigilError {
  return new VigilError(ErrorCode.decode, `observation: ${message}`, path === "" ? {} : { path });
}
