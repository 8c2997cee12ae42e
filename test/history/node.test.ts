import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { COUNTER_META_KEY } from "../../src/runtime/history.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";

// One real node with SQLite history in a temporary data_dir, driven through its HTTP API.

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function configFor(dataDir: string, name: string, targets: string[], extra = ""): string {
  return `
node: { name: ${name}, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", profile: local${extra} }
# fall 2 and a timeout near the interval: a loaded test machine must not flip a target by itself.
defaults: { interval: 150ms, timeout: 140ms, rise: 1, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [${targets.join(", ")}]
`;
}

function newNode(text: string): VigilNode {
  return new VigilNode(parseConfigText(text, "<test>"), {
    clock: systemClock,
    random: new SeededRandom(3),
    prober: createProber(),
    logger: silentLogger,
  });
}

interface Json {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field below
  body: any;
}

async function get(base: string, path: string, init?: RequestInit): Promise<Json> {
  const r = await fetch(base + path, init);
  return { status: r.status, body: await r.json() };
}

describe("a node with history: events, rollups and uptime over the API", () => {
  let dir: string;
  let node: VigilNode;
  let good: TestOrigin;
  let bad: TestOrigin;
  let flap: TestOrigin;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-node-history-"));
    dirs.push(dir);
    good = await startTestOrigin(200, "ok");
    bad = await startTestOrigin(503, "no");
    flap = await startTestOrigin(200, "ok");
    node = newNode(configFor(dir, "h1", [good.key, bad.key, flap.key]));
    await node.start();
    base = node.apiUrl;
    await eventually(async () => {
      const p = await get(base, "/v1/pools/web");
      return p.body.targets.every((t: { verdict: string }) => t.verdict !== "unknown");
    }, "verdicts for every target");
    // One incident: the flapping target goes down and comes back.
    flap.status = 500;
    await eventually(async () => node.core.target("web", flap.key)?.verdict === "down", "flap down");
    await new Promise((r) => setTimeout(r, 300));
    flap.status = 200;
    await eventually(async () => node.core.target("web", flap.key)?.verdict === "up", "flap up");
    await node.history!.flush();
  });
  after(async () => {
    await node.stop();
    await Promise.all([good.close(), bad.close(), flap.close()]);
  });

  it("serves GET /v1/events from the store, with ids, filters and cursors", async () => {
    const all = await get(base, "/v1/events?limit=1000");
    assert.equal(all.status, 200);
    assert.equal(all.body.source, "sqlite");
    const types = new Set(all.body.events.map((e: { type: string }) => e.type));
    for (const t of ["pool.created", "observation.changed", "verdict.changed"]) assert.ok(types.has(t), t);
    for (const e of all.body.events) assert.match(e.id, /^[A-Za-z0-9_-]{22}$/);

    const flapDown = await get(base, `/v1/events?pool=web&target=${flap.key}&type=verdict.changed&order=asc`);
    assert.equal(flapDown.body.order, "asc");
    assert.deepEqual(
      flapDown.body.events.map((e: { from: string; to: string }) => `${e.from}>${e.to}`),
      ["unknown>up", "up>down", "down>up"],
    );
    assert.equal(flapDown.body.events[1].cause, "status 500");
    assert.equal(flapDown.body.events[1].node, "h1");

    // Paging: one at a time reaches the same events in the same order.
    const seen: string[] = [];
    let since = 0;
    for (let i = 0; i < 3; i++) {
      const page = await get(
        base,
        `/v1/events?limit=1&since=${since}&type=verdict.changed&target=${flap.key}`,
      );
      assert.equal(page.body.events.length, 1);
      seen.push(page.body.events[0].id);
      since = page.body.next;
    }
    assert.deepEqual(
      seen,
      flapDown.body.events.map((e: { id: string }) => e.id),
    );
    const end = await get(base, `/v1/events?limit=1&since=${since}&type=verdict.changed&target=${flap.key}`);
    assert.deepEqual([end.body.events.length, end.body.next], [0, since]);

    // A bare request answers newest first; `before` pages on to older events, one at a time.
    const newest = await get(base, `/v1/events?pool=web&target=${flap.key}&type=verdict.changed`);
    assert.equal(newest.body.order, "desc");
    const oldestFirstIds = flapDown.body.events.map((e: { id: string }) => e.id);
    assert.deepEqual(
      newest.body.events.map((e: { id: string }) => e.id),
      [...oldestFirstIds].reverse(),
    );
    assert.equal(newest.body.next, newest.body.events[2].seq);
    const back: string[] = [];
    let before: number | undefined;
    for (let i = 0; i < 3; i++) {
      const page = await get(
        base,
        `/v1/events?limit=1&type=verdict.changed&target=${flap.key}${before === undefined ? "" : `&before=${before}`}`,
      );
      assert.equal(page.body.events.length, 1);
      back.push(page.body.events[0].id);
      before = page.body.next;
    }
    assert.deepEqual(back, [...oldestFirstIds].reverse());
    const done = await get(
      base,
      `/v1/events?limit=1&before=${before}&type=verdict.changed&target=${flap.key}`,
    );
    assert.deepEqual([done.body.events.length, done.body.next], [0, before]);
    // The whole log newest first: the reverse of oldest first, the newest on top.
    const asc = (await get(base, "/v1/events?order=asc&limit=1000")).body.events as { id: string }[];
    const desc = (await get(base, "/v1/events?order=desc&limit=1000")).body.events as { id: string }[];
    assert.ok(asc.length < 1000, "the whole log fits a page");
    assert.deepEqual(
      desc.slice(-asc.length).map((e) => e.id),
      asc.map((e) => e.id).reverse(),
      "newer events may have landed on top between the two reads, none elsewhere",
    );

    // A time range: nothing before the first event, everything from it.
    const first = flapDown.body.events[0].ts as number;
    assert.equal(
      (await get(base, `/v1/events?to=${first}&target=${flap.key}&type=verdict.changed`)).body.events.length,
      0,
    );
    const iso = new Date(first).toISOString();
    assert.equal(
      (await get(base, `/v1/events?from=${iso}&target=${flap.key}&type=verdict.changed`)).body.events.length,
      3,
    );
    assert.equal(
      (await get(base, `/v1/events?from=now-1h&to=now&target=${flap.key}&type=verdict.changed`)).body.events
        .length,
      3,
    );
  });

  it("refuses bad /v1/events parameters with a 400 naming the parameter", async () => {
    const cases: [string, string, RegExp][] = [
      ["since=abc", "since", /since must be a non-negative integer cursor, got "abc"/],
      ["limit=0", "limit", /limit must be an integer between 1 and 1000, got "0"/],
      ["limit=5000", "limit", /limit must be an integer between 1 and 1000/],
      ["from=yesterday", "from", /from must be a time: .* got "yesterday"/],
      ["to=2026-13-45T99:00:00Z", "to", /to must be a time/],
      ["from=now-soon", "from", /from: expected a duration/],
      ["from=2000&to=1000", "from", /from must be before to/],
      ["pool=web&pool=api", "pool", /given more than once/],
      ["tyep=verdict.changed", "tyep", /unknown query parameter "tyep"/],
      [`type=${Array.from({ length: 70 }, (_, i) => `t${i}`).join(",")}`, "type", /at most 64 event types/],
      ["order=sideways", "order", /order must be "asc" or "desc", got "sideways"/],
      ["since=3&before=9", "before", /before cannot be combined with since/],
      ["before=9&order=asc", "before", /before pages newest first/],
      ["since=3&order=desc", "since", /since pages oldest first/],
      ["before=soon", "before", /before must be a non-negative integer cursor, got "soon"/],
    ];
    for (const [query, path, message] of cases) {
      const r = await get(base, `/v1/events?${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, "VIGIL_ERR_BAD_REQUEST", query);
      assert.equal(r.body.error.path, path, query);
      assert.match(r.body.error.message, message, query);
    }
  });

  it("serves a target's history: counts, failures and latency quantiles per step", async () => {
    const countOf = (h: { body: { buckets: { count: number }[] } }): number =>
      h.body.buckets.reduce((s, b) => s + b.count, 0);
    const r = await eventually(async () => {
      const h = await get(base, `/v1/pools/web/targets/${bad.key}/history?from=now-10m&step=5m`);
      return h.status !== 200 || countOf(h) >= 2 ? h : undefined;
    }, "two checks of the bad target in its history");
    assert.equal(r.status, 200);
    assert.equal(r.body.step, "5m");
    assert.equal(r.body.stepMs, 300_000);
    assert.equal(r.body.resolution, "minute");
    assert.equal(r.body.source, "members");
    assert.deepEqual(r.body.observers, ["h1"]);
    assert.equal(r.body.partial, false);
    const count = r.body.buckets.reduce((s: number, b: { count: number }) => s + b.count, 0);
    const failures = r.body.buckets.reduce((s: number, b: { failures: number }) => s + b.failures, 0);
    assert.ok(count >= 2, `count ${count}`);
    assert.equal(failures, count, "every check of the bad target failed");
    for (const b of r.body.buckets) {
      assert.equal(b.start % 300_000, 0);
      assert.equal(b.availabilityPercent, 0);
      assert.ok(
        b.latencyMs.min <= b.latencyMs.p50 * 1.011 && b.latencyMs.p50 <= b.latencyMs.max * 1.011,
        JSON.stringify(b),
      );
      assert.ok(b.latencyMs.p99 >= b.latencyMs.p95 && b.latencyMs.p95 >= b.latencyMs.p50);
    }
    // Two of the good target's checks in its history: on a loaded machine the node may not have
    // recorded them yet when this test starts.
    const goodH = await eventually(async () => {
      const h = await get(base, `/v1/pools/web/targets/${good.key}/history`);
      return countOf(h) >= 2 ? h : undefined;
    }, "two checks of the good target in its history");
    assert.equal(goodH.body.step, "1m", "an hour at the finest step by default");
    // The good target passes its checks (a check can time out on a loaded machine, rarely).
    const goodCount = countOf(goodH);
    const goodFailures = goodH.body.buckets.reduce((s: number, b: { failures: number }) => s + b.failures, 0);
    assert.ok(goodCount >= 2 && goodFailures * 4 < goodCount, `${goodFailures} of ${goodCount} failed`);
    // Hours: the same checks counted at an hourly step (the open hour comes from minute rows).
    const hourly = await get(base, `/v1/pools/web/targets/${bad.key}/history?from=now-1h&step=1h`);
    assert.equal(hourly.body.resolution, "hour");
    const hourlyCount = hourly.body.buckets.reduce((s: number, b: { count: number }) => s + b.count, 0);
    assert.ok(hourlyCount >= count, `${hourlyCount} >= ${count}`);
  });

  it("refuses bad history parameters (400 naming the parameter), unknown targets (404) and other methods (405)", async () => {
    const path = `/v1/pools/web/targets/${good.key}/history`;
    const cases: [string, string, RegExp][] = [
      ["step=30s", "step", /step must be a whole number of minutes, at least 1m, got "30s"/],
      ["step=90s", "step", /whole number of minutes/],
      ["step=fast", "step", /step: expected a duration/],
      ["from=now&to=now-1h", "from", /from must be before to/],
      ["from=now-30d&step=1m", "step", /more than 10080: use a larger step/],
      ["local=yes", "local", /local must be 1/],
      ["form=now-1h", "form", /unknown query parameter "form"/],
    ];
    for (const [query, p, message] of cases) {
      const r = await get(base, `${path}?${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.path, p, query);
      assert.match(r.body.error.message, message, query);
    }
    const unknownTarget = await get(base, "/v1/pools/web/targets/127.0.0.1:1/history");
    assert.equal(unknownTarget.status, 404);
    assert.match(unknownTarget.body.error.message, /pool "web" has no target "127.0.0.1:1"/);
    assert.equal((await get(base, `/v1/pools/nope/targets/${good.key}/history`)).status, 404);
    const post = await fetch(`${base}${path}`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET");
    await post.body?.cancel();
  });

  it("answers ?local=1 with this node's own buckets and sketches, for a peer to merge", async () => {
    const r = await get(base, `/v1/pools/web/targets/${good.key}/history?from=now-10m&step=1m&local=1`);
    assert.equal(r.status, 200);
    assert.equal(r.body.node, "h1");
    assert.ok(r.body.buckets.length >= 1);
    for (const b of r.body.buckets) {
      assert.ok(b.count >= 1 && b.min <= b.max && typeof b.sketch === "string", JSON.stringify(b));
    }
  });

  it("computes uptime from verdict changes: availability, incidents with cause, MTTR, time since the last one", async () => {
    const r = await get(base, `/v1/uptime?pool=web&target=${flap.key}&window=24h`);
    assert.equal(r.status, 200);
    assert.equal(r.body.window, "24h");
    assert.equal(r.body.state, "up");
    assert.equal(r.body.source, "sqlite");
    assert.equal(r.body.incidentCount, 1);
    const inc = r.body.incidents[0];
    assert.equal(inc.cause, "status 500");
    assert.equal(inc.ongoing, false);
    assert.ok(inc.durationMs >= 250 && inc.durationMs < 10_000, `duration ${inc.durationMs}`);
    assert.equal(inc.end - inc.start, inc.durationMs);
    assert.equal(r.body.mttrMs, inc.durationMs);
    assert.ok(r.body.sinceLastIncidentMs >= 0 && r.body.sinceLastIncidentMs < 60_000);
    assert.ok(
      r.body.availabilityPercent > 0 && r.body.availabilityPercent < 100,
      String(r.body.availabilityPercent),
    );
    assert.ok(r.body.unknownMs > 24 * 3_600_000 - 120_000, "before the node started the state was unknown");

    const pool = await get(base, "/v1/uptime?pool=web&window=7d");
    assert.equal(pool.status, 200);
    const byTarget = new Map(pool.body.targets.map((t: { target: string }) => [t.target, t]));
    const g = byTarget.get(good.key) as {
      availabilityPercent: number;
      incidentCount: number;
      lastIncident: unknown;
    };
    const b = byTarget.get(bad.key) as {
      availabilityPercent: number;
      incidents: { ongoing: boolean; cause: string }[];
    };
    assert.deepEqual([g.availabilityPercent, g.incidentCount, g.lastIncident], [100, 0, null]);
    assert.equal(b.availabilityPercent, 0);
    assert.deepEqual(
      b.incidents.map((i) => [i.ongoing, i.cause]),
      [[true, "status 503"]],
    );
    assert.equal(pool.body.incidentCount, 2);
  });

  it("refuses bad uptime parameters", async () => {
    const cases: [string, number, string | undefined, RegExp][] = [
      ["", 400, "pool", /pool is required/],
      ["pool=web&window=30s", 400, "window", /window must be from 1m to 36500d, got "30s"/],
      ["pool=web&window=forever", 400, "window", /window: expected a duration/],
      ["pool=Web!", 400, "pool", /pool must be a pool name/],
      ["pool=web&target=nohost", 400, "target", /target must be a target "host:port"/],
      ["pool=web&span=1d", 400, "span", /unknown query parameter/],
      ["pool=nope", 404, undefined, /no pool named "nope"/],
      ["pool=web&target=127.0.0.1:1", 404, undefined, /has no target "127.0.0.1:1"/],
    ];
    for (const [query, status, path, message] of cases) {
      const r = await get(base, `/v1/uptime?${query}`);
      assert.equal(r.status, status, query);
      assert.equal(r.body.error.path, path, query);
      assert.match(r.body.error.message, message, query);
    }
  });

  it("exposes history metrics", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const written = /vigil_history_events_written_total (\d+)/.exec(text);
    assert.ok(written !== null && Number(written[1]) > 0, "events written");
    assert.match(text, /vigil_history_events_dropped_total 0/);
  });
});

