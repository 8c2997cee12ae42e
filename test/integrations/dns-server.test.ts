// The DNS server over real sockets on 127.0.0.1: UDP and TCP on one port, TCP framing and
// pipelining, truncation and the TCP retry, malformed traffic, the connection cap and the
// idle timeout. The fake lookup stands in for a Vigil node.

import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createConnection, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { type DecodedPacket, decode, encode, type Packet } from "dns-packet";
import fc from "fast-check";
import { isVigilError } from "../../src/core/errors.ts";
import { type DnsServer, type DnsTarget, startDnsServer } from "../../src/serve/dns-server.ts";

const pools: Record<string, DnsTarget[]> = {
  web: [
    { host: "10.0.1.10", port: 8080 },
    { host: "10.0.1.11", port: 8080 },
    { host: "2001:db8::1", port: 80 },
  ],
  empty: [],
  big: Array.from({ length: 100 }, (_, i) => ({ host: `10.1.${i >> 8}.${i & 255}`, port: 80 })),
};
const lookup = (pool: string): { targets: DnsTarget[] } | undefined => {
  const targets = pools[pool];
  return targets === undefined ? undefined : { targets };
};

const replyTimeoutMs = 2000;

let nextId = 1;
function query(name: string, type: string, extra: Partial<Packet> = {}): Buffer {
  return encode({
    type: "query",
    id: nextId++ & 0xffff,
    flags: 0x0100,
    questions: [{ type: type as "A", name }],
    ...extra,
  });
}
const edns = (udpPayloadSize: number): Partial<Packet> => ({
  additionals: [
    {
      type: "OPT",
      name: ".",
      udpPayloadSize,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [],
    },
  ],
});

const rcodeOf = (p: DecodedPacket): string => (p as unknown as { rcode: string }).rcode;
const dataOf = (p: DecodedPacket, type: string): unknown[] =>
  (p.answers ?? []).filter((r) => r.type === type).map((r) => (r as { data: unknown }).data);

function sameQuestion(response: Buffer, question: string): boolean {
  try {
    // An error response may carry no question (FORMERR for QDCOUNT 2).
    const echoed = decode(response).questions ?? [];
    return echoed.length === 0 || JSON.stringify(echoed) === question;
  } catch {
    return false;
  }
}

/** A UDP client that keeps every datagram it receives, in order, until a reply() takes it. */
class UdpClient {
  readonly socket: UdpSocket = createSocket("udp4");
  readonly received: Buffer[] = [];
  private waiters: (() => void)[] = [];
  private readonly port: number;

