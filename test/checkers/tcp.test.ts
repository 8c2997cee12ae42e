import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import type { CheckResult } from "../../src/checkers/types.ts";
import type { TcpCheckSpec } from "../../src/config/types.ts";
import { limits } from "../../src/core/limits.ts";
import { closedPort, listen, loopback } from "./helpers.ts";

describe("tcp checker", () => {
  let onLine: ((line: string) => void) | undefined;
  const sockets = new Set<Socket>();
  // The first line the client sends picks the behaviour.
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    let line = "";
    s.on("data", (d) => {
      line += d.toString();
      if (!line.includes("\n")) return;
      onLine?.(line);
      const cmd = line.trim();
      if (cmd === "PING") s.write("+PONG\r\n");
      else if (cmd === "NOPE") s.end("-ERR\r\n");
      else if (cmd === "FLOOD") s.write("x".repeat(limits.maxTcpExpectBytes + 4096));
      // anything else: stay silent
    });
  });
  let port = 0;
  const prober = createProber();

  before(async () => {
    port = await listen(server);
  });

  after(async () => {
    await prober.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function check(spec: Omit<TcpCheckSpec, "type">, timeoutMs = 2000): Promise<CheckResult> {
    return prober.check({ spec: { type: "tcp", ...spec }, target: loopback(port), timeoutMs });
  }

  it("is up once connected", async () => {
    const r = await check({});
    assert.deepEqual([r.ok, r.reason], [true, "connected"]);
  });

  it("closes with a reset after the check, leaving the origin no half-open socket", async () => {
    let closedBy: Promise<string> = Promise.resolve("no connection");
    const origin = createServer((s) => {
      closedBy = new Promise((resolve) => {
        s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        s.on("end", () => resolve("fin"));
      });
    });
    const originPort = await listen(origin);
    try {
      const r = await prober.check({ spec: { type: "tcp" }, target: loopback(originPort), timeoutMs: 2000 });
      assert.deepEqual([r.ok, r.reason], [true, "connected"]);
      assert.equal(await closedBy, "ECONNRESET");
    } finally {
      await new Promise((resolve) => origin.close(resolve));
    }
  });

  it("reports a refused connection", async () => {
    const r = await prober.check({
      spec: { type: "tcp" },
      target: loopback(await closedPort()),
      timeoutMs: 2000,
    });
    assert.deepEqual([r.ok, r.reason], [false, "connect ECONNREFUSED"]);
  });

  it("sends, then finds the expected text in the reply", async () => {
    const r = await check({ send: "PING\r\n", expect: "PONG" });
    assert.deepEqual([r.ok, r.reason], [true, 'got "PONG"']);
  });

  it("is down when the peer closes without the expected text", async () => {
    const r = await check({ send: "NOPE\n", expect: "PONG" });
    assert.deepEqual([r.ok, r.reason], [false, 'closed after 6 bytes without "PONG"']);
  });

  it("times out waiting for the expected text, saying how much was read", async () => {
    const r = await check({ send: "HUSH\n", expect: "PONG" }, 150);
    assert.deepEqual([r.ok, r.reason], [false, 'timeout after 150ms waiting for "PONG" (read 0 bytes)']);
    assert.ok(r.latencyMs >= 145 && r.latencyMs < 1000, `latency ${r.latencyMs}`);
  });

  it("stops reading at maxTcpExpectBytes", async () => {
    const r = await check({ send: "FLOOD\n", expect: "PONG" }, 5000);
    assert.deepEqual([r.ok, r.reason], [false, `"PONG" not in the first ${limits.maxTcpExpectBytes} bytes`]);
    assert.ok(r.latencyMs < 4000);
  });

  it("delivers `send` without an expectation before it reports", { timeout: 3000 }, async () => {
    const line = new Promise<string>((resolve) => {
      onLine = resolve;
    });
    const r = await check({ send: "HELLO\n" });
    assert.deepEqual([r.ok, r.reason], [true, "connected"]);
    // The server gets the line even though the checker closed right after writing it.
    assert.equal(await line, "HELLO\n");
  });
});
