import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { EventLog } from "../../src/runtime/events.ts";
import { type ApiBackend, type ApiServer, startApiServer } from "../../src/serve/api/server.ts";

// GET /v1/events on an API backend without the history routes: no extraRoute, or one that
// declines the path (as a dashboard-only one does). VigilNode always answers it from
// history-routes.ts; here the API server answers from the backend's ring, and must read the query
// exactly as that route does (one parser, parseEventsRequest): newest first by default, `before=`
// paging, `order=`, `from`/`to`, and the same 400s.

const T0 = Date.UTC(2026, 0, 2, 15, 0, 0);

describe("GET /v1/events from a backend's ring (the API server's fallback)", () => {
  const log = new EventLog();
  let api: ApiServer;
  before(async () => {
    for (let i = 1; i <= 10; i++) {
      log.append(T0 + i * 1000, {
        type: i % 3 === 0 ? "target.admin" : "verdict.changed",
        pool: i % 2 === 0 ? "web" : "db",
        target: `10.0.0.${i}:80`,
      });
    }
    const backend: ApiBackend = {
      health: () => ({ name: "t1" }),
      members: () => [],
      listPools: () => [],
      getPool: () => undefined,
      putPool: () => ({ created: true, pool: {} }),
      deletePool: () => false,
      getTarget: () => undefined,
      setAdmin: () => ({}),
      queryEvents: (q) => log.query(q),
      metricsText: () => Promise.resolve({ contentType: "text/plain", text: "" }),
      extraRoute: () => false,
    };
    api = await startApiServer({ host: "127.0.0.1", port: 0, backend });
  });
  after(() => api.close());

  async function get(query: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${api.url}/v1/events${query}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  async function seqs(query: string): Promise<{ seqs: number[]; next: unknown; order: unknown }> {
    const { status, body } = await get(query);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.source, "memory");
    return { seqs: (body.events as { seq: number }[]).map((e) => e.seq), next: body.next, order: body.order };
  }

  it("answers newest first by default and pages older with before=", async () => {
    assert.deepEqual(await seqs(""), { seqs: [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], next: 1, order: "desc" });
    const head = await seqs("?limit=3");
    assert.deepEqual(head, { seqs: [10, 9, 8], next: 8, order: "desc" });
    assert.deepEqual(await seqs(`?limit=3&before=${head.next}`), { seqs: [7, 6, 5], next: 5, order: "desc" });
    assert.deepEqual(await seqs("?limit=3&before=2&order=desc"), { seqs: [1], next: 1, order: "desc" });
    assert.deepEqual(await seqs("?before=1"), { seqs: [], next: 1, order: "desc" });
  });

  it("pages oldest first with order=asc or since=, and applies every filter in both orders", async () => {
    assert.deepEqual(await seqs("?order=asc&limit=3"), { seqs: [1, 2, 3], next: 3, order: "asc" });
    assert.deepEqual(await seqs("?since=3&limit=3"), { seqs: [4, 5, 6], next: 6, order: "asc" });
    assert.deepEqual((await seqs("?pool=web&before=8")).seqs, [6, 4, 2]);
    assert.deepEqual((await seqs("?pool=web&type=verdict.changed&order=asc")).seqs, [2, 4, 8, 10]);
    assert.deepEqual((await seqs("?target=10.0.0.5:80")).seqs, [5]);
    const range = `from=${T0 + 3000}&to=${new Date(T0 + 6000).toISOString()}`;
    assert.deepEqual((await seqs(`?${range}`)).seqs, [5, 4, 3]);
    assert.deepEqual((await seqs(`?${range}&order=asc`)).seqs, [3, 4, 5]);
  });

  it("refuses bad, conflicting and unknown parameters with a 400 naming the parameter", async () => {
    const cases: [string, string][] = [
      ["since=3&before=8", "before"],
      ["before=8&order=asc", "before"],
      ["since=3&order=desc", "since"],
      ["order=sideways", "order"],
      ["before=-1", "before"],
      ["limit=0", "limit"],
      ["from=yesterday", "from"],
      ["form=1", "form"],
      ["pool=a&pool=b", "pool"],
    ];
    for (const [query, path] of cases) {
      const { status, body } = await get(`?${query}`);
      assert.equal(status, 400, query);
      assert.equal((body.error as { path?: string }).path, path, query);
    }
  });
});
