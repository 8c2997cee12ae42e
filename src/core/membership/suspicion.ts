// Suspicion timeouts (Lifeguard's "dynamic suspicion"), pure maths apart from timer plumbing.
//
// A suspicion starts at its maximum and shrinks towards the minimum as independent members
// confirm it: with k expected confirmations, after c of them the timeout is
// `max - log(c+1)/log(k+1) × (max - min)`, never below min. Many confirmations mean many
// vantage points agree, so the member is declared dead sooner; a lone accuser (perhaps itself
// the sick one) has to wait the full maximum, giving the accused time to refute.

/** The minimum suspicion timeout: `mult × max(1, log10(n)) × probeInterval`. */
export function suspicionTimeoutMs(n: number, mult: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  // Whole milliseconds, as memberlist keeps whole-millisecond precision of the scale.
  return Math.floor(mult * nodeScale * probeIntervalMs);
}

/** The maximum suspicion timeout, with no confirmations. */
export function suspicionTimeoutMsMax(minMs: number, maxMult: number): number {
  return maxMult * minMs;
}

/**
 * Confirmations we expect: the indirect-check helpers of other probers, but at most the
 * members other than ourselves and the suspect.
 */
export function expectedConfirmations(indirectChecks: number, n: number): number {
  return Math.max(0, Math.min(indirectChecks, n - 2));
}

/**
 * Time left before a suspicion with `confirmations` of `k` expected ends, `elapsedMs` after it
 * started (memberlist's remainingSuspicionTime). May be negative: the timer is overdue.
 */
export function remainingSuspicionTimeMs(
  confirmations: number,
  k: number,
  elapsedMs: number,
  minMs: number,
  maxMs: number,
): number {
  // With nobody expected to confirm, there is nothing to wait for beyond the minimum.
  if (k < 1) return minMs - elapsedMs;
  const frac = Math.log(confirmations + 1) / Math.log(k + 1);
  const raw = maxMs - frac * (maxMs - minMs);
  const timeoutMs = Math.max(minMs, Math.floor(raw));
  return timeoutMs - elapsedMs;
}
