// The shared store: the same contract on PostgreSQL, one database for every node.
//
// - Events are written idempotently (ON CONFLICT (id) DO NOTHING): every node that records the
//   same transition writes the same deterministic id, and the row exists once.
// - Cursors are a bigserial. A sequence hands out numbers in call order, not commit order, so a
//   reader could see 11 committed before 10 and skip 10 forever. Appends therefore take one
//   transaction-scoped advisory lock: numbers are drawn and committed in the same order.
// - Meta and docs are per node (the `node` column): each node keeps its own counter and its own
//   documents, so nodes never overwrite each other's.
// - LWW entries (pool specs, admin states) are shared: every node upserts the same rows, and an
//   upsert only replaces a row with a greater HLC stamp, so concurrent writers never regress one.
// - Rollups merge in JS (sketches are opaque bytes): insert what is new, lock and merge what
//   exists. Compaction is global and serialized by an advisory lock, so three nodes compacting
//   at once do each hour once; writers take that lock shared, so a minute written for an hour
//   being rolled up is folded either into the minute rows compaction reads or into the hour row.
// - The schema is created on open under an advisory lock, so nodes starting together do not race.
//
// Durability: a write resolves after COMMIT, which PostgreSQL makes durable unless the server
// runs with synchronous_commit = off.

import { createHash } from "node:crypto";
import { Pool, type PoolClient, type PoolConfig, type QueryResultRow } from "pg";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { type Batch, type BatchOptions, BatchWriter } from "./batch-writer.ts";
import { HourAccumulator, hourStartOf, type MinuteRow, mergeRollupValues } from "./merge.ts";
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

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url?: string;
  /** Use this pool instead of opening one; close() then leaves it open. */
  pool?: Pool;
  node: string;
  /** The PostgreSQL schema holding Vigil's tables, created if missing. Default "public". */
  schema?: string;
  batch?: Partial<BatchOptions>;
  /** Connections this node opens, default 4. */
  maxConnections?: number;
}

const MAX_CONNECTIONS_DEFAULT = 4;
/** Bounds every statement, so a stuck server fails a write instead of growing the queue forever. */
const STATEMENT_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Hour rows sent per statement while compacting. */
const HOUR_ROWS_PER_INSERT = 1_000;
const WATERMARK_KEY = "hour_watermark_ms";
/** Rounds of insert-or-merge before an upsert gives up (each round only retries rows deleted meanwhile). */
const MERGE_ATTEMPTS_MAX = 3;

function migrations(s: string): string[] {
  return [
    `
    CREATE TABLE ${s}.vigil_events (
      seq bigserial PRIMARY KEY,
      id text NOT NULL UNIQUE,
      ts bigint NOT NULL,
      type text NOT NULL,
      pool text, target text, node text, from_state text, to_state text, cause text,
      data text
    );
    CREATE INDEX vigil_events_ts ON ${s}.vigil_events (ts);
    CREATE INDEX vigil_events_pool_target ON ${s}.vigil_events (pool, target, seq);
    CREATE TABLE ${s}.vigil_rollups_minute (
      pool text NOT NULL, target text NOT NULL, node text NOT NULL, start_ms bigint NOT NULL,
      count bigint NOT NULL, failures bigint NOT NULL,
      latency_ms_min float8 NOT NULL, latency_ms_max float8 NOT NULL, latency_ms_sum float8 NOT NULL,
      sketch bytea NOT NULL,
      PRIMARY KEY (pool, target, node, start_ms)
    );
    CREATE INDEX vigil_rollups_minute_start ON ${s}.vigil_rollups_minute (start_ms);
    CREATE TABLE ${s}.vigil_rollups_hour (
      pool text NOT NULL, target text NOT NULL, node text NOT NULL, start_ms bigint NOT NULL,
      count bigint NOT NULL, failures bigint NOT NULL,
      latency_ms_min float8 NOT NULL, latency_ms_max float8 NOT NULL, latency_ms_sum float8 NOT NULL,
      sketch bytea NOT NULL,
      PRIMARY KEY (pool, target, node, start_ms)
    );
    CREATE INDEX vigil_rollups_hour_start ON ${s}.vigil_rollups_hour (start_ms);
    CREATE TABLE ${s}.vigil_meta (
      node text NOT NULL, key text NOT NULL, value text NOT NULL,
      PRIMARY KEY (node, key)
    );
    CREATE TABLE ${s}.vigil_docs (
      node text NOT NULL, namespace text NOT NULL, key text NOT NULL, value text NOT NULL, hlc text NOT NULL,
      PRIMARY KEY (node, namespace, key)
    );
    CREATE TABLE ${s}.vigil_store_state (key text PRIMARY KEY, value bigint NOT NULL);
    `,
    // The replicated LWW maps, shared by every node: the newest stamp per key, NULL value for a
    // tombstone. COLLATE "C": origins and keys compare by bytes, as in SQLite and the core.
    `
    CREATE TABLE ${s}.vigil_lww (
      kind text NOT NULL, key text COLLATE "C" NOT NULL,
      value text,
      wall_ms bigint NOT NULL, logical bigint NOT NULL, origin text COLLATE "C" NOT NULL,
      PRIMARY KEY (kind, key)
    );
    `,
    // Events of one pool in cursor order, walked either way: without it a pool-only query read
    // the pool's rows through (pool, target, seq) and sorted them, or walked the primary key
    // through every other pool's rows.
    `CREATE INDEX vigil_events_pool_seq ON ${s}.vigil_events (pool, seq);`,
  ];
}

