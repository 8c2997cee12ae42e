// Three in-process nodes joined into one cluster, all writing history to one PostgreSQL database
// (VIGIL_TEST_PG; test/store/start-postgres.sh starts a throwaway one). Every fact is stored once,
// and any node answers history and uptime from the shared tables. Under CI a missing
// VIGIL_TEST_PG is a failure, not a skip.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Pool } from "pg";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";

const url = process.env.VIGIL_TEST_PG ?? "";

if (url === "") {
  if (process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false") {
    it("three nodes sharing one PostgreSQL history", () => {
      assert.fail(
        "CI is set but VIGIL_TEST_PG is not: run `export VIGIL_TEST_PG=$(test/store/start-postgres.sh)`",
      );
    });
  } else {
    it(
      "three nodes sharing one PostgreSQL history",
      { skip: "set VIGIL_TEST_PG (see test/store/start-postgres.sh)" },
      () => {},
    );
  }
} else {
  describe("three nodes sharing one PostgreSQL history", () => {
    const schema = `vigil_c${process.pid}`;
    const storeUrl = new URL(url);
    storeUrl.searchParams.set("schema", schema);
    const admin = new Pool({ connectionString: url, max: 1 });
    const nodes: VigilNode[] = [];
    let good: TestOrigin;
    let bad: TestOrigin;

    const start = async (name: string, join: string | undefined): Promise<VigilNode> => {
      const text = `
node:
  name: ${name}
  api: "127.0.0.1:0"
  gossip: "127.0.0.1:0"
  profile: local
  store: "${storeUrl.toString()}"
${join === undefined ? "" : `  join: ["${join}"]\n`}`;
      const n = new VigilNode(parseConfigText(text, "<test>"), {
        clock: systemClock,
        random: new SeededRandom(name.charCodeAt(1)),
        prober: createProber(),
        logger: silentLogger,
        // Write the open minute often, so other nodes read it from the database at once.
        history: { flushOpenMinutes: true, flushIntervalMs: 100 },
      });
      await n.start();
      nodes.push(n);
      return n;
    };

    // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field below
    const get = async (n: VigilNode, path: string): Promise<any> => {
      const r = await fetch(n.apiUrl + path);
      assert.equal(r.status, 200, path);
      return r.json();
    };

    before(async () => {
      good = await startTestOrigin(200, "ok");
      bad = await startTestOrigin(503, "no");
      const p1 = await start("p1", undefined);
      await start("p2", p1.gossipAddr);
      await start("p3", p1.gossipAddr);
      for (const n of nodes) {
        await eventually(async () => {
          const ms = (await get(n, "/v1/members")).members as { state: string }[];
          return ms.length === 3 && ms.every((m) => m.state === "alive");
        }, `${n.name} to see three alive members`);
      }
      // The pool comes after the cluster formed: every node computes the same owners from the start.
      const r = await fetch(`${p1.apiUrl}/v1/pools/web`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          check: { type: "http", path: "/" },
          targets: [good.key, bad.key],
          interval: "100ms",
          timeout: "80ms",
          rise: 1,
          fall: 1,
          observers: 2,
        }),
      });
      assert.equal(r.status, 201);
      for (const n of nodes) {
        await eventually(
          () =>
            n.core.target("web", good.key)?.verdict === "up" &&
            n.core.target("web", bad.key)?.verdict === "down",
          `${n.name} to see the verdicts`,
        );
      }
      // A few more rounds of checks, then everything written.
      await new Promise((r) => setTimeout(r, 400));
      await Promise.all(nodes.map((n) => n.history!.flush()));
    });

    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await Promise.all([good?.close(), bad?.close()]);
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    });

    const rows = async (sql: string, params: unknown[] = []) =>
      (await admin.query(sql.replaceAll("$schema", `"${schema}"`), params)).rows as Record<string, string>[];

    it("stores every transition once, though three nodes saw it", async () => {
      for (const [target, to] of [
        [good.key, "up"],
        [bad.key, "down"],
      ] as const) {
        const verdicts = await rows(
          `SELECT from_state, to_state, node FROM $schema.vigil_events WHERE type = 'verdict.changed' AND pool = 'web' AND target = $1`,
          [target],
        );
        assert.deepEqual(
          verdicts.map((v) => `${v.from_state}>${v.to_state}`),
          [`unknown>${to}`],
          `one verdict change for ${target}`,
        );
        const owners = nodes[0]!.core.owners(`web/${target}`);
        assert.equal(verdicts[0]!.node, owners[0], "recorded by the first owner");
        const observations = await rows(
          `SELECT node, to_state FROM $schema.vigil_events WHERE type = 'observation.changed' AND target = $1 ORDER BY node`,
          [target],
        );
        assert.deepEqual(
          observations.map((o) => `${o.node}:${o.to_state}`),
          [...owners].sort().map((o) => `${o}:${to}`),
          "each observer's change once",
        );
      }
      const created = await rows(`SELECT node, cause FROM $schema.vigil_events WHERE type = 'pool.created'`);
      assert.deepEqual(
        created,
        [{ node: "p1", cause: "api" }],
        "the pool's creation once, by the node that made it",
      );
      const dup = await rows(`SELECT id FROM $schema.vigil_events GROUP BY id HAVING count(*) > 1`);
      assert.deepEqual(dup, []);
    });

    it("serves the shared log, history and uptime from any node", async () => {
      for (const n of nodes) {
        const ev = await get(n, "/v1/events?type=pool.created");
        assert.equal(ev.source, "postgres");
        assert.deepEqual(
          ev.events.map((e: { node: string }) => e.node),
          ["p1"],
        );
        const h = await get(n, `/v1/pools/web/targets/${bad.key}/history?from=now-10m`);
        assert.equal(h.source, "postgres");
        const owners = [...n.core.owners(`web/${bad.key}`)].sort();
        assert.deepEqual(h.observers, owners, "both observers' rollups, read from the database");
        const count = h.buckets.reduce((s: number, b: { count: number }) => s + b.count, 0);
        const failures = h.buckets.reduce((s: number, b: { failures: number }) => s + b.failures, 0);
        assert.ok(count >= 4, `count ${count}`);
        assert.equal(failures, count);
        const u = await get(n, `/v1/uptime?pool=web&target=${bad.key}&window=1h`);
        assert.equal(u.source, "postgres");
        assert.equal(u.availabilityPercent, 0);
        assert.equal(u.incidentCount, 1);
        assert.equal(u.incidents[0].cause, "status 503");
      }
    });

    it("keeps each node's observation counter apart", async () => {
      const counters = await rows(
        `SELECT node FROM $schema.vigil_meta WHERE key = 'observation_counter' ORDER BY node`,
      );
      assert.deepEqual(
        counters.map((c) => c.node),
        ["p1", "p2", "p3"],
      );
    });

    it("keeps the pool spec once, newest stamp, and a node started alone serves it from there", async () => {
      await Promise.all(nodes.map((n) => n.history!.flush()));
      const lww = await rows(`SELECT kind, key, origin, value IS NULL AS deleted FROM $schema.vigil_lww`);
      assert.deepEqual(lww, [{ kind: "pool", key: "web", origin: "p1", deleted: false }]);
      // A node of the same cluster (same database), started with no pools and no seeds.
      const lone = await start("p4", undefined);
      try {
        assert.deepEqual(lone.core.poolNames(), ["web"]);
        assert.deepEqual(
          lone.core
            .targetsOf("web")!
            .map((t) => t.addr.key)
            .sort(),
          [good.key, bad.key].sort(),
        );
        // Its restore is not a new fact: the log still holds the creation once.
        await lone.history!.flush();
        const created = await rows(
          `SELECT node, cause FROM $schema.vigil_events WHERE type = 'pool.created'`,
        );
        assert.deepEqual(created, [{ node: "p1", cause: "api" }]);
      } finally {
        await lone.stop();
        nodes.splice(nodes.indexOf(lone), 1);
      }
    });
  });
}