describe("a node with history across restarts", () => {
  it("keeps its events and starts its observation counter past the persisted one", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-node-restart-"));
    dirs.push(dir);
    const origin = await startTestOrigin(200, "ok");
    t.after(() => origin.close());
    // A counter from a previous run far ahead of this boot's epoch (the clock went back).
    const ahead = Date.now() * 1000 + 1e12;
    const s = await openSqliteStore({ dataDir: dir, node: "r1" });
    await s.setMeta(COUNTER_META_KEY, String(ahead));
    await s.close();

    const n1 = newNode(configFor(dir, "r1", [origin.key]));
    await n1.start();
    await eventually(() => n1.core.target("web", origin.key)?.verdict === "up", "up");
    assert.ok(n1.core.observations.counter > ahead, `${n1.core.observations.counter} > ${ahead}`);
    const before = (await get(n1.apiUrl, "/v1/events?limit=1000")).body.events as { id: string }[];
    await n1.stop();

    const n2 = newNode(configFor(dir, "r1", [origin.key]));
    await n2.start();
    t.after(() => n2.stop());
    assert.ok(n2.core.observations.counter > ahead, "past the reservation the first run made");
    const afterIds = new Set(
      ((await get(n2.apiUrl, "/v1/events?limit=1000")).body.events as { id: string }[]).map((e) => e.id),
    );
    for (const e of before) assert.ok(afterIds.has(e.id), `event ${e.id} kept across the restart`);
    const hist = await get(n2.apiUrl, `/v1/pools/web/targets/${origin.key}/history?from=now-10m`);
    assert.ok(hist.body.buckets.length >= 1, "the first run's minutes are there");
  });
});

