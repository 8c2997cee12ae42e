import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { formatAgentReply } from "../../src/core/agent-check/codec.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { askAgent } from "../helpers/agent.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// One real node with real origins on loopback, driven through its HTTP API.

interface TargetView {
  target: string;
  state: string;
  verdict: string;
  reason: string;
  observers: { node: string; state: string }[];
  recent?: unknown[];
}
/** A reply body: an error, or a resource whose fields the test reads. */
interface ApiReply {
  error: { code: string; message: string; path?: string };
  state?: string;
  [k: string]: unknown;
}
interface PoolView {
  name: string;
  targets: TargetView[];
  healthy: string[];
  spec: Record<string, unknown>;
}

describe("vigil agent: one node, HTTP API", () => {
  let node: VigilNode;
  let good: TestOrigin;
  let bad: TestOrigin;
  let base: string;
  const get = async (path: string) => {
    const r = await fetch(base + path);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const send = async (method: string, path: string, body: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(base + path, {
      method,
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text === "" ? {} : JSON.parse(text)) as ApiReply };
  };

  before(async () => {
    good = await startTestOrigin(200, "ok");
    bad = await startTestOrigin(503, "nope");
    const cfg = parseConfigText(
      `
node: { name: t1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", agent: "127.0.0.1:0", data_dir: "${tmpDataDir()}" }
defaults: { interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz, expect: { body_contains: ok } }
    targets: [${good.key}, ${bad.key}]
`,
      "<test>",
    );
    node = new VigilNode(cfg, {
      clock: systemClock,
      random: new SeededRandom(1),
      prober: createProber(),
      logger: silentLogger,
    });
    await node.start();
    base = node.apiUrl;
  });
  after(async () => {
    await node.stop();
    await good.close();
    await bad.close();
  });

  it("GET /v1/health names the node", async () => {
    const r = await get("/v1/health");
    assert.equal(r.status, 200);
    assert.equal(r.body.name, "t1");
    assert.match(String(r.body.version), /^\d+\.\d+\.\d+/);
  });

  it("reaches verdicts after rise/fall and routes only to the healthy target", async () => {
    const pool = await eventually(async () => {
      const r = await get("/v1/pools/web");
      const p = r.body as unknown as PoolView;
      return p.targets.every((t) => t.verdict !== "unknown") ? p : undefined;
    }, "both targets to have a verdict");
    const byKey = new Map(pool.targets.map((t) => [t.target, t]));
    assert.equal(byKey.get(good.key)?.verdict, "up");
    assert.equal(byKey.get(bad.key)?.verdict, "down");
    assert.equal(byKey.get(bad.key)?.reason, "status 503");
    assert.deepEqual(pool.healthy, [good.key]);
    assert.equal(byKey.get(good.key)?.observers[0]?.node, "t1");
  });

  it("answers HAProxy's agent-check on node.agent from the same verdicts", async () => {
    const ask = (line: string) => askAgent(node.agentPort!, line);
    assert.equal(await ask(`web/${good.key}\n`), "up ready\n");
    assert.equal(await ask(`web/${bad.key}\n`), "down ready #status 503\n");
    assert.equal(await ask("web/127.0.0.1:1\n"), "\n", "unknown target: no state change");
    // The lookup process sends its counters every 200 ms: wait for the copy that has all three.
    const counted = (text: string): boolean =>
      /vigil_agent_requests_total\{result="unknown_target"\} [1-9]/.test(text);
    let text = "";
    await eventually(
      async () => {
        text = await (await fetch(`${base}/metrics`)).text();
        return counted(text);
      },
      () =>
        `the agent's counters in /metrics, last seen:\n${text
          .split("\n")
          .filter((l) => l.startsWith("vigil_agent"))
          .join("\n")}`,
    );
    assert.match(text, /vigil_agent_requests_total\{result="up"\} 1\n/);
    assert.match(text, /vigil_agent_requests_total\{result="down"\} 1\n/);
    assert.match(text, /vigil_agent_requests_total\{result="unknown_target"\} 1\n/);
  });

  it("the agent server's lookup gives the same reply as the full lookup, in every admin state", () => {
    try {
      for (const admin of ["none", "maint", "drain"] as const) {
        for (const key of [good.key, bad.key]) {
          node.setAdmin("web", key, { state: admin, ...(admin === "none" ? {} : { reason: "ops" }) });
          const full = node.lookupTarget("web", key);
          const lean = node.agentVerdict("web", key);
          assert.ok(full !== undefined && lean !== undefined);
          assert.equal(formatAgentReply(lean), formatAgentReply(full), `${key} ${admin}`);
          assert.equal(lean.state, full.state);
          assert.equal(lean.health, full.health);
        }
      }
      assert.equal(formatAgentReply(node.agentVerdict("web", bad.key)), "down drain #ops\n");
      assert.equal(node.agentVerdict("web", "127.0.0.1:1"), undefined);
      assert.equal(node.agentVerdict("nope", good.key), undefined);
    } finally {
      for (const key of [good.key, bad.key]) node.setAdmin("web", key, { state: "none" });
    }
  });

  it("GET /v1/pools counts targets by state", async () => {
    const r = await get("/v1/pools");
    const pools = r.body.pools as { name: string; counts: Record<string, number> }[];
    assert.equal(pools.length, 1);
    assert.deepEqual(pools[0]!.counts, { up: 1, down: 1, unknown: 0, maint: 0, drain: 0 });
  });

  it("GET a target shows recent results; unknown targets and pools are 404 with a message", async () => {
    const t = await get(`/v1/pools/web/targets/${good.key}`);
    assert.equal(t.status, 200);
    assert.ok(Array.isArray(t.body.recent) && (t.body.recent as unknown[]).length >= 2);
    const missing = await get("/v1/pools/web/targets/127.0.0.1:1");
    assert.equal(missing.status, 404);
    assert.match((missing.body.error as { message: string }).message, /has no target "127\.0\.0\.1:1"/);
    const nopool = await get("/v1/pools/nope");
    assert.equal(nopool.status, 404);
    assert.equal((nopool.body.error as { code: string }).code, "VIGIL_ERR_NOT_FOUND");
  });

  it("the event log records transitions with their cause", async () => {
    // Events reach the store in batches off the check path: the page catches up shortly.
    const down = await eventually(async () => {
      const r = await get("/v1/events?pool=web&type=verdict.changed");
      const events = r.body.events as { target: string; from: string; to: string; cause: string }[];
      return events.find((e) => e.target === bad.key);
    }, "the verdict event of the bad target in the event log");
    assert.ok(down, "a verdict event for the bad target");
    assert.equal(down.from, "unknown");
    assert.equal(down.to, "down");
    assert.equal(down.cause, "status 503");
    const badCursor = await get("/v1/events?since=-1");
    assert.equal(badCursor.status, 400);
    const badLimit = await get("/v1/events?limit=0");
    assert.equal(badLimit.status, 400);
  });

  it("an origin going down flips the verdict and leaves healthy", async () => {
    good.status = 500;
    await eventually(async () => {
      const p = (await get("/v1/pools/web")).body as unknown as PoolView;
      return p.healthy.length === 0 ? p : undefined;
    }, "the good origin to be marked down");
    good.status = 200;
    await eventually(async () => {
      const p = (await get("/v1/pools/web")).body as unknown as PoolView;
      return p.healthy.includes(good.key) ? p : undefined;
    }, "the origin to come back");
  });

  it("PUT creates (201) and replaces (200) a pool; GET shows the spec with defaults", async () => {
    const doc = { check: { type: "tcp" }, targets: [good.key], interval: "1s" };
    const created = await send("PUT", "/v1/pools/cache", doc);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const replaced = await send("PUT", "/v1/pools/cache", { ...doc, interval: "2s" });
    assert.equal(replaced.status, 200);
    const got = await get("/v1/pools/cache");
    assert.equal((got.body.spec as { interval: string }).interval, "2s");
    assert.equal((got.body.spec as { rise: number }).rise, 2);
  });

  it("PUT with a bad body is 400 naming the path; bad JSON 400; too large 413; wrong type 415", async () => {
    const bad1 = await send("PUT", "/v1/pools/cache", {
      check: { type: "http", expect: { status: ["200", "700"] } },
      targets: [good.key],
    });
    assert.equal(bad1.status, 400);
    assert.equal(bad1.body.error.code, "VIGIL_ERR_CONFIG");
    assert.equal(bad1.body.error.path, "check.expect.status[1]");
    const bad2 = await send("PUT", "/v1/pools/cache", "{not json");
    assert.equal(bad2.status, 400);
    assert.match(bad2.body.error.message, /not valid JSON/);
    const huge = await send("PUT", "/v1/pools/cache", `{"x":"${"a".repeat(5 * 1024 * 1024)}"}`);
    assert.equal(huge.status, 413);
    const ctype = await send("PUT", "/v1/pools/cache", "x", { "content-type": "application/xml" });
    assert.equal(ctype.status, 415);
    const badName = await send("PUT", "/v1/pools/Bad%20Name", {
      check: { type: "tcp" },
      targets: [good.key],
    });
    assert.equal(badName.status, 400);
    const method = await send("POST", "/v1/pools/cache", {});
    assert.equal(method.status, 405);
    // the pool is unchanged by the rejected writes
    assert.equal(((await get("/v1/pools/cache")).body.spec as { interval: string }).interval, "2s");
  });

  it("DELETE removes a pool (204), then 404", async () => {
    const r = await fetch(`${base}/v1/pools/cache`, { method: "DELETE" });
    assert.equal(r.status, 204);
    assert.equal((await get("/v1/pools/cache")).status, 404);
    assert.equal((await fetch(`${base}/v1/pools/cache`, { method: "DELETE" })).status, 404);
  });

  it("admin maint takes a target out of healthy and shows as its state; none restores it", async () => {
    const r = await send("PUT", `/v1/pools/web/targets/${good.key}/admin`, {
      state: "maint",
      reason: "deploy",
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.state, "maint");
    const p = (await get("/v1/pools/web")).body as unknown as PoolView;
    assert.ok(!p.healthy.includes(good.key));
    const bad = await send("PUT", `/v1/pools/web/targets/${good.key}/admin`, { state: "off" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.path, "state");
    await send("PUT", `/v1/pools/web/targets/${good.key}/admin`, { state: "none" });
    assert.ok(((await get("/v1/pools/web")).body as unknown as PoolView).healthy.includes(good.key));
  });

  it("GET /metrics exposes checks, latency, scheduler lag and targets by state", async () => {
    const r = await fetch(`${base}/metrics`);
    const text = await r.text();
    assert.match(r.headers.get("content-type") ?? "", /text\/plain/);
    const okChecks = /vigil_checks_total\{pool="web",result="ok"\} (\d+)/.exec(text);
    assert.ok(okChecks && Number(okChecks[1]) > 0, "ok checks counted");
    assert.match(text, /vigil_checks_total\{pool="web",result="fail"\} [1-9]/);
    assert.match(text, /vigil_check_duration_seconds_count\{pool="web"\} [1-9]/);
    assert.match(text, /vigil_scheduler_lag_seconds_count [1-9]/);
    assert.match(text, /vigil_targets\{state="up"\} 1/);
    assert.match(text, /vigil_targets\{state="down"\} 1/);
  });

  it("unknown routes are 404 JSON errors", async () => {
    const r = await get("/v2/nothing");
    assert.equal(r.status, 404);
    assert.equal((r.body.error as { code: string }).code, "VIGIL_ERR_NOT_FOUND");
  });
});