export const POSTGRES_SCHEMA_VERSION = migrations('"public"').length;

/**
 * The statement queryEvents runs in the (quoted) schema `s` (exported for the query-plan test).
 * Either order walks the same index, forwards or backwards: the primary key, (pool, seq) for one
 * pool, or (pool, target, seq) for one target of a pool. The planner may prefer the primary key
 * for a pool its statistics call common. A target without its pool has no index of its own: the
 * primary key, filtered, or a scan (docs/storage.md).
 */
export function postgresEventsSelect(s: string, q: NormalEventQuery): { sql: string; params: unknown[] } {
  const params: unknown[] = [String(q.after)];
  const where = ["seq > $1::bigint"];
  const cond = (sql: (n: string) => string, value: unknown): void => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (q.before !== undefined) cond((p) => `seq < ${p}::bigint`, String(q.before));
  if (q.pool !== undefined) cond((p) => `pool = ${p}`, q.pool);
  if (q.target !== undefined) cond((p) => `target = ${p}`, q.target);
  if (q.types !== undefined) cond((p) => `type = ANY(${p}::text[])`, q.types);
  if (q.fromMs !== undefined) cond((p) => `ts >= ${p}::bigint`, q.fromMs);
  if (q.toMs !== undefined) cond((p) => `ts < ${p}::bigint`, q.toMs);
  params.push(q.limit);
  const dir = q.order === "desc" ? "DESC" : "ASC";
  return {
    // Not `AS seq`: ORDER BY would then sort the text alias, putting "10" before "9".
    sql: `SELECT seq::text AS cursor, id, ts, type, pool, target, node, from_state, to_state, cause, data
       FROM ${s}.vigil_events WHERE ${where.join(" AND ")} ORDER BY seq ${dir} LIMIT $${params.length}`,
    params,
  };
}

/** A 64-bit advisory lock key per (schema, purpose), so two Vigil schemas in one database do not contend. */
function lockKey(schema: string, purpose: string): string {
  const h = createHash("sha256").update(`vigil\u0000${schema}\u0000${purpose}`).digest();
  return BigInt.asIntN(64, h.readBigUInt64BE(0)).toString();
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable PostgreSQL URL)";
  }
}

function errorText(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return errorText(e.errors[0]);
  if (e instanceof Error) return e.message !== "" ? e.message : ((e as NodeJS.ErrnoException).code ?? e.name);
  return String(e);
}

function pgError(what: string, e: unknown): VigilError {
  if (e instanceof VigilError) return e;
  return new VigilError(ErrorCode.store, `${what}: ${errorText(e)}`, { cause: e });
}

function quoteIdent(name: string): string {
  return `"${name}"`;
}