  constructor(port: number) {
    this.port = port;
    this.socket.on("message", (m) => {
      this.received.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(msg: Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(msg, this.port, "127.0.0.1", (e) => (e ? reject(e) : resolve())),
    );
  }

  /** Waits for the response to `q` (same id and question, if echoed), bounded by a timeout. */
  async reply(q: Buffer): Promise<DecodedPacket & { bytes: Buffer }> {
    const id = q.readUInt16BE(0);
    const question = JSON.stringify(decode(q).questions);
    const deadline = Date.now() + replyTimeoutMs;
    for (;;) {
      const hit = this.received.find(
        (b) => b.length >= 2 && b.readUInt16BE(0) === id && sameQuestion(b, question),
      );
      if (hit !== undefined) {
        // Taken, so that a later query with the same id and question waits for its own reply.
        this.received.splice(this.received.indexOf(hit), 1);
        return Object.assign(decode(hit), { bytes: hit });
      }
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no UDP reply with id ${id}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async ask(msg: Buffer): Promise<DecodedPacket & { bytes: Buffer }> {
    await this.send(msg);
    return this.reply(msg);
  }

  close(): void {
    this.socket.close();
  }
}

/** A TCP client reading 2-byte length-prefixed responses. */
class TcpClient {
  readonly socket: Socket;
  private buffered = Buffer.alloc(0);
  private readonly frames: Buffer[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = createConnection({ host: "127.0.0.1", port });
    this.socket.on("error", () => {});
    this.closed = new Promise((resolve) => this.socket.on("close", () => resolve()));
    this.socket.on("close", () => this.wake());
    this.socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 2 && this.buffered.length >= 2 + this.buffered.readUInt16BE(0)) {
        const len = this.buffered.readUInt16BE(0);
        this.frames.push(this.buffered.subarray(2, 2 + len));
        this.buffered = this.buffered.subarray(2 + len);
      }
      this.wake();
    });
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static frame(msg: Buffer): Buffer {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    return Buffer.concat([len, msg]);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async next(): Promise<DecodedPacket & { bytes: Buffer }> {
    const f = await this.nextFrame();
    return Object.assign(decode(f), { bytes: f });
  }

  async nextFrame(): Promise<Buffer> {
    const deadline = Date.now() + replyTimeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f !== undefined) return f;
      if (this.socket.destroyed) assert.fail("connection closed before a response");
      const left = deadline - Date.now();
      if (left <= 0) assert.fail("no TCP response");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async ask(msg: Buffer): Promise<DecodedPacket & { bytes: Buffer }> {
    this.write(TcpClient.frame(msg));
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), replyTimeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("DNS server over UDP and TCP", () => {
  let server: DnsServer;
  let udp: UdpClient;
  before(async () => {
    server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup });
    udp = new UdpClient(server.port);
  });
  after(async () => {
    udp.close();
    await server.close();
  });

  it("binds one port number for both transports", () => {
    assert.ok(server.port > 0);
    assert.equal(server.host, "127.0.0.1");
  });

  it("A, AAAA and SRV with glue over UDP", async () => {
    const a = await udp.ask(query("web.service.vigil", "A"));
    assert.equal(rcodeOf(a), "NOERROR");
    assert.equal(a.flag_aa, true);
    assert.equal(a.flag_ra, false);
    assert.deepEqual(dataOf(a, "A").sort(), ["10.0.1.10", "10.0.1.11"]);
    const aaaa = await udp.ask(query("web.service.vigil", "AAAA"));
    assert.deepEqual(dataOf(aaaa, "AAAA"), ["2001:db8::1"]);
    const srv = await udp.ask(query("_web._tcp.service.vigil", "SRV"));
    assert.deepEqual(
      dataOf(srv, "SRV")
        .map((d) => `${(d as { port: number }).port} ${(d as { target: string }).target}`)
        .sort(),
      ["80 2001-db8--1.addr.vigil", "8080 10-0-1-10.addr.vigil", "8080 10-0-1-11.addr.vigil"],
    );
    assert.deepEqual((srv.additionals ?? []).map((r) => `${r.name} ${(r as { data: string }).data}`).sort(), [
      "10-0-1-10.addr.vigil 10.0.1.10",
      "10-0-1-11.addr.vigil 10.0.1.11",
      "2001-db8--1.addr.vigil 2001:db8::1",
    ]);
  });

  it("NXDOMAIN, empty NOERROR, NODATA, REFUSED and case-insensitive names over UDP", async () => {
    const nx = await udp.ask(query("nope.service.vigil", "A"));
    assert.equal(rcodeOf(nx), "NXDOMAIN");
    assert.equal(nx.authorities?.[0]?.type, "SOA");
    const empty = await udp.ask(query("empty.service.vigil", "A"));
    assert.equal(rcodeOf(empty), "NOERROR");
    assert.equal(empty.answers?.length, 0);
    const txt = await udp.ask(query("web.service.vigil", "TXT"));
    assert.equal(rcodeOf(txt), "NOERROR");
    assert.equal(txt.answers?.length, 0);
    assert.equal(txt.authorities?.[0]?.type, "SOA");
    const outside = await udp.ask(query("example.com", "A"));
    assert.equal(rcodeOf(outside), "REFUSED");
    assert.equal(outside.flag_aa, false);
    const upper = await udp.ask(query("WEB.Service.VIGIL", "A"));
    assert.deepEqual(dataOf(upper, "A").sort(), ["10.0.1.10", "10.0.1.11"]);
    assert.equal(upper.questions?.[0]?.name, "WEB.Service.VIGIL");
  });

  it("the same answers over TCP", async () => {
    const tcp = new TcpClient(server.port);
    try {
      const a = await tcp.ask(query("web.service.vigil", "A"));
      assert.deepEqual(dataOf(a, "A").sort(), ["10.0.1.10", "10.0.1.11"]);
      const nx = await tcp.ask(query("nope.service.vigil", "A"));
      assert.equal(rcodeOf(nx), "NXDOMAIN");
    } finally {
      tcp.close();
    }
  });

  it("100 targets: UDP truncates with TC, TCP carries all of them", async () => {
    const viaUdp = await udp.ask(query("big.service.vigil", "A"));
    assert.equal(viaUdp.flag_tc, true);
    assert.ok(viaUdp.bytes.length <= 512, `${viaUdp.bytes.length} bytes`);
    const partial = viaUdp.answers?.length ?? 0;
    assert.ok(partial > 0 && partial < 100, `${partial} whole records`);

    const bigger = await udp.ask(query("big.service.vigil", "A", edns(4096)));
    assert.equal(bigger.flag_tc, true);
    assert.ok(bigger.bytes.length <= 1232 && bigger.bytes.length > 512, `${bigger.bytes.length} bytes`);
    assert.ok((bigger.answers?.length ?? 0) > partial, "the EDNS0 buffer carries more records");

    const tcp = new TcpClient(server.port);
    try {
      const full = await tcp.ask(query("big.service.vigil", "A"));
      assert.equal(full.flag_tc, false);
      assert.deepEqual(new Set(dataOf(full, "A")), new Set(pools.big!.map((t) => t.host)));
    } finally {
      tcp.close();
    }
    assert.ok(server.stats.truncated.udp >= 2);
    assert.equal(server.stats.truncated.tcp, 0);
  });

  it("pipelined TCP queries in one write get their responses in order", async () => {
    const tcp = new TcpClient(server.port);
    try {
      const qs = [
        query("web.service.vigil", "A"),
        query("nope.service.vigil", "A"),
        query("_web._tcp.service.vigil", "SRV"),
        query("big.service.vigil", "A"),
      ];
      tcp.write(Buffer.concat(qs.map(TcpClient.frame)));
      const rs = [await tcp.next(), await tcp.next(), await tcp.next(), await tcp.next()];
      assert.deepEqual(
        rs.map((r) => r.id),
        qs.map((q) => q.readUInt16BE(0)),
      );
      assert.deepEqual(rs.map(rcodeOf), ["NOERROR", "NXDOMAIN", "NOERROR", "NOERROR"]);
      assert.equal(rs[3]!.answers?.length, 100);
    } finally {
      tcp.close();
    }
  });

  it("a TCP query arriving one byte at a time is reassembled", async () => {
    const tcp = new TcpClient(server.port);
    try {
      await tcp.connected();
      const q = query("web.service.vigil", "A");
      const framed = TcpClient.frame(q);
      for (let i = 0; i < framed.length; i++) {
        tcp.write(framed.subarray(i, i + 1));
        // Let each byte go out as its own segment.
        await new Promise((r) => setImmediate(r));
      }
      const r = await tcp.next();
      assert.equal(r.id, q.readUInt16BE(0));
      assert.equal(r.answers?.length, 2);
    } finally {
      tcp.close();
    }
  });

  it("FORMERR and NOTIMP over UDP; responses sent to us are dropped and counted", async () => {
    const twoQuestions = encode({
      type: "query",
      id: 0x7001,
      questions: [
        { type: "A", name: "web.service.vigil" },
        { type: "A", name: "web.service.vigil" },
      ],
    });
    assert.equal(rcodeOf(await udp.ask(twoQuestions)), "FORMERR");
    const status = Buffer.from(query("web.service.vigil", "A"));
    status.writeUInt16BE(2 << 11, 2);
    const notimp = await udp.ask(status);
    assert.equal(rcodeOf(notimp), "NOTIMP");

    const before = server.stats.dropped.response;
    const response = Buffer.from(query("web.service.vigil", "A"));
    response.writeUInt16BE(0x8000, 2);
    await udp.send(response);
    // Datagrams on loopback are handled in order: once this one is answered, that one was seen.
    await udp.ask(query("web.service.vigil", "A"));
    assert.equal(server.stats.dropped.response, before + 1);
    assert.ok(
      !udp.received.some((b) => b.readUInt16BE(0) === response.readUInt16BE(0)),
      "no reply to a response",
    );
  });

  it("random bytes over UDP: each is answered or counted as dropped, and the server keeps answering", async () => {
    const total = (): number =>
      Object.values(server.stats.responses.udp).reduce((a, b) => a + b, 0) +
      Object.values(server.stats.dropped).reduce((a, b) => a + b, 0);
    const garbage = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 300, size: "max" }),
        fc
          .tuple(
            fc.uint8Array({ minLength: 12, maxLength: 12 }),
            fc.uint8Array({ maxLength: 300, size: "max" }),
          )
          .map(([h, rest]) => {
            const b = Buffer.concat([h, rest]);
            b[2] = b[2]! & 0x7f;
            b.writeUInt16BE(1, 4);
            return b;
          }),
      ),
      { numRuns: 300, seed: 7 },
    );
    const start = total();
    const seenBefore = udp.received.length;
    const check = (): Buffer => {
      const q = Buffer.from(query("web.service.vigil", "A"));
      q.writeUInt16BE(0xbeef, 0);
      return q;
    };
    // In batches, each closed by a valid query: the server shares this event loop, and a burst
    // of hundreds of datagrams would overflow its socket's receive queue before it reads any.
    for (let i = 0; i < garbage.length; i += 25) {
      for (const g of garbage.slice(i, i + 25)) await udp.send(Buffer.from(g));
      assert.equal(rcodeOf(await udp.ask(check())), "NOERROR");
    }
    const after = await udp.ask(check());
    assert.deepEqual(dataOf(after, "A").sort(), ["10.0.1.10", "10.0.1.11"]);
    assert.equal(total() - start, garbage.length + Math.ceil(garbage.length / 25) + 1);
    const garbageReplies = udp.received.slice(seenBefore);
    assert.ok(garbageReplies.length > 0, "some of the garbage had a header worth a FORMERR or NOTIMP");
    for (const b of garbageReplies) assert.equal(decode(b).type, "response");
    assert.equal(server.stats.internalErrors, 0);
  });
});

