import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { Registry } from "prom-client";
import { parseConfigText } from "../../src/config/load.ts";
import type { ApiTlsSpec, ApiTokenSpec } from "../../src/config/types.ts";
import { ApiAuth, registerAuthMetrics } from "../../src/serve/api/auth.ts";
import { parseFastRequest } from "../../src/serve/api/fast-path.ts";
import { getText } from "../../src/serve/api/peer-client.ts";
import { type ApiBackend, type ApiServer, startApiServer } from "../../src/serve/api/server.ts";
import { parseReplies, type Reply } from "../helpers/http-replies.ts";
import { makeSecurityFiles, READ_TOKEN, type SecurityFiles, WRITE_TOKEN } from "./helpers.ts";

// The API server with tokens and TLS (src/serve/api/server.ts with auth.ts and tls.ts): every
// route behind the token but the open ones, on node:http and on the fast path alike, over
// plain HTTP and over TLS.

const tokens: ApiTokenSpec[] = [
  { name: "ops", scope: "write", token: WRITE_TOKEN },
  { name: "prometheus", scope: "read", token: READ_TOKEN },
];

const target = { target: "10.0.0.1:80", state: "up", reason: "status 200", observers: [] };
const writes: string[] = [];

const backend: ApiBackend = {
  health: () => ({ name: "t1" }),
  members: () => [{ name: "t1" }],
  listPools: () => [{ name: "web" }],
  getPool: (name) => (name === "web" ? { name, targets: [target] } : undefined),
  hasPool: (name) => name === "web",
  putPool: (name) => {
    writes.push(`put ${name}`);
    return { created: true, pool: { name } };
  },
  deletePool: (name) => {
    writes.push(`delete ${name}`);
    return name === "web";
  },
  getTarget: (pool, t) => (pool === "web" && t === target.target ? target : undefined),
  setAdmin: () => {
    writes.push("admin");
    return target;
  },
  queryEvents: () => ({ events: [], next: 0 }),
  metricsText: () => Promise.resolve({ contentType: "text/plain", text: "vigil_up 1\n" }),
};

