import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { fastPathMaxHeadBytes, parseFastRequest } from "../../src/serve/api/fast-path.ts";
import { type ApiBackend, type ApiServer, startApiServer } from "../../src/serve/api/server.ts";
import { parseReplies, type Reply } from "../helpers/http-replies.ts";
import { eventually } from "../helpers/origins.ts";

// The lean path for GET /v1/pools/{pool}/targets/{target} (src/serve/api/fast-path.ts) against
// node:http and the router: two servers over one backend, one with the fast path and one
// without, must send the same bytes (but the Date header) for any request, and the fast path
// must actually be the one answering the plain lookups.

const targets = new Map<string, unknown>([
  [
    "web/10.0.0.1:80",
    {
      target: "10.0.0.1:80",
      state: "up",
      reason: "status 200",
      observers: [{ node: "n1", state: "up" }],
      recent: [{ ts: 1, ok: true, latencyMs: 0.5, reason: "status 200" }],
    },
  ],
  // Non-ASCII in the body: content-length counts bytes, not characters.
  ["web/10.0.0.2:80", { target: "10.0.0.2:80", state: "down", reason: 'naïve ☃ "quoted" \\ 🚑' }],
  ["web/[::1]:8080", { target: "[::1]:8080", state: "maint", reason: "kernel" }],
  ["api-2/host.example:443", { target: "host.example:443", state: "unknown", reason: "" }],
]);

const requests: { route: string; status: number; server: string }[] = [];
let throwOn = "";

function backend(withHasPool: boolean): ApiBackend {
  const b: ApiBackend = {
    health: () => ({ name: "t1" }),
    members: () => [],
    listPools: () => [{ name: "web" }, { name: "api-2" }],
    getPool: (name) => (name === "web" || name === "api-2" ? { name, targets: [] } : undefined),
    putPool: (name) => ({ created: true, pool: { name } }),
    deletePool: () => false,
    getTarget: (pool, target) => {
      if (target === throwOn) throw new Error("the backend broke");
      return targets.get(`${pool}/${target}`);
    },
    setAdmin: () => ({}),
    queryEvents: () => ({ events: [], next: 0 }),
    metricsText: () => Promise.resolve({ contentType: "text/plain", text: "" }),
  };
  if (withHasPool) b.hasPool = (name) => name === "web" || name === "api-2";
  return b;
}

/** Everything the server sends on one connection until it closes, Date values blanked. */
interface Transcript {
  text: string;
  replies: Reply[];
}