describe("DNS server TCP limits", () => {
  it("closes a connection announcing a message over the bound", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup });
    try {
      const tcp = new TcpClient(server.port);
      tcp.write(Buffer.from([0xff, 0xff, 0, 0]));
      await withTimeout(tcp.closed, "server closes the connection");
      assert.equal(server.stats.dropped.too_large, 1);
    } finally {
      await server.close();
    }
  });

  it("zero-length and short TCP messages are dropped, the connection stays usable", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup });
    const tcp = new TcpClient(server.port);
    try {
      const q = query("web.service.vigil", "A");
      tcp.write(Buffer.concat([Buffer.from([0, 0, 0, 3, 1, 2, 3]), TcpClient.frame(q)]));
      const r = await tcp.next();
      assert.equal(r.id, q.readUInt16BE(0));
      assert.equal(server.stats.dropped.short, 2);
    } finally {
      tcp.close();
      await server.close();
    }
  });

  it("caps open connections; the one over the cap is closed and counted", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup, maxTcpConnections: 2 });
    const clients = [new TcpClient(server.port), new TcpClient(server.port)];
    try {
      // Both answered means both were accepted before the third arrives.
      for (const c of clients) await c.ask(query("web.service.vigil", "A"));
      assert.equal(server.stats.tcp.open, 2);
      const third = new TcpClient(server.port);
      await withTimeout(third.closed, "the third connection is closed");
      assert.equal(server.stats.dropped.tcp_connection_limit, 1);
      clients[0]!.close();
      await clients[0]!.closed;
      // Once one leaves, a new one is served again.
      const fourth = new TcpClient(server.port);
      clients.push(fourth);
      const deadline = Date.now() + replyTimeoutMs;
      while (server.stats.tcp.open >= 2 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      const r = await fourth.ask(query("web.service.vigil", "A"));
      assert.equal(r.answers?.length, 2);
    } finally {
      for (const c of clients) c.close();
      await server.close();
    }
  });

  it("closes idle connections and counts a partial message", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup, tcpIdleMs: 50 });
    try {
      const tcp = new TcpClient(server.port);
      await tcp.connected();
      tcp.write(Buffer.from([0, 40, 1, 2]));
      await withTimeout(tcp.closed, "idle connection closed");
      assert.equal(server.stats.tcp.idleClosed, 1);
      const deadline = Date.now() + replyTimeoutMs;
      while (server.stats.tcp.open > 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      assert.equal(server.stats.dropped.tcp_partial, 1);
      assert.equal(server.stats.tcp.open, 0);
    } finally {
      await server.close();
    }
  });

  it("a client that pipelines without reading is paused, not buffered without end", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup });
    const tcp = new TcpClient(server.port);
    // Observed: about 1300 responses fill the loopback socket buffers and our write bound.
    const queries = 4000;
    try {
      await tcp.connected();
      tcp.socket.pause();
      // About 13 MB of responses, if they were all answered at once.
      const q = TcpClient.frame(query("big.service.vigil", "A"));
      tcp.write(Buffer.concat(Array.from({ length: queries }, () => q)));
      const answered = (): number => server.stats.responses.tcp.NOERROR;
      // Wait until the server stops making progress (or answers everything, which fails below).
      let last = -1;
      let still = 0;
      const deadline = Date.now() + 5000;
      while (still < 5 && answered() < queries && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        still = answered() === last ? still + 1 : 0;
        last = answered();
      }
      assert.ok(
        answered() > 0 && answered() < queries,
        `${answered()} answered while the client was not reading`,
      );
      tcp.socket.resume();
      for (let i = 0; i < queries; i++) await tcp.nextFrame();
      assert.equal(answered(), queries);
    } finally {
      tcp.close();
      await server.close();
    }
  });
});

