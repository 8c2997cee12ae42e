// Runs the Store contract on PostgreSQL when VIGIL_TEST_PG names a database
// (test/store/start-postgres.sh starts a throwaway one and prints its URL). Under CI a missing
// VIGIL_TEST_PG is a failure, not a skip: the shared store must not go untested by accident.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Pool } from "pg";
import { ErrorCode, type VigilError } from "../../src/core/errors.ts";
import {
  openPostgresStore,
  POSTGRES_SCHEMA_VERSION,
  type PostgresStore,
  postgresEventsSelect,
  redactUrl,
} from "../../src/store/postgres.ts";
import { LatencySketch } from "../../src/store/sketch.ts";
import type { EventQuery, LwwRecord, RollupRow, StoredEvent } from "../../src/store/types.ts";
import { normalizeEventQuery } from "../../src/store/validate.ts";
import { isCode, runStoreContract, type StoreHarness } from "./contract.ts";

const url = process.env.VIGIL_TEST_PG ?? "";
const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);

describe("PostgreSQL store: connecting", () => {
  it("reports an unreachable server as VIGIL_ERR_STORE without the password", async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const bad = "postgres://vigil:s3cret@127.0.0.1:1/vigil";
    await assert.rejects(openPostgresStore({ url: bad, node: "n1" }), (e: unknown) => {
      isCode(ErrorCode.store)(e);
      const msg = (e as VigilError).message;
      assert.match(
        msg,
        /^cannot open PostgreSQL postgres:\/\/vigil:\*\*\*@127\.0\.0\.1:1\/vigil: .*ECONNREFUSED/,
      );
      assert.doesNotMatch(msg, /s3cret/);
      return true;
    });
    assert.equal(redactUrl("not a url"), "(unparseable PostgreSQL URL)");
  });

  it("refuses bad options before connecting", async () => {
    await assert.rejects(openPostgresStore({ node: "n1" }), isCode(ErrorCode.store));
    await assert.rejects(
      openPostgresStore({ url: "postgres://x@127.0.0.1:1/x", node: "" }),
      isCode(ErrorCode.store),
    );
    await assert.rejects(
      openPostgresStore({ url: "postgres://x@127.0.0.1:1/x", node: "n1", schema: "Robert'); DROP TABLE" }),
      isCode(ErrorCode.store),
    );
  });
});

