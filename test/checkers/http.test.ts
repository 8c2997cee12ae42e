import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import type { CheckResult } from "../../src/checkers/types.ts";
import { targetAddr } from "../../src/checkers/url.ts";
import type { HttpCheckSpec } from "../../src/config/types.ts";
import { closedPort, httpSpec, listen, loopback } from "./helpers.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

const big = "x".repeat(4096);

describe("http checker", () => {
  const server = createServer();
  const sockets = new Set<Socket>();
  const seen: Seen[] = [];
  let connections = 0;
  let lastSocket: Socket | undefined;
  let port = 0;
  const prober = createProber();

  // Each path is one behaviour of the origin.
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    "/ok": (_req, res) => res.end("all ok"),
    "/down": (_req, res) => {
      res.statusCode = 503;
      res.end("maintenance");
    },
    "/404": (_req, res) => {
      res.statusCode = 404;
      res.end();
    },
    "/204": (_req, res) => {
      res.statusCode = 204;
      res.end();
    },
    "/hang": () => {},
    "/slow-body": (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    },
    "/reset": (req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("0123456789", () => req.socket.destroy());
    },
    "/json": (_req, res) => res.end('{"status":"green","version":"1.2.3"}'),
    // The needle only after 4 KiB, and the response never ends.
    "/needle-late": (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write(big);
      res.write("NEEDLE");
    },
    // The needle early, and the response never ends: found without waiting for the end.
    "/needle-early": (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("NEEDLE");
      res.write(big);
    },
    "/echo": (_req, res) => res.end("seen"),
  };

  before(async () => {
    server.on("connection", (s: Socket) => {
      connections++;
      lastSocket = s;
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      const route = routes[(req.url ?? "").split("?")[0]!];
      if (route === undefined) {
        res.statusCode = 500;
        res.end("no route");
        return;
      }
      route(req, res);
    });
    port = await listen(server);
  });

  after(async () => {
    await prober.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function check(spec: HttpCheckSpec, timeoutMs = 2000, signal?: AbortSignal): Promise<CheckResult> {
    return prober.check({ spec, target: loopback(port), timeoutMs, ...(signal ? { signal } : {}) });
  }

  it("is up on 200 with a short reason", async () => {
    const r = await check(httpSpec({ path: "/ok" }));
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    assert.ok(r.latencyMs > 0 && r.latencyMs < 2000);
  });

  it("is down on 503", async () => {
    const r = await check(httpSpec({ path: "/down" }));
    assert.deepEqual([r.ok, r.reason], [false, "status 503"]);
  });

  it("takes the status from the list of ranges", async () => {
    const ranges = [
      { lo: 200, hi: 204 },
      { lo: 500, hi: 503 },
    ];
    assert.equal((await check(httpSpec({ path: "/down", expect: { status: ranges } }))).ok, true);
    assert.equal((await check(httpSpec({ path: "/204", expect: { status: ranges } }))).ok, true);
    const r = await check(httpSpec({ path: "/404", expect: { status: ranges } }));
    assert.deepEqual([r.ok, r.reason], [false, "status 404"]);
    const only204 = await check(httpSpec({ path: "/ok", expect: { status: [{ lo: 204, hi: 204 }] } }));
    assert.deepEqual([only204.ok, only204.reason], [false, "status 200"]);
  });

  it("times out a server that never answers, after about the timeout", async () => {
    const r = await check(httpSpec({ path: "/hang" }), 150);
    assert.deepEqual([r.ok, r.reason], [false, "timeout after 150ms"]);
    assert.ok(r.latencyMs >= 145 && r.latencyMs < 1000, `latency ${r.latencyMs}`);
  });

  it("counts the body read in the timeout", async () => {
    const r = await check(
      httpSpec({ path: "/slow-body", expect: { status: [{ lo: 200, hi: 299 }], bodyContains: "never" } }),
      150,
    );
    assert.deepEqual([r.ok, r.reason], [false, "timeout after 150ms"]);
  });

  it("does not read the body when nothing is expected of it", async () => {
    // The body never completes; without an expectation the status decides at once.
    const r = await check(httpSpec({ path: "/slow-body" }), 1000);
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    assert.ok(r.latencyMs < 900, `latency ${r.latencyMs}`);
  });

  it("fails on a connection reset mid-body", async () => {
    const r = await check(
      httpSpec({ path: "/reset", expect: { status: [{ lo: 200, hi: 299 }], bodyContains: "zzz" } }),
    );
    assert.deepEqual([r.ok, r.reason], [false, "read ECONNRESET"]);
  });

  it("says which text the body lacks", async () => {
    const r = await check(
      httpSpec({ path: "/down", expect: { status: [{ lo: 500, hi: 599 }], bodyContains: "ok" } }),
    );
    assert.deepEqual([r.ok, r.reason], [false, 'body does not contain "ok"']);
    const good = await check(
      httpSpec({ path: "/ok", expect: { status: [{ lo: 200, hi: 299 }], bodyContains: "ok" } }),
    );
    assert.deepEqual([good.ok, good.reason], [true, "status 200"]);
  });

  it("matches body_regex, and names the regex on a mismatch", async () => {
    const status = [{ lo: 200, hi: 299 }];
    const yes = await check(
      httpSpec({ path: "/json", expect: { status, bodyRegex: '"status":"(green|yellow)"' } }),
    );
    assert.deepEqual([yes.ok, yes.reason], [true, "status 200"]);
    const no = await check(httpSpec({ path: "/json", expect: { status, bodyRegex: '"version":"2\\.' } }));
    assert.deepEqual([no.ok, no.reason], [false, 'body does not match /"version":"2\\./']);
    const both = await check(
      httpSpec({ path: "/json", expect: { status, bodyContains: "green", bodyRegex: "^\\{" } }),
    );
    assert.equal(both.ok, true);
  });

  it("reads at most maxBodyBytes: a needle past the limit is not found, and no end is awaited", async () => {
    const expect = { status: [{ lo: 200, hi: 299 }], bodyContains: "NEEDLE" };
    const r = await check(httpSpec({ path: "/needle-late", maxBodyBytes: 1024, expect }), 1500);
    assert.deepEqual([r.ok, r.reason], [false, 'body does not contain "NEEDLE" in the first 1024 bytes']);
    assert.ok(r.latencyMs < 1000, `stopped at the limit, latency ${r.latencyMs}`);
    // With room for the whole prefix the needle is found, though the body never ends.
    const wide = await check(httpSpec({ path: "/needle-late", maxBodyBytes: 8192, expect }), 1500);
    assert.deepEqual([wide.ok, wide.reason], [true, "status 200"]);
    const early = await check(httpSpec({ path: "/needle-early", maxBodyBytes: 1024, expect }), 1500);
    assert.deepEqual([early.ok, early.reason], [true, "status 200"]);
  });

  it("fails a regex that needs text past the limit", async () => {
    const expect = { status: [{ lo: 200, hi: 299 }], bodyRegex: "x{100}NEEDLE" };
    const r = await check(httpSpec({ path: "/needle-late", maxBodyBytes: 2048, expect }), 1500);
    assert.deepEqual([r.ok, r.reason], [false, "body does not match /x{100}NEEDLE/"]);
  });

  it("sends the method, headers and Host it is given", async () => {
    seen.length = 0;
    const r = await check(
      httpSpec({
        path: "/echo?probe=1",
        method: "POST",
        headers: { "X-Probe": "vigil", Accept: "text/plain" },
        host: "app.example.test",
      }),
    );
    assert.equal(r.ok, true);
    assert.equal(seen.length, 1);
    const s = seen[0]!;
    assert.equal(s.method, "POST");
    assert.equal(s.url, "/echo?probe=1");
    assert.equal(s.headers.host, "app.example.test");
    assert.equal(s.headers["x-probe"], "vigil");
    assert.equal(s.headers.accept, "text/plain");
    assert.equal(s.headers["content-length"], "0");
    assert.equal(s.headers.connection, "close");
  });

  it("defaults Host to the target, and lets a Host header stand in for spec.host", async () => {
    seen.length = 0;
    await check(httpSpec({ path: "/echo" }));
    await check(httpSpec({ path: "/echo", headers: { host: "from-header.test" } }));
    assert.equal(seen[0]!.headers.host, `127.0.0.1:${port}`);
    assert.equal(seen[0]!.method, "GET");
    assert.equal(seen[0]!.headers["content-length"], undefined);
    assert.equal(seen[1]!.headers.host, "from-header.test");
  });

  it("brackets an IPv6 target in the default Host header", async (t) => {
    const v6 = createServer((req, res) => res.end(req.headers.host));
    const listening = await new Promise<boolean>((resolve) => {
      v6.once("error", () => resolve(false));
      v6.listen(0, "::1", () => resolve(true));
    });
    if (!listening) {
      t.skip("no IPv6 loopback on this host");
      return;
    }
    try {
      const target = targetAddr("::1", (v6.address() as { port: number }).port);
      // The server echoes the Host it got; it must be exactly "[::1]:port".
      const echoed = `^\\[::1\\]:${target.port}$`;
      const spec = httpSpec({ expect: { status: [{ lo: 200, hi: 299 }], bodyRegex: echoed } });
      const r = await prober.check({ spec, target, timeoutMs: 2000 });
      assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    } finally {
      await new Promise((resolve) => v6.close(resolve));
    }
  });

  it("reports a refused connection", async () => {
    const r = await prober.check({ spec: httpSpec(), target: loopback(await closedPort()), timeoutMs: 2000 });
    assert.deepEqual([r.ok, r.reason], [false, "connect ECONNREFUSED"]);
  });

  it("fails, without throwing, on a header value node refuses to send", async () => {
    const r = await check(httpSpec({ path: "/ok", headers: { "X-Bad": "a\r\nInjected: 1" } }));
    assert.equal(r.ok, false);
    assert.match(r.reason, /X-Bad/);
  });

  it("fails, without throwing, on a body_regex that does not compile", async () => {
    const r = await check(
      httpSpec({ path: "/ok", expect: { status: [{ lo: 200, hi: 299 }], bodyRegex: "(" } }),
    );
    assert.equal(r.ok, false);
    assert.match(r.reason, /regular expression/i);
  });

  it("opens a new connection per check by default", async () => {
    const before = connections;
    for (let i = 0; i < 3; i++) assert.equal((await check(httpSpec({ path: "/ok" }))).ok, true);
    assert.equal(connections - before, 3);
  });

  it("reuses one connection with keepalive, drains bodies for it, and close() ends it", async () => {
    const p = createProber();
    try {
      const before = connections;
      const target = loopback(port);
      const spec = httpSpec({ path: "/ok", keepalive: true });
      const body = httpSpec({
        path: "/json",
        keepalive: true,
        expect: { status: [{ lo: 200, hi: 299 }], bodyContains: "green" },
      });
      const down = httpSpec({ path: "/down", keepalive: true });
      const results = [];
      for (const s of [spec, spec, body, down, spec])
        results.push(await p.check({ spec: s, target, timeoutMs: 2000 }));
      assert.deepEqual(
        results.map((r) => r.reason),
        ["status 200", "status 200", "status 200", "status 503", "status 200"],
      );
      assert.equal(connections - before, 1);
      const pooled = lastSocket!;
      assert.equal(pooled.destroyed, false, "kept open between checks");
      const closed = once(pooled, "close");
      await p.close();
      await closed;
    } finally {
      await p.close();
    }
  });

  it("retries once on another connection when a kept-alive socket turns out dead", async () => {
    // Answers the first request on each connection, then drops the connection on the next
    // one, as a server does that closes idle keep-alive connections at an unlucky moment.
    let opened = 0;
    const flaky = createNetServer((s) => {
      opened++;
      let requests = 0;
      s.on("data", () => {
        requests++;
        if (requests === 1)
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok");
        else s.destroy();
      });
    });
    const p = createProber();
    try {
      const target = loopback(await listen(flaky));
      const spec = httpSpec({ keepalive: true });
      const first = await p.check({ spec, target, timeoutMs: 2000 });
      const second = await p.check({ spec, target, timeoutMs: 2000 });
      assert.deepEqual([first.reason, second.reason], ["status 200", "status 200"]);
      assert.equal(opened, 2);
    } finally {
      await p.close();
      await new Promise((resolve) => flaky.close(resolve));
    }
  });

  it("ends a check with `aborted` when its signal fires, and at once when already aborted", async () => {
    const ac = new AbortController();
    const pending = check(httpSpec({ path: "/hang" }), 5000, ac.signal);
    setImmediate(() => ac.abort());
    const r = await pending;
    assert.deepEqual([r.ok, r.reason], [false, "aborted"]);
    assert.ok(r.latencyMs < 1000);
    const pre = await check(httpSpec({ path: "/ok" }), 2000, AbortSignal.abort());
    assert.deepEqual([pre.ok, pre.reason], [false, "aborted"]);
  });

  it("ends checks in flight on close(), and fails checks after it", async () => {
    const p = createProber();
    const pending = p.check({ spec: httpSpec({ path: "/hang" }), target: loopback(port), timeoutMs: 5000 });
    await new Promise((resolve) => setImmediate(resolve));
    await p.close();
    const r = await pending;
    assert.deepEqual([r.ok, r.reason], [false, "prober closed"]);
    const late = await p.check({ spec: httpSpec({ path: "/ok" }), target: loopback(port), timeoutMs: 2000 });
    assert.deepEqual([late.ok, late.reason], [false, "prober closed"]);
  });
});