/** Connects, creates or migrates the schema, and returns the store. */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  if (typeof opts.node !== "string" || opts.node === "") {
    throw new VigilError(ErrorCode.store, "store needs a node name");
  }
  const schema = opts.schema ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new VigilError(
      ErrorCode.store,
      `PostgreSQL schema ${JSON.stringify(schema)} must match [a-z_][a-z0-9_]*`,
    );
  }
  if (opts.pool === undefined && (opts.url === undefined || opts.url === "")) {
    throw new VigilError(ErrorCode.store, "PostgreSQL store needs a url or a pool");
  }
  const where = opts.url === undefined ? "PostgreSQL" : `PostgreSQL ${redactUrl(opts.url)}`;
  const ownPool = opts.pool === undefined;
  let pool: Pool;
  if (opts.pool !== undefined) {
    pool = opts.pool;
  } else {
    const config: PoolConfig = {
      connectionString: opts.url,
      max: opts.maxConnections ?? MAX_CONNECTIONS_DEFAULT,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      application_name: `vigil ${opts.node}`.slice(0, 63),
    };
    try {
      pool = new Pool(config);
    } catch (e) {
      throw pgError(`cannot use ${where}`, e);
    }
  }
  // An idle connection dropped by the server emits 'error' on the pool; without a listener that
  // would crash the process. The next query reconnects or reports the failure.
  pool.on("error", () => {});
  try {
    await migrate(pool, schema);
  } catch (e) {
    if (ownPool) await pool.end().catch(() => {});
    throw pgError(`cannot open ${where}`, e);
  }
  return new PostgresStore(pool, ownPool, schema, where, opts);
}

async function migrate(pool: Pool, schema: string): Promise<void> {
  const s = quoteIdent(schema);
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [lockKey(schema, "schema")]);
    if (schema !== "public") await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.vigil_schema (version integer NOT NULL)`);
    const r = await client.query<{ version: number }>(`SELECT version FROM ${s}.vigil_schema`);
    const version = r.rows[0]?.version ?? 0;
    const steps = migrations(s);
    if (version > steps.length) {
      throw new VigilError(
        ErrorCode.store,
        `schema ${schema} has version ${version}, newer than this Vigil's ${steps.length}: upgrade Vigil`,
      );
    }
    for (let v = version; v < steps.length; v++) await client.query(steps[v]!);
    if (r.rows.length === 0)
      await client.query(`INSERT INTO ${s}.vigil_schema (version) VALUES ($1)`, [steps.length]);
    else if (version < steps.length)
      await client.query(`UPDATE ${s}.vigil_schema SET version = $1`, [steps.length]);
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

interface PgRollupRow {
  pool: string;
  target: string;
  node: string;
  start_ms: string;
  count: string;
  failures: string;
  latency_ms_min: number;
  latency_ms_max: number;
  latency_ms_sum: number;
  sketch: Buffer;
}

interface PgEventRow {
  cursor: string;
  id: string;
  ts: string;
  type: string;
  pool: string | null;
  target: string | null;
  node: string | null;
  from_state: string | null;
  to_state: string | null;
  cause: string | null;
  data: string | null;
}

function toBucket(r: PgRollupRow, stepMs: number): RollupBucket {
  return {
    node: r.node,
    pool: r.pool,
    target: r.target,
    startMs: Number(r.start_ms),
    stepMs,
    count: Number(r.count),
    failures: Number(r.failures),
    latencyMsMin: r.latency_ms_min,
    latencyMsMax: r.latency_ms_max,
    latencyMsSum: r.latency_ms_sum,
    // A copy as a plain Uint8Array: callers compare and keep it; Buffer views share a pool.
    sketch: new Uint8Array(r.sketch),
  };
}

function toEventRecord(r: PgEventRow): EventRecord {
  const e: EventRecord = { cursor: r.cursor, id: r.id, ts: Number(r.ts), type: r.type };
  if (r.pool !== null) e.pool = r.pool;
  if (r.target !== null) e.target = r.target;
  if (r.node !== null) e.node = r.node;
  if (r.from_state !== null) e.from = r.from_state;
  if (r.to_state !== null) e.to = r.to_state;
  if (r.cause !== null) e.cause = r.cause;
  if (r.data !== null) e.data = JSON.parse(r.data) as Record<string, unknown>;
  return e;
}