if (url === "") {
  if (process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false") {
    it("PostgreSQL store contract", () => {
      assert.fail(
        "CI is set but VIGIL_TEST_PG is not: run `export VIGIL_TEST_PG=$(test/store/start-postgres.sh)`",
      );
    });
  } else {
    it(
      "PostgreSQL store contract",
      { skip: "set VIGIL_TEST_PG (see test/store/start-postgres.sh)" },
      () => {},
    );
  }
} else {
  const admin = new Pool({ connectionString: url, max: 2 });
  const schemas: string[] = [];
  let n = 0;
  const newSchema = (): string => {
    const s = `vigil_t${process.pid}_${n++}`;
    schemas.push(s);
    return s;
  };
  after(async () => {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await admin.end();
  });

  runStoreContract("postgres", async (): Promise<StoreHarness> => {
    let schema = newSchema();
    return {
      fresh: async () => {
        schema = newSchema();
      },
      open: (node, opts) =>
        openPostgresStore({ url, node, schema, ...(opts?.batch ? { batch: opts.batch } : {}) }),
      cleanup: async () => {},
    };
  });

  describe("PostgreSQL store: several nodes on one database", () => {
    const stores: PostgresStore[] = [];
    after(async () => {
      for (const s of stores.splice(0)) await s.close();
    });
    /** EXPLAIN of the statement queryEvents runs for `q`, its lines joined by " | ". */
    const planOf = async (schema: string, q: EventQuery): Promise<string> => {
      const { sql, params } = postgresEventsSelect(`"${schema}"`, normalizeEventQuery(q));
      const r = await admin.query<{ "QUERY PLAN": string }>(`EXPLAIN (COSTS OFF) ${sql}`, params);
      return r.rows.map((x) => x["QUERY PLAN"].trim()).join(" | ");
    };
    const openAll = async (schema: string, count: number) => {
      const opened = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          openPostgresStore({ url, node: `n${i}`, schema, batch: { flushIntervalMs: 1 } }),
        ),
      );
      stores.push(...opened);
      return opened;
    };

    it("three nodes starting together create the schema once", async () => {
      const schema = newSchema();
      const [a, b, c] = await openAll(schema, 3);
      const v = await admin.query(`SELECT version FROM "${schema}".vigil_schema`);
      assert.deepEqual(v.rows, [{ version: POSTGRES_SCHEMA_VERSION }]);
      for (const s of [a!, b!, c!]) await s.appendEvents([{ id: "same", ts: 1, type: "x" }]);
      assert.equal((await a!.queryEvents({ limit: 10 })).events.length, 1);
    });

    it("a reader tailing by cursor sees every event of concurrent writers exactly once", async () => {
      const schema = newSchema();
      const writers = await openAll(schema, 3);
      const [reader] = await openAll(schema, 1);
      const seen: string[] = [];
      let cursor: string | undefined;
      let writing = true;
      const tail = (async () => {
        for (;;) {
          const stop = !writing;
          const page = await reader!.queryEvents({
            limit: 1000,
            ...(cursor === undefined ? {} : { afterCursor: cursor }),
          });
          seen.push(...page.events.map((e) => e.id));
          cursor = page.nextCursor;
          if (stop && page.events.length === 0) return;
        }
      })();
      await Promise.all(
        writers.map(async (w, wi) => {
          for (let b = 0; b < 30; b++) {
            const events: StoredEvent[] = Array.from({ length: 10 }, (_, i) => ({
              id: `w${wi}-${b}-${i}`,
              ts: b,
              type: "x",
            }));
            await w.appendEvents(events);
          }
        }),
      );
      writing = false;
      await tail;
      assert.equal(seen.length, 3 * 30 * 10);
      assert.equal(new Set(seen).size, seen.length);
    });

    it("migrates a schema-1 database (before the LWW table) in place", async () => {
      const schema = newSchema();
      const [a] = await openAll(schema, 1);
      await a!.appendEvents([{ id: "kept", ts: 1, type: "x" }]);
      await admin.query(
        `DROP TABLE "${schema}".vigil_lww; DROP INDEX "${schema}".vigil_events_pool_seq;
         UPDATE "${schema}".vigil_schema SET version = 1`,
      );
      const [b] = await openAll(schema, 1);
      const v = await admin.query(`SELECT version FROM "${schema}".vigil_schema`);
      assert.deepEqual(v.rows, [{ version: POSTGRES_SCHEMA_VERSION }]);
      assert.equal((await b!.queryEvents({ limit: 10 })).events[0]?.id, "kept");
      const rec: LwwRecord = {
        kind: "admin",
        key: "web/a:80",
        value: { state: "maint" },
        wallMs: 1,
        logical: 0,
        origin: "n1",
      };
      assert.equal(await b!.putLww([rec]), 1);
      assert.deepEqual(await a!.listLww(), [rec]);
    });

    it("migrates a schema-2 database (before the (pool, seq) index): same answers, pool pages from the index", async () => {
      const schema = newSchema();
      const [a] = await openAll(schema, 1);
      await a!.flush();
      // Pool "old" holds 1% of the rows, all of them among the oldest: walking the primary key
      // from the newest end and filtering (what the planner picks without the index) reads
      // nearly the whole table to find them.
      await admin.query(
        `INSERT INTO "${schema}".vigil_events (id, ts, type, pool, target)
         SELECT 'e' || i, i, (ARRAY['verdict.changed', 'observation.changed'])[1 + i % 2],
                CASE WHEN i <= 2000 AND i % 10 = 1 THEN 'old' ELSE 'p' || (i % 4) END, (i % 20) || ':80'
         FROM generate_series(1, 20000) i;
         ANALYZE "${schema}".vigil_events`,
      );
      await admin.query(
        `DROP INDEX "${schema}".vigil_events_pool_seq; UPDATE "${schema}".vigil_schema SET version = 2`,
      );
      const shapes: EventQuery[] = [
        { pool: "old", order: "desc", limit: 10 },
        { pool: "old", order: "asc", limit: 10 },
        { pool: "p1", order: "desc", beforeCursor: "15000", limit: 50 },
        { pool: "p2", types: ["verdict.changed"], order: "desc", limit: 7 },
        { pool: "p0", target: "4:80", order: "desc", limit: 5 },
        { pool: "nope", order: "desc", limit: 10 },
      ];
      const answers = [];
      for (const q of shapes) answers.push(await a!.queryEvents(q));
      const oldDesc = { pool: "old", order: "desc" as const, limit: 10 };
      assert.match(
        await planOf(schema, oldDesc),
        /Index Scan Backward using vigil_events_pkey .*Filter: \(pool = 'old'::text\)/,
      );

      const [b] = await openAll(schema, 1);
      const v = await admin.query(`SELECT version FROM "${schema}".vigil_schema`);
      assert.deepEqual(v.rows, [{ version: POSTGRES_SCHEMA_VERSION }]);
      const idx = await admin.query<{ indexdef: string }>(
        `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'vigil_events_pool_seq'`,
        [schema],
      );
      assert.match(idx.rows[0]?.indexdef ?? "", /\(pool, seq\)$/);
      for (const [i, q] of shapes.entries())
        assert.deepEqual(await b!.queryEvents(q), answers[i], JSON.stringify(q));
      const plan = await planOf(schema, oldDesc);
      assert.match(plan, /Index Scan Backward using vigil_events_pool_seq/);
      assert.doesNotMatch(plan, /Sort/);
    });

    it("nodes upserting the same LWW entries at once keep the newest stamp of each", async () => {
      const schema = newSchema();
      const nodes = await openAll(schema, 3);
      const keys = Array.from({ length: 20 }, (_, i) => `pool${i}`);
      // Every node writes every key 30 times with its own stamps, in its own order, concurrently.
      const written: LwwRecord[] = [];
      await Promise.all(
        nodes.map(async (s, ni) => {
          for (let round = 0; round < 30; round++) {
            const batch: LwwRecord[] = keys.map((key, ki) => ({
              kind: "pool",
              key,
              value: (round + ki + ni) % 7 === 0 ? null : { by: s.node, round },
              wallMs: T0 + ((round * 7 + ki * 3 + ni * 5) % 40),
              logical: (round + ni) % 3,
              origin: s.node,
            }));
            if (ni === 1) batch.reverse();
            written.push(...batch);
            await s.putLww(batch);
          }
        }),
      );
      const newest = new Map<string, LwwRecord>();
      for (const r of written) {
        const had = newest.get(r.key);
        const later =
          had === undefined ||
          r.wallMs > had.wallMs ||
          (r.wallMs === had.wallMs &&
            (r.logical > had.logical || (r.logical === had.logical && r.origin > had.origin)));
        if (later) newest.set(r.key, r);
      }
      const stored = await nodes[2]!.listLww("pool");
      assert.equal(stored.length, keys.length);
      for (const r of stored) assert.deepEqual(r, newest.get(r.key), r.key);
    });

    it("nodes compacting at once roll each hour up once", async () => {
      const schema = newSchema();
      const nodes = await openAll(schema, 3);
      const sketch = LatencySketch.of([5, 10]).encode();
      const rows: RollupRow[] = [];
      for (let m = 0; m < 4 * 60; m++) {
        rows.push({
          node: `n${m % 3}`,
          pool: "web",
          target: "a:80",
          minuteStartMs: T0 + m * 60_000,
          count: 2,
          failures: 1,
          latencyMsMin: 5,
          latencyMsMax: 10,
          latencyMsSum: 15,
          sketch,
        });
      }
      await nodes[0]!.writeRollups(rows);
      const reports = await Promise.all(nodes.map((s) => s.compact(T0 + 4 * HOUR + 10 * 60_000)));
      assert.equal(
        reports.reduce((a, r) => a + r.hoursCompacted, 0),
        4,
      );
      const hours = await nodes[1]!.queryRollups({
        pool: "web",
        target: "a:80",
        fromMs: 0,
        toMs: T0 + 5 * HOUR,
        resolution: "hour",
      });
      assert.equal(hours.length, 4 * 3);
      // Each node wrote every third minute: 20 minutes an hour, 2 samples each, merged once.
      const want = new LatencySketch().add(5, 20).add(10, 20).encode();
      for (const h of hours) {
        assert.equal(h.count, 40);
        assert.equal(h.failures, 20);
        assert.deepEqual(h.sketch, want);
      }
    });

    it("pages newest first by walking the same index backwards that oldest first walks forwards", async () => {
      const schema = newSchema();
      const [s] = await openAll(schema, 1);
      await s!.flush();
      // Enough rows, analyzed, that the planner prefers an index to reading the table.
      await admin.query(
        `INSERT INTO "${schema}".vigil_events (id, ts, type, pool, target)
         SELECT 'e' || i, i, (ARRAY['verdict.changed', 'observation.changed', 'member.alive'])[1 + i % 3],
                'p' || (i % 4), (i % 20) || ':80'
         FROM generate_series(1, 50000) i;
         ANALYZE "${schema}".vigil_events`,
      );
      const plan = (q: EventQuery): Promise<string> => planOf(schema, q);
      const forwards = (p: string) =>
        p.replaceAll("Index Scan Backward", "Index Scan").replaceAll(" DESC", "");
      const shapes: Omit<EventQuery, "limit">[] = [
        {},
        { afterCursor: "5", beforeCursor: "40000" },
        { pool: "p1" },
        { pool: "p1", target: "5:80" },
        { pool: "p1", target: "5:80", beforeCursor: "40000" },
        { types: ["member.alive"] },
        { fromMs: 100, toMs: 200 },
      ];
      for (const shape of shapes) {
        const desc = await plan({ ...shape, order: "desc", limit: 100 });
        const asc = await plan({ ...shape, order: "asc", limit: 100 });
        assert.equal(forwards(desc), asc, JSON.stringify(shape));
      }
      assert.match(await plan({ order: "desc", limit: 100 }), /Index Scan Backward using vigil_events_pkey/);
      const one = await plan({
        pool: "p1",
        target: "5:80",
        beforeCursor: "40000",
        order: "desc",
        limit: 100,
      });
      assert.match(one, /Index Scan Backward using vigil_events_pool_target/);
      assert.doesNotMatch(one, /Sort/);
      // A pool the statistics call rare: its own index, in order, where it once sorted.
      const rare = await plan({ pool: "nope", beforeCursor: "40000", order: "desc", limit: 100 });
      assert.match(rare, /Index Scan Backward using vigil_events_pool_seq/);
      assert.doesNotMatch(rare, /Sort/);
      const page = await s!.queryEvents({ pool: "p1", target: "5:80", order: "desc", limit: 3 });
      assert.deepEqual(
        page.events.map((e) => e.id),
        ["e49985", "e49965", "e49945"],
      );
    });
  });
}
