// The embedded store: SQLite through node:sqlite in <data_dir>/vigil.db.
//
// Durability: WAL journal. Batches commit with synchronous=NORMAL: a committed transaction is in
// the WAL file (the OS page cache) before the commit returns, so it survives the process being
// killed at any instant; it does not survive the machine losing power before the next WAL sync
// (a checkpoint), which can drop the last commits but never corrupts the database. Meta, docs and
// LWW entries (the observation counter, pool specs, admin states) commit with synchronous=FULL:
// they survive power loss too, because an observer that reuses a counter breaks the CRDT, and an
// operator's pool write is rare and expected to stick. `synchronous: "full"` makes
// every batch that durable, at the cost of an fsync per batch.
//
// node:sqlite is synchronous: a commit runs on the thread that runs this store. The node runs it
// on a worker thread of its own (sqlite-thread.ts), so commits never hold the node's event loop;
// inline (benchmarks, tests) the batch writer keeps them off the check path (appends return at
// once; commits run from a timer, a batch per transaction), and compaction works a chunk of
// series per transaction, yielding in between.

import { accessSync, constants, mkdirSync, type Stats, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { Worker } from "node:worker_threads";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { type Batch, type BatchOptions, BatchWriter } from "./batch-writer.ts";
import { hourStartOf, KeyedFold, mergeSketchBytes } from "./merge.ts";
import { sqlite } from "./sqlite-module.ts";
import {
  type CompactReport,
  type DocRecord,
  type EventPage,
  type EventQuery,
  type EventRecord,
  type LwwKind,
  type LwwRecord,
  type Retention,
  ROLLUP_STEP_MS,
  type RollupBucket,
  type RollupQuery,
  type RollupRow,
  type Store,
  type StoredEvent,
  storeLimits,
} from "./types.ts";
import {
  checkDocKey,
  checkLwwKind,
  checkMetaKey,
  checkMetaValue,
  checkNowMs,
  checkWallMs,
  closedError,
  encodeDoc,
  lwwRecordOf,
  type NormalEventQuery,
  nextEventCursor,
  normalizeEventQuery,
  normalizeRollupQuery,
  resolveRetention,
  storeError,
  validateEvents,
  validateLww,
  validateRollups,
} from "./validate.ts";

export const SQLITE_FILE = "vigil.db";
/** How long a writer waits for another connection's write lock before failing. */
export const SQLITE_BUSY_TIMEOUT_MS_DEFAULT = 5_000;
/** How often the checkpointer thread folds the WAL into the database file. */
export const SQLITE_CHECKPOINT_INTERVAL_MS = 1_000;
/** A WAL file larger than this is truncated back when SQLite rewinds it. */
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/** SQLite's own default, restored when the checkpointer thread is not there. */
const AUTOCHECKPOINT_PAGES = 1_000;

export interface SqliteStoreOptions {
  dataDir: string;
  /** This node's name: meta and docs are kept per node. */
  node: string;
  /** "normal" (default): batches survive a process kill; "full": also power loss. */
  synchronous?: "normal" | "full";
  batch?: Partial<BatchOptions>;
  busyTimeoutMs?: number;
  /**
   * Checkpoint the WAL on a worker thread (default true). Off, SQLite checkpoints inside the
   * commit that fills the WAL, on the event loop thread.
   */
  checkpointThread?: boolean;
}

// One entry per schema version; `PRAGMA user_version` says how many have been applied.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, -- the cursor; AUTOINCREMENT never reuses one
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    pool TEXT, target TEXT, node TEXT, from_state TEXT, to_state TEXT, cause TEXT,
    data TEXT
  );
  CREATE INDEX events_ts ON events (ts);
  CREATE INDEX events_pool_target ON events (pool, target, seq);

  -- Rollup rows name their (pool, target, node) by a small id: it is most of a row's bytes.
  CREATE TABLE series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pool TEXT NOT NULL, target TEXT NOT NULL, node TEXT NOT NULL,
    UNIQUE (pool, target, node)
  );
  -- Time-major keys: new minutes append at the end of the table, compaction and retention read
  -- and delete contiguous ranges; the (series, start_ms) index serves one target's history.
  CREATE TABLE rollups_minute (
    start_ms INTEGER NOT NULL, series INTEGER NOT NULL,
    count INTEGER NOT NULL, failures INTEGER NOT NULL,
    latency_ms_min REAL NOT NULL, latency_ms_max REAL NOT NULL, latency_ms_sum REAL NOT NULL,
    sketch BLOB NOT NULL,
    PRIMARY KEY (start_ms, series)
  ) WITHOUT ROWID;
  CREATE INDEX rollups_minute_series ON rollups_minute (series, start_ms);
  CREATE TABLE rollups_hour (
    start_ms INTEGER NOT NULL, series INTEGER NOT NULL,
    count INTEGER NOT NULL, failures INTEGER NOT NULL,
    latency_ms_min REAL NOT NULL, latency_ms_max REAL NOT NULL, latency_ms_sum REAL NOT NULL,
    sketch BLOB NOT NULL,
    PRIMARY KEY (start_ms, series)
  ) WITHOUT ROWID;
  CREATE INDEX rollups_hour_series ON rollups_hour (series, start_ms);

  CREATE TABLE meta (
    scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
  ) WITHOUT ROWID;
  CREATE TABLE docs (
    scope TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, hlc TEXT NOT NULL,
    PRIMARY KEY (scope, namespace, key)
  ) WITHOUT ROWID;
  -- The store's own bookkeeping, shared by every handle: the compaction watermark.
  CREATE TABLE store_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  `,
  `
  -- The replicated LWW maps (pool specs, admin states): the newest stamp per key, NULL value for
  -- a tombstone. A rowid table: a value may be megabytes, too big for a WITHOUT ROWID row.
  CREATE TABLE lww (
    kind TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT,
    wall_ms INTEGER NOT NULL, logical INTEGER NOT NULL, origin TEXT NOT NULL,
    PRIMARY KEY (kind, key)
  );
  `,
  `
  -- Events of one pool in cursor order, walked either way. Without it a pool-only query read
  -- every row of the pool through (pool, target, seq) and sorted them to find the newest page.
  CREATE INDEX events_pool_seq ON events (pool, seq);
  `,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

// Compaction progress, (hour, series): every hour row before `hour` is complete, and within
// `hour` those of series ids below `series`. A minute written behind it folds into its hour row.
const WATERMARK_HOUR_KEY = "hour_watermark_ms";
const WATERMARK_SERIES_KEY = "series_watermark";
/** Series ids cached per handle; the cache is dropped when it grows past this. */
const SERIES_CACHE_MAX = 200_000;

/**
 * The statement queryEvents runs (exported for the query-plan test). Either order walks the same
 * index, forwards or backwards: the rowid, (pool, seq) for one pool, or (pool, target, seq) for
 * one target of a pool. A target without its pool walks the rowid and filters (docs/storage.md).
 */
export function sqliteEventsSelect(q: NormalEventQuery): { sql: string; params: (string | number)[] } {
  const where = ["seq > ?"];
  const params: (string | number)[] = [q.after];
  const cond = (sql: string, value: string | number): void => {
    where.push(sql);
    params.push(value);
  };
  if (q.before !== undefined) cond("seq < ?", q.before);
  if (q.pool !== undefined) cond("pool = ?", q.pool);
  if (q.target !== undefined) cond("target = ?", q.target);
  if (q.types !== undefined) cond("type IN (SELECT value FROM json_each(?))", JSON.stringify(q.types));
  if (q.fromMs !== undefined) cond("ts >= ?", q.fromMs);
  if (q.toMs !== undefined) cond("ts < ?", q.toMs);
  params.push(q.limit);
  const dir = q.order === "desc" ? "DESC" : "ASC";
  return { sql: `SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY seq ${dir} LIMIT ?`, params };
}

function rollupUpsertSql(table: string): string {
  // Unqualified names in DO UPDATE are the stored row; `excluded` is the incoming one.
  return `INSERT INTO ${table} (series, start_ms, count, failures, latency_ms_min, latency_ms_max, latency_ms_sum, sketch)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (start_ms, series) DO UPDATE SET
      count = count + excluded.count,
      failures = failures + excluded.failures,
      latency_ms_min = min(latency_ms_min, excluded.latency_ms_min),
      latency_ms_max = max(latency_ms_max, excluded.latency_ms_max),
      latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
      sketch = vigil_sketch_merge(sketch, excluded.sketch)`;
}

interface SqliteError extends Error {
  errcode?: number;
  errstr?: string;
}

function sqliteCode(e: unknown): number | undefined {
  const code = (e as SqliteError | undefined)?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;

function isCorruption(e: unknown): boolean {
  const c = sqliteCode(e);
  return c === SQLITE_CORRUPT || c === SQLITE_NOTADB;
}

function fsCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : String(e);
}

/** Creates data_dir if needed and proves it is a writable directory, with a message that says so. */
function prepareDataDir(dir: string): void {
  let existing: Stats | undefined;
  try {
    existing = statSync(dir);
  } catch {
    // Missing, or a path through a file (ENOTDIR), or unreadable: mkdir says which, below.
  }
  if (existing !== undefined && !existing.isDirectory()) {
    throw new VigilError(ErrorCode.store, `data_dir ${dir} is not a directory`);
  }
  if (existing === undefined) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new VigilError(ErrorCode.store, `data_dir ${dir} is not writable: ${fsCode(e)}`, { cause: e });
    }
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new VigilError(ErrorCode.store, `data_dir ${dir} is not writable: ${fsCode(e)}`, { cause: e });
  }
}

function corruptError(file: string, detail: string, cause?: unknown): VigilError {
  return new VigilError(
    ErrorCode.store,
    `database ${file} is corrupt: ${detail} (move it aside to start empty, or restore a backup)`,
    cause === undefined ? {} : { cause },
  );
}

/** Opens (creating if needed) the store in `dataDir`. Bad directories and files reject with VIGIL_ERR_STORE. */
export async function openSqliteStore(opts: SqliteStoreOptions): Promise<SqliteStore> {
  if (typeof opts.node !== "string" || opts.node === "") {
    throw new VigilError(ErrorCode.store, "store needs a node name");
  }
  const dir = resolve(opts.dataDir);
  prepareDataDir(dir);
  const file = join(dir, SQLITE_FILE);
  let db: DatabaseSync;
  try {
    db = new (sqlite().DatabaseSync)(file, { timeout: opts.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS_DEFAULT });
  } catch (e) {
    throw new VigilError(ErrorCode.store, `cannot open database ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    initialize(db, file, opts.synchronous ?? "normal");
  } catch (e) {
    db.close();
    throw e;
  }
  const store = new SqliteStore(db, file, opts);
  if (opts.checkpointThread !== false)
    await store.startCheckpointer(opts.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS_DEFAULT);
  return store;
}

