import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ErrorCode, type VigilError } from "../../src/core/errors.ts";
import {
  openSqliteStore,
  SQLITE_FILE,
  SQLITE_SCHEMA_VERSION,
  sqliteEventsSelect,
} from "../../src/store/sqlite.ts";
import { openSqliteThreadStore } from "../../src/store/sqlite-thread.ts";
import type { EventQuery } from "../../src/store/types.ts";
import { normalizeEventQuery } from "../../src/store/validate.ts";
import { isCode, runStoreContract, type StoreHarness } from "./contract.ts";

const root = mkdtempSync(join(tmpdir(), "vigil-store-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => join(root, `d${dirs++}`);

// The same contract inline (on the caller's thread) and on the store's own thread (the default).
for (const [name, openStore] of [
  ["sqlite", openSqliteStore],
  ["sqlite on its own thread", openSqliteThreadStore],
] as const) {
  runStoreContract(name, async (): Promise<StoreHarness> => {
    let dir = newDir();
    return {
      fresh: async () => {
        dir = newDir();
      },
      open: (node, opts) => openStore({ dataDir: dir, node, ...(opts?.batch ? { batch: opts.batch } : {}) }),
      cleanup: async () => {},
    };
  });
}

function storeError(pattern: RegExp) {
  return (e: unknown): boolean => {
    isCode(ErrorCode.store)(e);
    assert.match((e as VigilError).message, pattern);
    return true;
  };
}

/** EXPLAIN QUERY PLAN of the statement queryEvents runs for `q`, its steps joined by " | ". */
function queryPlan(db: DatabaseSync, q: EventQuery): string {
  const { sql, params } = sqliteEventsSelect(normalizeEventQuery(q));
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
    .map((r) => r.detail)
    .join(" | ");
}

describe("SQLite store: opening", () => {
  it("creates data_dir and the database in WAL mode at the current schema version", async () => {
    const dir = join(newDir(), "nested", "deeper");
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.appendEvents([{ id: "a", ts: 1, type: "x" }]);
    await s.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    assert.equal((db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode, "wal");
    assert.equal(
      (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      SQLITE_SCHEMA_VERSION,
    );
    db.close();
  });

  it("reports a data_dir that cannot be created or is not a directory, without crashing", async () => {
    const base = newDir();
    const s = await openSqliteStore({ dataDir: base, node: "n1" });
    await s.close();
    const file = join(base, "a-file");
    writeFileSync(file, "not a directory");
    // Tests run as root, which may write anywhere: a path under a regular file is unwritable for all.
    await assert.rejects(
      openSqliteStore({ dataDir: join(file, "sub"), node: "n1" }),
      storeError(new RegExp(`^data_dir ${join(file, "sub")} is not writable: ENOTDIR$`)),
    );
    await assert.rejects(
      openSqliteStore({ dataDir: file, node: "n1" }),
      storeError(/^data_dir .*a-file is not a directory$/),
    );
    await assert.rejects(openSqliteStore({ dataDir: base, node: "" }), isCode(ErrorCode.store));
  });

  it("refuses a database file of junk bytes with a clear message", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.close();
    const file = join(dir, SQLITE_FILE);
    writeFileSync(file, Buffer.alloc(8192, "junk! "));
    await assert.rejects(
      openSqliteStore({ dataDir: dir, node: "n1" }),
      storeError(new RegExp(`^database ${file} is corrupt: file is not a database`)),
    );
  });

  it("refuses a database whose pages are damaged (quick_check at open)", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    const pad = "p".repeat(300);
    for (let b = 0; b < 20; b++) {
      await s.appendEvents(
        Array.from({ length: 50 }, (_, i) => ({ id: `e${b}-${i}`, ts: i, type: "x", cause: pad })),
      );
    }
    await s.close();
    const file = join(dir, SQLITE_FILE);
    const size = statSync(file).size;
    assert.ok(size > 64 * 1024, `database is ${size} bytes`);
    // Scribble over pages in the middle of the file (past the header and schema on page 1).
    const fd = openSync(file, "r+");
    const junk = Buffer.alloc(4096 * 4);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    writeSync(fd, junk, 0, junk.length, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    await assert.rejects(openSqliteStore({ dataDir: dir, node: "n1" }), storeError(/is corrupt: /));
  });

  it("refuses a database written by a newer schema", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    db.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    await assert.rejects(
      openSqliteStore({ dataDir: dir, node: "n1" }),
      storeError(/newer than this Vigil's/),
    );
  });

  it("migrates a schema-1 database (before the LWW table) in place, keeping what it holds", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.appendEvents([{ id: "kept", ts: 1, type: "x" }]);
    await s.setMeta("observation_counter", "42");
    await s.close();
    // What a Vigil of schema 1 left behind: no lww table, no (pool, seq) index, user_version 1.
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    db.exec("DROP TABLE lww; DROP INDEX events_pool_seq; PRAGMA user_version = 1");
    db.close();
    const again = await openSqliteStore({ dataDir: dir, node: "n1" });
    assert.equal((await again.queryEvents({ limit: 10 })).events[0]?.id, "kept");
    assert.equal(await again.getMeta("observation_counter"), "42");
    const rec = { kind: "pool" as const, key: "web", value: { a: 1 }, wallMs: 1, logical: 0, origin: "n1" };
    assert.equal(await again.putLww([rec]), 1);
    assert.deepEqual(await again.listLww(), [rec]);
    await again.close();
    const check = new DatabaseSync(join(dir, SQLITE_FILE));
    assert.equal(
      (check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      SQLITE_SCHEMA_VERSION,
    );
    check.close();
  });

  it("migrates a schema-2 database (before the (pool, seq) index): same events and answers, pool pages from the index", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.appendEvents(
      Array.from({ length: 300 }, (_, i) => ({
        id: `e${i}`,
        ts: 1_000 + i,
        type: i % 4 === 0 ? "verdict.changed" : "observation.changed",
        pool: `p${i % 3}`,
        target: `10.0.0.${i % 7}:80`,
      })),
    );
    await s.close();
    // What a Vigil of schema 2 left behind: no events_pool_seq, user_version 2. Its answers, read
    // with the statements queryEvents runs, are what the migrated file must answer.
    const file = join(dir, SQLITE_FILE);
    const old = new DatabaseSync(file);
    old.exec("DROP INDEX events_pool_seq; PRAGMA user_version = 2");
    const shapes: EventQuery[] = [
      { pool: "p1", order: "desc", limit: 10 },
      { pool: "p1", order: "asc", limit: 10 },
      { pool: "p2", order: "desc", beforeCursor: "200", limit: 1000 },
      { pool: "p0", types: ["verdict.changed"], order: "desc", limit: 7 },
      { pool: "p0", target: "10.0.0.3:80", order: "desc", limit: 5 },
      { pool: "nope", order: "desc", limit: 10 },
      { order: "desc", limit: 10 },
    ];
    const answers = shapes.map((q) => {
      const { sql, params } = sqliteEventsSelect(normalizeEventQuery(q));
      return (old.prepare(sql).all(...params) as { id: string }[]).map((r) => r.id);
    });
    const poolDesc = { pool: "p1", order: "desc" as const, limit: 10 };
    assert.match(queryPlan(old, poolDesc), /events_pool_target \(pool=\?\).*TEMP B-TREE FOR ORDER BY/);
    old.close();

    const again = await openSqliteStore({ dataDir: dir, node: "n1" });
    for (const [i, q] of shapes.entries()) {
      const got = (await again.queryEvents(q)).events.map((e) => e.id);
      assert.deepEqual(got, answers[i], JSON.stringify(q));
    }
    assert.equal((await again.queryEvents({ limit: 1000 })).events.length, 300);
    await again.close();

    const check = new DatabaseSync(file, { readOnly: true });
    assert.equal(
      (check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
      SQLITE_SCHEMA_VERSION,
    );
    const indexes = (check.prepare("PRAGMA index_list(events)").all() as { name: string }[]).map(
      (r) => r.name,
    );
    assert.ok(indexes.includes("events_pool_seq"), indexes.join(", "));
    assert.deepEqual(
      (check.prepare("PRAGMA index_info(events_pool_seq)").all() as { name: string }[]).map((r) => r.name),
      ["pool", "seq"],
    );
    assert.equal(queryPlan(check, poolDesc), "SEARCH events USING INDEX events_pool_seq (pool=? AND seq>?)");
    check.close();
  });

  it("leaves out an LWW row whose value is not JSON (a file edited by hand) instead of failing", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    const rec = { kind: "pool" as const, key: "web", value: { a: 1 }, wallMs: 1, logical: 0, origin: "n1" };
    await s.putLww([rec, { ...rec, key: "bad" }, { ...rec, key: "nulled" }]);
    await s.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    db.exec(
      `UPDATE lww SET value = '{"a":' WHERE key = 'bad'; UPDATE lww SET value = 'null' WHERE key = 'nulled'`,
    );
    db.close();
    const again = await openSqliteStore({ dataDir: dir, node: "n1" });
    assert.deepEqual(await again.listLww(), [rec]);
    await again.close();
  });

  it("passes integrity_check after ordinary use, with synchronous=full too", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1", synchronous: "full" });
    await s.appendEvents(Array.from({ length: 100 }, (_, i) => ({ id: `e${i}`, ts: i, type: "x" })));
    await s.setMeta("k", "v");
    assert.deepEqual(s.integrityCheck(), ["ok"]);
    await s.close();
  });
});

describe("SQLite store: event query plans", () => {
  it("pages newest first on the same index as oldest first, never sorting what the index orders", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1" });
    await s.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE), { readOnly: true });
    const plan = (q: EventQuery): string => queryPlan(db, q);
    // [filters, whether an index gives the order]: a closed time range (the ts index) sorts what
    // it selects, in either order alike. A target alone walks the rowid and filters: no index
    // leads with target (docs/storage.md).
    const shapes: [Omit<EventQuery, "limit">, boolean][] = [
      [{}, true],
      [{ afterCursor: "5", beforeCursor: "90" }, true],
      [{ pool: "web" }, true],
      [{ pool: "web", beforeCursor: "90" }, true],
      [{ pool: "web", types: ["verdict.changed"] }, true],
      [{ pool: "web", target: "10.0.0.1:80" }, true],
      [{ pool: "web", target: "10.0.0.1:80", beforeCursor: "90" }, true],
      [{ target: "10.0.0.1:80" }, true],
      [{ types: ["verdict.changed"] }, true],
      [{ fromMs: 1, toMs: 2 }, false],
      [{ fromMs: 1 }, true],
    ];
    for (const [shape, ordered] of shapes) {
      const desc = plan({ ...shape, order: "desc", limit: 100 });
      assert.equal(desc, plan({ ...shape, order: "asc", limit: 100 }), JSON.stringify(shape));
      assert.equal(/TEMP B-TREE FOR ORDER BY/.test(desc), !ordered, `${JSON.stringify(shape)}: ${desc}`);
    }
    assert.match(plan({ order: "desc", limit: 100 }), /USING INTEGER PRIMARY KEY/);
    assert.match(
      plan({ pool: "web", order: "desc", beforeCursor: "90", limit: 100 }),
      /USING INDEX events_pool_seq \(pool=\? AND seq>\? AND seq<\?\)/,
    );
    assert.match(plan({ target: "10.0.0.1:80", order: "desc", limit: 100 }), /USING INTEGER PRIMARY KEY/);
    assert.match(
      plan({ pool: "web", target: "10.0.0.1:80", order: "desc", beforeCursor: "90", limit: 100 }),
      /USING INDEX events_pool_target \(pool=\? AND target=\? AND seq>\? AND seq<\?\)/,
    );
    db.close();
  });
});

