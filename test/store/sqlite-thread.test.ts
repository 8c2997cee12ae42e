// The SQLite store on its own thread (src/store/sqlite-thread.ts): what the contract suite
// (sqlite.test.ts runs it on this store too) cannot see. Answers equal the inline store's, values
// cross the thread intact, calls run in order, the caller's event loop runs while a batch
// commits, and a thread that dies fails every call clearly instead of hanging or crashing.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { openStore } from "../../src/store/index.ts";
import { LatencySketch } from "../../src/store/sketch.ts";
import {
  openSqliteStore,
  SQLITE_FILE,
  SqliteStore,
  type SqliteStoreOptions,
} from "../../src/store/sqlite.ts";
import { openSqliteThreadStore, SqliteThreadStore } from "../../src/store/sqlite-thread.ts";
import type { LwwRecord, RollupRow, Store, StoredEvent } from "../../src/store/types.ts";
import { isCode } from "./contract.ts";

const root = mkdtempSync(join(tmpdir(), "vigil-store-thread-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => join(root, `d${dirs++}`);

const T0 = Date.UTC(2024, 0, 1);
const MIN = 60_000;

function rollup(target: string, minute: number, sketch: Uint8Array = LatencySketch.of([1, 2, 3]).encode()) {
  return {
    node: "n1",
    pool: "web",
    target,
    minuteStartMs: T0 + minute * MIN,
    count: 3,
    failures: 1,
    latencyMsMin: 1,
    latencyMsMax: 3,
    latencyMsSum: 6,
    sketch,
  } satisfies RollupRow;
}

/** How a call settled, comparable across the two stores. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { value: await p };
  } catch (e) {
    assert.ok(e instanceof Error, String(e));
    return {
      error: e.constructor.name,
      code: e instanceof VigilError ? e.code : undefined,
      message: e.message,
    };
  }
}

/** The thread's death, as every call reports it. */
function died(detail: RegExp) {
  return (e: unknown): boolean => {
    isCode(ErrorCode.store)(e);
    const msg = (e as VigilError).message;
    assert.match(msg, /^the SQLite store thread for .*vigil\.db died \(exit code \d+/);
    assert.match(msg, /the store is unavailable until it is opened again \(restart the node\)$/);
    assert.match(msg, detail);
    return true;
  };
}

/** Collects unhandled rejections while `body` runs (there must be none). */
async function noUnhandledRejections(body: () => Promise<void>): Promise<void> {
  const seen: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on("unhandledRejection", onUnhandled);
  try {
    await body();
    // A rejection nobody handled is reported after the microtasks of its turn: let one pass.
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
  assert.deepEqual(seen, []);
}

describe("SQLite store thread: answers and values", () => {
  it("answers every call as the inline store does, values and refusals alike", async () => {
    const inline = await openSqliteStore({ dataDir: newDir(), node: "n1" });
    const thread = await openSqliteThreadStore({ dataDir: newDir(), node: "n1" });
    try {
      const big = new Uint8Array(1 << 20);
      const encoded = LatencySketch.of([0, 0.5, 7, 12.25, 3_000]).encode();
      big.set(encoded, 4096);
      const steps: [string, (s: Store) => Promise<unknown>][] = [
        [
          "events with every field, explicit undefined, and data the JSON way",
          (s) =>
            s.appendEvents([
              {
                id: "full",
                ts: Number.MAX_SAFE_INTEGER,
                type: "verdict.changed",
                pool: "web",
                target: "[::1]:80",
                node: "n«1»",
                from: "up",
                to: "down",
                cause: "3 failures: connect ECONNREFUSED 🙃",
                data: {
                  observers: ["n1", "n2"],
                  nested: { deep: [1, -0, 1e21, 2 ** 53 - 1, null, true, "\u0000"] },
                  at: new Date(T0),
                  missing: undefined,
                },
              },
              { id: "sparse", ts: 0, type: "pool.created", pool: undefined, target: undefined },
            ]),
        ],
        [
          "data that cannot be cloned: stored as its JSON, as inline",
          (s) =>
            s.appendEvents([
              {
                id: "uncloneable",
                ts: T0,
                type: "x",
                data: { url: new URL("http://10.0.0.1/healthz"), f: () => 1, kept: 1 },
              },
            ]),
        ],
        ["events read back", (s) => s.queryEvents({ limit: 10 })],
        ["events newest first", (s) => s.queryEvents({ limit: 2, order: "desc", pool: "web" })],
        ["a refused event", (s) => s.appendEvents([{ id: "", ts: 1, type: "x" }])],
        [
          "a refused event with uncloneable data",
          (s) => s.appendEvents([{ id: "a", ts: -1, type: "x", data: { f: () => 1 } }]),
        ],
        ["a refused event data", (s) => s.appendEvents([{ id: "a", ts: 1, type: "x", data: { n: 1n } }])],
        ["a refused cursor", (s) => s.queryEvents({ limit: 1, afterCursor: "x" })],
        [
          "rollups: own buffer, pooled Buffer, a view into a large buffer",
          (s) =>
            s.writeRollups([
              rollup("a:80", 0),
              rollup("b:80", 0, Buffer.from(encoded)),
              rollup("c:80", 0, big.subarray(4096, 4096 + encoded.length)),
            ]),
        ],
        ["a refused rollup", (s) => s.writeRollups([rollup("a:80", 1, new Uint8Array([9, 9, 9]))])],
        [
          "rollups read back",
          (s) => s.queryRollups({ pool: "web", target: "c:80", fromMs: 0, toMs: T0 + MIN }),
        ],
        ["compact", (s) => s.compact(T0 + 2 * 3_600_000)],
        [
          "hour rows",
          (s) =>
            s.queryRollups({ pool: "web", target: "b:80", fromMs: 0, toMs: T0 + MIN, resolution: "hour" }),
        ],
        ["meta missing", (s) => s.getMeta("counter")],
        ["meta written", (s) => s.setMeta("counter", "42")],
        ["meta read", (s) => s.getMeta("counter")],
        ["a refused meta", (s) => s.setMeta("counter", 5 as unknown as string)],
        ["doc", (s) => s.putDoc("pool", "web", { targets: ["10.0.0.1:80"], n: null }, "h1")],
        ["doc null", (s) => s.putDoc("pool", "gone", null, "h2")],
        ["doc uncloneable", (s) => s.putDoc("pool", "url", new URL("http://x/"), "h3")],
        ["doc read", (s) => s.getDoc("pool", "web")],
        ["doc missing", (s) => s.getDoc("pool", "nope")],
        ["docs", (s) => s.listDocs("pool")],
        ["a refused doc: bigint", (s) => s.putDoc("pool", "k", { n: 1n }, "h")],
        ["a refused doc: function", (s) => s.putDoc("pool", "k", () => 1, "h")],
        ["a refused doc: symbol", (s) => s.putDoc("pool", "k", Symbol("x"), "h")],
        ["doc deleted", (s) => s.deleteDoc("pool", "gone")],
        [
          "LWW entries",
          (s) =>
            s.putLww([
              {
                kind: "pool",
                key: "web",
                value: { a: [1, { b: "c" }] },
                wallMs: 5,
                logical: 1,
                origin: "n1",
              },
              { kind: "admin", key: "web/x:1", value: null, wallMs: 1, logical: 0, origin: "n2" },
              {
                kind: "pool",
                key: "fn",
                value: { f: () => 1, kept: true },
                wallMs: 1,
                logical: 0,
                origin: "n1",
              },
            ] as LwwRecord[]),
        ],
        [
          "a refused LWW entry: a function value",
          (s) => s.putLww([{ kind: "pool", key: "k", value: () => 1, wallMs: 1, logical: 0, origin: "n1" }]),
        ],
        ["LWW read", (s) => s.listLww()],
        ["LWW pruned", (s) => s.pruneLwwTombstones(2)],
        ["a refused kind", (s) => s.listLww("nope" as "pool")],
        ["flush", (s) => s.flush()],
      ];
      for (const [what, step] of steps) {
        const want = await outcome(step(inline));
        const got = await outcome(step(thread));
        assert.deepEqual(got, want, what);
      }
      // The JSON way, spelled out: what did not clone was stored as its JSON, as inline.
      const stored = (await thread.queryEvents({ limit: 10 })).events.find((e) => e.id === "uncloneable");
      assert.deepEqual(stored?.data, { url: "http://10.0.0.1/healthz", kept: 1 });
      // Sketches come back as plain Uint8Arrays of their own, whatever was written.
      const rows = await thread.queryRollups({ pool: "web", target: "c:80", fromMs: 0, toMs: T0 + MIN });
      assert.equal(Object.getPrototypeOf(rows[0]!.sketch), Uint8Array.prototype);
      assert.deepEqual(rows[0]!.sketch, encoded);
    } finally {
      await inline.close();
      await thread.close();
    }
  });

  it("round-trips any JSON event data, doc and LWW value exactly as the inline store stores it", async () => {
    const inline = await openSqliteStore({ dataDir: newDir(), node: "n1" });
    const thread = await openSqliteThreadStore({ dataDir: newDir(), node: "n1" });
    try {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }), {
            minLength: 1,
            maxLength: 8,
          }),
          fc.jsonValue({ maxDepth: 3 }),
          async (datas, value) => {
            const r = run++;
            const events: StoredEvent[] = datas.map((data, i) => ({
              id: `r${r}-${i}`,
              ts: i,
              type: "x",
              data,
            }));
            const doc = (s: Store) => s.putDoc("ns", `r${r}`, value, "h");
            const lww = (s: Store) =>
              s.putLww([{ kind: "pool", key: `r${r}`, value, wallMs: 1, logical: 0, origin: "n1" }]);
            for (const s of [inline, thread]) {
              await outcome(s.appendEvents(events));
              await outcome(doc(s));
              await outcome(lww(s));
            }
            const read = async (s: Store) => ({
              events: await s.queryEvents({ limit: 1000, types: ["x"], fromMs: 0 }),
              doc: await outcome(s.getDoc("ns", `r${r}`)),
              lww: (await s.listLww("pool")).filter((x) => x.key === `r${r}`),
            });
            assert.deepEqual(await read(thread), await read(inline));
          },
        ),
        { numRuns: 60, seed: 2024 },
      );
    } finally {
      await inline.close();
      await thread.close();
    }
  });

  it("is what openStore opens for SQLite, unless thread: false; and forwards the inline store's extras", async () => {
    const dir = newDir();
    const threaded = await openStore({ node: "n1", dataDir: dir });
    assert.ok(threaded instanceof SqliteThreadStore);
    assert.equal(threaded.kind, "sqlite");
    assert.equal(threaded.node, "n1");
    assert.equal(threaded.file, join(dir, SQLITE_FILE));
    await threaded.appendEvents(Array.from({ length: 500 }, (_, i) => ({ id: `e${i}`, ts: i, type: "x" })));
    assert.deepEqual(await threaded.integrityCheck(), ["ok"]);
    const r = await threaded.checkpointNow();
    assert.equal(r.checkpointed, r.log);
    await threaded.checkpoint();
    await threaded.close();
    const inline = await openStore({ node: "n1", dataDir: dir, thread: false });
    assert.ok(inline instanceof SqliteStore);
    assert.equal((await inline.queryEvents({ limit: 1000 })).events.length, 500);
    await inline.close();
  });

  it("refuses to open with the inline store's errors, and leaves no thread behind", async () => {
    const file = join(newDir(), "a-file");
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, "not a directory");
    const bad: SqliteStoreOptions[] = [
      { dataDir: join(file, "sub"), node: "n1" },
      { dataDir: file, node: "n1" },
      { dataDir: newDir(), node: "" },
    ];
    for (const opts of bad) {
      const want = await outcome(openSqliteStore(opts));
      assert.equal((want as { code: string }).code, ErrorCode.store);
      assert.deepEqual(await outcome(openSqliteThreadStore(opts)), want);
    }
    // A thread left running would keep this test file's process from exiting.
  });
});

