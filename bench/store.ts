// Store throughput and size: events/s and rollup rows/s sustained through the batch writer on
// SQLite (and on PostgreSQL when VIGIL_TEST_PG is set), the disk a target costs per day of
// minute rollups and of hour rollups, and what retention adds up to. SQLite runs twice: inline
// (`sqlite`: statements on this thread's event loop) and on its own thread (`sqliteThread`: what
// a node runs, src/store/sqlite-thread.ts), each with the event-loop delay and this thread's CPU
// while writing. Writes bench/results/store.json.
//
//   npx node bench/store.ts [--events=200000 --rollups=200000 --targets=1000 --minutes=1440]
//
// Checker throughput with history on vs off is bench/history.ts (bench/results/history.json).

import { mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { DatabaseSync } from "node:sqlite";
import { Pool } from "pg";
import { openPostgresStore } from "../src/store/postgres.ts";
import { LatencySketch } from "../src/store/sketch.ts";
import {
  openSqliteStore,
  SQLITE_FILE,
  type SqliteStore,
  type SqliteStoreOptions,
} from "../src/store/sqlite.ts";
import { openSqliteThreadStore, type SqliteThreadStore } from "../src/store/sqlite-thread.ts";
import { defaultRetention, type RollupRow, type Store, type StoredEvent } from "../src/store/types.ts";
import { arg, percentile, progress, round, writeResults } from "./lib.ts";

const EVENTS = arg("events", 200_000);
const ROLLUPS = arg("rollups", 200_000);
const TARGETS = arg("targets", 1_000);
const MINUTES = arg("minutes", 1_440);
/** Rows per append call, and calls in flight: a busy node with many callers. */
const ROWS_PER_CALL = 100;
const CALLS_IN_FLIGHT = 64;
const DAY_MS = 24 * 3_600_000;
const T0 = Date.UTC(2024, 0, 1);

/** Deterministic latencies: a 10 s interval gives 6 checks a minute, mostly ~10-30 ms. */
function minuteSamples(seed: number): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < 6; i++) {
    a = (Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    out.push(8 + (a % 25_000) / 1000);
  }
  return out;
}

function rollupRow(target: number, minute: number): RollupRow {
  const xs = minuteSamples(target * 100_003 + minute);
  return {
    node: "bench-node-1",
    pool: `pool-${target % 20}`,
    target: `10.${(target >> 16) & 255}.${(target >> 8) & 255}.${target & 255}:8080`,
    minuteStartMs: T0 + minute * 60_000,
    count: xs.length,
    failures: minute % 97 === 0 ? 1 : 0,
    latencyMsMin: Math.min(...xs),
    latencyMsMax: Math.max(...xs),
    latencyMsSum: xs.reduce((x, y) => x + y, 0),
    sketch: LatencySketch.of(xs).encode(),
  };
}

function event(i: number): StoredEvent {
  return {
    id: `bench-${i}`,
    ts: T0 + i,
    type: "verdict.changed",
    pool: `pool-${i % 20}`,
    target: `10.0.${(i >> 8) & 255}.${i & 255}:8080`,
    node: "bench-node-1",
    from: "up",
    to: "down",
    cause: "3 consecutive failures: connect ECONNREFUSED",
  };
}

/** Runs `calls` appends with at most CALLS_IN_FLIGHT outstanding; returns rows/s and ack latencies. */
async function pipelined(
  calls: number,
  rowsPerCall: number,
  call: (i: number) => Promise<void>,
): Promise<{ rowsPerSecond: number; ackMsP50: number; ackMsP99: number; seconds: number }> {
  const acks: number[] = [];
  let next = 0;
  const start = performance.now();
  const lane = async () => {
    while (next < calls) {
      const i = next++;
      const t = performance.now();
      await call(i);
      acks.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CALLS_IN_FLIGHT }, lane));
  const seconds = (performance.now() - start) / 1000;
  return {
    rowsPerSecond: Math.round((calls * rowsPerCall) / seconds),
    ackMsP50: round(percentile(acks, 50)),
    ackMsP99: round(percentile(acks, 99)),
    seconds: round(seconds),
  };
}