describe("SQLite store: WAL checkpoints", () => {
  it("checkpoints on a worker thread, so commits never do", async () => {
    const s = await openSqliteStore({ dataDir: newDir(), node: "n1" });
    try {
      assert.equal(s.checkpointMode, "thread");
      const pad = "p".repeat(1000);
      for (let b = 0; b < 10; b++) {
        await s.appendEvents(
          Array.from({ length: 500 }, (_, i) => ({ id: `e${b}-${i}`, ts: i, type: "x", cause: pad })),
        );
      }
      // ~5 MB written, past SQLite's 1000-page autocheckpoint: had a commit checkpointed, the
      // thread would find (nearly) nothing left to do.
      const r = await s.checkpointNow();
      assert.ok(r.log > 1000, `WAL holds ${r.log} frames`);
      assert.equal(r.checkpointed, r.log);
      assert.deepEqual(s.integrityCheck(), ["ok"]);
    } finally {
      await s.close();
    }
  });

  it("hands checkpoints back to SQLite when the thread dies, and when it is off", async () => {
    const s = await openSqliteStore({ dataDir: newDir(), node: "n1" });
    await s.killCheckpointerForTest();
    assert.equal(s.checkpointMode, "inline");
    const pad = "p".repeat(1000);
    for (let b = 0; b < 10; b++) {
      await s.appendEvents(
        Array.from({ length: 500 }, (_, i) => ({ id: `e${b}-${i}`, ts: i, type: "x", cause: pad })),
      );
    }
    const r = await s.checkpointNow();
    assert.ok(r.log >= 0 && r.log < 1100, `autocheckpoint keeps the WAL short: ${r.log} frames`);
    await s.close();
    const off = await openSqliteStore({ dataDir: newDir(), node: "n1", checkpointThread: false });
    assert.equal(off.checkpointMode, "inline");
    await off.close();
  });
});