describe("SQLite store thread: order", () => {
  it("runs calls in the order they were made, however many are in flight", async () => {
    const s = await openSqliteThreadStore({ dataDir: newDir(), node: "n1" });
    try {
      // Writes and reads interleaved, none awaited: each read sees the write just before it.
      const reads: Promise<string | undefined>[] = [];
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        writes.push(s.setMeta("k", String(i)));
        reads.push(s.getMeta("k"));
      }
      await Promise.all(writes);
      assert.deepEqual(
        await Promise.all(reads),
        reads.map((_, i) => String(i)),
      );
      // Appends commit in call order, so cursors follow the calls; a put then a list sees the put.
      const calls = Array.from({ length: 200 }, (_, c) =>
        s.appendEvents(
          Array.from({ length: 1 + (c % 7) }, (_, i) => ({ id: `c${c}-${i}`, ts: c, type: "x" })),
        ),
      );
      const lists = Array.from({ length: 50 }, (_, k) => {
        void s.putLww([{ kind: "pool", key: `k${k}`, value: { k }, wallMs: 1, logical: 0, origin: "n1" }]);
        return s.listLww("pool");
      });
      await Promise.all(calls);
      const seen = (await Promise.all(lists)).map((l) => l.length);
      assert.deepEqual(
        seen,
        seen.map((_, k) => k + 1),
      );
      const events = (await s.queryEvents({ limit: 1000 })).events;
      assert.equal(
        events.length,
        calls.reduce((n, _, c) => n + 1 + (c % 7), 0),
      );
      const order = events.map((e) => e.ts);
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
      );
    } finally {
      await s.close();
    }
  });
});

