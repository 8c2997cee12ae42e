// Every queue, buffer, packet, request body and loop has a named bound, here.
// A bound says what happens at the edge in its comment.

export const limits = {
  // ── checks ──
  /** Global cap on checks in flight on one node; more due checks wait in the ready queue. */
  maxConcurrentChecksDefault: 512,
  maxConcurrentChecksCeiling: 65_536,
  /** Bytes of an HTTP response body read for body_contains / body_regex. */
  maxBodyBytesDefault: 64 * 1024,
  maxBodyBytesCeiling: 16 * 1024 * 1024,
  /** Bytes a TCP check reads while waiting for `expect`. */
  maxTcpExpectBytes: 64 * 1024,
  /** A check reason shown to people is cut to this many characters. */
  maxReasonChars: 200,
  intervalMsMin: 100,
  intervalMsMax: 24 * 3600 * 1000,
  timeoutMsMin: 10,
  timeoutMsMax: 5 * 60 * 1000,
  riseFallMax: 100,
  observersMax: 16,
  /** Recent results a node keeps per target it observes (for the API). */
  recentResultsPerTarget: 10,

  // ── config and API ──
  maxConfigBytes: 16 * 1024 * 1024,
  maxPoolsPerCluster: 10_000,
  maxTargetsPerPool: 100_000,
  /** Pool names are DNS labels (`_<pool>._tcp.service.vigil.`): 63 bytes with the underscore. */
  maxPoolNameChars: 62,
  maxHeaderCount: 64,
  /** Request bodies larger than this get 413. */
  maxApiBodyBytes: 4 * 1024 * 1024,
  /** Events kept in memory for GET /v1/events before the oldest are dropped. */
  maxEventsInMemory: 100_000,
  maxEventsPerPage: 1_000,

  // ── gossip ──
  maxUdpPacketBytes: 1400,
  maxMetaBytes: 512,
  maxStreamBytes: 64 * 1024 * 1024,
} as const;