function normalize(raw: string): string {
  return raw.replace(/\r\nDate: [^\r]*\r\n/g, "\r\nDate: -\r\n");
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Writes each chunk (letting it leave before the next), half-closes, reads until closed. */
async function transcript(port: number, chunks: string[], halfClose = true): Promise<Transcript> {
  const s = await open(port);
  const got: Buffer[] = [];
  const closed = new Promise<void>((resolve) => {
    s.on("data", (d: Buffer) => got.push(d));
    s.on("error", () => {});
    s.on("close", () => resolve());
  });
  for (const c of chunks) {
    s.write(c, "latin1");
    await tick();
  }
  if (halfClose) s.end();
  await closed;
  const raw = Buffer.concat(got);
  return { text: normalize(raw.toString("latin1")), replies: parseReplies(raw) };
}

/** A keep-alive connection reading one response per request. */
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
  static async open(port: number): Promise<Client> {
    return new Client(await open(port));
  }
  /** Sends `raw` and waits for `n` whole responses more than read so far. */
  async send(raw: string, n = 1): Promise<Reply[]> {
    const before = parseReplies(this.got).length;
    this.socket.write(raw, "latin1");
    for (;;) {
      const all = parseReplies(this.got);
      if (all.length >= before + n) return all.slice(before, before + n);
      if (this.closed) throw new Error(`connection closed after ${all.length - before} of ${n} replies`);
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

const get = (path: string, extra = ""): string => `GET ${path} HTTP/1.1\r\nHost: vigil\r\n${extra}\r\n`;

describe("API fast path: the same answers as node:http and the router", () => {
  let fast: ApiServer;
  let slow: ApiServer;

  before(async () => {
    fast = await startApiServer({
      host: "127.0.0.1",
      port: 0,
      backend: backend(true),
      onRequest: (route, status) => requests.push({ route, status, server: "fast" }),
    });
    slow = await startApiServer({
      host: "127.0.0.1",
      port: 0,
      backend: backend(false),
      fastPath: false,
      onRequest: (route, status) => requests.push({ route, status, server: "slow" }),
    });
  });
  after(async () => {
    await fast.close();
    await slow.close();
  });

  /** Both servers' transcripts for the same chunks; asserts they are equal and returns one. */
  async function same(chunks: string[], halfClose = true): Promise<Transcript> {
    const a = await transcript(fast.address.port, chunks, halfClose);
    const b = await transcript(slow.address.port, chunks, halfClose);
    assert.equal(a.text, b.text, JSON.stringify(chunks));
    return a;
  }

  it("answers a target with the router's status, headers and body, on the fast path", async () => {
    const c = await Client.open(fast.address.port);
    try {
      const [r] = await c.send(get("/v1/pools/web/targets/10.0.0.1:80"));
      assert.equal(r!.status, 200);
      assert.deepEqual(JSON.parse(r!.body), targets.get("web/10.0.0.1:80"));
      assert.equal(r!.headers.get("content-type"), "application/json; charset=utf-8");
      assert.equal(r!.headers.get("cache-control"), "no-store");
      assert.equal(r!.headers.get("connection"), "keep-alive");
      assert.equal(r!.headers.get("keep-alive"), "timeout=65");
      assert.match(r!.headers.get("date")!, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      // Still the fast path's connection: node:http never saw it.
      assert.equal(fast.fastConnections, 1);
    } finally {
      c.close();
    }
    for (const path of [
      "/v1/pools/web/targets/10.0.0.1:80",
      "/v1/pools/web/targets/10.0.0.2:80",
      "/v1/pools/web/targets/[::1]:8080",
      "/v1/pools/api-2/targets/host.example:443",
    ]) {
      const t = await same([get(path)]);
      assert.equal(t.replies.length, 1);
      assert.equal(t.replies[0]!.status, 200);
    }
  });

  it("counts content-length in bytes for a body that is not ASCII", async () => {
    const t = await same([get("/v1/pools/web/targets/10.0.0.2:80")]);
    const r = t.replies[0]!;
    assert.equal(Number(r.headers.get("content-length")), Buffer.byteLength(r.body));
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'naïve ☃ "quoted" \\ 🚑');
  });

  it("answers unknown targets and pools with the router's 404, counted as the router counts it", async () => {
    requests.length = 0;
    const t1 = await same([get("/v1/pools/web/targets/10.9.9.9:80")]);
    const t2 = await same([get("/v1/pools/nope/targets/10.0.0.1:80")]);
    assert.equal(t1.replies[0]!.status, 404);
    assert.deepEqual(JSON.parse(t1.replies[0]!.body), {
      error: { code: "VIGIL_ERR_NOT_FOUND", message: 'pool "web" has no target "10.9.9.9:80"' },
    });
    assert.equal(t2.replies[0]!.status, 404);
    assert.match(t2.replies[0]!.body, /no pool named \\"nope\\"/);
    assert.deepEqual(
      requests.map((r) => `${r.server} ${r.route} ${r.status}`),
      ["fast error 404", "slow error 404", "fast error 404", "slow error 404"],
    );
  });

  it("counts fast answers under the router's route name", async () => {
    requests.length = 0;
    await same([get("/v1/pools/web/targets/10.0.0.1:80")]);
    assert.deepEqual(requests, [
      { route: "target", status: 200, server: "fast" },
      { route: "target", status: 200, server: "slow" },
    ]);
  });

  it("serves many requests on one keep-alive connection, and pipelined ones in order", async () => {
    const c = await Client.open(fast.address.port);
    try {
      for (let i = 0; i < 5; i++) {
        const [r] = await c.send(get("/v1/pools/web/targets/10.0.0.1:80"));
        assert.equal(r!.status, 200);
      }
      const three = await c.send(
        get("/v1/pools/web/targets/10.0.0.1:80") +
          get("/v1/pools/web/targets/10.9.9.9:80") +
          get("/v1/pools/web/targets/[::1]:8080"),
        3,
      );
      assert.deepEqual(
        three.map((r) => r.status),
        [200, 404, 200],
      );
      assert.equal((JSON.parse(three[2]!.body) as { target: string }).target, "[::1]:8080");
      assert.equal(fast.fastConnections, 1);
    } finally {
      c.close();
    }
  });

  it("answers thousands of pipelined requests in order to a client that reads late", async () => {
    const s = await open(fast.address.port);
    const n = 3_000;
    const keys = ["10.0.0.1:80", "[::1]:8080", "10.9.9.9:80"];
    let all = "";
    for (let i = 0; i < n; i++) all += get(`/v1/pools/web/targets/${keys[i % 3]}`);
    s.pause();
    s.write(all);
    // Far more answer bytes than the socket buffers hold: the server fills them meanwhile, must
    // stop reading, and go on once the client reads. Whichever path has the connection by then,
    // nothing may be lost or reordered.
    await new Promise((r) => setTimeout(r, 50));
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.resume();
    try {
      await eventually(() => parseReplies(Buffer.concat(got)).length === n, "every answer", 5_000);
      const replies = parseReplies(Buffer.concat(got));
      replies.forEach((r, i) => {
        assert.equal(r.status, i % 3 === 2 ? 404 : 200);
        if (r.status === 200) assert.equal((JSON.parse(r.body) as { target: string }).target, keys[i % 3]);
      });
      // (A read that ends inside a request hands the rest to node:http: in order all the same.)
    } finally {
      s.destroy();
    }
  });

  it("hands a connection to node:http at the first read holding another request, answers in order", async () => {
    const c = await Client.open(fast.address.port);
    try {
      const [first] = await c.send(get("/v1/pools/web/targets/10.0.0.1:80"));
      assert.equal(first!.status, 200);
      assert.equal(fast.fastConnections, 1);
      // fast, then node:http's, then one the fast path would have served: all in order.
      const three = await c.send(
        get("/v1/pools/web/targets/10.0.0.2:80") +
          get("/v1/health") +
          get("/v1/pools/web/targets/[::1]:8080"),
        3,
      );
      assert.deepEqual(
        three.map((r) => r.status),
        [200, 200, 200],
      );
      assert.equal((JSON.parse(three[0]!.body) as { target: string }).target, "10.0.0.2:80");
      assert.deepEqual(JSON.parse(three[1]!.body), { name: "t1" });
      assert.equal((JSON.parse(three[2]!.body) as { target: string }).target, "[::1]:8080");
      await eventually(() => fast.fastConnections === 0, "handed over", 2_000);
      // node:http keeps the connection alive and serves the target route through the router.
      const [again] = await c.send(get("/v1/pools/web/targets/10.0.0.1:80"));
      assert.deepEqual(JSON.parse(again!.body), targets.get("web/10.0.0.1:80"));
    } finally {
      c.close();
    }
    await same([
      get("/v1/pools/web/targets/10.0.0.1:80") + get("/v1/pools") + get("/v1/pools/web/targets/10.0.0.2:80"),
    ]);
  });

  it("answers a lookup that ends its connection itself (Connection: close, HTTP/1.0), then ends it as node:http does", async () => {
    let handed = 0;
    const count = () => handed++;
    fast.server.on("connection", count);
    try {
      for (const req of [
        get("/v1/pools/web/targets/10.0.0.1:80", "Connection: close\r\n"),
        "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\n\r\n",
        "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\nHost: vigil\r\nConnection: close\r\n\r\n",
      ]) {
        const t = await same([req], false);
        assert.equal(t.replies.length, 1, req);
        assert.equal(t.replies[0]!.status, 200);
        assert.equal(t.replies[0]!.headers.get("connection"), "close");
        assert.equal(t.replies[0]!.headers.get("keep-alive"), undefined);
      }
      // HTTP/1.0 asking to keep the connection: kept, as node:http keeps it.
      const kept = await same(
        [
          "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
            "GET /v1/pools/web/targets/10.0.0.2:80 HTTP/1.0\r\n\r\n",
        ],
        false,
      );
      assert.deepEqual(
        kept.replies.map((r) => r.headers.get("connection")),
        ["keep-alive", "close"],
      );
      assert.equal(handed, 0, "node:http got a connection");
    } finally {
      fast.server.off("connection", count);
    }
  });

  it("gives node:http what it must judge: other forms of the path, HEAD, Connection: close with more after it, bodies", async () => {
    const cases = [
      // Percent-encoding, a query, a trailing slash, double slashes, dot segments: the router
      // decodes and normalises these, and the answer must not depend on which path served it.
      get("/v1/pools/web/targets/%5B%3A%3A1%5D%3A8080"),
      get("/v1/pools/web/targets/10.0.0.1:80?x=1"),
      get("/v1/pools/web/targets/10.0.0.1:80/"),
      get("/v1//pools/web/targets/10.0.0.1:80"),
      get("/v1/pools/web/targets/./10.0.0.1:80"),
      get("/v1/pools/web/targets/.."),
      get("/v1/pools/web/targets/10.0.0.1:80/admin"),
      get("http://vigil/v1/pools/web/targets/10.0.0.1:80"),
      `HEAD /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n\r\n`,
      `get /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n\r\n`,
      `GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\nHost: vigil\r\n\r\n`,
      get("/v1/pools/web/targets/10.0.0.1:80", "Connection: close\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "connection: Keep-Alive\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "Content-Length: 0\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "Content-Length: 4\r\n") + "abcd",
      get("/v1/pools/web/targets/10.0.0.1:80", "Transfer-Encoding: chunked\r\n") + "0\r\n\r\n",
      get("/v1/pools/web/targets/10.0.0.1:80", "Expect: 100-continue\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "X-Odd: caf\xe9\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "Host: again\r\n"), // node:http takes the first
      "GET  /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n\r\n", // and forgives this
    ];
    for (const c of cases) await same([c]);
    // HEAD is the router's: 405, as before the fast path.
    const head = await same([`HEAD /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n\r\n`]);
    assert.match(head.text, /^HTTP\/1\.1 405 /);
    const close = await same([get("/v1/pools/web/targets/10.0.0.1:80", "Connection: close\r\n")], false);
    assert.equal(close.replies[0]!.headers.get("connection"), "close");
    // A request after a close one, in the same chunk: node:http's to judge, and the same answers.
    await same(
      [
        get("/v1/pools/web/targets/10.0.0.1:80", "Connection: close\r\n") +
          get("/v1/pools/web/targets/10.0.0.1:80"),
      ],
      false,
    );
    await same(
      [
        get("/v1/pools/web/targets/10.0.0.2:80") +
          get("/v1/pools/web/targets/10.0.0.1:80", "Connection: close\r\n"),
      ],
      false,
    );
  });

  it("leaves bad requests to node:http: the same 400s", async () => {
    const cases = [
      "HELLO\r\n\r\n",
      "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\n\r\n", // no Host
      get("/v1/pools/web/targets/10.0.0.1:80", "Bad Header: x\r\n"),
      get("/v1/pools/web/targets/10.0.0.1:80", "X-Ctl: a\x01b\r\n"),
      "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\nHost: vigil\n\n",
      get("/v1/pools/web/targets/10.0.0.1:80", " folded\r\n"),
    ];
    for (const c of cases) {
      const t = await same([c]);
      assert.match(t.text, /^HTTP\/1\.1 400 /, JSON.stringify(c));
    }
    // A bad request right after a lookup in the same read: node:http alone answers the lookup and
    // closes without a 400 (an answer is under way on the connection), so the fast path leaves
    // the whole read to it. (Found by the property below with other seeds.)
    for (const bad of [
      "GET /v1/pools/é/targets/ HTTP/1.1\r\n\r\n",
      "GET /v1/pools//targets/ HTTP/1.1\r\n\r\n",
    ]) {
      const t = await same([get("/v1/pools/web/targets/10.0.0.1:80") + bad]);
      assert.match(t.text, /^HTTP\/1\.1 200 /);
    }
  });

  it("answers a request split across writes, or behind a head past its bound, through node:http", async () => {
    const req = get("/v1/pools/web/targets/10.0.0.1:80");
    const split = await same([req.slice(0, 20), req.slice(20, 50), req.slice(50)]);
    assert.equal(split.replies[0]!.status, 200);
    const fastThenSplit = await same([req + req.slice(0, 30), req.slice(30)]);
    assert.deepEqual(
      fastThenSplit.replies.map((r) => r.status),
      [200, 200],
    );
    const big = await same([
      get("/v1/pools/web/targets/10.0.0.1:80", `X-Pad: ${"p".repeat(fastPathMaxHeadBytes)}\r\n`),
    ]);
    assert.equal(big.replies[0]!.status, 200);
  });

  it("keeps PUT bodies under the router's limits (413 past the limit)", async () => {
    const ok = await same([
      `PUT /v1/pools/cache HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
    ]);
    assert.match(ok.text, /^HTTP\/1\.1 201 /);
    const tooLarge = await same([
      `PUT /v1/pools/cache HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/json\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n{}`,
    ]);
    assert.match(tooLarge.text, /^HTTP\/1\.1 413 /);
  });

  it("lets the router answer a lookup that throws (500), as without the fast path", async () => {
    throwOn = "10.0.0.1:80";
    try {
      const t = await same([get("/v1/pools/web/targets/10.0.0.1:80")]);
      assert.equal(t.replies[0]!.status, 500);
      assert.match(t.replies[0]!.body, /the backend broke/);
    } finally {
      throwOn = "";
    }
  });

  it("answers any request line and headers exactly as node:http alone would (property)", async () => {
    const segment = fc
      .array(
        fc.constantFrom(
          "a",
          "Z",
          "0",
          "9",
          ".",
          ":",
          "-",
          "_",
          "[",
          "]",
          "%5B",
          "%3A",
          "~",
          "é",
          "/",
          "?",
          "#",
        ),
        {
          minLength: 0,
          maxLength: 8,
        },
      )
      .map((xs) => xs.join(""));
    const header = fc.constantFrom(
      "Host: vigil\r\n",
      "host: other\r\n",
      "Connection: keep-alive\r\n",
      "Connection: close\r\n",
      "Content-Length: 0\r\n",
      "Accept: */*\r\n",
      "X-A:\r\n",
      "X-B: \t v \r\n",
    );
    const known = fc.constantFrom("web/10.0.0.1:80", "web/[::1]:8080", "api-2/host.example:443");
    const request = fc
      .record({
        method: fc.constantFrom("GET", "GET", "GET", "HEAD", "DELETE"),
        path: fc.oneof(
          known.map((k) => `/v1/pools/${k.replace("/", "/targets/")}`),
          fc.tuple(segment, segment).map(([p, t]) => `/v1/pools/${p}/targets/${t}`),
        ),
        version: fc.constantFrom("HTTP/1.1", "HTTP/1.1", "HTTP/1.0"),
        headers: fc.array(header, { maxLength: 4 }),
      })
      .map((r) => `${r.method} ${r.path} ${r.version}\r\n${r.headers.join("")}\r\n`);
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 3 }), async (reqs) => {
        await same([reqs.join("")]);
      }),
      { numRuns: 300, seed: 5 },
    );
  });
});

describe("API fast path: connections", () => {
  let api: ApiServer;

  before(async () => {
    api = await startApiServer({
      host: "127.0.0.1",
      port: 0,
      backend: backend(true),
      // Short enough to watch: keep-alive 300 ms; headers due within 200 ms, checked often.
      timeouts: {
        keepAliveTimeoutMs: 300,
        headersTimeoutMs: 200,
        requestTimeoutMs: 1_000,
        checkIntervalMs: 50,
      },
    });
  });
  after(() => api.close());

  it("answers a client that half-closes after its request, then closes", async () => {
    const t = await transcript(api.address.port, [get("/v1/pools/web/targets/10.0.0.1:80")], true);
    assert.equal(t.replies.length, 1);
    assert.equal(t.replies[0]!.status, 200);
  });

  it("closes an idle keep-alive connection after the keep-alive bound", async () => {
    const c = await Client.open(api.address.port);
    const started = performance.now();
    await c.send(get("/v1/pools/web/targets/10.0.0.1:80"));
    assert.equal(api.fastConnections, 1);
    await eventually(() => c.closed, "idle connection closed", 3_000);
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs >= 250, `closed after ${elapsedMs} ms, before the bound`);
    assert.equal(api.fastConnections, 0);
  });

  it("answers a new connection that sends nothing with node:http's 408 after the head bound", async () => {
    const silent = async (port: number) => {
      const started = performance.now();
      const t = await transcript(port, [], false);
      return { text: t.text, elapsedMs: performance.now() - started };
    };
    const slow = await startApiServer({
      host: "127.0.0.1",
      port: 0,
      backend: backend(true),
      fastPath: false,
      timeouts: {
        keepAliveTimeoutMs: 300,
        headersTimeoutMs: 200,
        requestTimeoutMs: 1_000,
        checkIntervalMs: 50,
      },
    });
    try {
      const [a, b] = await Promise.all([silent(api.address.port), silent(slow.address.port)]);
      assert.equal(a.text, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
      assert.equal(a.text, b.text);
      assert.ok(a.elapsedMs >= 150 && a.elapsedMs < 2_000, `cut after ${a.elapsedMs} ms`);
      assert.equal(api.fastConnections, 0);
    } finally {
      await slow.close();
    }
  });

  it("keeps node:http's header timeout for a connection it was handed (408)", async () => {
    const s = await open(api.address.port);
    const got: Buffer[] = [];
    const closed = new Promise<void>((resolve) => {
      s.on("data", (d: Buffer) => got.push(d));
      s.on("error", () => {});
      s.on("close", () => resolve());
    });
    // An unfinished head goes to node:http, which must cut it off.
    s.write("GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n");
    const started = performance.now();
    await closed;
    assert.match(Buffer.concat(got).toString("latin1"), /^HTTP\/1\.1 408 /);
    assert.ok(performance.now() - started < 3_000);
  });

  it("close() ends fast-path and handed-over connections and stops listening", async () => {
    const a = await Client.open(api.address.port);
    await a.send(get("/v1/pools/web/targets/10.0.0.1:80"));
    const b = await Client.open(api.address.port);
    await b.send(get("/v1/health"));
    assert.equal(api.fastConnections, 1);
    await api.close();
    await eventually(() => a.closed && b.closed, "both closed", 2_000);
    await assert.rejects(open(api.address.port), /ECONNREFUSED/);
  });
});

describe("API fast path: parseFastRequest", () => {
  const at = (text: string, from = 0) => parseFastRequest(text, from);

  it("takes a plain GET of the target route, from any offset, and says where the next starts", () => {
    const req = get("/v1/pools/web/targets/10.0.0.1:80", "Accept: */*\r\nConnection: keep-alive\r\n");
    assert.deepEqual(at(req), {
      kind: "target",
      pool: "web",
      target: "10.0.0.1:80",
      next: req.length,
      close: false,
    });
    assert.deepEqual(at(`xx${req}${req}`, 2 + req.length), {
      kind: "target",
      pool: "web",
      target: "10.0.0.1:80",
      next: 2 + 2 * req.length,
      close: false,
    });
    assert.deepEqual(at(get("/v1/pools/p/targets/[2001:db8::1]:443")), {
      kind: "target",
      pool: "p",
      target: "[2001:db8::1]:443",
      next: get("/v1/pools/p/targets/[2001:db8::1]:443").length,
      close: false,
    });
    // Connection: close (any case, spaces around): the last request of its connection.
    const last = get("/v1/pools/web/targets/10.0.0.1:80", "connection:  Close \r\n");
    assert.deepEqual(at(last), {
      kind: "target",
      pool: "web",
      target: "10.0.0.1:80",
      next: last.length,
      close: true,
    });
    // HTTP/1.0 (HAProxy's httpchk): a Host is optional, and the connection ends unless kept.
    const old = "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\n\r\n";
    assert.deepEqual(at(old), {
      kind: "target",
      pool: "web",
      target: "10.0.0.1:80",
      next: old.length,
      close: true,
    });
    const kept =
      "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.0\r\nConnection: keep-alive\r\nHost: v\r\n\r\n";
    assert.deepEqual(at(kept), {
      kind: "target",
      pool: "web",
      target: "10.0.0.1:80",
      next: kept.length,
      close: false,
    });
  });

  it("leaves everything else to node:http", () => {
    for (const text of [
      "",
      "GET /v1/pools/web/targets/10.0.0.1:80 HTTP/1.1\r\nHost: vigil\r\n", // unfinished
      get("/v1/pools/web"),
      get("/v1/pools/web/targets/10.0.0.1:80/admin"),
      get("/v1/pools/web/targets/a%20b"),
      get("/v1/pools/web/targets/.."),
      get("/v1/pools/./targets/x"),
      "GET /v1/pools/web/targets/x HTTP/1.1\r\n\r\n",
      get("/v1/pools/web/targets/x", "Host: two\r\n"),
      get("/v1/pools/web/targets/x", "Connection: upgrade\r\nUpgrade: websocket\r\n"),
      get("/v1/pools/web/targets/x", "Connection: close, te\r\n"),
      get("/v1/pools/web/targets/x", "Connection: close\r\nConnection: keep-alive\r\n"),
      "GET /v1/pools/web/targets/x HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /v1/pools/web/targets/x HTTP/1.2\r\nHost: a\r\n\r\n",
      get("/v1/pools/web/targets/x", "Content-Length: 0\r\n"),
      get("/v1/pools/web/targets/x", "Transfer-Encoding: chunked\r\n"),
      get("/v1/pools/web/targets/x", "Expect: 100-continue\r\n"),
      get("/v1/pools/web/targets/x", "X: a\rb\r\n"),
      get("/v1/pools/web/targets/x", ": novalue\r\n"),
      get("/v1/pools/web/targets/x", `X-Pad: ${"p".repeat(fastPathMaxHeadBytes)}\r\n`),
    ]) {
      assert.deepEqual(at(text), { kind: "slow" }, JSON.stringify(text.slice(0, 120)));
    }
  });

  it("never throws, and anything it takes ends a head within the text (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary-ascii", maxLength: 300 }), fc.nat(300), (junk, from) => {
        const text = get("/v1/pools/web/targets/x") + junk;
        for (const f of [0, Math.min(from, text.length)]) {
          const r = at(text, f);
          if (r.kind === "target") {
            assert.ok(r.next <= text.length);
            assert.equal(text.slice(r.next - 4, r.next), "\r\n\r\n");
          }
        }
      }),
      { seed: 5, numRuns: 500 },
    );
  });
});
