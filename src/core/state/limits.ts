// Named bounds of the replicated state. Module-local so the shared limits stay small; each
// says what happens at the edge.

export const stateLimits = {
  /** Characters in a target id, observer name or LWW key; longer input is rejected on decode. */
  maxIdChars: 1024,
  /**
   * Registers kept per target. A register from one more observer is refused, unless the map
   * was given an eviction choice (the node core: it gives up a stale non-owner's register).
   */
  maxRegistersPerTarget: 64,
  /** Registers in one decoded delta or exchange reply; larger input is rejected. */
  maxDecodeRegisters: 100_000,
  /** Observers in one decoded version vector; larger input is rejected. */
  maxVectorEntries: 10_000,
  /** Removed targets remembered; past this the oldest are forgotten early. */
  maxRemovedTargetsDefault: 1_000_000,
  /** Reaped observers remembered; past this the oldest are forgotten early. */
  maxReapedObserversDefault: 10_000,
  /** How long removed targets and reaped observers are remembered. */
  retentionMsDefault: 24 * 3600 * 1000,
  /** LWW tombstones are dropped after this long (the design's 24 h). */
  tombstoneRetentionMsDefault: 24 * 3600 * 1000,
  /** LWW entries stamped further than this ahead of the local clock are refused until then. */
  maxClockSkewMsDefault: 3600 * 1000,
  /** An HLC logical counter above this is refused: it only grows past it through a bug or abuse. */
  maxHlcLogical: 2 ** 40,
  /** Entries in one decoded LWW delta. */
  maxDecodeLwwEntries: 100_000,
  /** Opaque JSON values (observations, pool specs) accepted by the default value decoder. */
  maxValueDepth: 32,
  maxValueNodes: 100_000,
  maxValueStringChars: 1024 * 1024,
} as const;