/**
 * Takes SQLite's write lock from another connection, writes 2,000 rollup rows (one full batch:
 * it commits at once), and releases the lock from a callback of this thread's event loop. The
 * order of what happened is asserted, never a duration: the callback must run while the write is
 * in flight. Inline, the commit runs on this thread and blocks it until the busy timeout fails
 * the write, so the callback can only run after it: the same test fails there.
 */
async function loopRunsWhileBatchCommits(open: (opts: SqliteStoreOptions) => Promise<Store>): Promise<void> {
  const dir = newDir();
  const s = await open({ dataDir: dir, node: "n1", busyTimeoutMs: 2_000 });
  const lock = new DatabaseSync(join(dir, SQLITE_FILE));
  try {
    const rows = Array.from({ length: 2_000 }, (_, t) => rollup(`10.0.${t >> 8}.${t & 255}:80`, 0));
    lock.exec("BEGIN IMMEDIATE");
    const order: string[] = [];
    const write = s.writeRollups(rows).then(
      () => order.push("write committed"),
      (e: Error) => order.push(`write failed: ${e.message}`),
    );
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        order.push("event loop ran");
        lock.exec("ROLLBACK");
        resolve();
      }),
    );
    await write;
    assert.deepEqual(order, ["event loop ran", "write committed"]);
    const got = await s.queryRollups({ pool: "web", target: "10.0.7.207:80", fromMs: 0, toMs: T0 + MIN });
    assert.equal(got.length, 1);
  } finally {
    if (lock.isTransaction) lock.exec("ROLLBACK");
    lock.close();
    await s.close();
  }
}

