import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import {
  AgentRequestDecoder,
  type AgentVerdict,
  maxAgentRequestBytes,
} from "../../src/core/agent-check/codec.ts";
import { type AgentServer, firstChunkStep, startAgentServer } from "../../src/serve/agent-server.ts";
import { libuvTransportAvailable, type ShortTcpTransport } from "../../src/serve/short-tcp.ts";
import { eventually } from "../helpers/origins.ts";

// The agent server on real sockets (127.0.0.1, port 0): what HAProxy would read back, and
// what the server does with clients that are slow, silent, broken or too many.

interface Exchange {
  reply: string;
  /** Whether the server closed the connection (FIN) rather than resetting it. */
  ended: boolean;
  elapsedMs: number;
}

/** Connections this file opened, to check that every one ends in exactly one counted outcome. */
let opened = 0;

function open(port: number): Promise<Socket> {
  opened++;
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Collects everything the server sends until it closes the connection. */
function collect(s: Socket): Promise<Exchange> {
  const started = performance.now();
  return new Promise((resolve) => {
    let reply = "";
    let ended = false;
    s.on("data", (d) => {
      reply += d.toString("latin1");
    });
    s.on("end", () => {
      ended = true;
    });
    s.on("error", () => {});
    s.on("close", () => resolve({ reply, ended, elapsedMs: performance.now() - started }));
  });
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One agent exchange: writes each chunk, lets it leave, optionally half-closes, reads to close. */
async function ask(port: number, chunks: (string | Buffer)[], halfClose = false): Promise<Exchange> {
  const s = await open(port);
  const done = collect(s);
  for (const c of chunks) {
    s.write(c);
    await tick();
  }
  if (halfClose) s.end();
  return done;
}

function answers(transport: ShortTcpTransport): void {
  describe(`agent server over ${transport}: answers`, () => {
    let server: AgentServer;
    const verdicts = new Map<string, AgentVerdict>([
      ["web/127.0.0.1:8001", { state: "up", reason: "status 200" }],
      ["web/127.0.0.1:8002", { state: "down", reason: "status 503\nService Unavailable" }],
      ["web/127.0.0.1:8003", { state: "maint", reason: "kernel upgrade" }],
      ["web/127.0.0.1:8004", { state: "drain", reason: "deploy" }],
      ["web/127.0.0.1:8005", { state: "unknown", reason: "no observation yet" }],
      ["web/[::1]:8006", { state: "drain", reason: "status 500", health: "down" }],
    ]);
    const looked: string[] = [];
    let throwOn = "";
    let openedBefore = 0;

    before(async () => {
      openedBefore = opened;
      server = await startAgentServer({
        host: "127.0.0.1",
        port: 0,
        transport,
        lookup: (pool, target) => {
          looked.push(`${pool}/${target}`);
          if (target === throwOn) throw new Error("node is stopping");
          return verdicts.get(`${pool}/${target}`);
        },
      });
    });
    after(() => server.close());

    it("listens on an ephemeral port", () => {
      assert.ok(server.port > 0);
      assert.equal(server.host, "127.0.0.1");
      assert.equal(server.transport, transport);
    });

    it("answers each verdict with one line and closes the connection", async () => {
      const cases: [string, string][] = [
        ["web/127.0.0.1:8001\n", "up ready\n"],
        ["web/127.0.0.1:8002\n", "down ready #status 503 Service Unavailable\n"],
        ["web/127.0.0.1:8003\n", "maint\n"],
        ["web/127.0.0.1:8004\n", "drain\n"],
        ["web/127.0.0.1:8005\n", "\n"],
        ["web/[0::1]:8006\r\n", "down drain #status 500\n"],
      ];
      const before = { ...server.stats.requests };
      for (const [request, reply] of cases) {
        const x = await ask(server.port, [request]);
        assert.equal(x.reply, reply, request);
        assert.ok(x.ended, `server closed after answering ${request}`);
      }
      const r = server.stats.requests;
      assert.equal(r.up - before.up, 1);
      assert.equal(r.down - before.down, 1);
      assert.equal(r.maint - before.maint, 1);
      assert.equal(r.drain - before.drain, 2);
      assert.equal(r.unknown - before.unknown, 1);
      assert.ok(looked.includes("web/[::1]:8006"), "the target was canonicalised before the lookup");
    });

    it("answers an unknown pool or target with an empty line and counts it", async () => {
      const before = server.stats.unknownTargets;
      assert.equal((await ask(server.port, ["web/127.0.0.1:9999\n"])).reply, "\n");
      assert.equal((await ask(server.port, ["api/127.0.0.1:8001\n"])).reply, "\n");
      assert.equal(server.stats.unknownTargets - before, 2);
    });

    it("reassembles a request split across many writes, answering only after the newline", async () => {
      const s = await open(server.port);
      const done = collect(s);
      let early = "";
      s.on("data", (d) => {
        early += d;
      });
      for (const c of "web/127.0.0.1:8001") {
        s.write(c);
        await tick();
      }
      // Give the bytes time to arrive: nothing may be answered before the line is complete.
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(early, "");
      assert.equal(s.readyState, "open");
      s.write("\r");
      await tick();
      s.write("\n");
      const x = await done;
      assert.equal(x.reply, "up ready\n");
    });

    it("answers a client that sends its line and shuts its side at once", async () => {
      const x = await ask(server.port, ["web/127.0.0.1:8003\n"], true);
      assert.equal(x.reply, "maint\n");
    });

    it("ignores whatever follows the first line", async () => {
      const x = await ask(server.port, ["web/127.0.0.1:8001\nweb/127.0.0.1:8002\n", "more\n"]);
      assert.equal(x.reply, "up ready\n");
    });

    it("answers bad lines with an empty line, counted by kind", async () => {
      const before = server.stats.badRequests;
      const kinds = { ...server.stats.badRequestKinds };
      const cases: [(string | Buffer)[], boolean][] = [
        [["hello\n"], false],
        [["\n"], false],
        [["Web/127.0.0.1:8001\n"], false],
        [["web/127.0.0.1\n"], false],
        [[Buffer.from([0x77, 0x00, 0xff, 0x0a])], false],
        [["x".repeat(300), "y".repeat(300)], false],
        [[], true],
        [["web/127.0.0.1:8001"], true],
      ];
      for (const [chunks, halfClose] of cases) {
        const x = await ask(server.port, chunks, halfClose);
        assert.equal(x.reply, "\n", JSON.stringify(chunks));
        assert.ok(x.ended);
      }
      const k = server.stats.badRequestKinds;
      assert.equal(server.stats.badRequests - before, 8);
      assert.equal(k.bad_format - kinds.bad_format, 1);
      assert.equal(k.empty - kinds.empty, 1);
      assert.equal(k.bad_pool - kinds.bad_pool, 1);
      assert.equal(k.bad_target - kinds.bad_target, 1);
      assert.equal(k.bad_bytes - kinds.bad_bytes, 1);
      assert.equal(k.line_too_long - kinds.line_too_long, 1);
      assert.equal(k.incomplete - kinds.incomplete, 2);
    });

    it("answers with an empty line when the lookup throws, and counts an error", async () => {
      throwOn = "127.0.0.1:8001";
      try {
        const before = server.stats.errors;
        const x = await ask(server.port, ["web/127.0.0.1:8001\n"]);
        assert.equal(x.reply, "\n");
        assert.equal(server.stats.errors - before, 1);
      } finally {
        throwOn = "";
      }
    });

    it("counts every connection exactly once", async () => {
      await eventually(() => server.stats.activeConnections === 0, "all connections closed", 2_000);
      const total = Object.values(server.stats.requests).reduce((a, b) => a + b, 0);
      assert.equal(total, opened - openedBefore);
      assert.equal(server.stats.idleTimeouts, 0);
      assert.equal(server.stats.rejectedConnections, 0);
    });
  });
}

describe("agent server: the first chunk's shortcut", () => {
  it("decides exactly as the decoder does whenever it decides (property)", () => {
    const line = fc.oneof(
      fc.constantFrom(
        "web/127.0.0.1:8001",
        "web/[0::1]:80",
        "Web/x:1",
        "web/",
        "",
        "a/b:1\r",
        " web/10.0.0.1:80 ",
      ),
      fc.string({ unit: "binary-ascii", maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 20 }),
    );
    const chunk = fc
      .tuple(line, fc.constantFrom("\n", "\r\n", "", "\nmore\n"), fc.nat(maxAgentRequestBytes + 20))
      .map(([l, end, pad]) => Buffer.from("x".repeat(pad % 3 === 0 ? pad : 0) + l + end, "utf8"));
    fc.assert(
      fc.property(chunk, (bytes) => {
        const fast = firstChunkStep(bytes);
        const slow = new AgentRequestDecoder(maxAgentRequestBytes).push(bytes);
        if (fast !== undefined) assert.deepEqual(fast, slow);
        // It declines only what the decoder cannot finish, or finishes as too long.
        else
          assert.ok(
            slow.type === "need_more" ||
              (slow.type === "done" && !slow.result.ok && slow.result.error.kind === "line_too_long"),
          );
      }),
      { seed: 5, numRuns: 400 },
    );
  });
});

function bounds(transport: ShortTcpTransport): void {
  describe(`agent server over ${transport}: bounds`, () => {
    let server: AgentServer;
    const held: Socket[] = [];
    /** At most two connections, each cut off after `idleTimeoutMs` without a whole line. */
    const bounded = (idleTimeoutMs: number): Promise<AgentServer> =>
      startAgentServer({
        host: "127.0.0.1",
        port: 0,
        transport,
        lookup: () => ({ state: "up", reason: "" }),
        maxConnections: 2,
        idleTimeoutMs,
      });

    before(async () => {
      server = await bounded(100);
    });
    after(async () => {
      for (const s of held) s.destroy();
      await server.close();
    });

    it("cuts off a client that connects and sends nothing after the idle bound", async () => {
      const before = server.stats.idleTimeouts;
      const s = await open(server.port);
      const x = await collect(s);
      assert.equal(x.reply, "");
      assert.ok(x.elapsedMs >= 90, `cut after ${x.elapsedMs}ms, before the bound`);
      assert.ok(x.elapsedMs < 1_000, `cut after ${x.elapsedMs}ms, long after the bound`);
      assert.equal(server.stats.idleTimeouts - before, 1);
    });

    it("cuts off each connection at its own bound, one timer for all of them", async () => {
      const before = server.stats.idleTimeouts;
      const first = await open(server.port);
      const firstDone = collect(first);
      await new Promise((r) => setTimeout(r, 60));
      const second = await open(server.port);
      const secondDone = collect(second);
      const [a, b] = await Promise.all([firstDone, secondDone]);
      for (const x of [a, b]) {
        assert.ok(x.elapsedMs >= 90, `cut after ${x.elapsedMs}ms, before the bound`);
        assert.ok(x.elapsedMs < 1_000, `cut after ${x.elapsedMs}ms, long after the bound`);
      }
      assert.equal(server.stats.idleTimeouts - before, 2);
    });

    it("releases an answered connection the client holds open, at the same bound", async () => {
      const before = { ...server.stats.requests };
      const s = await open(server.port);
      s.allowHalfOpen = true;
      let reply = "";
      s.on("data", (d) => {
        reply += d;
      });
      s.on("error", () => {});
      const ended = new Promise<void>((r) => s.once("end", () => r()));
      s.write("web/127.0.0.1:80\n");
      try {
        // The server's FIN comes with the answer; the client never closes its side, and the
        // server lets go of the connection once the bound passes instead of holding it.
        await ended;
        assert.equal(reply, "up ready\n");
        await eventually(() => server.stats.activeConnections === 0, "connection released", 2_000);
        assert.equal(server.stats.requests.up - before.up, 1);
        assert.equal(server.stats.idleTimeouts - before.idle_timeout, 0, "answered, so not an idle timeout");
      } finally {
        s.destroy();
      }
    });

    it("bounds the whole request, so trickling bytes does not keep a connection alive", async () => {
      const s = await open(server.port);
      const done = collect(s);
      const trickle = setInterval(() => {
        if (!s.destroyed) s.write("w");
      }, 20);
      try {
        const x = await done;
        assert.equal(x.reply, "");
        assert.ok(x.elapsedMs < 1_000, `cut after ${x.elapsedMs}ms`);
      } finally {
        clearInterval(trickle);
      }
    });

    it("closes connections beyond maxConnections at once, counts them, and serves again after", async () => {
      // The idle bound would end the held connections; refresh the server so they stay long enough.
      await server.close();
      server = await bounded(5_000);
      const a = await open(server.port);
      const b = await open(server.port);
      held.push(a, b);
      a.on("error", () => {});
      b.on("error", () => {});
      await eventually(() => server.stats.activeConnections === 2, "two connections held", 2_000);
      const rejected = await ask(server.port, ["web/127.0.0.1:80\n"]);
      assert.equal(rejected.reply, "", "an excess connection gets no answer");
      assert.ok(rejected.elapsedMs < 1_000);
      assert.equal(server.stats.rejectedConnections, 1);
      assert.equal(server.stats.activeConnections, 2);
      // One slot frees up: the next client is served.
      const aClosed = collect(a);
      a.write("web/127.0.0.1:80\n");
      assert.equal((await aClosed).reply, "up ready\n");
      await eventually(() => server.stats.activeConnections === 1, "slot freed", 2_000);
      assert.equal((await ask(server.port, ["web/127.0.0.1:80\n"])).reply, "up ready\n");
    });

    it("close() drops open connections and stops listening", async () => {
      const s = await open(server.port);
      const closed = collect(s);
      await eventually(() => server.stats.activeConnections >= 1, "connection accepted", 2_000);
      await server.close();
      await closed;
      await assert.rejects(open(server.port), /ECONNREFUSED/);
    });
  });
}

it("this Node gives the libuv way to the sockets (else every agent lookup pays node:net's cost)", () => {
  assert.equal(libuvTransportAvailable, true);
});

for (const transport of ["libuv", "net"] as const) {
  answers(transport);
  bounds(transport);
}