/** CPU ms this thread (the event loop's) has used so far: user + system. */
function mainThreadCpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

async function throughput(store: Store, label: string = store.kind) {
  progress(`${label}: ${EVENTS} events`);
  const events = await loopDelay(() =>
    pipelined(Math.ceil(EVENTS / ROWS_PER_CALL), ROWS_PER_CALL, (c) =>
      store.appendEvents(Array.from({ length: ROWS_PER_CALL }, (_, i) => event(c * ROWS_PER_CALL + i))),
    ),
  );
  progress(`${label}: ${ROLLUPS} rollup rows`);
  // Distinct (target, minute) keys: the steady state, where each minute is written once.
  const rollups = await loopDelay(() =>
    pipelined(Math.ceil(ROLLUPS / ROWS_PER_CALL), ROWS_PER_CALL, (c) =>
      store.writeRollups(
        Array.from({ length: ROWS_PER_CALL }, (_, i) => {
          const k = c * ROWS_PER_CALL + i;
          return rollupRow(100_000 + (k % 5_000), Math.floor(k / 5_000));
        }),
      ),
    ),
  );
  const withLoop = (m: typeof events, rows: number) => ({
    ...m.result,
    loopDelayMsP99: m.loopDelayMsP99,
    loopDelayMsMax: m.loopDelayMsMax,
    mainThreadCpuUsPerRow: round((m.mainThreadCpuMs * 1000) / rows),
  });
  return { events: withLoop(events, EVENTS), rollups: withLoop(rollups, ROLLUPS) };
}

/**
 * How long the event loop (the check path's thread) was blocked while `work` ran, and how much
 * CPU this thread spent meanwhile (building the rows included, the same for every store).
 */
async function loopDelay<T>(
  work: () => Promise<T>,
): Promise<{ result: T; loopDelayMsP99: number; loopDelayMsMax: number; mainThreadCpuMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  const cpu = mainThreadCpuMs();
  h.enable();
  const result = await work();
  h.disable();
  return {
    result,
    loopDelayMsP99: round(h.percentile(99) / 1e6),
    loopDelayMsMax: round(h.max / 1e6),
    mainThreadCpuMs: Math.round(mainThreadCpuMs() - cpu),
  };
}

/** This thread's CPU to build the day's rows alone, without a store: what every store's figure includes. */
function rowBuildCpuMs(): number {
  const cpu = mainThreadCpuMs();
  let sink = 0;
  for (let m = 0; m < MINUTES; m++) {
    for (let t = 0; t < TARGETS; t++) sink += rollupRow(t, m).sketch.length;
  }
  if (sink === 0) throw new Error("no rows built");
  return Math.round(mainThreadCpuMs() - cpu);
}

/** Writes MINUTES minutes of rollups for TARGETS targets, a minute (TARGETS rows) per call. */
async function writeDay(store: Store): Promise<number> {
  const start = performance.now();
  await pipelined(MINUTES, TARGETS, (m) =>
    store.writeRollups(Array.from({ length: TARGETS }, (_, t) => rollupRow(t, m))),
  );
  return (performance.now() - start) / 1000;
}

function fileBytes(dir: string): number {
  let total = 0;
  for (const f of [SQLITE_FILE, `${SQLITE_FILE}-wal`]) {
    try {
      total += statSync(join(dir, f)).size;
    } catch {}
  }
  return total;
}

function vacuumedBytes(dir: string): number {
  const db = new DatabaseSync(join(dir, SQLITE_FILE));
  db.exec("VACUUM");
  db.close();
  return fileBytes(dir);
}