describe("two nodes on SQLite: history gathered from every observer", () => {
  it("merges both observers' rollups into one answer on either node", async (t) => {
    const origin = await startTestOrigin(200, "ok");
    t.after(() => origin.close());
    const d1 = mkdtempSync(join(tmpdir(), "vigil-fanout-"));
    const d2 = mkdtempSync(join(tmpdir(), "vigil-fanout-"));
    dirs.push(d1, d2);
    const pool = `
  shared:
    check: { type: http, path: /healthz }
    targets: [${origin.key}]
    observers: 2`;
    const a = newNode(`${configFor(d1, "fa", [origin.key])}${pool}`);
    await a.start();
    t.after(() => a.stop());
    const b = newNode(`${configFor(d2, "fb", [origin.key], `, join: ["${a.gossipAddr}"]`)}${pool}`);
    await b.start();
    t.after(() => b.stop());
    await eventually(async () => {
      const ms = (await get(a.apiUrl, "/v1/members")).body.members as { state: string }[];
      return ms.length === 2 && ms.every((m) => m.state === "alive");
    }, "two members");
    const path = `/v1/pools/shared/targets/${origin.key}/history?from=now-10m`;
    for (const n of [a, b]) {
      const r = await eventually(async () => {
        const h = await get(n.apiUrl, path);
        return h.body.observers.length === 2 ? h : undefined;
      }, "both observers in the history");
      assert.deepEqual(r.body.observers, ["fa", "fb"]);
      assert.equal(r.body.partial, false);
      const local = await Promise.all(
        [a, b].map(
          async (x) => (await get(x.apiUrl, `${path}&step=1m&local=1`)).body.buckets as { count: number }[],
        ),
      );
      const merged = r.body.buckets.reduce((s: number, x: { count: number }) => s + x.count, 0);
      const sum = local.flat().reduce((s, x) => s + x.count, 0);
      // Checks go on between the requests: the merged answer is within a few of the sum of the parts.
      assert.ok(Math.abs(merged - sum) <= 10, `merged ${merged} ~ ${sum}`);
    }
  });
});

