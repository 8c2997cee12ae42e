import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { after, describe, it } from "node:test";
import { Keyring } from "../../src/runtime/transport/keyring.ts";
import { type TransportHandlers, UdpTcpTransport } from "../../src/runtime/transport/udp-tcp.ts";

const key = (): string => randomBytes(32).toString("base64");

describe("Keyring", () => {
  it("round-trips and is different every time (random nonce)", () => {
    const k = new Keyring([key()], "c1");
    const a = k.seal(Buffer.from("hello"));
    const b = k.seal(Buffer.from("hello"));
    assert.notDeepEqual(a, b);
    assert.equal(k.open(a)?.toString(), "hello");
    assert.equal(k.open(b)?.toString(), "hello");
  });
  it("the first key encrypts, every key decrypts", () => {
    const [k1, k2] = [key(), key()];
    const old = new Keyring([k1]);
    const rotating = new Keyring([k2, k1]);
    assert.equal(rotating.open(old.seal(Buffer.from("x")))?.toString(), "x");
    assert.equal(old.open(rotating.seal(Buffer.from("y"))), undefined, "new key unknown to the old ring");
  });
  it("rejects a wrong key, a wrong label, tampering and junk without throwing", () => {
    const k = key();
    const sealed = new Keyring([k], "a").seal(Buffer.from("secret"));
    assert.equal(new Keyring([key()], "a").open(sealed), undefined);
    assert.equal(new Keyring([k], "b").open(sealed), undefined);
    const tampered = Buffer.from(sealed);
    tampered[20]! ^= 1;
    assert.equal(new Keyring([k], "a").open(tampered), undefined);
    assert.equal(new Keyring([k], "a").open(Buffer.alloc(5)), undefined);
    assert.equal(new Keyring([k], "a").open(new Uint8Array(0)), undefined);
  });
  it("refuses keys that are not 32 bytes of base64, naming the index", () => {
    assert.throws(() => new Keyring([key(), "c2hvcnQ="]), /encrypt_keys\[1\]|32 bytes/);
    assert.throws(() => new Keyring([]), /at least one key/);
  });
});

function handlers(log: { packets: [string, string][] }): TransportHandlers {
  return {
    onPacket: (from, b) => log.packets.push([from, Buffer.from(b).toString()]),
    onStream: (_from, b) => Buffer.from(`re:${Buffer.from(b).toString()}`),
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  // Real sockets: wait for delivery with a bound, polling the event loop.
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("UdpTcpTransport", () => {
  const open: UdpTcpTransport[] = [];
  after(async () => {
    await Promise.all(open.map((t) => t.close()));
  });
  const make = async (keys?: string[], label?: string) => {
    const log = { packets: [] as [string, string][] };
    const t = await UdpTcpTransport.listen({
      host: "127.0.0.1",
      port: 0,
      handlers: handlers(log),
      ...(keys === undefined ? {} : { keyring: new Keyring(keys, label) }),
    });
    open.push(t);
    return { t, log };
  };

  it("binds UDP and TCP on the same port and delivers packets and streams", async () => {
    const a = await make();
    const b = await make();
    assert.match(a.t.localAddr, /^127\.0\.0\.1:\d+$/);
    a.t.send(b.t.localAddr, Buffer.from("ping"));
    await until(() => b.log.packets.length === 1, "packet");
    assert.equal(b.log.packets[0]![1], "ping");
    assert.equal(b.log.packets[0]![0], a.t.localAddr);
    const reply = await a.t.request(b.t.localAddr, Buffer.from("pushpull"), 2000);
    assert.equal(Buffer.from(reply).toString(), "re:pushpull");
  });

  it("encrypted peers talk; a peer with the wrong key is dropped and counted", async () => {
    const k = key();
    const a = await make([k]);
    const b = await make([k]);
    const intruder = await make([key()]);
    a.t.send(b.t.localAddr, Buffer.from("hi"));
    await until(() => b.log.packets.length === 1, "encrypted packet");
    intruder.t.send(b.t.localAddr, Buffer.from("let me in"));
    await until(() => b.t.stats.dropped.decrypt === 1, "decrypt drop");
    assert.equal(b.log.packets.length, 1);
    await assert.rejects(intruder.t.request(b.t.localAddr, Buffer.from("join"), 2000));
    assert.equal(
      Buffer.from(await a.t.request(b.t.localAddr, Buffer.from("sync"), 2000)).toString(),
      "re:sync",
    );
  });

  it("a stream with a frame over the limit or junk is cut off, not crashing the node", async () => {
    const b = await make();
    const port = Number(b.t.localAddr.split(":")[1]);
    await new Promise<void>((resolve) => {
      const s = createConnection({ host: "127.0.0.1", port }, () => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(0xffff_ffff, 0);
        s.write(head);
      });
      s.on("close", () => resolve());
      s.on("error", () => {});
    });
    assert.equal(b.t.stats.dropped.oversized, 1);
    await new Promise<void>((resolve) => {
      const s = createConnection({ host: "127.0.0.1", port }, () => s.end(Buffer.from([0, 0])));
      s.on("close", () => resolve());
      s.on("error", () => {});
    });
    assert.equal(b.t.stats.dropped.bad_frame, 1);
    // still serving
    const a = await make();
    assert.equal(Buffer.from(await a.t.request(b.t.localAddr, Buffer.from("ok"), 2000)).toString(), "re:ok");
  });

  it("a request to a closed port rejects", async () => {
    const a = await make();
    const gone = await make();
    const addr = gone.t.localAddr;
    await gone.t.close();
    await assert.rejects(a.t.request(addr, Buffer.from("x"), 2000), /ECONNREFUSED|closed/);
  });
});
