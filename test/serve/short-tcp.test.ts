import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import {
  listenShortTcp,
  type ShortConn,
  type ShortConnHooks,
  type ShortTcpListener,
  type ShortTcpTransport,
} from "../../src/serve/short-tcp.ts";
import { eventually } from "../helpers/origins.ts";

// The short-connection listener under the agent server, on both ways to the sockets: libuv's
// handles and node:net must behave the same in everything a caller can see (the agent server's
// own tests run over both too: test/integrations/agent-check-server.test.ts).

interface Conn {
  id: number;
  conn: ShortConn;
  bytes: number[];
  events: string[];
}

/** Records every hook call; `onData` decides what to do with a connection's bytes so far. */
function recorder(onData: (c: Conn) => void = () => {}, refuse = () => false) {
  const conns: Conn[] = [];
  let acceptFailures = 0;
  const hooks: ShortConnHooks<Conn> = {
    open(conn) {
      if (refuse()) return undefined;
      const c: Conn = { id: conns.length, conn, bytes: [], events: ["open"] };
      conns.push(c);
      return c;
    },
    data(c, bytes) {
      // Valid only during the call: keep a copy, as callers must.
      c.bytes.push(...bytes);
      c.events.push("data");
      onData(c);
    },
    end(c) {
      c.events.push("end");
      onData(c);
    },
    failed(c) {
      c.events.push("failed");
    },
    closed(c) {
      c.events.push("closed");
    },
    acceptFailed() {
      acceptFailures++;
    },
  };
  return { hooks, conns, acceptFailures: () => acceptFailures };
}

/** What a client reads until the server closes: the bytes, and whether it was a FIN. */
function exchange(
  port: number,
  host: string,
  send: string | undefined,
  opts: { halfClose?: boolean; reset?: boolean } = {},
): Promise<{ reply: Buffer; fin: boolean; error: string | undefined }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let fin = false;
    let error: string | undefined;
    const s: Socket = connect({ port, host }, () => {
      if (opts.reset === true) {
        s.resetAndDestroy();
        return;
      }
      if (send !== undefined) s.write(send);
      if (opts.halfClose === true) s.end();
    });
    s.on("data", (d) => chunks.push(d));
    s.on("end", () => {
      fin = true;
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code;
      if (e.code === "ECONNREFUSED") reject(e);
    });
    s.on("close", () => resolve({ reply: Buffer.concat(chunks), fin, error }));
  });
}

const lineReply =
  (reply: (line: string) => string) =>
  (c: Conn): void => {
    const lf = c.bytes.indexOf(0x0a);
    if (lf >= 0) c.conn.replyAndClose(reply(Buffer.from(c.bytes.slice(0, lf)).toString("latin1")));
  };

async function withListener<T>(
  transport: ShortTcpTransport,
  hooks: ShortConnHooks<Conn>,
  fn: (l: ShortTcpListener) => Promise<T>,
  host = "127.0.0.1",
  reusePort = false,
): Promise<T> {
  const l = await listenShortTcp({ host, port: 0, backlog: 64, reusePort, transport }, hooks);
  try {
    return await fn(l);
  } finally {
    await l.close();
  }
}