/** A keep-alive connection, plain or TLS, that reads one response per request. */
class Client {
  private got = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  closed = false;
  readonly socket: Socket;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
      this.wake?.();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
  }
  static open(port: number, ca?: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s =
        ca === undefined
          ? netConnect({ port, host: "127.0.0.1" }, () => resolve(new Client(s)))
          : tlsConnect({ port, host: "127.0.0.1", ca, servername: "localhost" }, () =>
              resolve(new Client(s)),
            );
      s.once("error", reject);
    });
  }
  async send(raw: string): Promise<Reply> {
    const before = parseReplies(this.got).length;
    this.socket.write(raw, "latin1");
    for (;;) {
      const all = parseReplies(this.got);
      if (all.length > before) return all[before]!;
      if (this.closed) throw new Error("connection closed before the reply");
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

const request = (method: string, path: string, headers: Record<string, string> = {}, body = ""): string =>
  `${method} ${path} HTTP/1.1\r\nHost: vigil\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join(
      "",
    )}${body === "" ? "" : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`}\r\n${body}`;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const TARGET = "/v1/pools/web/targets/10.0.0.1:80";

interface Started {
  api: ApiServer;
  auth: ApiAuth;
  registry: Registry;
  requests: { route: string; status: number }[];
}

async function start(tls?: ApiTlsSpec): Promise<Started> {
  const auth = new ApiAuth(tokens);
  const registry = new Registry();
  registerAuthMetrics(registry, auth);
  const requests: { route: string; status: number }[] = [];
  const api = await startApiServer({
    host: "127.0.0.1",
    port: 0,
    backend,
    auth,
    ...(tls === undefined ? {} : { tls }),
    onRequest: (route, status) => requests.push({ route, status }),
  });
  return { api, auth, registry, requests };
}

describe("API with tokens, plain HTTP", () => {
  let s: Started;
  before(async () => {
    s = await start();
  });
  after(() => s.api.close());

  async function one(raw: string): Promise<Reply> {
    const c = await Client.open(s.api.address.port);
    try {
      return await c.send(raw);
    } finally {
      c.close();
    }
  }

  it("leaves /v1/health open for liveness probes", async () => {
    const r = await one(request("GET", "/v1/health"));
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { name: "t1" });
  });

  it("answers 401 with a challenge and the API's error format without a token, on every other route", async () => {
    for (const path of [
      "/v1/pools",
      "/v1/members",
      "/metrics",
      "/v1/events",
      "/v1/no-such-route",
      "/v1/pools/web",
    ]) {
      const r = await one(request("GET", path));
      assert.equal(r.status, 401, path);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="vigil"', path);
      assert.match(r.headers.get("content-type")!, /^application\/json/);
      const e = JSON.parse(r.body) as { error: { code: string; message: string } };
      assert.equal(e.error.code, "VIGIL_ERR_UNAUTHORIZED", path);
    }
  });

  it("lets a read token read, /metrics included, and refuses its writes with 403", async () => {
    assert.equal((await one(request("GET", "/v1/pools", bearer(READ_TOKEN)))).status, 200);
    const m = await getText(`${s.api.url}/metrics`, {
      token: READ_TOKEN,
      timeoutMs: 5000,
      maxBytes: 1 << 20,
    });
    assert.equal(m.status, 200);
    assert.equal(m.text, "vigil_up 1\n");
    writes.length = 0;
    for (const [method, path] of [
      ["PUT", "/v1/pools/web"],
      ["DELETE", "/v1/pools/web"],
      ["PUT", `${TARGET}/admin`],
    ] as const) {
      const r = await one(request(method, path, bearer(READ_TOKEN), '{"state":"maint"}'));
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(
        r.headers.get("www-authenticate"),
        'Bearer realm="vigil", error="insufficient_scope", scope="write"',
      );
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, "VIGIL_ERR_FORBIDDEN");
    }
    assert.deepEqual(writes, [], "a refused write reached the backend");
  });

  it("lets a write token write and read", async () => {
    writes.length = 0;
    const r = await one(request("PUT", "/v1/pools/cache", bearer(WRITE_TOKEN), '{"check":{"type":"tcp"}}'));
    assert.equal(r.status, 201);
    assert.equal((await one(request("DELETE", "/v1/pools/web", bearer(WRITE_TOKEN)))).status, 204);
    assert.equal((await one(request("GET", "/v1/members", bearer(WRITE_TOKEN)))).status, 200);
    assert.deepEqual(writes, ["put cache", "delete web"]);
  });

  it("accepts the vigil_token cookie for GET only, never for a write", async () => {
    const cookie = { cookie: `theme=dark; vigil_token=${WRITE_TOKEN}` };
    assert.equal((await one(request("GET", "/v1/pools", cookie))).status, 200);
    writes.length = 0;
    const r = await one(request("PUT", "/v1/pools/web", cookie, '{"check":{"type":"tcp"}}'));
    assert.equal(r.status, 401);
    assert.match(JSON.parse(r.body).error.message, /cookie is accepted for GET and HEAD only/);
    const d = await one(request("DELETE", "/v1/pools/web", cookie));
    assert.equal(d.status, 401);
    assert.deepEqual(writes, []);
  });

  it("refuses an unknown token and a malformed header with 401", async () => {
    const unknown = await one(request("GET", "/v1/pools", bearer(`${READ_TOKEN}-not`)));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.headers.get("www-authenticate"), 'Bearer realm="vigil", error="invalid_token"');
    const basic = await one(request("GET", "/v1/pools", { authorization: `Basic ${READ_TOKEN}` }));
    assert.equal(basic.status, 401);
    assert.equal(basic.headers.get("www-authenticate"), 'Bearer realm="vigil", error="invalid_request"');
  });

  it("the fast path refuses an unauthenticated target lookup: node:http answers 401", async () => {
    // The request is one the fast path would answer (its parser says so)...
    const raw = request("GET", TARGET);
    const parsed = parseFastRequest(raw, 0);
    assert.equal(parsed.kind, "target");
    const c = await Client.open(s.api.address.port);
    try {
      s.requests.length = 0;
      const before = s.auth.failures.missing;
      const r = await c.send(raw);
      // ...but it is refused, counted once, and the connection has left the fast path.
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="vigil"');
      assert.ok(!r.body.includes("10.0.0.1"), "the target's view leaked into a refusal");
      assert.equal(s.auth.failures.missing, before + 1);
      assert.deepEqual(s.requests, [{ route: "auth", status: 401 }]);
      assert.equal(s.api.fastConnections, 0);
    } finally {
      c.close();
    }
  });

  it("the fast path refuses a bad cookie and a wrong token alike", async () => {
    for (const headers of [
      bearer("wrong-token-0123456789"),
      { cookie: "vigil_token=wrong-token-0123456789" },
      { authorization: "Bearer" },
    ]) {
      const c = await Client.open(s.api.address.port);
      try {
        assert.equal((await c.send(request("GET", TARGET, headers))).status, 401, JSON.stringify(headers));
      } finally {
        c.close();
      }
    }
  });

  it("the fast path still answers a lookup with a valid token or cookie, and keeps the connection", async () => {
    for (const headers of [bearer(READ_TOKEN), { cookie: `vigil_token=${READ_TOKEN}` }]) {
      const c = await Client.open(s.api.address.port);
      try {
        s.requests.length = 0;
        const r = await c.send(request("GET", TARGET, headers));
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body), target);
        assert.deepEqual(s.requests, [{ route: "target", status: 200 }]);
        assert.equal(s.api.fastConnections, 1, "the lookup did not stay on the fast path");
        // A second request on the same connection without a token is refused, and hands over.
        assert.equal((await c.send(request("GET", TARGET))).status, 401);
        assert.equal(s.api.fastConnections, 0);
      } finally {
        c.close();
      }
    }
  });

  it("counts every refusal by reason for the metric", async () => {
    const text = await s.registry.metrics();
    const count = (reason: string) =>
      Number(
        new RegExp(`^vigil_api_auth_failures_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(text)?.[1],
      );
    assert.ok(count("missing") >= 8);
    assert.ok(count("insufficient_scope") >= 3);
    assert.ok(count("cookie_on_write") >= 2);
    assert.ok(count("unknown_token") >= 3);
    assert.ok(count("malformed") >= 2);
  });
});

