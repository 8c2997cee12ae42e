import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfigFile, parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { createApiHandler } from "../../src/serve/api/server.ts";
import { type HttpTableEntry, type LookupThread, startLookupThread } from "../../src/serve/lookup-thread.ts";
import { eventually } from "../helpers/origins.ts";
import { scriptedProber } from "../helpers/prober.ts";
import { tmpDataDir } from "../helpers/tmp.ts";
import { call, READ_TOKEN, WRITE_TOKEN } from "../security/helpers.ts";

// node.lookup_api: the lookup process listens on the API's port, answers
// `GET /v1/pools/{pool}/targets/{target}` from the table the node pushes, and hands every other
// connection (with the bytes it read) to the node, which serves it as if it had accepted it.

/** Sends `text` on a new connection, half-closes if asked, and returns all it got until close. */
function raw(port: number, text: string, opts: { halfClose?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let got = "";
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      got += d;
    });
    s.on("error", reject);
    s.on("close", () => resolve(got));
    s.write(text, () => {
      if (opts.halfClose === true) s.end();
    });
  });
}

/** The status lines of the answers in `text`, in order. */
const statusLines = (text: string): string[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]!);

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: vigil\r\n${extra}\r\n`;

/**
 * A lookup process on the API's port with `entries` in its HTTP table, and a "node": an API
 * handler over `backend` that serves what the process hands over, as VigilNode wires them.
 * `handed` gets the bytes handed over with each connection.
 */
async function lookupsWithNode(
  backend: Record<string, unknown>,
  entries: HttpTableEntry[],
  timeouts: { keepAliveTimeoutMs: number; headersTimeoutMs: number },
  handed: (rest: Buffer) => void,
): Promise<{ lookups: LookupThread; close(): Promise<void> }> {
  const handler = createApiHandler({ backend: backend as never });
  const lookups = await startLookupThread({
    agentEntries: [],
    dnsEntries: [],
    http: { host: "127.0.0.1", port: 0, ...timeouts },
    httpEntries: entries,
    onConnection: (socket, rest) => {
      handed(rest);
      socket.allowHalfOpen = true;
      handler.adopt(socket, rest);
    },
  });
  return {
    lookups,
    close: async () => {
      await lookups.close();
      handler.close();
    },
  };
}

describe("lookup process: the HTTP table and the hand-over", () => {
  let lookups: LookupThread;
  let close: () => Promise<void>;
  /** What the "node" (a plain handler) got: the bytes handed over with each connection. */
  const handed: string[] = [];
  before(async () => {
    ({ lookups, close } = await lookupsWithNode(
      {
        health: () => ({ from: "node" }),
        getTarget: (pool: string, target: string) =>
          pool === "web" && target === "10.0.0.9:80" ? { from: "node" } : undefined,
        getPool: (name: string) => (name === "web" ? {} : undefined),
      },
      [
        ["web", "10.0.0.1:80", '{"from":"table","n":1}'],
        ["web", "10.0.0.2:80", '{"from":"table","n":2}'],
      ],
      { keepAliveTimeoutMs: 5_000, headersTimeoutMs: 5_000 },
      (rest) => handed.push(rest.toString("latin1")),
    ));
  });
  after(() => close());
  const port = () => lookups.http!.port;

  it("answers target lookups in its table without the node", async () => {
    handed.length = 0;
    const r = await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.1:80`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { from: "table", n: 1 });
    assert.equal(r.headers["content-type"], "application/json; charset=utf-8");
    assert.deepEqual(handed, []);
  });

  it("hands everything else to the node, with the bytes it read, in order on one connection", async () => {
    handed.length = 0;
    const s = connect(port(), "127.0.0.1");
    let text = "";
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      text += d;
    });
    const closed = new Promise((r) => s.on("close", r));
    // One lookup from the table, then a read the node takes whole: its backend knows only
    // 10.0.0.9:80, so the 404 for the table's 10.0.0.2:80 shows who answered.
    s.write(get("/v1/pools/web/targets/10.0.0.1:80"));
    await eventually(() => statusLines(text).length === 1, "the table's answer");
    const rest =
      get("/v1/health") +
      get("/v1/pools/web/targets/10.0.0.2:80") +
      get("/v1/pools/web/targets/10.0.0.9:80") +
      get("/v1/pools/web/targets/10.0.0.7:80", "Connection: close\r\n");
    s.write(rest);
    await closed;
    assert.deepEqual(statusLines(text), ["200", "200", "404", "200", "404"]);
    const bodies = text.match(/\{"from":"[a-z]+"[^}]*\}/g);
    assert.deepEqual(bodies, ['{"from":"table","n":1}', '{"from":"node"}', '{"from":"node"}']);
    assert.deepEqual(handed, [rest]);
  });

  it("hands over a target it does not hold (the node says 404) and a request it does not take", async () => {
    handed.length = 0;
    const unknown = await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.7:80`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "VIGIL_ERR_NOT_FOUND");
    const post = await call("POST", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.1:80`, {
      body: {},
    });
    assert.equal(post.status, 405);
    const bad = await raw(port(), "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\n\r\n");
    assert.deepEqual(statusLines(bad), ["400"]); // no Host: node:http's 400
    assert.equal(handed.length, 3);
    await eventually(() => lookups.http!.stats.handedOver >= 3, "the hand-overs counted");
  });

  it("answers a peer that has half-closed, here and after a hand-over", async () => {
    const here = await raw(port(), get("/v1/pools/web/targets/10.0.0.2:80"), { halfClose: true });
    assert.deepEqual(statusLines(here), ["200"]);
    assert.match(here, /"n":2/);
    const there = await raw(port(), get("/v1/health"), { halfClose: true });
    assert.deepEqual(statusLines(there), ["200"]);
    assert.match(there, /"from":"node"/);
  });

  it("follows updates, removals and a reset after a crash", async () => {
    lookups.updateHttp([
      ["web", "10.0.0.1:80", '{"from":"table","n":11}'],
      ["web", "10.0.0.2:80", undefined],
    ]);
    await eventually(
      async () =>
        (await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.1:80`)).body.n === 11,
      "the new body",
    );
    handed.length = 0;
    const gone = await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.2:80`);
    assert.equal(gone.status, 404); // the node's answer: the row is gone from the table
    assert.equal(handed.length, 1);
    await lookups.killForTest();
    await eventually(() => lookups.restarts === 1, "a new lookup process");
    handed.length = 0;
    const again = await eventually(async () => {
      const r = await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.1:80`);
      return r.status === 200 ? r : undefined;
    }, "answers after the restart");
    assert.deepEqual(again.body, { from: "table", n: 11 });
    assert.deepEqual(handed, []);
  });

  it("counts the lookups it answered", async () => {
    // The counts arrive every 200 ms: the one before may still be on its way.
    const before = lookups.http!.stats.answered;
    await call("GET", `http://127.0.0.1:${port()}/v1/pools/web/targets/10.0.0.1:80`);
    await eventually(() => lookups.http!.stats.answered > before, "the answer counted");
  });

  it("refuses the API's port on a thread: a thread cannot hand a socket over", async () => {
    await assert.rejects(
      startLookupThread({
        isolation: "thread",
        agentEntries: [],
        dnsEntries: [],
        http: { host: "127.0.0.1", port: 0, keepAliveTimeoutMs: 5_000, headersTimeoutMs: 5_000 },
      }),
      /http needs process isolation/,
    );
  });
});

describe("lookup process: a pipelined burst, answered in order across the hand-over", () => {
  let lookups: LookupThread;
  let close: () => Promise<void>;
  let handed = 0;
  // Bodies of 64 KB: 300 lookups ask for far more answer bytes (19 MB) than the sockets buffer,
  // whichever path answers which read. The node's backend answers the same body for the lookups
  // it gets. (A hand-over waiting for answers not yet written: test/serve/hand-over.test.ts.)
  const pad = "x".repeat(64_000);
  before(async () => {
    ({ lookups, close } = await lookupsWithNode(
      {
        health: () => ({ from: "node" }),
        getTarget: (pool: string, target: string) =>
          pool === "web" && target === "10.0.0.1:80" ? { pad } : undefined,
        getPool: () => undefined,
      },
      [["web", "10.0.0.1:80", JSON.stringify({ pad })]],
      { keepAliveTimeoutMs: 1_000, headersTimeoutMs: 500 },
      () => handed++,
    ));
  });
  after(() => close());
  const burst = (n: number) => get("/v1/pools/web/targets/10.0.0.1:80").repeat(n) + get("/v1/health");

  it("answers every lookup of a pipelined burst, then hands the connection over, in order", async () => {
    const before = handed;
    const s = connect(lookups.http!.port, "127.0.0.1");
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.write(burst(300));
    try {
      const text = await eventually(() => {
        const t = Buffer.concat(got).toString("latin1");
        return t.endsWith('{"from":"node"}') ? t : undefined;
      }, "every answer, the node's last");
      const statuses = statusLines(text);
      assert.equal(statuses.length, 301);
      assert.ok(statuses.every((x) => x === "200"));
      assert.equal(handed, before + 1);
    } finally {
      s.destroy();
    }
  });

  // (Cutting off a client that never reads is whenWritten's: test/serve/hand-over.test.ts.)
});

describe("node.lookup_api inside a node", () => {
  const { prober, results } = scriptedProber();
  let node: VigilNode;
  let dir: string;
  const nodeYaml = (tokens: string) =>
    `node: { name: la1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", lookup_api: true, data_dir: "${dir}"${tokens} }
defaults: { interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [10.2.0.1:80, 10.2.0.2:80]
`;
  before(async () => {
    dir = tmpDataDir("lookup-api");
    node = new VigilNode(parseConfigText(nodeYaml(""), "<test>"), {
      clock: systemClock,
      random: new SeededRandom(4),
      prober,
      logger: silentLogger,
    });
    await node.start();
  });
  after(async () => {
    await node.stop();
  });
  const lookups = () => (node as unknown as { lookups: LookupThread }).lookups;
  const target = (t: string, token?: string) =>
    call("GET", `${node.apiUrl}/v1/pools/web/targets/${t}`, token === undefined ? {} : { token });

  it("listens in the lookup process, on the API's address", () => {
    const http = lookups().http!;
    assert.equal(node.apiUrl, `http://127.0.0.1:${http.port}`);
  });

  it("answers each target as the node's own view says, also as checks change it", async () => {
    // Every check changes a view (latency, time, recent results): the table follows within
    // its window; a body the lookup process sends equals the node's view at some moment.
    results.set("10.2.0.2", { ok: false, latencyMs: 7.5, reason: "status 503" });
    await eventually(async () => (await target("10.2.0.2:80")).body.state === "down", "10.2.0.2 down");
    const answered = lookups().http!.stats.answered;
    const handedOver = lookups().http!.stats.handedOver;
    const r = await target("10.2.0.2:80");
    assert.equal(r.body.observers[0].latencyMs, 7.5);
    assert.equal(r.body.reason, "status 503");
    results.set("10.2.0.2", { ok: false, latencyMs: 9.25, reason: "status 503" });
    await eventually(
      async () => (await target("10.2.0.2:80")).body.observers[0].latencyMs === 9.25,
      "the new latency",
    );
    // Stop the checks' changes: then the table's body is the node's view, byte for byte.
    node.putPool("web", {
      check: { type: "http", path: "/healthz" },
      interval: "1h",
      rise: 1,
      fall: 1,
      targets: ["10.2.0.1:80", "10.2.0.2:80"],
    });
    for (const t of ["10.2.0.1:80", "10.2.0.2:80"])
      await eventually(async () => {
        const res = await raw(
          lookups().http!.port,
          get(`/v1/pools/web/targets/${t}`, "Connection: close\r\n"),
        );
        const body = res.slice(res.indexOf("\r\n\r\n") + 4);
        return body === JSON.stringify(node.getTarget("web", t));
      }, `${t}'s body as the node renders it`);
    await eventually(() => lookups().http!.stats.answered > answered, "answered in the lookup process");
    assert.equal(lookups().http!.stats.handedOver, handedOver, "no target lookup went to the node");
  });

  it("shows an API write at once, on a new connection (read your writes)", async () => {
    // A write's table change goes with the write (feedLookupsNow), not in the 100 ms window of
    // other view changes: a GET on a fresh connection right after the answer sees it. (On an
    // idle node the per-turn feed would mostly win the race too; under load it need not.)
    for (let i = 0; i < 20; i++) {
      const state = i % 2 === 0 ? "maint" : "none";
      const w = await call("PUT", `${node.apiUrl}/v1/pools/web/targets/10.2.0.1:80/admin`, {
        body: { state },
      });
      assert.equal(w.status, 200);
      const r = await target("10.2.0.1:80");
      assert.equal(r.body.admin, state, `round ${i}`);
    }
    // A pool added is there at once too, and gone at once when deleted.
    const put = await call("PUT", `${node.apiUrl}/v1/pools/extra`, {
      body: { check: { type: "tcp" }, interval: "1h", targets: ["10.2.0.9:81"] },
    });
    assert.equal(put.status, 201);
    assert.equal((await call("GET", `${node.apiUrl}/v1/pools/extra/targets/10.2.0.9:81`)).status, 200);
    assert.equal((await call("DELETE", `${node.apiUrl}/v1/pools/extra`)).status, 204);
    assert.equal((await call("GET", `${node.apiUrl}/v1/pools/extra/targets/10.2.0.9:81`)).status, 404);
  });

  it("serves every other route through the node, and counts the lookup process's answers in /metrics", async () => {
    const health = await call("GET", `${node.apiUrl}/v1/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.name, "la1");
    const before = lookups().http!.stats.answered;
    await target("10.2.0.1:80");
    await eventually(() => lookups().http!.stats.answered > before, "the answer counted");
    const answered = lookups().http!.stats.answered;
    const m = await (await fetch(`${node.apiUrl}/metrics`)).text();
    const counted = Number(/^vigil_http_requests_total\{route="target",code="200"\} (\d+)$/m.exec(m)?.[1]);
    assert.ok(counted >= answered, `vigil_http_requests_total target/200 ${counted} < ${answered} answered`);
    assert.match(m, /^vigil_lookup_api_handovers_total [1-9]\d*$/m);
  });

  it("streams events through the node on a handed-over connection", async () => {
    const ctl = new AbortController();
    const res = await fetch(`${node.apiUrl}/v1/events/stream?pool=web&type=target.admin`, {
      signal: ctl.signal,
    });
    try {
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let text = "";
      // The stream is open once its first bytes came (the node writes them at once).
      text += dec.decode((await reader.read()).value);
      node.setAdmin("web", "10.2.0.1:80", { state: "drain", reason: "stream test" });
      node.setAdmin("web", "10.2.0.1:80", { state: "none" });
      for (let i = 0; i < 100 && (text.match(/event: target\.admin/g) ?? []).length < 2; i++) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
      assert.equal((text.match(/event: target\.admin/g) ?? []).length, 2, text);
      assert.match(text, /"to":"drain"/);
    } finally {
      ctl.abort();
    }
  });

  it("holds lookups to the API tokens, and follows a reload of them", async () => {
    const file = join(dir, "vigil.yaml");
    const withTokens = (read: string) =>
      `, api_tokens: [{ name: ops, scope: write, token: ${WRITE_TOKEN} }, { name: lb, scope: read, token: ${read} }]`;
    writeFileSync(file, nodeYaml(withTokens(READ_TOKEN)));
    const r = await node.reloadConfig(() => loadConfigFile(file));
    assert.equal(r.ok, true, JSON.stringify(r));
    const prior = lookups().http!.stats.handedOver;
    const refused = await target("10.2.0.1:80");
    assert.equal(refused.status, 401); // the node's refusal: the lookup process handed it over
    await eventually(() => lookups().http!.stats.handedOver > prior, "the refused lookup handed over");
    const handedOver = lookups().http!.stats.handedOver;
    const answered = lookups().http!.stats.answered;
    assert.equal((await target("10.2.0.1:80", READ_TOKEN)).status, 200);
    await eventually(() => lookups().http!.stats.answered > answered, "answered in the lookup process");
    assert.equal(lookups().http!.stats.handedOver, handedOver);
    // Another read token: the old one is refused, the new one answered.
    const next = "another-read-token-0123456789";
    writeFileSync(file, nodeYaml(withTokens(next)));
    assert.equal((await node.reloadConfig(() => loadConfigFile(file))).ok, true);
    assert.equal((await target("10.2.0.1:80", READ_TOKEN)).status, 401);
    assert.equal((await target("10.2.0.1:80", next)).status, 200);
    // No tokens: open again.
    writeFileSync(file, nodeYaml(""));
    assert.equal((await node.reloadConfig(() => loadConfigFile(file))).ok, true);
    assert.equal((await target("10.2.0.1:80")).status, 200);
  });

  it("comes back after the lookup process dies, with the whole table", async () => {
    await lookups().killForTest();
    await eventually(() => lookups().restarts === 1, "a new lookup process");
    const r = await eventually(async () => {
      const res = await target("10.2.0.2:80").catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    }, "answers after the restart");
    assert.equal(r.body.target, "10.2.0.2:80");
    assert.equal(r.body.state, "down");
  });
});