function initialize(db: DatabaseSync, file: string, synchronous: "normal" | "full"): void {
  try {
    const mode = db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode?: string } | undefined;
    if (mode?.journal_mode !== "wal") {
      throw new VigilError(
        ErrorCode.store,
        `database ${file}: cannot use WAL (journal_mode ${mode?.journal_mode})`,
      );
    }
    // quick_check reads every page (O(size)) but skips the index cross-checks of integrity_check:
    // a damaged file is refused here with a clear message instead of failing at some later write.
    const check = db.prepare("PRAGMA quick_check(5)").all() as { quick_check: string }[];
    const problems = check.map((r) => r.quick_check).filter((s) => s !== "ok");
    if (problems.length > 0) throw corruptError(file, problems.join("; "));
    migrate(db, file);
    db.exec(`PRAGMA synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
  } catch (e) {
    if (e instanceof VigilError) throw e;
    if (isCorruption(e)) throw corruptError(file, (e as SqliteError).errstr ?? (e as Error).message, e);
    throw new VigilError(ErrorCode.store, `cannot open database ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function migrate(db: DatabaseSync, file: string): void {
  // IMMEDIATE takes the write lock first, so two processes opening a fresh file migrate once.
  db.exec("BEGIN IMMEDIATE");
  try {
    const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number };
    if (version > MIGRATIONS.length) {
      throw new VigilError(
        ErrorCode.store,
        `database ${file} has schema version ${version}, newer than this Vigil's ${MIGRATIONS.length}: upgrade Vigil`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    if (version < MIGRATIONS.length) db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
    db.exec("COMMIT");
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}

export interface WalCheckpoint {
  /** Frames in the WAL, and how many of them are now in the database file; -1 if it failed. */
  log: number;
  checkpointed: number;
}

interface EventRow {
  seq: number;
  id: string;
  ts: number;
  type: string;
  pool: string | null;
  target: string | null;
  node: string | null;
  from_state: string | null;
  to_state: string | null;
  cause: string | null;
  data: string | null;
}

interface RollupDbRow {
  series: number;
  node: string;
  pool: string;
  target: string;
  start_ms: number;
  count: number;
  failures: number;
  latency_ms_min: number;
  latency_ms_max: number;
  latency_ms_sum: number;
  sketch: Uint8Array;
}

function toEventRecord(r: EventRow): EventRecord {
  const e: EventRecord = { cursor: String(r.seq), id: r.id, ts: r.ts, type: r.type };
  if (r.pool !== null) e.pool = r.pool;
  if (r.target !== null) e.target = r.target;
  if (r.node !== null) e.node = r.node;
  if (r.from_state !== null) e.from = r.from_state;
  if (r.to_state !== null) e.to = r.to_state;
  if (r.cause !== null) e.cause = r.cause;
  if (r.data !== null) e.data = JSON.parse(r.data) as Record<string, unknown>;
  return e;
}

function toBucket(r: RollupDbRow, stepMs: number): RollupBucket {
  return {
    node: r.node,
    pool: r.pool,
    target: r.target,
    startMs: r.start_ms,
    stepMs,
    count: r.count,
    failures: r.failures,
    latencyMsMin: r.latency_ms_min,
    latencyMsMax: r.latency_ms_max,
    latencyMsSum: r.latency_ms_sum,
    sketch: r.sketch,
  };
}

function emptyReport(): CompactReport {
  return {
    hoursCompacted: 0,
    hourRowsWritten: 0,
    eventsDeleted: 0,
    minuteRowsDeleted: 0,
    hourRowsDeleted: 0,
    badSketches: 0,
    done: true,
  };
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly node: string;
  /** The database file. */
  readonly file: string;
  private readonly db: DatabaseSync;
  private readonly writer: BatchWriter;
  private readonly batchSync: "NORMAL" | "FULL";
  private readonly seriesCache = new Map<string, number>();
  private readonly statements = new Map<string, StatementSync>();
  private closed = false;
  private closing = false;
  private checkpointer: Worker | undefined;
  private readonly checkpointWaiters = new Map<number, (r: WalCheckpoint) => void>();
  private nextCheckpointId = 1;
  private readonly st: {
    insertEvent: StatementSync;
    insertSeries: StatementSync;
    selectSeries: StatementSync;
    upsertMinute: StatementSync;
    upsertHour: StatementSync;
    replaceHour: StatementSync;
    getState: StatementSync;
    setState: StatementSync;
    getMeta: StatementSync;
    setMeta: StatementSync;
    putDoc: StatementSync;
    getDoc: StatementSync;
    listDocs: StatementSync;
    deleteDoc: StatementSync;
    putLww: StatementSync;
  };

  constructor(db: DatabaseSync, file: string, opts: SqliteStoreOptions) {
    this.db = db;
    this.file = file;
    this.node = opts.node;
    this.batchSync = opts.synchronous === "full" ? "FULL" : "NORMAL";
    db.function("vigil_sketch_merge", { deterministic: true }, (stored, incoming) =>
      mergeSketchBytes(stored as Uint8Array, incoming as Uint8Array),
    );
    this.st = {
      insertEvent: db.prepare(
        `INSERT INTO events (id, ts, type, pool, target, node, from_state, to_state, cause, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      ),
      insertSeries: db.prepare(
        "INSERT INTO series (pool, target, node) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      ),
      selectSeries: db.prepare("SELECT id FROM series WHERE pool = ? AND target = ? AND node = ?"),
      upsertMinute: db.prepare(rollupUpsertSql("rollups_minute")),
      upsertHour: db.prepare(rollupUpsertSql("rollups_hour")),
      replaceHour: db.prepare(
        `INSERT OR REPLACE INTO rollups_hour
         (series, start_ms, count, failures, latency_ms_min, latency_ms_max, latency_ms_sum, sketch)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      getState: db.prepare("SELECT value FROM store_state WHERE key = ?"),
      setState: db.prepare(
        "INSERT INTO store_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ),
      getMeta: db.prepare("SELECT value FROM meta WHERE scope = ? AND key = ?"),
      setMeta: db.prepare(
        "INSERT INTO meta (scope, key, value) VALUES (?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
      ),
      putDoc: db.prepare(
        `INSERT INTO docs (scope, namespace, key, value, hlc) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (scope, namespace, key) DO UPDATE SET value = excluded.value, hlc = excluded.hlc`,
      ),
      getDoc: db.prepare("SELECT value, hlc FROM docs WHERE scope = ? AND namespace = ? AND key = ?"),
      listDocs: db.prepare("SELECT key, value, hlc FROM docs WHERE scope = ? AND namespace = ? ORDER BY key"),
      deleteDoc: db.prepare("DELETE FROM docs WHERE scope = ? AND namespace = ? AND key = ?"),
      // Row values compare left to right, text by bytes: the stamp order of the core's HLC.
      putLww: db.prepare(
        `INSERT INTO lww (kind, key, value, wall_ms, logical, origin) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, wall_ms = excluded.wall_ms,
           logical = excluded.logical, origin = excluded.origin
         WHERE (excluded.wall_ms, excluded.logical, excluded.origin) > (lww.wall_ms, lww.logical, lww.origin)`,
      ),
    };
    this.writer = new BatchWriter((b) => this.commitBatch(b), opts.batch);
  }

  async appendEvents(events: readonly StoredEvent[]): Promise<void> {
    this.checkOpen();
    validateEvents(events);
    return this.writer.appendEvents(events);
  }

  async writeRollups(rows: readonly RollupRow[]): Promise<void> {
    this.checkOpen();
    validateRollups(rows);
    return this.writer.appendRollups(rows);
  }

  async queryEvents(query: EventQuery): Promise<EventPage> {
    this.checkOpen();
    const q = normalizeEventQuery(query);
    const { sql, params } = sqliteEventsSelect(q);
    const events = (this.prepared(sql).all(...params) as unknown as EventRow[]).map(toEventRecord);
    return { events, nextCursor: nextEventCursor(q, events) };
  }

  async queryRollups(query: RollupQuery): Promise<RollupBucket[]> {
    this.checkOpen();
    const q = normalizeRollupQuery(query);
    const table = q.resolution === "hour" ? "rollups_hour" : "rollups_minute";
    const nodeCond = q.node === undefined ? "" : "AND s.node = ?";
    const params: (string | number)[] = [q.pool, q.target];
    if (q.node !== undefined) params.push(q.node);
    params.push(q.fromMs, q.toMs, q.limit);
    const rows = this.prepared(
      `SELECT r.*, s.node, s.pool, s.target FROM series s JOIN ${table} r ON r.series = s.id
       WHERE s.pool = ? AND s.target = ? ${nodeCond} AND r.start_ms >= ? AND r.start_ms < ?
       ORDER BY r.start_ms, s.node LIMIT ?`,
    ).all(...params) as unknown as RollupDbRow[];
    return rows.map((r) => toBucket(r, ROLLUP_STEP_MS[q.resolution]));
  }

  async compact(nowMs: number, retention?: Partial<Retention>): Promise<CompactReport> {
    this.checkOpen();
    checkNowMs(nowMs);
    const r = resolveRetention(retention);
    const report = emptyReport();
    const compactBefore = hourStartOf(Math.max(0, nowMs - r.hourlyAfterMs));
    // One chunk of series per transaction, yielding in between: the event loop (and the check
    // path on it) never waits for more than a chunk.
    while (this.transaction(() => this.compactStep(compactBefore, report))) {
      await yieldToLoop();
      this.checkOpen();
    }
    const watermark = this.watermark().hour;
    report.eventsDeleted = await this.deleteChunked(
      "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ? LIMIT ?)",
      nowMs - r.eventsMs,
      report,
    );
    // Minute rows go only once their hour is rolled up, whatever the retention says.
    report.minuteRowsDeleted = await this.deleteChunked(
      `DELETE FROM rollups_minute WHERE (start_ms, series) IN
       (SELECT start_ms, series FROM rollups_minute WHERE start_ms < ? LIMIT ?)`,
      Math.min(nowMs - r.minuteRollupsMs, watermark),
      report,
    );
    report.hourRowsDeleted = await this.deleteChunked(
      `DELETE FROM rollups_hour WHERE (start_ms, series) IN
       (SELECT start_ms, series FROM rollups_hour WHERE start_ms < ? LIMIT ?)`,
      nowMs - r.hourRollupsMs,
      report,
    );
    return report;
  }

  async getMeta(key: string): Promise<string | undefined> {
    this.checkOpen();
    checkMetaKey(key);
    const row = this.st.getMeta.get(this.node, key) as { value: string } | undefined;
    return row?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.checkOpen();
    checkMetaKey(key);
    checkMetaValue(value);
    this.durably(() => this.st.setMeta.run(this.node, key, value));
  }

  async putDoc(namespace: string, key: string, value: unknown, hlc: string): Promise<void> {
    this.checkOpen();
    checkDocKey(namespace, key);
    const json = encodeDoc(value, hlc);
    this.durably(() => this.st.putDoc.run(this.node, namespace, key, json, hlc));
  }

  async getDoc(namespace: string, key: string): Promise<DocRecord | undefined> {
    this.checkOpen();
    checkDocKey(namespace, key);
    const row = this.st.getDoc.get(this.node, namespace, key) as { value: string; hlc: string } | undefined;
    return row === undefined ? undefined : { namespace, key, value: JSON.parse(row.value), hlc: row.hlc };
  }

  async listDocs(namespace: string): Promise<DocRecord[]> {
    this.checkOpen();
    checkDocKey(namespace, "-");
    const rows = this.st.listDocs.all(this.node, namespace) as unknown as {
      key: string;
      value: string;
      hlc: string;
    }[];
    return rows.map((r) => ({ namespace, key: r.key, value: JSON.parse(r.value), hlc: r.hlc }));
  }

  async deleteDoc(namespace: string, key: string): Promise<void> {
    this.checkOpen();
    checkDocKey(namespace, key);
    this.durably(() => this.st.deleteDoc.run(this.node, namespace, key));
  }

  async putLww(records: readonly LwwRecord[]): Promise<number> {
    this.checkOpen();
    const rows = validateLww(records);
    let stored = 0;
    this.durably(() => {
      for (const r of rows) {
        stored += Number(this.st.putLww.run(r.kind, r.key, r.json, r.wallMs, r.logical, r.origin).changes);
      }
    });
    return stored;
  }

  async listLww(kind?: LwwKind): Promise<LwwRecord[]> {
    this.checkOpen();
    checkLwwKind(kind);
    const where = kind === undefined ? "" : "WHERE kind = ?";
    const rows = this.prepared(
      `SELECT kind, key, value, wall_ms, logical, origin FROM lww ${where} ORDER BY kind, key`,
    ).all(...(kind === undefined ? [] : [kind])) as unknown as {
      kind: LwwKind;
      key: string;
      value: string | null;
      wall_ms: number;
      logical: number;
      origin: string;
    }[];
    const out: LwwRecord[] = [];
    for (const r of rows) {
      const rec = lwwRecordOf(r.kind, r.key, r.value, r.wall_ms, r.logical, r.origin);
      if (rec !== undefined) out.push(rec);
    }
    return out;
  }

  async pruneLwwTombstones(beforeWallMs: number): Promise<number> {
    this.checkOpen();
    checkWallMs(beforeWallMs, "beforeWallMs");
    let deleted = 0;
    this.durably(() => {
      deleted = Number(
        this.prepared("DELETE FROM lww WHERE value IS NULL AND wall_ms < ?").run(beforeWallMs).changes,
      );
    });
    return deleted;
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.writer.flush();
  }

  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.writer.close();
    const worker = this.checkpointer;
    if (worker !== undefined) {
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      // Referenced while we wait: an unreferenced thread would let the process exit mid-close.
      worker.ref();
      worker.postMessage({ type: "stop" });
      await exited;
    }
    this.closed = true;
    // The last connection to close checkpoints the WAL and removes it.
    this.db.close();
  }

  /** Where WAL checkpoints run: on the worker thread, or inline in commits (its fallback). */
  get checkpointMode(): "thread" | "inline" {
    return this.checkpointer === undefined ? "inline" : "thread";
  }

  /** Checkpoints now (on the thread when there is one); `log` and `checkpointed` are WAL frames. */
  async checkpointNow(): Promise<WalCheckpoint> {
    this.checkOpen();
    const worker = this.checkpointer;
    if (worker === undefined) {
      const r = this.db.prepare("PRAGMA wal_checkpoint(PASSIVE)").get() as {
        log: number;
        checkpointed: number;
      };
      return { log: r.log, checkpointed: r.checkpointed };
    }
    const id = this.nextCheckpointId++;
    worker.ref();
    return new Promise<WalCheckpoint>((resolve) => {
      this.checkpointWaiters.set(id, resolve);
      worker.postMessage({ type: "checkpoint", id });
    });
  }

  /** Starts the checkpointer thread; if it cannot start, SQLite keeps checkpointing inline. */
  async startCheckpointer(busyTimeoutMs: number): Promise<void> {
    let worker: Worker;
    try {
      worker = new Worker(new URL("./sqlite-checkpointer.ts", import.meta.url), {
        workerData: { file: this.file, intervalMs: SQLITE_CHECKPOINT_INTERVAL_MS, busyTimeoutMs },
      });
    } catch {
      return;
    }
    const ready = await new Promise<boolean>((resolve) => {
      worker.once("message", (m: { type: string }) => resolve(m.type === "ready"));
      worker.once("error", () => resolve(false));
      worker.once("exit", () => resolve(false));
    });
    if (!ready) {
      await worker.terminate();
      return;
    }
    this.db.exec("PRAGMA wal_autocheckpoint = 0");
    this.checkpointer = worker;
    // A store that is never closed must not keep the process alive through this thread.
    worker.unref();
    worker.on("message", (m: { type: string; id?: number; log?: number; checkpointed?: number }) => {
      if (m.type !== "checkpointed" || m.id === undefined) return;
      const waiter = this.checkpointWaiters.get(m.id);
      this.checkpointWaiters.delete(m.id);
      if (this.checkpointWaiters.size === 0 && !this.closing) worker.unref();
      waiter?.({ log: m.log ?? -1, checkpointed: m.checkpointed ?? -1 });
    });
    worker.on("error", () => {});
    worker.once("exit", () => {
      this.checkpointer = undefined;
      for (const waiter of this.checkpointWaiters.values()) waiter({ log: -1, checkpointed: -1 });
      this.checkpointWaiters.clear();
      // Without the thread the WAL would grow forever: hand checkpoints back to SQLite.
      if (!this.closing) this.db.exec(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    });
  }

  /** For tests: stops the checkpointer thread as if it had died. */
  async killCheckpointerForTest(): Promise<void> {
    await this.checkpointer?.terminate();
  }

  /** For tests and operators: `PRAGMA integrity_check` (slow: reads and cross-checks everything). */
  integrityCheck(): string[] {
    this.checkOpen();
    return (this.db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
  }

  /** Moves the WAL into the database file and truncates it, e.g. before measuring the file. */
  checkpoint(): void {
    this.checkOpen();
    this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  /** Queries are built from a few optional filters: a handful of shapes, each compiled once. */
  private prepared(sql: string): StatementSync {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private checkOpen(): void {
    if (this.closed || this.closing) throw closedError();
  }

  private transaction<T>(body: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const out = body();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** A transaction synced to disk before it returns, even when batches are not. */
  private durably(body: () => void): void {
    this.db.exec("PRAGMA synchronous = FULL");
    try {
      this.transaction(body);
    } catch (e) {
      throw storeError(`write to ${this.file} failed`, e);
    } finally {
      this.db.exec(`PRAGMA synchronous = ${this.batchSync}`);
    }
  }

  private watermark(): { hour: number; series: number } {
    const hour = this.st.getState.get(WATERMARK_HOUR_KEY) as { value: number } | undefined;
    const series = this.st.getState.get(WATERMARK_SERIES_KEY) as { value: number } | undefined;
    return { hour: hour?.value ?? 0, series: series?.value ?? 0 };
  }

  private setWatermark(hour: number, series: number): void {
    this.st.setState.run(WATERMARK_HOUR_KEY, hour);
    this.st.setState.run(WATERMARK_SERIES_KEY, series);
  }

  private seriesId(pool: string, target: string, node: string): number {
    const key = `${pool}\u0000${target}\u0000${node}`;
    const cached = this.seriesCache.get(key);
    if (cached !== undefined) return cached;
    this.st.insertSeries.run(pool, target, node);
    const row = this.st.selectSeries.get(pool, target, node) as { id: number };
    if (this.seriesCache.size >= SERIES_CACHE_MAX) this.seriesCache.clear();
    this.seriesCache.set(key, row.id);
    return row.id;
  }

  private commitBatch(b: Batch): void {
    try {
      this.transaction(() => {
        for (const e of b.events) {
          this.st.insertEvent.run(
            e.id,
            e.ts,
            e.type,
            e.pool ?? null,
            e.target ?? null,
            e.node ?? null,
            e.from ?? null,
            e.to ?? null,
            e.cause ?? null,
            e.data === undefined ? null : JSON.stringify(e.data),
          );
        }
        if (b.rollups.length === 0) return;
        // Read inside the write transaction: compaction cannot move it under us.
        const wm = this.watermark();
        for (const r of b.rollups) {
          const series = this.seriesId(r.pool, r.target, r.node);
          const values = [
            r.count,
            r.failures,
            r.latencyMsMin,
            r.latencyMsMax,
            r.latencyMsSum,
            r.sketch,
          ] as const;
          this.st.upsertMinute.run(series, r.minuteStartMs, ...values);
          // A minute of an hour already rolled up folds into that hour's row as well.
          const hour = hourStartOf(r.minuteStartMs);
          if (hour < wm.hour || (hour === wm.hour && series < wm.series)) {
            this.st.upsertHour.run(series, hour, ...values);
          }
        }
      });
    } catch (e) {
      // A failed transaction may have inserted series rows that rolled back.
      this.seriesCache.clear();
      throw storeError(`write to ${this.file} failed`, e);
    }
  }

  /**
   * Rolls up the next chunk of series of the oldest unfinished hour and moves the watermark past
   * it. Driven by the stored watermark alone, so a crash or a second handle resumes where it
   * stopped. False when there is nothing (more) to do in this call.
   */
  private compactStep(compactBefore: number, report: CompactReport): boolean {
    const wm = this.watermark();
    let hour = wm.hour;
    if (wm.series === 0) {
      const next = (
        this.prepared("SELECT min(start_ms) AS m FROM rollups_minute WHERE start_ms >= ?").get(wm.hour) as {
          m: number | null;
        }
      ).m;
      if (next === null || hourStartOf(next) >= compactBefore) {
        // Nothing left to roll up before compactBefore: later minutes of those hours fold into
        // the hour rows as they are written.
        if (compactBefore > wm.hour) this.setWatermark(compactBefore, 0);
        return false;
      }
      if (report.hoursCompacted >= storeLimits.maxHoursPerCompact) {
        report.done = false;
        return false;
      }
      hour = hourStartOf(next);
    }
    const lo = wm.series;
    const hi = lo + storeLimits.compactSeriesPerChunk;
    const slice = this.prepared(
      `SELECT series, count, failures, latency_ms_min, latency_ms_max, latency_ms_sum, sketch
       FROM rollups_minute WHERE start_ms = ? AND series >= ? AND series < ?`,
    );
    // Arrays, not objects: node:sqlite builds row objects several times slower.
    slice.setReturnArrays(true);
    const fold = new KeyedFold<number>();
    for (let m = hour; m < hour + ROLLUP_STEP_MS.hour; m += ROLLUP_STEP_MS.minute) {
      for (const row of slice.iterate(m, lo, hi) as Iterable<unknown[]>) {
        fold.add(row[0] as number, {
          count: row[1] as number,
          failures: row[2] as number,
          latencyMsMin: row[3] as number,
          latencyMsMax: row[4] as number,
          latencyMsSum: row[5] as number,
          sketch: row[6] as Uint8Array,
        });
      }
    }
    for (const [series, h] of fold.entries()) {
      this.st.replaceHour.run(
        series,
        hour,
        h.count,
        h.failures,
        h.latencyMsMin,
        h.latencyMsMax,
        h.latencyMsSum,
        h.sketch,
      );
      report.hourRowsWritten++;
    }
    report.badSketches += fold.badSketches;
    // Read in this transaction, which excludes writers: a series created after it cannot have
    // minutes in this hour that the chunks missed.
    const maxSeries = (this.prepared("SELECT max(id) AS m FROM series").get() as { m: number | null }).m ?? 0;
    if (hi > maxSeries) {
      this.setWatermark(hour + ROLLUP_STEP_MS.hour, 0);
      report.hoursCompacted++;
    } else {
      this.setWatermark(hour, hi);
    }
    return true;
  }

  private async deleteChunked(sql: string, beforeMs: number, report: CompactReport): Promise<number> {
    const stmt = this.prepared(sql);
    let deleted = 0;
    for (;;) {
      const chunk = Math.min(storeLimits.deleteChunkRows, storeLimits.maxDeletesPerCompact - deleted);
      if (chunk <= 0) {
        report.done = false;
        return deleted;
      }
      const changes = Number(stmt.run(beforeMs, chunk).changes);
      deleted += changes;
      if (changes < chunk) return deleted;
      await yieldToLoop();
      this.checkOpen();
    }
  }
}
