import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { whenWritten } from "../../src/serve/api/hand-over.ts";
import { eventually } from "../helpers/origins.ts";

// whenWritten (src/serve/api/hand-over.ts) over real loopback sockets: a hand-over waits for the
// answers already written, and a client that never reads them is cut off.

describe("whenWritten: a hand-over after the answers already written", () => {
  let server: Server;
  let accepted: Socket[] = [];
  let port = 0;
  before(async () => {
    server = createServer((s) => {
      accepted.push(s);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** A connected pair: the client side paused (it reads nothing until resumed). */
  async function pair(): Promise<{ client: Socket; served: Socket }> {
    accepted = [];
    const client = connect(port, "127.0.0.1");
    client.pause();
    client.on("error", () => {});
    await eventually(() => accepted.length === 1, "accepted");
    return { client, served: accepted[0]! };
  }

  it("goes at once when nothing waits to be written", async () => {
    const { client, served } = await pair();
    let went = false;
    whenWritten(
      served,
      1_000,
      () => {
        went = true;
      },
      () => assert.fail("cut off"),
    );
    assert.equal(went, true);
    client.destroy();
  });

  it("waits while answers are queued, and goes once the client has read them", async () => {
    const { client, served } = await pair();
    // Far more than the kernel buffers: most stays in this process's queue.
    served.write(Buffer.alloc(32 * 1024 * 1024, 0x61));
    assert.ok(served.writableLength > 0, "something queued");
    let went = false;
    whenWritten(
      served,
      10_000,
      () => {
        went = true;
      },
      () => assert.fail("cut off"),
    );
    assert.equal(went, false);
    let read = 0;
    client.on("data", (d: Buffer) => {
      read += d.length;
    });
    client.resume();
    await eventually(() => went, "the hand-over after the queue drained");
    assert.equal(served.writableLength, 0);
    assert.ok(read > 0);
    client.destroy();
  });

  it("cuts off a client that never reads, and does not go", async () => {
    const { client, served } = await pair();
    served.write(Buffer.alloc(32 * 1024 * 1024, 0x61));
    let went = false;
    let cut = false;
    whenWritten(
      served,
      200,
      () => {
        went = true;
      },
      () => {
        cut = true;
      },
    );
    await eventually(() => cut, "cut off after the bound");
    assert.equal(served.destroyed, true);
    assert.equal(went, false);
    client.destroy();
  });

  it("ends quietly when the client goes away meanwhile", async () => {
    const { client, served } = await pair();
    served.write(Buffer.alloc(32 * 1024 * 1024, 0x61));
    let called = false;
    whenWritten(
      served,
      5_000,
      () => {
        called = true;
      },
      () => {
        called = true;
      },
    );
    client.destroy();
    await eventually(() => served.destroyed, "the server side closed");
    assert.equal(called, false);
  });
});