describe("a node with store: none", () => {
  it("keeps the in-memory event log and uptime, and has no rollups of its own", async (t) => {
    const origin = await startTestOrigin(503, "no");
    t.after(() => origin.close());
    const dir = mkdtempSync(join(tmpdir(), "vigil-none-"));
    dirs.push(dir);
    const n = newNode(configFor(join(dir, "never-created"), "m1", [origin.key], ", store: none"));
    await n.start();
    t.after(() => n.stop());
    assert.equal(n.history, undefined);
    await eventually(() => n.core.target("web", origin.key)?.verdict === "down", "down");
    const events = await get(n.apiUrl, "/v1/events?type=verdict.changed");
    assert.equal(events.status, 200);
    assert.equal(events.body.source, "memory", "the in-memory ring answers");
    assert.deepEqual(
      events.body.events.map((e: { to: string }) => e.to),
      ["down"],
    );
    // The ring pages both ways with the same parameters and checks as the store.
    const ringSeqs = (r: Json) => r.body.events.map((e: { seq: number }) => e.seq) as number[];
    const ringAsc = await get(n.apiUrl, "/v1/events?order=asc&limit=1000");
    const upTo = ringSeqs(ringAsc).at(-1)! + 1;
    const ringDesc = await get(n.apiUrl, `/v1/events?order=desc&limit=1000&before=${upTo}`);
    assert.deepEqual([ringAsc.body.order, ringDesc.body.order], ["asc", "desc"]);
    assert.ok(ringSeqs(ringAsc).length >= 2, "pool.created, observation and verdict events");
    assert.deepEqual(ringSeqs(ringDesc), ringSeqs(ringAsc).reverse());
    const older = await get(n.apiUrl, `/v1/events?limit=1&before=${ringSeqs(ringDesc)[0]}`);
    assert.deepEqual(ringSeqs(older), [ringSeqs(ringDesc)[1]]);
    for (const [query, path] of [
      ["order=sideways", "order"],
      ["since=1&before=2", "before"],
      ["before=2&order=asc", "before"],
      ["tyep=x", "tyep"],
    ]) {
      const r = await get(n.apiUrl, `/v1/events?${query}`);
      assert.deepEqual([r.status, r.body.error.path], [400, path], query);
    }
    const up = await get(n.apiUrl, `/v1/uptime?pool=web&target=${origin.key}&window=1h`);
    assert.equal(up.body.source, "memory");
    assert.equal(up.body.availabilityPercent, 0);
    assert.equal(up.body.incidents[0].ongoing, true);
    const h = await get(n.apiUrl, `/v1/pools/web/targets/${origin.key}/history`);
    assert.equal(h.status, 200);
    assert.deepEqual([h.body.buckets, h.body.observers], [[], []]);
    const local = await get(n.apiUrl, `/v1/pools/web/targets/${origin.key}/history?local=1`);
    assert.deepEqual([local.body.history, local.body.buckets], [false, []]);
    assert.ok(!existsSync(join(dir, "never-created")), "no data_dir made");
  });
});