for (const transport of ["libuv", "net"] as const) {
  describe(`short TCP connections over ${transport}`, () => {
    it("reads a request, writes the reply, closes with a FIN; every hook in order, closed once", async () => {
      const r = recorder(lineReply((l) => `got ${l}\n`));
      await withListener(transport, r.hooks, async (l) => {
        assert.equal(l.transport, transport);
        const x = await exchange(l.port, "127.0.0.1", "hello\n");
        assert.equal(x.reply.toString(), "got hello\n");
        assert.equal(x.fin, true);
        await eventually(() => r.conns[0]?.events.at(-1) === "closed", "closed", 2_000);
        assert.deepEqual(r.conns[0]!.events, ["open", "data", "closed"]);
      });
    });

    it("gathers a request over several reads, and answers at the peer's FIN", async () => {
      const r = recorder((c) => {
        if (c.events.at(-1) === "end") c.conn.replyAndClose(`${c.bytes.length} bytes\n`);
      });
      await withListener(transport, r.hooks, async (l) => {
        const x = await new Promise<string>((resolve) => {
          const s = connect({ port: l.port, host: "127.0.0.1" }, async () => {
            for (const part of ["ab", "cd", "ef"]) {
              s.write(part);
              await new Promise((t) => setTimeout(t, 5));
            }
            s.end();
          });
          let got = "";
          s.on("data", (d) => {
            got += d.toString();
          });
          s.on("close", () => resolve(got));
        });
        assert.equal(x, "6 bytes\n");
        await eventually(() => r.conns[0]?.events.at(-1) === "closed", "closed", 2_000);
        assert.equal(Buffer.from(r.conns[0]!.bytes).toString(), "abcdef");
        assert.equal(r.conns[0]!.events.filter((e) => e === "closed").length, 1);
      });
    });

    it("keeps interleaved connections' bytes apart (libuv reads share one buffer)", async () => {
      const r = recorder(lineReply((l) => `${l}\n`));
      await withListener(transport, r.hooks, async (l) => {
        const lines = Array.from({ length: 50 }, (_, i) => `line-${i}-${"x".repeat(i * 37)}`);
        const got = await Promise.all(lines.map((line) => exchange(l.port, "127.0.0.1", `${line}\n`)));
        for (let i = 0; i < lines.length; i++) assert.equal(got[i]!.reply.toString(), `${lines[i]}\n`);
        await eventually(() => r.conns.every((c) => c.events.at(-1) === "closed"), "all closed", 2_000);
        assert.equal(r.conns.length, 50);
      });
    });

    it("writes a reply larger than the socket buffers whole before closing", async () => {
      const big = "y".repeat(8 * 1024 * 1024);
      const r = recorder((c) => {
        if (c.bytes.includes(0x0a)) c.conn.replyAndClose(big);
      });
      await withListener(transport, r.hooks, async (l) => {
        const x = await exchange(l.port, "127.0.0.1", "go\n");
        assert.equal(x.reply.length, big.length);
        assert.equal(x.fin, true);
        await eventually(() => r.conns[0]?.events.at(-1) === "closed", "closed", 2_000);
        assert.deepEqual(r.conns[0]!.events, ["open", "data", "closed"]);
      });
    });

    it("a peer's reset is `failed` then `closed`, once each", async () => {
      const r = recorder();
      await withListener(transport, r.hooks, async (l) => {
        await exchange(l.port, "127.0.0.1", undefined, { reset: true });
        await eventually(() => r.conns[0]?.events.at(-1) === "closed", "closed", 2_000);
        assert.deepEqual(r.conns[0]!.events, ["open", "failed", "closed"]);
      });
    });

    it("destroy() closes a silent connection; no hook after closed", async () => {
      const r = recorder();
      await withListener(transport, r.hooks, async (l) => {
        const done = exchange(l.port, "127.0.0.1", undefined);
        await eventually(() => r.conns.length === 1, "accepted", 2_000);
        r.conns[0]!.conn.destroy();
        r.conns[0]!.conn.destroy(); // twice is once
        const x = await done;
        assert.equal(x.reply.length, 0);
        await eventually(() => r.conns[0]!.events.at(-1) === "closed", "closed", 2_000);
        assert.deepEqual(r.conns[0]!.events, ["open", "closed"]);
      });
    });

    it("a refused connection is closed at once with no other hook", async () => {
      const r = recorder(undefined, () => true);
      await withListener(transport, r.hooks, async (l) => {
        const x = await exchange(l.port, "127.0.0.1", "hello\n");
        assert.equal(x.reply.length, 0);
        assert.equal(r.conns.length, 0);
      });
    });

    it("listens on IPv6 loopback and on a name", async () => {
      const r = recorder(lineReply(() => "ok\n"));
      for (const [host, connectTo] of [
        ["::1", "::1"],
        ["localhost", "localhost"],
      ] as const) {
        await withListener(
          transport,
          r.hooks,
          async (l) => {
            const x = await exchange(l.port, connectTo, "q\n");
            assert.equal(x.reply.toString(), "ok\n", host);
          },
          host,
        );
      }
    });

    it("a port in use is node:net's listen error: EADDRINUSE, with the address", async () => {
      const taken = createServer();
      await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
      const port = (taken.address() as { port: number }).port;
      try {
        await assert.rejects(
          listenShortTcp(
            { host: "127.0.0.1", port, backlog: 8, reusePort: false, transport },
            recorder().hooks,
          ),
          (e: NodeJS.ErrnoException & { port?: number }) => {
            assert.equal(e.code, "EADDRINUSE");
            assert.equal(e.syscall, "listen");
            assert.equal(e.port, port);
            assert.match(
              e.message,
              new RegExp(`^listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}$`),
            );
            return true;
          },
        );
      } finally {
        taken.close();
      }
    });

    it("with reusePort, two listeners share a port and both answer", async () => {
      const a = recorder(lineReply(() => "a\n"));
      const b = recorder(lineReply(() => "b\n"));
      await withListener(
        transport,
        a.hooks,
        async (la) => {
          const lb = await listenShortTcp(
            { host: "127.0.0.1", port: la.port, backlog: 64, reusePort: true, transport },
            b.hooks,
          );
          try {
            const seen = new Set<string>();
            for (let i = 0; i < 200 && seen.size < 2; i++)
              seen.add((await exchange(la.port, "127.0.0.1", "q\n")).reply.toString());
            assert.deepEqual([...seen].sort(), ["a\n", "b\n"]);
          } finally {
            await lb.close();
          }
        },
        "127.0.0.1",
        true,
      );
    });

    it("after close, connections are refused", async () => {
      const l = await listenShortTcp(
        { host: "127.0.0.1", port: 0, backlog: 8, reusePort: false, transport },
        recorder().hooks,
      );
      await l.close();
      await l.close(); // twice is once
      await assert.rejects(exchange(l.port, "127.0.0.1", "q\n"), { code: "ECONNREFUSED" });
    });
  });
}