describe("API over TLS", () => {
  let files: SecurityFiles;
  let s: Started;
  let ca: string;
  before(async () => {
    files = makeSecurityFiles();
    ca = readFileSync(files.certs.cert, "utf8");
    const cfg = parseConfigText(
      `node: { api_tls: { cert: ${files.certs.cert}, key: ${files.certs.key} } }`,
      "<t>",
    );
    s = await start(cfg.node.apiTls);
  });
  after(async () => {
    await s.api.close();
    files.remove();
  });

  it("serves https URLs, verified against the given CA", async () => {
    assert.match(s.api.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await getText(`${s.api.url}/v1/pools`, {
      ca,
      token: READ_TOKEN,
      timeoutMs: 5000,
      maxBytes: 1 << 20,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { pools: [{ name: "web" }] });
    const open = await getText(`${s.api.url}/v1/health`, { ca, timeoutMs: 5000, maxBytes: 1 << 20 });
    assert.equal(open.status, 200);
  });

  it("is refused by a client that does not trust the certificate", async () => {
    await assert.rejects(
      getText(`${s.api.url}/v1/health`, { timeoutMs: 5000, maxBytes: 1 << 20 }),
      /self-signed certificate/,
    );
  });

  it("answers lookups on the fast path through TLS, and refuses them without a token", async () => {
    const c = await Client.open(s.api.address.port, ca);
    try {
      s.requests.length = 0;
      const ok = await c.send(request("GET", TARGET, bearer(READ_TOKEN)));
      assert.equal(ok.status, 200);
      assert.equal(s.api.fastConnections, 1);
      const refused = await c.send(request("GET", TARGET));
      assert.equal(refused.status, 401);
      assert.equal(s.api.fastConnections, 0);
      // node:http serves the rest of the connection, still over TLS.
      assert.equal((await c.send(request("GET", "/v1/members", bearer(READ_TOKEN)))).status, 200);
      assert.deepEqual(
        s.requests.map((r) => r.route),
        ["target", "auth", "members"],
      );
    } finally {
      c.close();
    }
  });

  it("closes at once after a client hung up in the middle of its handshake", async () => {
    const cfg = parseConfigText(
      `node: { api_tls: { cert: ${files.certs.cert}, key: ${files.certs.key} } }`,
      "<t>",
    );
    const other = await start(cfg.node.apiTls);
    await assert.rejects(getText(`${other.api.url}/v1/health`, { timeoutMs: 5000, maxBytes: 1024 }));
    const started = performance.now();
    await other.api.close();
    // Half-open TLS sockets would wait for the 10 s handshake timeout here.
    assert.ok(performance.now() - started < 2_000, "close() waited for a dead handshake");
  });

  it("drops plain HTTP sent to the TLS port, and keeps serving", async () => {
    const c = await Client.open(s.api.address.port);
    await assert.rejects(c.send(request("GET", "/v1/health")), /closed/);
    const r = await getText(`${s.api.url}/v1/health`, { ca, timeoutMs: 5000, maxBytes: 1 << 20 });
    assert.equal(r.status, 200);
  });
});