function projection(minuteBytesPerTargetDay: number, hourBytesPerTargetDay: number) {
  const minuteDays = defaultRetention.minuteRollupsMs / DAY_MS;
  const hourDays = defaultRetention.hourRollupsMs / DAY_MS;
  const perTarget = minuteBytesPerTargetDay * minuteDays + hourBytesPerTargetDay * hourDays;
  return {
    retention: `${minuteDays} days of minutes + ${hourDays} days of hours`,
    bytesPerTarget: Math.round(perTarget),
    mibPer1000Targets: round((perTarget * 1000) / 2 ** 20, 1),
  };
}

type SqliteOpener = (opts: SqliteStoreOptions) => Promise<SqliteStore | SqliteThreadStore>;

async function benchSqlite(open: SqliteOpener, label: string, buildCpuMs: number) {
  const root = mkdtempSync(join(tmpdir(), "vigil-bench-store-"));
  try {
    const s1 = await open({ dataDir: join(root, "throughput"), node: "bench-node-1" });
    const tp = await throughput(s1, label);
    await s1.close();

    const dayDir = join(root, "day");
    const empty = await open({ dataDir: dayDir, node: "bench-node-1" });
    await empty.close();
    const emptyBytes = vacuumedBytes(dayDir);
    progress(`${label}: a day of minute rollups, ${TARGETS} targets × ${MINUTES} minutes`);
    const s2 = await open({ dataDir: dayDir, node: "bench-node-1" });
    const write = await loopDelay(() => writeDay(s2));
    await s2.checkpoint();
    await s2.close();
    const minuteBytes = vacuumedBytes(dayDir) - emptyBytes;
    progress(`${label}: compacting to hours`);
    const s3 = await open({ dataDir: dayDir, node: "bench-node-1" });
    const now = T0 + MINUTES * 60_000 + 2 * 3_600_000;
    const untilDone = async (retention: { minuteRollupsMs?: number }) => {
      const start = performance.now();
      let hours = 0;
      let deleted = 0;
      for (;;) {
        const r = await s3.compact(now, retention);
        hours += r.hoursCompacted;
        deleted += r.minuteRowsDeleted;
        if (r.done) return { hours, deleted, seconds: (performance.now() - start) / 1000 };
      }
    };
    // Default retention keeps the day's minutes: this is the rollup alone.
    const compaction = await loopDelay(() => untilDone({}));
    progress(`${label}: deleting the minutes, to measure the hour rows alone`);
    const deletion = await loopDelay(() => untilDone({ minuteRollupsMs: 0 }));
    await s3.close();
    const hourBytes = vacuumedBytes(dayDir) - emptyBytes;
    const daySeconds = write.result;
    const hours = compaction.result.hours;
    const days = MINUTES / 1440;
    const minuteBytesPerTargetDay = Math.round(minuteBytes / TARGETS / days);
    const hourBytesPerTargetDay = Math.round(hourBytes / TARGETS / days);
    return {
      ...tp,
      day: {
        targets: TARGETS,
        minutes: MINUTES,
        rows: TARGETS * MINUTES,
        writeSeconds: round(daySeconds),
        rowsPerSecond: Math.round((TARGETS * MINUTES) / daySeconds),
        writeLoopDelayMsP99: write.loopDelayMsP99,
        writeLoopDelayMsMax: write.loopDelayMsMax,
        writeMainThreadCpuMs: write.mainThreadCpuMs,
        writeMainThreadCpuMsBuildingRows: buildCpuMs,
        writeMainThreadCpuUsPerRowStore: round(
          ((write.mainThreadCpuMs - buildCpuMs) * 1000) / (TARGETS * MINUTES),
        ),
        minuteBytesPerTargetDay,
        minuteBytesPerRow: round(minuteBytes / (TARGETS * MINUTES), 1),
        compactSeconds: round(compaction.result.seconds),
        compactRowsPerSecond: Math.round((TARGETS * MINUTES) / compaction.result.seconds),
        compactLoopDelayMsMax: compaction.loopDelayMsMax,
        compactMainThreadCpuMs: compaction.mainThreadCpuMs,
        hoursCompacted: hours,
        deleteSeconds: round(deletion.result.seconds),
        minuteRowsDeleted: deletion.result.deleted,
        deleteLoopDelayMsMax: deletion.loopDelayMsMax,
        deleteMainThreadCpuMs: deletion.mainThreadCpuMs,
        hourBytesPerTargetDay,
      },
      steadyState: projection(minuteBytesPerTargetDay, hourBytesPerTargetDay),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function benchPostgres(url: string) {
  const schema = `vigil_bench_${process.pid}`;
  const admin = new Pool({ connectionString: url, max: 1 });
  try {
    const s = await openPostgresStore({ url, node: "bench-node-1", schema });
    const tp = await throughput(s);
    await s.close();
    // A smaller day: PostgreSQL's size per row does not depend on the row count.
    const targets = Math.min(TARGETS, 200);
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    const d = await openPostgresStore({ url, node: "bench-node-1", schema });
    progress(`postgres: a day of minute rollups, ${targets} targets × ${MINUTES} minutes`);
    const start = performance.now();
    await pipelined(MINUTES, targets, (m) =>
      d.writeRollups(Array.from({ length: targets }, (_, t) => rollupRow(t, m))),
    );
    const writeSeconds = (performance.now() - start) / 1000;
    await d.close();
    await admin.query(`VACUUM ANALYZE "${schema}".vigil_rollups_minute`);
    const size = await admin.query<{ bytes: string }>(
      `SELECT pg_total_relation_size('"${schema}".vigil_rollups_minute') AS bytes`,
    );
    const bytes = Number(size.rows[0]!.bytes);
    return {
      ...tp,
      day: {
        targets,
        minutes: MINUTES,
        writeSeconds: round(writeSeconds),
        rowsPerSecond: Math.round((targets * MINUTES) / writeSeconds),
        minuteBytesPerTargetDay: Math.round(bytes / targets / (MINUTES / 1440)),
        minuteBytesPerRow: round(bytes / (targets * MINUTES), 1),
      },
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
  }
}

progress(`building a day of rows without a store (${TARGETS} × ${MINUTES}), for this thread's CPU baseline`);
const buildCpuMs = rowBuildCpuMs();
const sqlite = await benchSqlite(openSqliteStore, "sqlite inline", buildCpuMs);
console.log(JSON.stringify({ sqlite }, null, 2));
const sqliteThread = await benchSqlite(openSqliteThreadStore, "sqlite thread", buildCpuMs);
console.log(JSON.stringify({ sqliteThread }, null, 2));
const pgUrl = process.env.VIGIL_TEST_PG;
const postgres = pgUrl ? await benchPostgres(pgUrl) : null;
if (postgres !== null) console.log(JSON.stringify({ postgres }, null, 2));
const path = writeResults("store", {
  machine: { cores: cpus().length },
  notes: [
    `appends of ${ROWS_PER_CALL} rows per call, ${CALLS_IN_FLIGHT} calls in flight, through the batch writer; ack = the call's promise resolving after commit`,
    "sqlite: WAL, synchronous=NORMAL, file in the OS temp dir; sizes after VACUUM, minute rows with 6 samples a minute (10 s interval)",
    "postgres: when VIGIL_TEST_PG is set; test/store/start-postgres.sh runs it with fsync=off, so its throughput is an upper bound",
    "checker throughput with history on vs off: bench/history.ts, bench/results/history.json",
    "sqlite: the store inline, on this thread's event loop (openSqliteStore, or openStore with thread: false); sqliteThread: on its own worker thread (openSqliteThreadStore, what openStore and a node use)",
    "loopDelayMs*: monitorEventLoopDelay (5 ms resolution) of this thread while writing; mainThreadCpu*: process.threadCpuUsage() of this thread, which also builds the rows (writeMainThreadCpuMsBuildingRows, measured alone; *UsPerRowStore is what is left, per row)",
  ],
  sqlite,
  sqliteThread,
  postgres,
});
progress(`wrote ${path}`);