describe("SQLite store: crash safety", () => {
  for (const mode of ["inline", "thread"] as const) {
    it(
      `keeps every acknowledged batch when the writer is SIGKILLed mid-write (${mode})`,
      { timeout: 30_000 },
      async () => {
        const dir = newDir();
        const script = fileURLToPath(new URL("./crash-writer.ts", import.meta.url));
        const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", script, dir, mode], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        child.stderr.on("data", (d) => {
          err += d;
        });
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          child.on("exit", (_code, signal) => resolve(signal)),
        );
        const ACKS_BEFORE_KILL = 60;
        await new Promise<void>((resolve, reject) => {
          child.stdout.on("data", (d) => {
            out += d;
            if ((out.match(/^ack /gm) ?? []).length >= ACKS_BEFORE_KILL) {
              child.kill("SIGKILL");
              resolve();
            }
          });
          child.on("exit", () => reject(new Error(`writer exited early\n${out}\n${err}`)));
        });
        assert.equal(await exited, "SIGKILL");

        // Only whole lines count: a line cut by the kill was not a complete acknowledgement.
        const acked = [...out.matchAll(/^ack (\d+) (\S+)\n/gm)].map((m) => Number(m[1]));
        assert.ok(acked.length >= ACKS_BEFORE_KILL);

        const s = await openSqliteStore({ dataDir: dir, node: "check" });
        try {
          assert.deepEqual(s.integrityCheck(), ["ok"]);
          const ids = new Set<string>();
          let cursor: string | undefined;
          for (;;) {
            const page = await s.queryEvents({
              limit: 1000,
              ...(cursor === undefined ? {} : { afterCursor: cursor }),
            });
            for (const e of page.events) ids.add(e.id);
            if (page.events.length < 1000) break;
            cursor = page.nextCursor;
          }
          for (const b of acked) {
            for (let i = 0; i < 25; i++)
              assert.ok(ids.has(`b${b}-e${i}`), `acknowledged event b${b}-e${i} lost`);
            const rows = await s.queryRollups({
              pool: "p",
              target: `t${b % 7}`,
              fromMs: b * 60_000,
              toMs: b * 60_000 + 1,
            });
            assert.equal(rows.length, 1, `acknowledged rollup of batch ${b} lost`);
            assert.equal(rows[0]!.count, 3);
          }
          // Still a working store after the crash.
          await s.appendEvents([{ id: "after-crash", ts: 1, type: "x" }]);
        } finally {
          await s.close();
        }
      },
    );
  }
});

describe("SQLite store: failed writes", () => {
  it("rejects a batch that cannot commit with VIGIL_ERR_STORE, and recovers", async () => {
    const dir = newDir();
    const s = await openSqliteStore({ dataDir: dir, node: "n1", busyTimeoutMs: 20 });
    const other = new DatabaseSync(join(dir, SQLITE_FILE));
    other.exec("BEGIN IMMEDIATE"); // another writer holds the lock past our busy timeout
    await assert.rejects(
      s.appendEvents([{ id: "blocked", ts: 1, type: "x" }]),
      storeError(/^write to .*vigil\.db failed: database is locked/),
    );
    await assert.rejects(s.setMeta("k", "v"), storeError(/database is locked/));
    other.exec("ROLLBACK");
    other.close();
    await s.appendEvents([{ id: "after", ts: 1, type: "x" }]);
    await s.setMeta("k", "v");
    assert.deepEqual(
      (await s.queryEvents({ limit: 10 })).events.map((e) => e.id),
      ["after"],
    );
    await s.close();
  });
});
