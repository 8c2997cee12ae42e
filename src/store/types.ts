// The Store contract: what a node keeps across restarts. Two implementations pass one contract
// suite (test/store/contract.ts): SQLite embedded in data_dir (sqlite.ts), and PostgreSQL shared
// by every node (postgres.ts).
//
// Writes of events and rollups are BATCHED (batch-writer.ts): the promise resolves when the
// transaction holding them has committed, and that resolution is the acknowledgement. Every
// other method is a direct statement or transaction.

/** An append-only record. `id` is deterministic (see eventId), so writers agree on duplicates. */
export interface StoredEvent {
  /** Unique per fact: several nodes writing the same event store it once. */
  id: string;
  /** Wall-clock ms since the epoch. */
  ts: number;
  type: string;
  pool?: string;
  target?: string;
  node?: string;
  from?: string;
  to?: string;
  cause?: string;
  /** Anything else about the event, JSON-serializable. */
  data?: Record<string, unknown>;
}

/** An event as read back, with the store's cursor for it. */
export interface EventRecord extends StoredEvent {
  cursor: Cursor;
}

/**
 * The store's own row sequence, as a decimal string: strictly increasing in commit order, never
 * reused. Opaque to callers; only meaningful for the store that issued it.
 */
export type Cursor = string;

/** Oldest first (cursor order), or newest first. */
export type EventOrder = "asc" | "desc";

export interface EventQuery {
  /** "asc" (default): oldest first, paged by afterCursor. "desc": newest first, paged by beforeCursor. */
  order?: EventOrder;
  /** Only events after this cursor (exclusive); from the beginning when absent. */
  afterCursor?: Cursor;
  /** Only events before this cursor (exclusive); up to the newest when absent. */
  beforeCursor?: Cursor;
  /** At most this many, 1..storeLimits.maxEventsPerQuery. */
  limit: number;
  pool?: string;
  target?: string;
  types?: readonly string[];
  /** ts >= fromMs */
  fromMs?: number;
  /** ts < toMs */
  toMs?: number;
}

export interface EventPage {
  /** In the query's order. */
  events: EventRecord[];
  /**
   * Pass as `afterCursor` (asc) or `beforeCursor` (desc) to continue: the cursor of the last
   * event returned; when none was, that cursor of the query unchanged, or "0" when it had none
   * (asc: from the start; desc: nothing matched, and "0" as `beforeCursor` reads nothing).
   */
  nextCursor: Cursor;
}

/** One minute of one node's own checks of one target. */
export interface RollupRow {
  node: string;
  pool: string;
  /** `host:port` inside the pool. */
  target: string;
  /** Wall-clock ms, a multiple of 60,000. */
  minuteStartMs: number;
  /** Checks in the minute, >= 1. */
  count: number;
  /** Failed checks, 0..count. */
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  /** LatencySketch.encode() of the minute's latencies. */
  sketch: Uint8Array;
}

export type RollupResolution = "minute" | "hour";

export const ROLLUP_STEP_MS: Readonly<Record<RollupResolution, number>> = {
  minute: 60_000,
  hour: 3_600_000,
};

/** A rollup as read back: one minute or one hour. */
export interface RollupBucket {
  node: string;
  pool: string;
  target: string;
  startMs: number;
  stepMs: number;
  count: number;
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  sketch: Uint8Array;
}

export interface RollupQuery {
  pool: string;
  target: string;
  /** startMs >= fromMs */
  fromMs: number;
  /** startMs < toMs */
  toMs: number;
  node?: string;
  /** Default minute. Minute rows are kept 7 days by default, hour rows 400. */
  resolution?: RollupResolution;
  /** At most this many rows (oldest first), default and ceiling storeLimits.maxRollupsPerQuery. */
  limit?: number;
}

/** How long each kind is kept, and when an hour is rolled up. */
export interface Retention {
  eventsMs: number;
  minuteRollupsMs: number;
  hourRollupsMs: number;
  /** An hour's minute rows are rolled into an hour row once the hour ended this long ago. */
  hourlyAfterMs: number;
}

const DAY_MS = 24 * 3600 * 1000;

export const defaultRetention: Readonly<Retention> = {
  eventsMs: 90 * DAY_MS,
  minuteRollupsMs: 7 * DAY_MS,
  hourRollupsMs: 400 * DAY_MS,
  // A node writes a minute's rollup within seconds of the minute's end; 5 minutes of slack keeps
  // compaction from racing the last minute of the hour.
  hourlyAfterMs: 5 * 60_000,
};

export interface CompactReport {
  /** Hours whose minute rows were rolled into hour rows by this call. */
  hoursCompacted: number;
  hourRowsWritten: number;
  eventsDeleted: number;
  minuteRowsDeleted: number;
  hourRowsDeleted: number;
  /** Minute rows whose sketch did not decode: their counts are kept, their latencies skipped. */
  badSketches: number;
  /** False when a per-call bound stopped the work early: call again. */
  done: boolean;
}

/** A small JSON document of this node's state, e.g. a pool spec or an admin state. */
export interface DocRecord {
  namespace: string;
  key: string;
  value: unknown;
  /** The writer's hybrid logical clock, opaque to the store. */
  hlc: string;
}

