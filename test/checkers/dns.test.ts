import assert from "node:assert/strict";
import { createSocket, type RemoteInfo } from "node:dgram";
import { createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  type Answer,
  decode,
  encode,
  type Packet,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
} from "dns-packet";
import { answerMatches } from "../../src/checkers/dns.ts";
import { createProber } from "../../src/checkers/index.ts";
import type { CheckResult } from "../../src/checkers/types.ts";
import type { DnsCheckSpec } from "../../src/config/types.ts";
import { closedPort, loopback } from "./helpers.ts";

const rcodeNxdomain = 3;
const rcodeServfail = 2;

/** The resolver's zone: name → answers, by record type. */
const zone: Record<string, Answer[]> = {
  "ok.test": [
    { type: "A", name: "ok.test", ttl: 60, data: "10.0.0.1" },
    { type: "A", name: "ok.test", ttl: 60, data: "10.0.0.2" },
  ],
  "v6.test": [{ type: "AAAA", name: "v6.test", ttl: 60, data: "2001:db8::1" }],
  "alias.test": [{ type: "CNAME", name: "alias.test", ttl: 60, data: "Target.Example.Test" }],
  "mx.test": [{ type: "MX", name: "mx.test", ttl: 60, data: { preference: 10, exchange: "mail.test" } }],
  "txt.test": [{ type: "TXT", name: "txt.test", ttl: 60, data: ["v=spf1 ", "-all"] }],
  "big.test": [
    { type: "A", name: "big.test", ttl: 60, data: "10.0.1.1" },
    { type: "A", name: "big.test", ttl: 60, data: "10.0.1.2" },
    { type: "A", name: "big.test", ttl: 60, data: "10.0.1.3" },
  ],
};

function reply(q: Packet, over: Partial<Packet> = {}): Buffer {
  const name = q.questions![0]!.name;
  const type = q.questions![0]!.type;
  return encode({
    type: "response",
    id: q.id!,
    flags: RECURSION_DESIRED | RECURSION_AVAILABLE,
    questions: q.questions!,
    answers: (zone[name] ?? []).filter((a) => a.type === type),
    ...over,
  });
}

/** What the resolver sends back for one query; [] for silence. Several buffers are sent in order. */
function respond(msg: Buffer, transport: "udp" | "tcp"): Buffer[] {
  const q = decode(msg);
  const name = q.questions?.[0]?.name ?? "";
  const id = q.id!;
  switch (name) {
    case "silent.test":
      return [];
    case "nx.test":
      return [reply(q, { flags: RECURSION_AVAILABLE | rcodeNxdomain, answers: [] })];
    case "servfail.test":
      return [reply(q, { flags: RECURSION_AVAILABLE | rcodeServfail, answers: [] })];
    case "garbage.test": {
      // Our id, a response header claiming 5 answers, then noise.
      const b = Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0xc0, 0xff, 0x13]);
      b.writeUInt16BE(id, 0);
      return [b];
    }
    case "short.test": {
      const b = Buffer.from([0, 0, 0x81]);
      b.writeUInt16BE(id, 0);
      return [b];
    }
    case "query.test":
      return [encode({ type: "query", id, questions: q.questions! })];
    case "spoof.test":
      return [
        reply(q, { id: id ^ 0x5555, answers: [{ type: "A", name, ttl: 1, data: "6.6.6.6" }] }),
        reply(q, { answers: [{ type: "A", name, ttl: 1, data: "10.0.0.9" }] }),
      ];
    case "big.test":
      return [
        transport === "udp"
          ? reply(q, { flags: TRUNCATED_RESPONSE | RECURSION_AVAILABLE, answers: [] })
          : reply(q),
      ];
    default:
      return [reply(q)];
  }
}