describe("SQLite store thread: the caller's event loop", () => {
  it("runs while a 2,000-row batch commits", async () => {
    await loopRunsWhileBatchCommits(openSqliteThreadStore);
  });

  it("(the same test fails on the inline store, whose commit holds the loop)", async () => {
    await assert.rejects(loopRunsWhileBatchCommits(openSqliteStore), (e: unknown) => {
      assert.ok(e instanceof assert.AssertionError);
      assert.match(e.message, /write failed: .*database is locked/);
      return true;
    });
  });
});

describe("SQLite store thread: failures and close", () => {
  for (const how of ["terminated", "crashed"] as const) {
    // A timeout, so that a call left waiting fails the test instead of hanging the run.
    it(
      `rejects pending and later calls when the thread is ${how}, and the database is intact`,
      {
        timeout: 30_000,
      },
      async () => {
        const dir = newDir();
        // Appends wait in the thread's batch writer (a minute, a hundred thousand rows) until it dies.
        const s = await openSqliteThreadStore({
          dataDir: dir,
          node: "n1",
          batch: { flushIntervalMs: 60_000, flushRows: 100_000 },
        });
        const detail = how === "crashed" ? /: crash requested by a test\)/ : /\(exit code 1\)/;
        await noUnhandledRejections(async () => {
          await s.setMeta("k", "before");
          const events = s.appendEvents([{ id: "queued", ts: 1, type: "x" }]);
          const rollups = s.writeRollups([rollup("a:80", 0)]);
          // Answered after both appends arrived: they are queued in the thread now.
          assert.equal(await s.getMeta("k"), "before");
          if (how === "terminated") await s.terminateThreadForTest();
          else s.crashThreadForTest();
          await assert.rejects(events, died(detail));
          await assert.rejects(rollups, died(detail));
          await assert.rejects(s.getMeta("k"), died(detail));
          await assert.rejects(s.flush(), died(detail));
          // Calls made and not awaited, then dropped: rejected all the same, and handled by nobody
          // but the test's own catch.
          await Promise.allSettled([s.queryEvents({ limit: 1 }), s.compact(T0)]);
          assert.notEqual(s.threadExitCode, undefined);
          await s.close();
          await s.close();
          await assert.rejects(s.getMeta("k"), isCode(ErrorCode.store));
        });
        const again = await openSqliteStore({ dataDir: dir, node: "n1" });
        try {
          assert.deepEqual(again.integrityCheck(), ["ok"]);
          assert.equal(await again.getMeta("k"), "before");
          assert.deepEqual((await again.queryEvents({ limit: 10 })).events, [], "never acknowledged");
        } finally {
          await again.close();
        }
      },
    );
  }

  it("flush() resolves once what was written before it is committed and visible to others", async () => {
    const dir = newDir();
    const s = await openSqliteThreadStore({ dataDir: dir, node: "n1", batch: { flushIntervalMs: 60_000 } });
    try {
      const acks = [
        s.appendEvents([{ id: "a", ts: 1, type: "x" }]),
        s.writeRollups([rollup("a:80", 0)]),
        s.appendEvents([{ id: "b", ts: 2, type: "x" }]),
      ];
      await s.flush();
      const other = new DatabaseSync(join(dir, SQLITE_FILE), { readOnly: true });
      try {
        const ids = other.prepare("SELECT id FROM events ORDER BY seq").all();
        assert.deepEqual(
          ids.map((r) => r.id),
          ["a", "b"],
        );
        assert.equal(other.prepare("SELECT count(*) AS n FROM rollups_minute").get()?.n, 1);
      } finally {
        other.close();
      }
      await Promise.all(acks);
    } finally {
      await s.close();
    }
  });

  it("close() answers the calls made before it, commits what was queued, and resolves once the thread has exited", async () => {
    const dir = newDir();
    const s = await openSqliteThreadStore({ dataDir: dir, node: "n1", batch: { flushIntervalMs: 60_000 } });
    const queued = s.appendEvents([{ id: "queued", ts: 1, type: "x" }]);
    const meta = s.getMeta("k");
    const compacting = s.compact(T0);
    const closing = s.close();
    await assert.rejects(s.appendEvents([{ id: "late", ts: 1, type: "x" }]), isCode(ErrorCode.store));
    await assert.rejects(s.flush(), /store is closed/);
    await queued;
    assert.equal(await meta, undefined);
    assert.equal((await compacting).done, true);
    assert.equal(s.threadExitCode, undefined, "the thread is still closing");
    await closing;
    assert.equal(s.threadExitCode, 0);
    assert.equal(await s.close(), undefined);
    const again = await openSqliteThreadStore({ dataDir: dir, node: "n1" });
    try {
      assert.deepEqual(
        (await again.queryEvents({ limit: 10 })).events.map((e) => e.id),
        ["queued"],
      );
    } finally {
      await again.close();
    }
  });
});
