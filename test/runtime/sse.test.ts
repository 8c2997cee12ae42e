import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { isVigilError } from "../../src/core/errors.ts";
import { EventLog } from "../../src/runtime/events.ts";
import { sendError } from "../../src/serve/api/http-util.ts";
import { EventStreams } from "../../src/serve/sse.ts";

// The SSE stream over a real HTTP server, with a log the test appends to.

interface Received {
  id: string | undefined;
  event: string | undefined;
  data: Record<string, unknown> | undefined;
}

function parseSse(text: string): Received[] {
  return text
    .split("\n\n")
    .filter((b) => b.trim() !== "")
    .map((block) => {
      const r: Received = { id: undefined, event: undefined, data: undefined };
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) r.id = line.slice(4);
        else if (line.startsWith("event: ")) r.event = line.slice(7);
        else if (line.startsWith("data: ")) r.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
      }
      return r;
    })
    .filter((r) => r.event !== undefined);
}

describe("GET /v1/events/stream", () => {
  let log: EventLog;
  let streams: EventStreams;
  let server: Server;
  let base: string;
  before(async () => {
    log = new EventLog();
    streams = new EventStreams(log, { maxBufferedBytes: 64 * 1024 });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      try {
        streams.open(req, res, url);
      } catch (e) {
        if (isVigilError(e)) sendError(res, e);
        else throw e;
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    streams.closeAll();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** Opens a stream, runs `act`, reads until `n` events arrived, then disconnects. */
  async function collect(path: string, n: number, act: () => void, headers: Record<string, string> = {}) {
    const ctl = new AbortController();
    const res = await fetch(base + path, { signal: ctl.signal, headers });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    act();
    for (let i = 0; i < 1000 && parseSse(text).length < n; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    ctl.abort();
    return parseSse(text);
  }

  it("streams live events with id cursors, filtered by pool and type", async () => {
    const got = await collect("/v1/events/stream?pool=web&type=verdict.changed", 2, () => {
      log.append(1, { type: "verdict.changed", pool: "web", target: "a:1", from: "up", to: "down" });
      log.append(2, { type: "verdict.changed", pool: "api", target: "b:1", from: "up", to: "down" });
      log.append(3, { type: "observation.changed", pool: "web", target: "a:1" });
      log.append(4, { type: "verdict.changed", pool: "web", target: "c:1", from: "down", to: "up" });
    });
    assert.deepEqual(
      got.map((e) => [e.event, e.data?.target]),
      [
        ["verdict.changed", "a:1"],
        ["verdict.changed", "c:1"],
      ],
    );
    assert.equal(got[0]!.id, String(got[0]!.data?.seq));
    assert.ok(Number(got[1]!.id) > Number(got[0]!.id));
  });

  it("resumes after Last-Event-ID with only the newer events", async () => {
    const before = log.lastSeq;
    log.append(5, { type: "pool.created", pool: "x" });
    log.append(6, { type: "pool.created", pool: "y" });
    const got = await collect("/v1/events/stream?type=pool.created", 2, () => {}, {
      "last-event-id": String(before),
    });
    assert.deepEqual(
      got.map((e) => e.data?.pool),
      ["x", "y"],
    );
    const none = await collect(
      "/v1/events/stream?type=pool.created",
      1,
      () => log.append(7, { type: "pool.created", pool: "z" }),
      {
        "last-event-id": String(log.lastSeq),
      },
    );
    assert.deepEqual(
      none.map((e) => e.data?.pool),
      ["z"],
    );
  });

  it("a bad Last-Event-ID is a 400", async () => {
    const r = await fetch(`${base}/v1/events/stream`, { headers: { "last-event-id": "abc" } });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /cursor/);
  });

  it("drops a consumer that stops reading, with a final event, and keeps serving others", async () => {
    const port = Number(new URL(base).port);
    const sock = connect(port, "127.0.0.1");
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.write("GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n");
    // Wait until the server has registered the stream, then stop reading.
    for (let i = 0; i < 100 && streams.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(streams.size, 1);
    sock.pause();
    const dropsBefore = streams.droppedSlow;
    const payload = "x".repeat(16_000);
    for (let i = 0; i < 20_000 && streams.droppedSlow === dropsBefore; i++) {
      log.append(i, { type: "observation.changed", pool: "flood", cause: payload });
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(streams.droppedSlow, dropsBefore + 1, "the slow consumer was dropped");
    assert.equal(streams.size, 0);
    // read what it got: it ends with the dropped notice
    sock.resume();
    let text = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => {
      text += d;
    });
    await new Promise<void>((r) => sock.once("end", () => r()));
    assert.match(text, /event: dropped\ndata: \{"reason":"slow consumer"/);
    sock.destroy();
  });
});
