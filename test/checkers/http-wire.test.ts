import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import type { CheckResult } from "../../src/checkers/types.ts";
import type { HttpCheckSpec } from "../../src/config/types.ts";
import { httpSpec, listen, loopback } from "./helpers.ts";

// The per-check HTTP client against an origin that writes exact bytes: responses cut into
// separate writes (flushed one event-loop turn apart, Nagle off, so they tend to arrive as
// separate reads), framings node:http's server would never produce, and broken responses.

/** What the origin writes for a path: pieces written one turn apart, then maybe a close. */
interface Script {
  pieces: string[];
  end?: boolean;
}

const head200 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

const scripts: Record<string, Script> = {
  // The needle "NEEDLE" straddles two chunks, each chunk's size line split across writes.
  "/chunked-straddle": {
    pieces: [
      head200.slice(0, 20),
      head200.slice(20),
      "5\r",
      "\nhello\r\n4",
      "\r\n NEE\r",
      "\n3\r\nDLE\r\n0\r\n\r\n",
    ],
  },
  // The needle never comes, and the chunked body completes.
  "/chunked-without": { pieces: [head200, "3\r\nabc\r\n", "0\r\n\r\n"] },
  // Every byte of the head its own write.
  "/head-bytewise": {
    pieces: [..."HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A: b\r\n\r\n", "healthy"],
  },
  "/bad-status": { pieces: ["HTTP/1.1 OK 200\r\n\r\n"], end: true },
  "/not-http": { pieces: ["SSH-2.0-OpenSSH_9.6\r\n"] },
  "/huge-head": { pieces: [`HTTP/1.1 200 OK\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`] },
  "/http10": {
    pieces: ["HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", "served ", "the old way"],
    end: true,
  },
  "/continue": {
    pieces: [
      "HTTP/1.1 100 Continue\r\n\r\n",
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
  },
  "/continue-down": {
    pieces: ["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"],
  },
  "/head-only": { pieces: ["HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"] },
  "/hang-up": { pieces: [], end: true },
  "/silent": { pieces: [] },
  "/bad-chunk": { pieces: [head200, "3\r\nabcde\r\n"] },
};

describe("http checker on its own connection (raw client)", () => {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.setNoDelay(true);
    let seen = "";
    s.on("data", (d) => {
      seen += d.toString("latin1");
      const end = seen.indexOf("\r\n\r\n");
      if (end < 0) return;
      // A chunked request body must end with its last chunk before the origin answers.
      if (/transfer-encoding: chunked/i.test(seen.slice(0, end)) && !seen.endsWith("\r\n0\r\n\r\n")) return;
      requests.push(seen.slice(0, end + 4));
      const path = seen.split(" ")[1] ?? "";
      seen = "";
      void play(s, scripts[path] ?? { pieces: ["HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"] });
    });
    s.on("error", () => {});
  });
  let port = 0;
  const prober = createProber();

  async function play(s: Socket, script: Script): Promise<void> {
    for (const piece of script.pieces) {
      if (s.destroyed) return;
      s.write(piece, "latin1");
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (script.end && !s.destroyed) s.end();
  }

  before(async () => {
    port = await listen(server);
  });
  after(async () => {
    await prober.close();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  function check(over: Partial<HttpCheckSpec>, timeoutMs = 2000): Promise<CheckResult> {
    return prober.check({ spec: httpSpec(over), target: loopback(port), timeoutMs });
  }
  const status = [{ lo: 200, hi: 299 }];

  it("sends the cached request bytes: Host from the target, Connection: close", async () => {
    requests.length = 0;
    await check({ path: "/head-bytewise" });
    await check({ path: "/head-bytewise" });
    assert.deepEqual(requests, [
      `GET /head-bytewise HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      `GET /head-bytewise HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    ]);
  });

  it("finds a needle across chunk boundaries and size lines split across reads", async () => {
    const r = await check({ path: "/chunked-straddle", expect: { status, bodyContains: "NEEDLE" } });
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    const regex = await check({ path: "/chunked-straddle", expect: { status, bodyRegex: "^hello NEEDLE$" } });
    assert.deepEqual([regex.ok, regex.reason], [true, "status 200"]);
    const missing = await check({ path: "/chunked-without", expect: { status, bodyContains: "NEEDLE" } });
    assert.deepEqual([missing.ok, missing.reason], [false, 'body does not contain "NEEDLE"']);
  });

  it("keeps the bytes it needs when checks read in turns (plain HTTP reads share one buffer)", async () => {
    // Each origin writes its pieces a turn apart, so the reads of these checks interleave;
    // a head, a needle's tail or a regex's chunks kept as views of the shared read buffer
    // would be overwritten by the next check's read.
    const rounds = await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        switch (i % 4) {
          case 0:
            return check({ path: "/chunked-straddle", expect: { status, bodyRegex: "^hello NEEDLE$" } });
          case 1:
            return check({ path: "/chunked-straddle", expect: { status, bodyContains: "NEEDLE" } });
          case 2:
            return check({ path: "/http10", expect: { status, bodyRegex: "^served the old way$" } });
          default:
            return check({ path: "/head-bytewise", expect: { status, bodyContains: "healthy" } });
        }
      }),
    );
    for (const r of rounds) assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
  });

  it("reads a head that arrives a byte at a time", async () => {
    const r = await check({ path: "/head-bytewise", expect: { status, bodyContains: "healthy" } });
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
  });

  it("fails a malformed status line, quoting it", async () => {
    const r = await check({ path: "/bad-status" });
    assert.deepEqual([r.ok, r.reason], [false, 'malformed status line "HTTP/1.1 OK 200"']);
    const ssh = await check({ path: "/not-http" });
    assert.deepEqual([ssh.ok, ssh.reason], [false, 'malformed status line "SSH-2.0-OpenSSH_9.6"']);
  });

  it("fails an oversized header block", async () => {
    const r = await check({ path: "/huge-head" });
    assert.deepEqual([r.ok, r.reason], [false, "response headers too large"]);
  });

  it("reads an HTTP/1.0 body to the close", async () => {
    const r = await check({ path: "/http10", expect: { status, bodyRegex: "^served the old way$" } });
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    const no = await check({ path: "/http10", expect: { status, bodyContains: "new" } });
    assert.deepEqual([no.ok, no.reason], [false, 'body does not contain "new"']);
  });

  it("skips 100 Continue and 103 Early Hints for the final status", async () => {
    const r = await check({ path: "/continue", expect: { status, bodyContains: "ok" } });
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
    const down = await check({ path: "/continue-down" });
    assert.deepEqual([down.ok, down.reason], [false, "status 503"]);
  });

  it("expects no body after HEAD", async () => {
    const r = await check({ path: "/head-only", method: "HEAD", expect: { status, bodyRegex: "^$" } }, 1000);
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
  });

  it("says the peer hung up before answering, and fails bad chunk framing", async () => {
    const r = await check({ path: "/hang-up" });
    assert.deepEqual([r.ok, r.reason], [false, "socket hang up"]);
    const bad = await check({ path: "/bad-chunk", expect: { status, bodyContains: "zzz" } });
    assert.deepEqual([bad.ok, bad.reason], [false, "malformed chunked body"]);
  });

  it("ends every check waiting on one abort signal, and only those still running", async () => {
    const ac = new AbortController();
    const target = loopback(port);
    const done = await prober.check({
      spec: httpSpec({ path: "/head-bytewise" }),
      target,
      timeoutMs: 2000,
      signal: ac.signal,
    });
    const pending = [1, 2, 3].map(() =>
      prober.check({ spec: httpSpec({ path: "/silent" }), target, timeoutMs: 5000, signal: ac.signal }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    ac.abort();
    const results = await Promise.all(pending);
    assert.deepEqual(
      results.map((r) => [r.ok, r.reason]),
      [
        [false, "aborted"],
        [false, "aborted"],
        [false, "aborted"],
      ],
    );
    assert.ok(results.every((r) => r.latencyMs < 1000));
    assert.deepEqual([done.ok, done.reason], [true, "status 200"]);
    const late = await prober.check({
      spec: httpSpec({ path: "/silent" }),
      target,
      timeoutMs: 5000,
      signal: ac.signal,
    });
    assert.deepEqual([late.ok, late.reason], [false, "aborted"]);
  });

  it("ends a chunked request body that the headers announce", async () => {
    const r = await check(
      { path: "/head-bytewise", method: "POST", headers: { "Transfer-Encoding": "chunked" } },
      1000,
    );
    assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
  });

  it("closes the connection with a reset once it has the answer, as HAProxy does", async () => {
    // The origin answers and keeps its side open: it then sees how the checker closed.
    let closedBy: Promise<string> = Promise.resolve("no connection");
    const origin = createServer((s) => {
      closedBy = new Promise((resolve) => {
        s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        s.on("end", () => resolve("fin"));
      });
      s.once("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    });
    const originPort = await listen(origin);
    try {
      const r = await prober.check({
        spec: httpSpec({ path: "/" }),
        target: loopback(originPort),
        timeoutMs: 2000,
      });
      assert.deepEqual([r.ok, r.reason], [true, "status 200"]);
      assert.equal(await closedBy, "ECONNRESET");
    } finally {
      await new Promise((resolve) => origin.close(resolve));
    }
  });

  it("keeps one request per target when the Host comes from the target", async () => {
    const other = createServer((s) => {
      // The checker closes with a reset once it has its answer.
      s.on("error", () => {});
      s.once("data", (d) => {
        requests.push(d.toString("latin1"));
        s.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      });
    });
    const otherPort = await listen(other);
    try {
      requests.length = 0;
      const spec = httpSpec({ path: "/head-bytewise" });
      await prober.check({ spec, target: loopback(port), timeoutMs: 2000 });
      await prober.check({ spec, target: loopback(otherPort), timeoutMs: 2000 });
      assert.deepEqual(
        requests.map((r) => r.split("\r\n")[1]),
        [`Host: 127.0.0.1:${port}`, `Host: 127.0.0.1:${otherPort}`],
      );
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });
});