function rollupKey(r: { pool: string; target: string; node: string; startMs: number }): string {
  return JSON.stringify([r.pool, r.target, r.node, r.startMs]);
}

const ROLLUP_COLUMNS =
  "pool, target, node, start_ms, count, failures, latency_ms_min, latency_ms_max, latency_ms_sum, sketch";
const ROLLUP_UNNEST = `unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
  $7::float8[], $8::float8[], $9::float8[], $10::bytea[])`;

function rollupArrays(rows: readonly RollupBucket[]): unknown[] {
  return [
    rows.map((r) => r.pool),
    rows.map((r) => r.target),
    rows.map((r) => r.node),
    rows.map((r) => r.startMs),
    rows.map((r) => r.count),
    rows.map((r) => r.failures),
    rows.map((r) => r.latencyMsMin),
    rows.map((r) => r.latencyMsMax),
    rows.map((r) => r.latencyMsSum),
    rows.map((r) => r.sketch),
  ];
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

export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly node: string;
  readonly schema: string;
  private readonly pool: Pool;
  private readonly ownPool: boolean;
  private readonly where: string;
  private readonly s: string;
  private readonly writer: BatchWriter;
  private readonly keys: { events: string; compact: string };
  private closed = false;

  constructor(pool: Pool, ownPool: boolean, schema: string, where: string, opts: PostgresStoreOptions) {
    this.pool = pool;
    this.ownPool = ownPool;
    this.schema = schema;
    this.where = where;
    this.s = quoteIdent(schema);
    this.node = opts.node;
    this.keys = { events: lockKey(schema, "events"), compact: lockKey(schema, "compact") };
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
    const { sql, params } = postgresEventsSelect(this.s, q);
    const events = (await this.query<PgEventRow>(sql, params)).rows.map(toEventRecord);
    return { events, nextCursor: nextEventCursor(q, events) };
  }

  async queryRollups(query: RollupQuery): Promise<RollupBucket[]> {
    this.checkOpen();
    const q = normalizeRollupQuery(query);
    const table = q.resolution === "hour" ? "vigil_rollups_hour" : "vigil_rollups_minute";
    const params: unknown[] = [q.pool, q.target, q.fromMs, q.toMs, q.limit];
    let nodeCond = "";
    if (q.node !== undefined) {
      params.push(q.node);
      nodeCond = "AND node = $6";
    }
    const r = await this.query<PgRollupRow>(
      `SELECT ${ROLLUP_COLUMNS} FROM ${this.s}.${table}
       WHERE pool = $1 AND target = $2 AND start_ms >= $3 AND start_ms < $4 ${nodeCond}
       ORDER BY start_ms, node LIMIT $5`,
      params,
    );
    return r.rows.map((row) => toBucket(row, ROLLUP_STEP_MS[q.resolution]));
  }

  async compact(nowMs: number, retention?: Partial<Retention>): Promise<CompactReport> {
    this.checkOpen();
    checkNowMs(nowMs);
    const r = resolveRetention(retention);
    const report = emptyReport();
    const compactBefore = hourStartOf(Math.max(0, nowMs - r.hourlyAfterMs));
    for (;;) {
      const more = await this.transaction((c) => this.compactNextHour(c, compactBefore, report));
      if (!more) break;
      this.checkOpen();
    }
    const wm = await this.query<{ value: string }>(
      `SELECT value FROM ${this.s}.vigil_store_state WHERE key = $1`,
      [WATERMARK_KEY],
    );
    const watermark = Number(wm.rows[0]?.value ?? 0);
    report.eventsDeleted = await this.deleteChunked("vigil_events", "ts", nowMs - r.eventsMs, report);
    // Minute rows go only once their hour is rolled up, whatever the retention says.
    report.minuteRowsDeleted = await this.deleteChunked(
      "vigil_rollups_minute",
      "start_ms",
      Math.min(nowMs - r.minuteRollupsMs, watermark),
      report,
    );
    report.hourRowsDeleted = await this.deleteChunked(
      "vigil_rollups_hour",
      "start_ms",
      nowMs - r.hourRollupsMs,
      report,
    );
    return report;
  }

  async getMeta(key: string): Promise<string | undefined> {
    this.checkOpen();
    checkMetaKey(key);
    const r = await this.query<{ value: string }>(
      `SELECT value FROM ${this.s}.vigil_meta WHERE node = $1 AND key = $2`,
      [this.node, key],
    );
    return r.rows[0]?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.checkOpen();
    checkMetaKey(key);
    checkMetaValue(value);
    await this.query(
      `INSERT INTO ${this.s}.vigil_meta (node, key, value) VALUES ($1, $2, $3)
       ON CONFLICT (node, key) DO UPDATE SET value = excluded.value`,
      [this.node, key, value],
    );
  }

  async putDoc(namespace: string, key: string, value: unknown, hlc: string): Promise<void> {
    this.checkOpen();
    checkDocKey(namespace, key);
    const json = encodeDoc(value, hlc);
    await this.query(
      `INSERT INTO ${this.s}.vigil_docs (node, namespace, key, value, hlc) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (node, namespace, key) DO UPDATE SET value = excluded.value, hlc = excluded.hlc`,
      [this.node, namespace, key, json, hlc],
    );
  }

  async getDoc(namespace: string, key: string): Promise<DocRecord | undefined> {
    this.checkOpen();
    checkDocKey(namespace, key);
    const r = await this.query<{ value: string; hlc: string }>(
      `SELECT value, hlc FROM ${this.s}.vigil_docs WHERE node = $1 AND namespace = $2 AND key = $3`,
      [this.node, namespace, key],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { namespace, key, value: JSON.parse(row.value), hlc: row.hlc };
  }

  async listDocs(namespace: string): Promise<DocRecord[]> {
    this.checkOpen();
    checkDocKey(namespace, "-");
    // COLLATE "C": the same byte order as SQLite, whatever the database's locale.
    const r = await this.query<{ key: string; value: string; hlc: string }>(
      `SELECT key, value, hlc FROM ${this.s}.vigil_docs WHERE node = $1 AND namespace = $2 ORDER BY key COLLATE "C"`,
      [this.node, namespace],
    );
    return r.rows.map((row) => ({ namespace, key: row.key, value: JSON.parse(row.value), hlc: row.hlc }));
  }

  async deleteDoc(namespace: string, key: string): Promise<void> {
    this.checkOpen();
    checkDocKey(namespace, key);
    await this.query(`DELETE FROM ${this.s}.vigil_docs WHERE node = $1 AND namespace = $2 AND key = $3`, [
      this.node,
      namespace,
      key,
    ]);
  }

  async putLww(records: readonly LwwRecord[]): Promise<number> {
    this.checkOpen();
    // One lock order for every writer (sorted keys), so two nodes writing the same keys cannot
    // deadlock; the upsert's WHERE is evaluated on the locked, latest row.
    const rows = validateLww(records).sort((a, b) =>
      a.kind !== b.kind ? (a.kind < b.kind ? -1 : 1) : Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)),
    );
    if (rows.length === 0) return 0;
    const r = await this.query<{ n: number }>(
      `INSERT INTO ${this.s}.vigil_lww AS t (kind, key, value, wall_ms, logical, origin)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
       ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, wall_ms = excluded.wall_ms,
         logical = excluded.logical, origin = excluded.origin
       WHERE (excluded.wall_ms, excluded.logical, excluded.origin) > (t.wall_ms, t.logical, t.origin)
       RETURNING 1 AS n`,
      [
        rows.map((x) => x.kind),
        rows.map((x) => x.key),
        rows.map((x) => x.json),
        rows.map((x) => x.wallMs),
        rows.map((x) => x.logical),
        rows.map((x) => x.origin),
      ],
    );
    return r.rows.length;
  }

  async listLww(kind?: LwwKind): Promise<LwwRecord[]> {
    this.checkOpen();
    checkLwwKind(kind);
    const r = await this.query<{
      kind: LwwKind;
      key: string;
      value: string | null;
      wall_ms: string;
      logical: string;
      origin: string;
    }>(
      `SELECT kind, key, value, wall_ms, logical, origin FROM ${this.s}.vigil_lww
       ${kind === undefined ? "" : "WHERE kind = $1"} ORDER BY kind COLLATE "C", key`,
      kind === undefined ? [] : [kind],
    );
    const out: LwwRecord[] = [];
    for (const row of r.rows) {
      const rec = lwwRecordOf(
        row.kind,
        row.key,
        row.value,
        Number(row.wall_ms),
        Number(row.logical),
        row.origin,
      );
      if (rec !== undefined) out.push(rec);
    }
    return out;
  }

  async pruneLwwTombstones(beforeWallMs: number): Promise<number> {
    this.checkOpen();
    checkWallMs(beforeWallMs, "beforeWallMs");
    const r = await this.query<{ n: number }>(
      `DELETE FROM ${this.s}.vigil_lww WHERE value IS NULL AND wall_ms < $1 RETURNING 1 AS n`,
      [beforeWallMs],
    );
    return r.rows.length;
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.writer.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writer.close();
    this.closed = true;
    if (this.ownPool) await this.pool.end();
  }

  private checkOpen(): void {
    if (this.closed) throw closedError();
  }

  private async query<R extends object>(sql: string, params: unknown[] = []): Promise<{ rows: R[] }> {
    try {
      return await this.pool.query<R & QueryResultRow>(sql, params);
    } catch (e) {
      throw pgError(this.where, e);
    }
  }

  private async transaction<T>(body: (c: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw pgError(this.where, e);
    }
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const out = await body(client);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      await client.query("ROLLBACK").catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
      throw pgError(this.where, e);
    } finally {
      // A connection that cannot even roll back is discarded rather than returned to the pool.
      client.release(broken);
    }
  }

  private commitBatch(b: Batch): Promise<void> {
    return this.transaction(async (c) => {
      if (b.events.length > 0) await this.insertEvents(c, b.events);
      if (b.rollups.length > 0) await this.upsertRollups(c, b.rollups);
    });
  }

  private async insertEvents(c: PoolClient, events: readonly StoredEvent[]): Promise<void> {
    // Serializes appends so that cursor order is commit order (see the file comment).
    await c.query("SELECT pg_advisory_xact_lock($1::bigint)", [this.keys.events]);
    await c.query(
      `INSERT INTO ${this.s}.vigil_events (id, ts, type, pool, target, node, from_state, to_state, cause, data)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[])
       ON CONFLICT (id) DO NOTHING`,
      [
        events.map((e) => e.id),
        events.map((e) => e.ts),
        events.map((e) => e.type),
        events.map((e) => e.pool ?? null),
        events.map((e) => e.target ?? null),
        events.map((e) => e.node ?? null),
        events.map((e) => e.from ?? null),
        events.map((e) => e.to ?? null),
        events.map((e) => e.cause ?? null),
        events.map((e) => (e.data === undefined ? null : JSON.stringify(e.data))),
      ],
    );
  }

  private async upsertRollups(c: PoolClient, rows: readonly RollupRow[]): Promise<void> {
    // Shared: many writers at once, none while an hour is being rolled up.
    await c.query("SELECT pg_advisory_xact_lock_shared($1::bigint)", [this.keys.compact]);
    const wm = await c.query<{ value: string }>(
      `SELECT value FROM ${this.s}.vigil_store_state WHERE key = $1`,
      [WATERMARK_KEY],
    );
    const watermark = Number(wm.rows[0]?.value ?? 0);
    const minutes = new Map<string, RollupBucket>();
    const hours = new Map<string, RollupBucket>();
    const fold = (into: Map<string, RollupBucket>, b: RollupBucket): void => {
      const k = rollupKey(b);
      const had = into.get(k);
      into.set(k, had === undefined ? b : mergeRollupValues(had, b));
    };
    for (const r of rows) {
      const b: RollupBucket = {
        node: r.node,
        pool: r.pool,
        target: r.target,
        startMs: r.minuteStartMs,
        stepMs: ROLLUP_STEP_MS.minute,
        count: r.count,
        failures: r.failures,
        latencyMsMin: r.latencyMsMin,
        latencyMsMax: r.latencyMsMax,
        latencyMsSum: r.latencyMsSum,
        sketch: r.sketch,
      };
      fold(minutes, b);
      // A minute of an hour already rolled up folds into that hour's row as well.
      if (r.minuteStartMs < watermark) {
        fold(hours, { ...b, startMs: hourStartOf(r.minuteStartMs), stepMs: ROLLUP_STEP_MS.hour });
      }
    }
    await this.mergeInto(c, "vigil_rollups_minute", minutes);
    if (hours.size > 0) await this.mergeInto(c, "vigil_rollups_hour", hours);
  }

  /** Inserts the new rows; locks, merges and rewrites the ones that exist. */
  private async mergeInto(c: PoolClient, table: string, byKey: Map<string, RollupBucket>): Promise<void> {
    // One lock order for every writer (sorted keys), so two writers cannot deadlock on rows.
    let rows = [...byKey.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, v]) => v);
    // A row seen as existing can be deleted (by retention) before it is locked: insert it again.
    for (let attempt = 0; attempt < MERGE_ATTEMPTS_MAX && rows.length > 0; attempt++) {
      const inserted = await c.query<{ pool: string; target: string; node: string; start_ms: string }>(
        `INSERT INTO ${this.s}.${table} (${ROLLUP_COLUMNS}) SELECT * FROM ${ROLLUP_UNNEST}
         ON CONFLICT DO NOTHING RETURNING pool, target, node, start_ms`,
        rollupArrays(rows),
      );
      if (inserted.rows.length === rows.length) return;
      const done = new Set(
        inserted.rows.map((r) =>
          rollupKey({ pool: r.pool, target: r.target, node: r.node, startMs: Number(r.start_ms) }),
        ),
      );
      const rest = rows.filter((r) => !done.has(rollupKey(r)));
      const existing = await c.query<PgRollupRow>(
        `SELECT t.pool, t.target, t.node, t.start_ms, t.count, t.failures, t.latency_ms_min, t.latency_ms_max,
           t.latency_ms_sum, t.sketch
         FROM ${this.s}.${table} t
         JOIN unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(pool, target, node, start_ms)
           ON t.pool = k.pool AND t.target = k.target AND t.node = k.node AND t.start_ms = k.start_ms
         ORDER BY t.pool COLLATE "C", t.target COLLATE "C", t.node COLLATE "C", t.start_ms
         FOR UPDATE OF t`,
        [
          rest.map((r) => r.pool),
          rest.map((r) => r.target),
          rest.map((r) => r.node),
          rest.map((r) => r.startMs),
        ],
      );
      const merged = existing.rows.map((row) => {
        const stored = toBucket(row, 0);
        return mergeRollupValues(stored, byKey.get(rollupKey(stored))!);
      });
      await c.query(
        `UPDATE ${this.s}.${table} AS t SET count = u.count, failures = u.failures,
           latency_ms_min = u.latency_ms_min, latency_ms_max = u.latency_ms_max,
           latency_ms_sum = u.latency_ms_sum, sketch = u.sketch
         FROM ${ROLLUP_UNNEST} AS u(${ROLLUP_COLUMNS})
         WHERE t.pool = u.pool AND t.target = u.target AND t.node = u.node AND t.start_ms = u.start_ms`,
        rollupArrays(merged),
      );
      const found = new Set(merged.map(rollupKey));
      rows = rest.filter((r) => !found.has(rollupKey(r)));
    }
    if (rows.length > 0)
      throw storeError(`${this.where}: ${rows.length} rollup rows kept vanishing during upsert`);
  }

  /** Rolls up the oldest hour not yet rolled up; false when there is none to do in this call. */
  private async compactNextHour(
    c: PoolClient,
    compactBefore: number,
    report: CompactReport,
  ): Promise<boolean> {
    // Exclusive: one compactor at a time across all nodes, and no rollup writer mid-hour.
    await c.query("SELECT pg_advisory_xact_lock($1::bigint)", [this.keys.compact]);
    const wm = await c.query<{ value: string }>(
      `SELECT value FROM ${this.s}.vigil_store_state WHERE key = $1`,
      [WATERMARK_KEY],
    );
    const watermark = Number(wm.rows[0]?.value ?? 0);
    const next = await c.query<{ m: string | null }>(
      `SELECT min(start_ms) AS m FROM ${this.s}.vigil_rollups_minute WHERE start_ms >= $1`,
      [watermark],
    );
    const nextMs = next.rows[0]?.m;
    if (nextMs === null || nextMs === undefined || hourStartOf(Number(nextMs)) >= compactBefore) {
      // Nothing left to roll up before compactBefore: later rows for those hours fold into the
      // hour rows as they are written.
      if (compactBefore > watermark) await this.setWatermark(c, compactBefore);
      return false;
    }
    if (report.hoursCompacted >= storeLimits.maxHoursPerCompact) {
      report.done = false;
      return false;
    }
    const hour = hourStartOf(Number(nextMs));
    await c.query(
      `DECLARE vigil_compact NO SCROLL CURSOR FOR
       SELECT ${ROLLUP_COLUMNS} FROM ${this.s}.vigil_rollups_minute
       WHERE start_ms >= $1 AND start_ms < $2 ORDER BY pool, target, node, start_ms`,
      [hour, hour + ROLLUP_STEP_MS.hour],
    );
    const acc = new HourAccumulator(hour);
    let out: RollupBucket[] = [];
    const emit = async (h: RollupBucket | undefined, force: boolean): Promise<void> => {
      if (h !== undefined) out.push(h);
      if (out.length >= HOUR_ROWS_PER_INSERT || (force && out.length > 0)) {
        await this.replaceHours(c, out);
        report.hourRowsWritten += out.length;
        out = [];
      }
    };
    for (;;) {
      const page = await c.query<PgRollupRow>(`FETCH ${storeLimits.compactPageRows} FROM vigil_compact`);
      for (const r of page.rows) {
        const b = toBucket(r, ROLLUP_STEP_MS.minute);
        const row: MinuteRow = { ...b };
        await emit(acc.push(row), false);
      }
      if (page.rows.length < storeLimits.compactPageRows) break;
    }
    await c.query("CLOSE vigil_compact");
    await emit(acc.finish(), true);
    report.badSketches += acc.badSketches;
    await this.setWatermark(c, hour + ROLLUP_STEP_MS.hour);
    report.hoursCompacted++;
    return true;
  }

  private async replaceHours(c: PoolClient, rows: RollupBucket[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.vigil_rollups_hour (${ROLLUP_COLUMNS}) SELECT * FROM ${ROLLUP_UNNEST}
       ON CONFLICT (pool, target, node, start_ms) DO UPDATE SET count = excluded.count,
         failures = excluded.failures, latency_ms_min = excluded.latency_ms_min,
         latency_ms_max = excluded.latency_ms_max, latency_ms_sum = excluded.latency_ms_sum,
         sketch = excluded.sketch`,
      rollupArrays(rows),
    );
  }

  private async setWatermark(c: PoolClient, ms: number): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.vigil_store_state (key, value) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET value = GREATEST(${this.s}.vigil_store_state.value, excluded.value)`,
      [WATERMARK_KEY, ms],
    );
  }

  private async deleteChunked(
    table: string,
    column: string,
    beforeMs: number,
    report: CompactReport,
  ): Promise<number> {
    let deleted = 0;
    for (;;) {
      const chunk = Math.min(storeLimits.deleteChunkRows, storeLimits.maxDeletesPerCompact - deleted);
      if (chunk <= 0) {
        report.done = false;
        return deleted;
      }
      this.checkOpen();
      const r = await this.pool
        .query(
          `DELETE FROM ${this.s}.${table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM ${this.s}.${table} WHERE ${column} < $1 LIMIT $2))`,
          [beforeMs, chunk],
        )
        .catch((e: unknown) => {
          throw pgError(this.where, e);
        });
      const changes = r.rowCount ?? 0;
      deleted += changes;
      if (changes < chunk) return deleted;
    }
  }
}