describe("dns checker", () => {
  let udp = createSocket("udp4");
  const tcp = createServer((s: Socket) => {
    tcpQueries++;
    let buf = Buffer.alloc(0);
    s.on("error", () => {});
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      for (const r of respond(buf.subarray(2, 2 + buf.readUInt16BE(0)), "tcp")) {
        const framed = Buffer.alloc(2 + r.length);
        framed.writeUInt16BE(r.length, 0);
        r.copy(framed, 2);
        s.write(framed);
      }
    });
  });
  let tcpQueries = 0;
  let udpQueries: ReturnType<typeof decode>[] = [];
  let port = 0;
  const prober = createProber();

  before(async () => {
    // UDP on a free port, then TCP on the same number, as a resolver does. Another test may
    // hold that TCP port: then take a new UDP port and try again.
    for (let attempt = 0; ; attempt++) {
      udp.on("message", (msg: Buffer, from: RemoteInfo) => {
        udpQueries.push(decode(msg));
        for (const r of respond(msg, "udp")) udp.send(r, from.port, from.address);
      });
      await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", () => resolve()));
      port = udp.address().port;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once("error", reject);
          tcp.listen(port, "127.0.0.1", () => {
            tcp.off("error", reject);
            resolve();
          });
        });
        return;
      } catch (e) {
        if (attempt >= 20) throw e;
        udp.close();
        udp = createSocket("udp4");
      }
    }
  });

  after(async () => {
    await prober.close();
    udp.close();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  });

  function check(over: Partial<DnsCheckSpec>, timeoutMs = 2000): Promise<CheckResult> {
    const spec: DnsCheckSpec = { type: "dns", name: "ok.test", recordType: "A", protocol: "udp", ...over };
    return prober.check({ spec, target: loopback(port), timeoutMs });
  }

  it("is up on NOERROR with the expected answer, sending a recursive query with a random id", async () => {
    udpQueries = [];
    const r = await check({ expectAnswer: "10.0.0.2" });
    assert.deepEqual([r.ok, r.reason], [true, "2 answers"]);
    for (let i = 0; i < 5; i++) assert.equal((await check({})).ok, true);
    assert.equal(udpQueries.length, 6);
    assert.equal(udpQueries[0]!.flag_rd, true);
    assert.deepEqual(udpQueries[0]!.questions, [{ name: "ok.test", type: "A", class: "IN" }]);
    // Six random 16-bit ids are all equal with probability 2^-80.
    assert.ok(new Set(udpQueries.map((q) => q.id)).size > 1);
  });

  it("is down when no answer equals the expected one", async () => {
    const r = await check({ expectAnswer: "10.9.9.9" });
    assert.deepEqual([r.ok, r.reason], [false, 'no answer equals "10.9.9.9" (got 10.0.0.1, 10.0.0.2)']);
    const none = await check({ name: "empty.test", expectAnswer: "10.9.9.9" });
    assert.deepEqual([none.ok, none.reason], [false, 'no answer equals "10.9.9.9" (got none)']);
  });

  it("compares AAAA as addresses and names case-insensitively", async () => {
    assert.equal(
      (await check({ name: "v6.test", recordType: "AAAA", expectAnswer: "2001:DB8:0:0::1" })).ok,
      true,
    );
    assert.equal(
      (await check({ name: "alias.test", recordType: "CNAME", expectAnswer: "target.example.test." })).ok,
      true,
    );
    assert.equal((await check({ name: "mx.test", recordType: "MX", expectAnswer: "10 MAIL.test" })).ok, true);
    assert.equal(
      (await check({ name: "txt.test", recordType: "TXT", expectAnswer: "v=spf1 -all" })).ok,
      true,
    );
  });

  it("reports NXDOMAIN and SERVFAIL by name", async () => {
    assert.deepEqual(await check({ name: "nx.test" }).then((r) => [r.ok, r.reason]), [false, "NXDOMAIN"]);
    assert.deepEqual(await check({ name: "servfail.test" }).then((r) => [r.ok, r.reason]), [
      false,
      "SERVFAIL",
    ]);
  });

  it("times out when the resolver stays silent", async () => {
    const r = await check({ name: "silent.test" }, 150);
    assert.deepEqual([r.ok, r.reason], [false, "timeout after 150ms"]);
  });

  it("fails, without crashing, on malformed replies", async () => {
    for (const name of ["garbage.test", "short.test"]) {
      const r = await check({ name });
      assert.deepEqual([r.ok, r.reason], [false, "malformed reply"], name);
    }
    const q = await check({ name: "query.test" });
    assert.deepEqual([q.ok, q.reason], [false, "malformed reply (not a response)"]);
  });

  it("ignores a reply with another id and takes the one that matches", async () => {
    const r = await check({ name: "spoof.test", expectAnswer: "10.0.0.9" });
    assert.deepEqual([r.ok, r.reason], [true, "1 answer"]);
  });

  it("retries over TCP when the UDP reply is truncated", async () => {
    const before = tcpQueries;
    const r = await check({ name: "big.test", expectAnswer: "10.0.1.3" });
    assert.deepEqual([r.ok, r.reason], [true, "3 answers (tcp after truncation)"]);
    assert.equal(tcpQueries - before, 1);
  });

  it("asks over TCP when told to", async () => {
    const before = tcpQueries;
    const r = await check({ protocol: "tcp", expectAnswer: "10.0.0.1" });
    assert.deepEqual([r.ok, r.reason], [true, "2 answers"]);
    assert.equal(tcpQueries - before, 1);
    const nx = await check({ protocol: "tcp", name: "nx.test" });
    assert.deepEqual([nx.ok, nx.reason], [false, "NXDOMAIN"]);
    const bad = await check({ protocol: "tcp", name: "garbage.test" });
    assert.deepEqual([bad.ok, bad.reason], [false, "malformed reply"]);
  });

  it("reports an ICMP refusal on UDP", async () => {
    const gone = createSocket("udp4");
    await new Promise<void>((resolve) => gone.bind(0, "127.0.0.1", () => resolve()));
    const freed = gone.address().port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const spec: DnsCheckSpec = { type: "dns", name: "ok.test", recordType: "A", protocol: "udp" };
    const r = await prober.check({ spec, target: loopback(freed), timeoutMs: 2000 });
    assert.deepEqual([r.ok, r.reason], [false, "recvmsg ECONNREFUSED"]);
  });

  it("reports a refused TCP connection", async () => {
    const spec: DnsCheckSpec = { type: "dns", name: "ok.test", recordType: "A", protocol: "tcp" };
    const r = await prober.check({ spec, target: loopback(await closedPort()), timeoutMs: 2000 });
    assert.deepEqual([r.ok, r.reason], [false, "connect ECONNREFUSED"]);
  });

  it("matches answers by their presentation forms", () => {
    const srv: Answer = {
      type: "SRV",
      name: "_x._tcp.t",
      data: { priority: 1, weight: 5, port: 80, target: "Web.T." },
    };
    assert.equal(answerMatches(srv, "web.t"), true);
    assert.equal(answerMatches(srv, "1 5 80 web.t"), true);
    assert.equal(answerMatches(srv, "1 5 81 web.t"), false);
    const a: Answer = { type: "A", name: "x", data: "10.0.0.1" };
    assert.equal(answerMatches(a, "10.0.0.1"), true);
    assert.equal(answerMatches(a, "10.0.0.10"), false);
    const aaaa: Answer = { type: "AAAA", name: "x", data: "::1" };
    assert.equal(answerMatches(aaaa, "0:0:0:0:0:0:0:1"), true);
    assert.equal(answerMatches(aaaa, "::2"), false);
    assert.equal(answerMatches(aaaa, "not an address"), false);
    const txt: Answer = { type: "TXT", name: "x", data: [Buffer.from("Case"), Buffer.from("Sensitive")] };
    assert.equal(answerMatches(txt, "CaseSensitive"), true);
    assert.equal(answerMatches(txt, "casesensitive"), false);
  });
});