describe("DNS server lifecycle", () => {
  it("a taken port is a VigilError naming the address", async () => {
    const taken = createSocket("udp4");
    await new Promise<void>((resolve) => taken.bind(0, "127.0.0.1", resolve));
    const port = taken.address().port;
    try {
      await assert.rejects(
        startDnsServer({ host: "127.0.0.1", port, lookup }),
        (e) =>
          isVigilError(e) && e.code === "VIGIL_ERR_UNAVAILABLE" && e.message.includes(`127.0.0.1:${port}`),
      );
    } finally {
      taken.close();
    }
  });

  it("refuses bad limits", async () => {
    await assert.rejects(
      startDnsServer({ host: "127.0.0.1", port: 0, lookup, maxTcpConnections: 0 }),
      isVigilError,
    );
    await assert.rejects(startDnsServer({ host: "127.0.0.1", port: 0, lookup, tcpIdleMs: -1 }), isVigilError);
    await assert.rejects(
      startDnsServer({ host: "127.0.0.1", port: 0, lookup, domain: "a..b" }),
      isVigilError,
    );
  });

  it("close() ends open connections, frees the port, and can be called twice", async () => {
    const server = await startDnsServer({ host: "127.0.0.1", port: 0, lookup });
    const tcp = new TcpClient(server.port);
    await tcp.ask(query("web.service.vigil", "A"));
    await Promise.all([server.close(), server.close()]);
    await withTimeout(tcp.closed, "connection closed by server.close()");
    const again = await startDnsServer({ host: "127.0.0.1", port: server.port, lookup });
    await again.close();
  });

  it("serves on IPv6 loopback too", async (t) => {
    let server: DnsServer;
    try {
      server = await startDnsServer({ host: "::1", port: 0, lookup });
    } catch {
      t.skip("no IPv6 loopback on this machine");
      return;
    }
    const client = createSocket("udp6");
    try {
      const q = query("web.service.vigil", "AAAA");
      const reply = new Promise<Buffer>((resolve) => client.once("message", resolve));
      client.send(q, server.port, "::1");
      const r = decode(await withTimeout(reply, "IPv6 reply"));
      assert.deepEqual(dataOf(r, "AAAA"), ["2001:db8::1"]);
    } finally {
      client.close();
      await server.close();
    }
  });
});