/** Which replicated map an LWW entry belongs to. */
export type LwwKind = "pool" | "admin";

export const LWW_KINDS: readonly LwwKind[] = ["pool", "admin"];

/**
 * One entry of the node's replicated last-writer-wins maps (pool specs, admin states) with its
 * hybrid logical clock stamp. Stamps are totally ordered by (wallMs, logical, origin), origin
 * compared by bytes (UTF-8): the store keeps, per (kind, key), the entry with the greatest stamp.
 */
export interface LwwRecord {
  kind: LwwKind;
  /** A pool name, or a target id `pool/host:port`. */
  key: string;
  /** The JSON value; null for a tombstone (a delete). A live value is never JSON null. */
  value: unknown;
  wallMs: number;
  logical: number;
  /** The node whose clock issued the stamp: the final tie-break. */
  origin: string;
}

export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** The node this handle writes meta and docs for. */
  readonly node: string;

  /** BATCHED. Resolves once committed; an id already stored is ignored (first write wins). */
  appendEvents(events: readonly StoredEvent[]): Promise<void>;
  queryEvents(q: EventQuery): Promise<EventPage>;

  /** BATCHED. Upsert: a row for an existing (node, pool, target, minute) is merged into it. */
  writeRollups(rows: readonly RollupRow[]): Promise<void>;
  queryRollups(q: RollupQuery): Promise<RollupBucket[]>;
  /**
   * Rolls finished hours of minute rows into hour rows (merging sketches) and deletes what is
   * past retention. Bounded per call; `done: false` says call again. Safe to run from several
   * nodes at once on PostgreSQL.
   */
  compact(nowMs: number, retention?: Partial<Retention>): Promise<CompactReport>;

  /** This node's small values (the observation counter). Durable when the promise resolves. */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  /** This node's JSON documents by namespace (pool specs, admin states). Durable on resolve. */
  putDoc(namespace: string, key: string, value: unknown, hlc: string): Promise<void>;
  getDoc(namespace: string, key: string): Promise<DocRecord | undefined>;
  listDocs(namespace: string): Promise<DocRecord[]>;
  deleteDoc(namespace: string, key: string): Promise<void>;

  /**
   * Upserts replicated LWW entries: per (kind, key) the entry with the greater stamp stays, so a
   * write never regresses one, whichever node (handle) wrote it last. Not per node: on
   * PostgreSQL every node writes and reads the same entries. Durable on resolve; resolves with
   * how many of `records` were stored (newer than what was there).
   */
  putLww(records: readonly LwwRecord[]): Promise<number>;
  /** Every stored entry of `kind` (both kinds when absent), tombstones included, by kind and key. */
  listLww(kind?: LwwKind): Promise<LwwRecord[]>;
  /** Deletes tombstones stamped before `beforeWallMs` (their retention is over); returns how many. */
  pruneLwwTombstones(beforeWallMs: number): Promise<number>;

  /** Commits whatever is queued now. */
  flush(): Promise<void>;
  /** Flushes, then releases the database. Later calls reject with VIGIL_ERR_STORE. */
  close(): Promise<void>;
}

/** Namespaces the runtime uses for docs. */
export const DocNamespace = {
  poolSpec: "pool",
  adminState: "admin",
} as const;

/** Named bounds of the store. */
export const storeLimits = {
  /** Rows (events + rollups) waiting for a commit; beyond it writes reject with VIGIL_ERR_UNAVAILABLE. */
  maxQueuedRows: 100_000,
  /** A batch commits when it holds this many rows... */
  flushRowsDefault: 2_000,
  /** ...or this long after its first row arrived. */
  flushIntervalMsDefault: 20,
  maxEventsPerQuery: 1_000,
  maxRollupsPerQuery: 100_000,
  maxEventIdChars: 200,
  /** type, node, from, to */
  maxEventFieldChars: 256,
  /** pool and target */
  maxNameChars: 512,
  maxCauseChars: 4_096,
  /** JSON of `data`. */
  maxEventDataBytes: 16 * 1024,
  maxTypesPerQuery: 64,
  maxMetaKeyChars: 256,
  maxMetaValueBytes: 64 * 1024,
  /** A pool spec is an API body at most (limits.maxApiBodyBytes) plus room. */
  maxDocBytes: 5 * 1024 * 1024,
  /** An LWW key or origin: the replicated state's own bound on ids (stateLimits.maxIdChars). */
  maxLwwKeyChars: 1024,
  /** LWW entries in one putLww call (each is one statement in one transaction). */
  maxLwwPerPut: 10_000,
  /** Hours one compact() call rolls up; a backlog takes several calls. */
  maxHoursPerCompact: 48,
  /** Rows one compact() call deletes per kind; each chunk is its own transaction. */
  maxDeletesPerCompact: 500_000,
  deleteChunkRows: 2_000,
  /** Rows read per round trip while compacting (PostgreSQL). */
  compactPageRows: 5_000,
  /** Series ids rolled up per transaction (SQLite): at most 60 × this many rows per transaction. */
  compactSeriesPerChunk: 100,
} as const;
