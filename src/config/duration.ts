// Durations as people write them in config: "250ms", "10s", "1.5m", "2h", "1m30s", "90d".
// A bare number is refused: `interval: 10` could mean seconds or milliseconds, and a wrong
// guess is a factor-of-1000 outage or a probe storm.

import { assert } from "../core/assert.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { describeValue } from "./messages.ts";

const msPerDay = 86_400_000;
const msPerHour = 3_600_000;
const msPerMinute = 60_000;
const msPerSecond = 1_000;

/** Longer strings are not durations anyone writes; refusing them early bounds the work. */
const maxDurationChars = 64;

// Components in decreasing order, each at most once; `m(?!s)` keeps "5ms" from reading as minutes.
const durationPattern =
  /^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;

// A day is 24 hours: retention periods, not calendar days (no time zones, no DST).
const componentUnitsMs = [msPerDay, msPerHour, msPerMinute, msPerSecond, 1] as const;

/**
 * Milliseconds in a duration string. Throws a `VigilError` (config, no path: the caller
 * knows where the value came from) when the text is not a duration, when it is not a whole
 * number of milliseconds, or when it is given as a bare number.
 */
export function parseDurationMs(s: string | number): number {
  if (typeof s === "number") {
    throw durationError(`expected a duration with a unit like "10s" or "250ms", got ${describeValue(s)}`);
  }
  const match = s.length <= maxDurationChars && s !== "" ? durationPattern.exec(s) : null;
  if (match === null) {
    throw durationError(`expected a duration like "10s", got ${describeValue(s)} (units: ms, s, m, h, d)`);
  }
  // Exact decimal arithmetic: 0.1h must be 360000 ms, not 360000.00000000006.
  let totalMs = 0n;
  for (let i = 0; i < componentUnitsMs.length; i++) {
    const text = match[i + 1];
    if (text === undefined) continue;
    const unitMs = BigInt(componentUnitsMs[i] ?? 1);
    const [whole = "0", fraction = ""] = text.split(".");
    const scale = 10n ** BigInt(fraction.length);
    const fractionMs = BigInt(fraction === "" ? 0 : fraction) * unitMs;
    if (fractionMs % scale !== 0n) {
      throw durationError(`expected a whole number of milliseconds, got ${describeValue(s)}`);
    }
    totalMs += BigInt(whole) * unitMs + fractionMs / scale;
  }
  if (totalMs > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw durationError(`expected a duration of a sane length, got ${describeValue(s)}`);
  }
  return Number(totalMs);
}

function durationError(message: string): VigilError {
  return new VigilError(ErrorCode.config, message);
}

/**
 * The shortest exact string for a duration, largest units first and no zero components:
 * "250ms", "10s", "1m30s", "2h", "7d". Days are used from two days up ("24h" reads better than
 * "1d" next to intervals, "400d" better than "9600h"). A sub-second part is written as a decimal of seconds or as
 * milliseconds, whichever is shorter ("1.5s", "1s5ms"); below a second it is always "500ms".
 * Parses back to `ms`.
 */
export function formatDurationMs(ms: number): string {
  assert(Number.isSafeInteger(ms) && ms >= 0, `duration must be a whole number of ms, got ${ms}`);
  if (ms === 0) return "0s";
  // Under a second, milliseconds read better than "0.1s" even where they are a character longer.
  if (ms < msPerSecond) return `${ms}ms`;
  const totalHours = Math.floor(ms / msPerHour);
  const days = totalHours >= 48 ? Math.floor(ms / msPerDay) : 0;
  const hours = totalHours - days * 24;
  const minutes = Math.floor((ms % msPerHour) / msPerMinute);
  const seconds = Math.floor((ms % msPerMinute) / msPerSecond);
  const restMs = ms % msPerSecond;
  let head = "";
  if (days > 0) head += `${days}d`;
  if (hours > 0) head += `${hours}h`;
  if (minutes > 0) head += `${minutes}m`;
  if (restMs === 0) return seconds > 0 ? `${head}${seconds}s` : head;
  const decimal = `${seconds}.${String(restMs).padStart(3, "0").replace(/0+$/, "")}s`;
  const separate = `${seconds > 0 ? `${seconds}s` : ""}${restMs}ms`;
  return head + (decimal.length < separate.length ? decimal : separate);
}
