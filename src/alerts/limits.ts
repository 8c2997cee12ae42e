// Named bounds of the alerts module. Each says what happens at the edge.

export const alertLimits = {
  /**
   * Targets the engine keeps state for (those not up, or with an alert pending or open). Past
   * it, a newly failing target gets no individual alerts and is counted as `untracked`; a
   * million failing targets is a storm long before.
   */
  maxTrackedTargets: 1_000_000,
  /** Distinct recent flips remembered for storm detection; the oldest are forgotten first. */
  maxFlipsTracked: 1_000_000,
  /** Pools named in a storm notice (largest first); the rest are summed as `otherPools`. */
  maxStormPools: 50,
  /**
   * Undelivered notices kept on disk. A full outbox refuses new notices (counted as dropped)
   * rather than growing without bound while a receiver is down for days.
   */
  maxOutboxRows: 10_000,
  /** Deliveries in flight at once, over all sinks. */
  maxConcurrentDeliveries: 8,
  /** Characters of a delivery error kept in the outbox and logs. */
  maxErrorChars: 300,
  /** A cause is a check reason; cut it like one (limits.maxReasonChars) plus room. */
  maxCauseChars: 500,
  /** A Retry-After longer than this is capped: the receiver does not get to park us for days. */
  retryAfterMsMax: 3_600_000,
} as const;
