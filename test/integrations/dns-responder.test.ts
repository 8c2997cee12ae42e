// The DNS protocol without sockets: DnsResponder takes a message's bytes and returns the
// response's bytes, so every name, record, rcode and size limit is pinned down here, and
// fuzzed. dns-server.test.ts checks the same over real UDP and TCP.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Answer, type DecodedPacket, decode, encode, type Packet } from "dns-packet";
import fc from "fast-check";
import { isVigilError } from "../../src/core/errors.ts";
import { addressOfLabel, addrLabel, classifyHost } from "../../src/serve/dns/addr-names.ts";
import { maxDnsQueryBytes } from "../../src/serve/dns/message.ts";
import { udpLimit } from "../../src/serve/dns/responder.ts";
import { DnsResponder, type DnsTarget } from "../../src/serve/dns-server.ts";

const ip4 = (n: number): DnsTarget => ({ host: `10.0.${n >> 8}.${n & 255}`, port: 8080 });

const pools: Record<string, DnsTarget[]> = {
  web: [
    { host: "10.0.1.10", port: 8080 },
    { host: "10.0.1.11", port: 8080 },
    { host: "2001:db8::1", port: 80 },
    { host: "api.example.com", port: 443 },
  ],
  empty: [],
  dup: [
    { host: "10.0.0.1", port: 80 },
    { host: "10.0.0.1", port: 81 },
    { host: "10.0.0.1", port: 80 },
  ],
  big: Array.from({ length: 100 }, (_, i) => ip4(i)),
  twenty: Array.from({ length: 20 }, (_, i) => ip4(i)),
  six: Array.from({ length: 6 }, (_, i) => ip4(i)),
  odd: [
    { host: "fe80::1%eth0", port: 80 },
    { host: "not a host", port: 80 },
    { host: "10.0.0.9", port: 0 },
    { host: "10.0.0.8", port: 70_000 },
    { host: "[2001:db8::2]", port: 90 },
  ],
};

function makeResponder(opts: { domain?: string; ttlSeconds?: number; lookup?: (p: string) => unknown } = {}) {
  const asked: string[] = [];
  const responder = new DnsResponder({
    ...(opts.domain === undefined ? {} : { domain: opts.domain }),
    ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }),
    lookup:
      (opts.lookup as (p: string) => { targets: DnsTarget[] } | undefined) ??
      ((pool) => {
        asked.push(pool);
        const targets = pools[pool];
        return targets === undefined ? undefined : { targets };
      }),
  });
  return { responder, asked };
}

function query(name: string, type: string, extra: Partial<Packet> = {}): Buffer {
  return encode({
    type: "query",
    id: 0x1234,
    flags: 0x0100, // RD
    questions: [{ type: type as "A", name }],
    ...extra,
  });
}

function withEdns(udpPayloadSize: number, ednsVersion = 0): Partial<Packet> {
  return {
    additionals: [
      {
        type: "OPT",
        name: ".",
        udpPayloadSize,
        extendedRcode: 0,
        ednsVersion,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  };
}

function ask(
  r: DnsResponder,
  msg: Buffer,
  transport: "udp" | "tcp" = "udp",
): DecodedPacket & { bytes: Buffer } {
  const bytes = r.respond(msg, transport);
  assert.ok(bytes !== undefined, "expected a response");
  return Object.assign(decode(bytes), { bytes });
}

const rcodeOf = (p: DecodedPacket): string => (p as unknown as { rcode: string }).rcode;
const opcodeOf = (p: DecodedPacket): string => (p as unknown as { opcode: string }).opcode;
const dataOf = (records: Answer[] | undefined, type: string): unknown[] =>
  (records ?? []).filter((r) => r.type === type).map((r) => (r as { data: unknown }).data);
const sorted = (xs: unknown[]): unknown[] => [...xs].sort();
const withoutOpt = (records: Answer[] | undefined): Answer[] =>
  (records ?? []).filter((r) => r.type !== "OPT");

describe("DNS names and records", () => {
  it("A: the pool's IPv4 targets, authoritative, RD copied, RA clear, TTL 0, question echoed", () => {
    const { responder, asked } = makeResponder();
    const res = ask(responder, query("web.service.vigil", "A"));
    assert.equal(res.id, 0x1234);
    assert.equal(res.type, "response");
    assert.equal(rcodeOf(res), "NOERROR");
    assert.equal(res.flag_aa, true);
    assert.equal(res.flag_rd, true);
    assert.equal(res.flag_ra, false);
    assert.equal(res.flag_tc, false);
    assert.deepEqual(res.questions, [{ name: "web.service.vigil", type: "A", class: "IN" }]);
    assert.deepEqual(sorted(dataOf(res.answers, "A")), ["10.0.1.10", "10.0.1.11"]);
    assert.equal(res.answers?.length, 2, "no AAAA or host-name records in an A answer");
    for (const a of res.answers ?? []) {
      assert.equal(a.name, "web.service.vigil");
      assert.equal((a as { ttl: number }).ttl, 0);
    }
    assert.deepEqual(asked, ["web"]);
  });

  it("RD clear in the query stays clear in the response", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("web.service.vigil", "A", { flags: 0 }));
    assert.equal(res.flag_rd, false);
    assert.equal(res.flag_aa, true);
  });

  it("AAAA: only the IPv6 targets; ANY: A and AAAA together", () => {
    const { responder } = makeResponder();
    const aaaa = ask(responder, query("web.service.vigil", "AAAA"));
    assert.deepEqual(dataOf(aaaa.answers, "AAAA"), ["2001:db8::1"]);
    assert.equal(aaaa.answers?.length, 1);
    const any = ask(responder, query("web.service.vigil", "ANY"));
    assert.deepEqual(sorted(dataOf(any.answers, "A")), ["10.0.1.10", "10.0.1.11"]);
    assert.deepEqual(dataOf(any.answers, "AAAA"), ["2001:db8::1"]);
    assert.equal(any.answers?.length, 3);
  });

  it("SRV: priority 1, weight 1, the port; IP targets get addr names with glue in additionals", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("_web._tcp.service.vigil", "SRV"));
    assert.equal(rcodeOf(res), "NOERROR");
    assert.deepEqual(
      sorted(dataOf(res.answers, "SRV").map((d) => JSON.stringify(d))),
      sorted(
        [
          { priority: 1, weight: 1, port: 8080, target: "10-0-1-10.addr.vigil" },
          { priority: 1, weight: 1, port: 8080, target: "10-0-1-11.addr.vigil" },
          { priority: 1, weight: 1, port: 80, target: "2001-db8--1.addr.vigil" },
          { priority: 1, weight: 1, port: 443, target: "api.example.com" },
        ].map((d) => JSON.stringify(d)),
      ),
    );
    const glue = withoutOpt(res.additionals).map(
      (r) => `${r.name} ${r.type} ${(r as { data: string }).data}`,
    );
    assert.deepEqual(sorted(glue), [
      "10-0-1-10.addr.vigil A 10.0.1.10",
      "10-0-1-11.addr.vigil A 10.0.1.11",
      "2001-db8--1.addr.vigil AAAA 2001:db8::1",
    ]);
  });

  it("addr names resolve on their own, in canonical spelling only", () => {
    const { responder } = makeResponder();
    assert.deepEqual(dataOf(ask(responder, query("10-0-1-10.addr.vigil", "A")).answers, "A"), ["10.0.1.10"]);
    assert.deepEqual(dataOf(ask(responder, query("2001-DB8--1.addr.vigil", "AAAA")).answers, "AAAA"), [
      "2001:db8::1",
    ]);
    const wrongType = ask(responder, query("10-0-1-10.addr.vigil", "AAAA"));
    assert.equal(rcodeOf(wrongType), "NOERROR");
    assert.equal(wrongType.answers?.length, 0);
    for (const name of [
      "0-0-0-0-0-0-0-1.addr.vigil",
      "010-0-0-1.addr.vigil",
      "10-0-0.addr.vigil",
      "x.addr.vigil",
    ]) {
      assert.equal(rcodeOf(ask(responder, query(name, "A"))), "NXDOMAIN", name);
    }
  });

  it("addr labels round-trip for IPv4, IPv6 and IPv4-mapped IPv6", () => {
    for (const host of ["10.0.1.10", "2001:db8::1", "::1", "::", "::ffff:1.2.3.4", "fe80::1:2:3:4"]) {
      const c = classifyHost(host);
      assert.ok(c !== undefined && c.kind !== "name", host);
      const label = addrLabel(c);
      assert.match(label, /^[0-9a-f-]{2,39}$/);
      assert.deepEqual(addressOfLabel(label), c, host);
    }
    assert.equal(classifyHost("fe80::1%eth0"), undefined);
    assert.deepEqual(classifyHost("Api.Example.com."), { kind: "name", value: "api.example.com" });
  });

  it("unknown pool: NXDOMAIN with the SOA in authority", () => {
    const { responder } = makeResponder();
    for (const name of ["nope.service.vigil", "_nope._tcp.service.vigil"]) {
      const res = ask(responder, query(name, "A"));
      assert.equal(rcodeOf(res), "NXDOMAIN", name);
      assert.equal(res.flag_aa, true);
      assert.equal(res.answers?.length, 0);
      assert.equal(res.authorities?.length, 1);
      const soa = res.authorities?.[0] as {
        name: string;
        type: string;
        data: { mname: string; minimum: number };
      };
      assert.equal(soa.type, "SOA");
      assert.equal(soa.name, "vigil");
      assert.equal(soa.data.minimum, 0);
    }
  });

  it("a pool with nothing healthy: NOERROR with no answers (and the SOA)", () => {
    const { responder } = makeResponder();
    for (const [name, type] of [
      ["empty.service.vigil", "A"],
      ["_empty._tcp.service.vigil", "SRV"],
    ] as const) {
      const res = ask(responder, query(name, type));
      assert.equal(rcodeOf(res), "NOERROR", name);
      assert.equal(res.answers?.length, 0);
      assert.equal(res.authorities?.[0]?.type, "SOA");
    }
  });

  it("other types on an existing name are NODATA: NOERROR, no answers, SOA in authority", () => {
    const { responder } = makeResponder();
    for (const [name, type] of [
      ["web.service.vigil", "TXT"],
      ["web.service.vigil", "MX"],
      ["web.service.vigil", "SRV"],
      ["_web._tcp.service.vigil", "A"],
      ["vigil", "NS"],
    ] as const) {
      const res = ask(responder, query(name, type));
      assert.equal(rcodeOf(res), "NOERROR", `${name} ${type}`);
      assert.equal(res.answers?.length, 0, `${name} ${type}`);
      assert.deepEqual(
        res.authorities?.map((r) => r.type),
        ["SOA"],
      );
    }
  });

  it("empty non-terminals above the pools are NODATA, not NXDOMAIN (RFC 8020)", () => {
    const { responder } = makeResponder();
    for (const name of ["service.vigil", "_tcp.service.vigil", "addr.vigil"]) {
      const res = ask(responder, query(name, "A"));
      assert.equal(rcodeOf(res), "NOERROR", name);
      assert.equal(res.answers?.length, 0);
    }
    for (const name of [
      "other.vigil",
      "x.web.service.vigil",
      "_web._udp.service.vigil",
      "web._tcp.service.vigil",
    ]) {
      assert.equal(rcodeOf(ask(responder, query(name, "A"))), "NXDOMAIN", name);
    }
  });

  it("the apex answers its SOA", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("vigil", "SOA"));
    assert.equal(rcodeOf(res), "NOERROR");
    assert.deepEqual(res.answers?.[0]?.type, "SOA");
    assert.deepEqual((res.answers?.[0] as { data: unknown }).data, {
      mname: "vigil",
      rname: "hostmaster.vigil",
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: 0,
    });
  });

  it("names outside the domain, or other classes, are REFUSED without records or AA", () => {
    const { responder, asked } = makeResponder();
    for (const name of ["example.com", "web.service.vigil.example", "vigil.com", "."]) {
      const res = ask(responder, query(name, "A"));
      assert.equal(rcodeOf(res), "REFUSED", name);
      assert.equal(res.flag_aa, false);
      assert.equal(res.answers?.length, 0);
      assert.equal(res.authorities?.length, 0);
    }
    const chaos = encode({
      type: "query",
      id: 7,
      questions: [{ type: "TXT", name: "web.service.vigil", class: "CH" }],
    });
    assert.equal(rcodeOf(ask(responder, chaos)), "REFUSED");
    assert.deepEqual(asked, [], "lookup is not consulted for refused names");
  });

  it("zone transfers are NOTIMP", () => {
    const { responder } = makeResponder();
    assert.equal(rcodeOf(ask(responder, query("vigil", "AXFR"), "tcp")), "NOTIMP");
    assert.equal(rcodeOf(ask(responder, query("vigil", "IXFR"), "tcp")), "NOTIMP");
  });

  it("names match case-insensitively and the question's spelling is kept in the answer", () => {
    const { responder, asked } = makeResponder();
    const res = ask(responder, query("WeB.SeRvIcE.ViGiL", "A"));
    assert.deepEqual(res.questions?.[0]?.name, "WeB.SeRvIcE.ViGiL");
    assert.deepEqual(
      res.answers?.map((a) => a.name),
      ["WeB.SeRvIcE.ViGiL", "WeB.SeRvIcE.ViGiL"],
    );
    const srv = ask(responder, query("_WEB._TCP.SERVICE.VIGIL", "srv"));
    assert.equal(srv.answers?.length, 4);
    assert.deepEqual(asked, ["web", "web"], "the pool name is looked up in lowercase");
  });

  it("pool labels that cannot be pool names are NXDOMAIN without a lookup", () => {
    const { responder, asked } = makeResponder();
    for (const name of [
      "-web.service.vigil",
      "_x.service.vigil",
      "w.b.service.vigil",
      "__web._tcp.service.vigil",
    ]) {
      assert.equal(rcodeOf(ask(responder, query(name, "A"))), "NXDOMAIN", name);
    }
    assert.deepEqual(asked, []);
  });

  it("an address shared by several targets is one A record; one SRV per address and port", () => {
    const { responder } = makeResponder();
    assert.deepEqual(dataOf(ask(responder, query("dup.service.vigil", "A")).answers, "A"), ["10.0.0.1"]);
    const srv = ask(responder, query("_dup._tcp.service.vigil", "SRV"));
    assert.deepEqual(sorted(dataOf(srv.answers, "SRV").map((d) => (d as { port: number }).port)), [80, 81]);
    assert.equal(withoutOpt(srv.additionals).length, 1, "one glue record for the shared address");
  });

  it("targets that cannot be put in DNS are left out rather than failing the answer", () => {
    const { responder } = makeResponder();
    const aaaa = ask(responder, query("odd.service.vigil", "AAAA"));
    assert.deepEqual(dataOf(aaaa.answers, "AAAA"), ["2001:db8::2"]);
    const srv = ask(responder, query("_odd._tcp.service.vigil", "SRV"));
    assert.deepEqual(dataOf(srv.answers, "SRV"), [
      { priority: 1, weight: 1, port: 90, target: "2001-db8--2.addr.vigil" },
    ]);
    assert.equal(responder.stats.internalErrors, 0);
  });

  it("records rotate between queries, the set staying the same", () => {
    const { responder } = makeResponder();
    const firsts = new Set<unknown>();
    for (let i = 0; i < 6; i++) {
      const res = ask(responder, query("six.service.vigil", "A"));
      assert.equal(res.answers?.length, 6);
      firsts.add((res.answers?.[0] as { data: unknown }).data);
    }
    assert.ok(firsts.size > 1, "the first record changes");
  });

  it("another domain and TTL", () => {
    const { responder } = makeResponder({ domain: "Vigil.Example.Internal.", ttlSeconds: 30 });
    const res = ask(responder, query("web.service.vigil.example.internal", "A"));
    assert.equal(res.answers?.length, 2);
    assert.equal((res.answers?.[0] as { ttl: number }).ttl, 30);
    const srv = ask(responder, query("_web._tcp.service.vigil.example.internal", "SRV"));
    assert.ok(
      dataOf(srv.answers, "SRV").some(
        (d) => (d as { target: string }).target === "10-0-1-10.addr.vigil.example.internal",
      ),
    );
    const nx = ask(responder, query("nope.service.vigil.example.internal", "A"));
    assert.equal((nx.authorities?.[0] as { data: { minimum: number } }).data.minimum, 30);
    assert.equal(rcodeOf(ask(responder, query("web.service.vigil", "A"))), "REFUSED");
  });

  it("refuses a bad domain or TTL with a config error", () => {
    for (const domain of [
      "",
      ".",
      "a..b",
      "bad domain",
      `${"a".repeat(64)}.x`,
      `${"abcdefgh.".repeat(20)}x`,
    ]) {
      assert.throws(
        () => makeResponder({ domain }),
        (e) => isVigilError(e) && e.code === "VIGIL_ERR_CONFIG",
        domain,
      );
    }
    for (const ttlSeconds of [-1, 1.5, 2 ** 31]) {
      assert.throws(
        () => makeResponder({ ttlSeconds }),
        (e) => isVigilError(e) && e.code === "VIGIL_ERR_CONFIG",
      );
    }
  });

  it("a lookup that throws is SERVFAIL, and the responder carries on", () => {
    const { responder } = makeResponder({
      lookup: () => {
        throw new Error("boom");
      },
    });
    const res = ask(responder, query("web.service.vigil", "A"));
    assert.equal(rcodeOf(res), "SERVFAIL");
    assert.equal(res.flag_aa, false);
    assert.equal(responder.stats.responses.udp.SERVFAIL, 1);
    assert.equal(responder.stats.internalErrors, 0);
  });
});

describe("DNS truncation and EDNS0", () => {
  it("UDP without EDNS0: at most 512 bytes, TC set, as many whole records as fit", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("big.service.vigil", "A"));
    assert.ok(res.bytes.length <= 512, `${res.bytes.length} bytes`);
    assert.equal(res.flag_tc, true);
    const n = res.answers?.length ?? 0;
    assert.ok(n > 0 && n < 100, `${n} answers`);
    // One more record (33 bytes here) would not have fitted.
    assert.ok(res.bytes.length + 33 > 512);
    assert.equal(responder.stats.truncated.udp, 1);
  });

  it("TCP: every record, no TC", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("big.service.vigil", "A"), "tcp");
    assert.equal(res.flag_tc, false);
    assert.deepEqual(sorted(dataOf(res.answers, "A")), sorted(pools.big!.map((t) => t.host)));
  });

  it("EDNS0: the client's buffer is used, capped at 1232, floored at 512, and an OPT comes back", () => {
    const { responder } = makeResponder();
    const fits = ask(responder, query("twenty.service.vigil", "A", withEdns(1232)));
    assert.equal(fits.flag_tc, false);
    assert.equal(fits.answers?.length, 20);
    const opt = fits.additionals?.find((r) => r.type === "OPT") as {
      udpPayloadSize: number;
      ednsVersion: number;
    };
    assert.equal(opt.udpPayloadSize, 1232);
    assert.equal(opt.ednsVersion, 0);

    const noEdns = ask(responder, query("twenty.service.vigil", "A"));
    assert.equal(noEdns.flag_tc, true, "20 records need more than 512 bytes");

    const huge = ask(responder, query("big.service.vigil", "A", withEdns(65_000)));
    assert.equal(huge.flag_tc, true);
    assert.ok(huge.bytes.length <= 1232 && huge.bytes.length > 1232 - 33, `${huge.bytes.length} bytes`);
    assert.ok(
      huge.additionals?.some((r) => r.type === "OPT"),
      "OPT kept in a truncated response",
    );

    const tiny = ask(responder, query("big.service.vigil", "A", withEdns(100)));
    assert.ok(tiny.bytes.length <= 512 && tiny.bytes.length > 512 - 33, `${tiny.bytes.length} bytes`);
    assert.deepEqual(
      [udpLimit(undefined), udpLimit(0), udpLimit(600), udpLimit(4096)],
      [512, 512, 600, 1232],
    );
  });

  it("glue that does not fit is left out without TC (RFC 2181 §9)", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("_six._tcp.service.vigil", "SRV"));
    assert.equal(res.answers?.length, 6);
    assert.equal(res.flag_tc, false);
    const glue = withoutOpt(res.additionals).length;
    assert.ok(glue > 0 && glue < 6, `${glue} glue records`);
    assert.ok(res.bytes.length <= 512);
  });

  it("EDNS version 1 is BADVERS, with our OPT saying version 0", () => {
    const { responder } = makeResponder();
    const res = ask(responder, query("web.service.vigil", "A", withEdns(1232, 1)));
    const opt = res.additionals?.find((r) => r.type === "OPT") as {
      extendedRcode: number;
      ednsVersion: number;
    };
    assert.equal(opt.extendedRcode, 1, "16 >> 4");
    assert.equal(opt.ednsVersion, 0);
    assert.equal(rcodeOf(res), "NOERROR", "the low 4 bits of BADVERS are 0");
    assert.equal(res.answers?.length, 0);
    assert.equal(responder.stats.responses.udp.BADVERS, 1);
  });
});

/** A valid query for web.service.vigil A, as bytes to corrupt. */
const validQuery = query("web.service.vigil", "A", withEdns(1232));

function header(opts: {
  id?: number;
  flags?: number;
  qd?: number;
  an?: number;
  ns?: number;
  ar?: number;
}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(opts.id ?? 0xabcd, 0);
  b.writeUInt16BE(opts.flags ?? 0, 2);
  b.writeUInt16BE(opts.qd ?? 1, 4);
  b.writeUInt16BE(opts.an ?? 0, 6);
  b.writeUInt16BE(opts.ns ?? 0, 8);
  b.writeUInt16BE(opts.ar ?? 0, 10);
  return b;
}
const question = validQuery.subarray(12, 12 + 23); // "web.service.vigil" A IN

describe("DNS malformed queries", () => {
  it("the question slice used below is the real one", () => {
    assert.deepEqual(decode(Buffer.concat([header({}), question])).questions, [
      { name: "web.service.vigil", type: "A", class: "IN" },
    ]);
  });

  it("drops what has no header, responses, and oversized messages, counting each", () => {
    const { responder } = makeResponder();
    assert.equal(responder.respond(Buffer.alloc(0), "udp"), undefined);
    assert.equal(responder.respond(Buffer.from([1, 2, 3, 4, 5]), "udp"), undefined);
    assert.equal(responder.respond(Buffer.concat([header({ flags: 0x8000 }), question]), "udp"), undefined);
    assert.equal(responder.respond(Buffer.alloc(maxDnsQueryBytes + 1), "tcp"), undefined);
    assert.deepEqual(
      {
        short: responder.stats.dropped.short,
        response: responder.stats.dropped.response,
        tooLarge: responder.stats.dropped.too_large,
      },
      { short: 2, response: 1, tooLarge: 1 },
    );
  });

  const formErrCases: [string, Buffer][] = [
    ["QDCOUNT 0", header({ qd: 0 })],
    ["QDCOUNT 2", Buffer.concat([header({ qd: 2 }), question, question])],
    ["header only", header({})],
    ["question cut in the name", Buffer.concat([header({}), question.subarray(0, 8)])],
    ["question cut in the type", Buffer.concat([header({}), question.subarray(0, 20)])],
    [
      "compression pointer in the question",
      Buffer.concat([header({}), Buffer.from([0xc0, 0x00, 0, 1, 0, 1])]),
    ],
    [
      "label of 64 bytes",
      Buffer.concat([header({}), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]),
    ],
    [
      "name over 255 bytes",
      Buffer.concat([
        header({}),
        ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x61)])),
        Buffer.from([0, 0, 1, 0, 1]),
      ]),
    ],
    ["type OPT in the question", query("web.service.vigil", "OPT")],
    ["ARCOUNT past the end", Buffer.concat([header({ ar: 1 }), question])],
    [
      "two OPT records",
      query("web.service.vigil", "A", {
        additionals: [...withEdns(1232).additionals!, ...withEdns(1232).additionals!],
      }),
    ],
    ["OPT in the answer section", query("web.service.vigil", "A", { answers: withEdns(1232).additionals! })],
  ];
  for (const [what, msg] of formErrCases) {
    it(`FORMERR: ${what}`, () => {
      const { responder, asked } = makeResponder();
      const res = ask(responder, msg);
      assert.equal(rcodeOf(res), "FORMERR");
      assert.equal(res.type, "response");
      assert.equal(res.id, msg.readUInt16BE(0));
      assert.equal(res.answers?.length, 0);
      assert.deepEqual(asked, []);
    });
  }

  it("opcodes other than QUERY are NOTIMP, opcode echoed", () => {
    const { responder } = makeResponder();
    for (const [opcode, name] of [
      [1, "IQUERY"],
      [2, "STATUS"],
      [4, "NOTIFY"],
      [5, "UPDATE"],
      [15, "OPCODE_15"],
    ] as const) {
      const res = ask(responder, Buffer.concat([header({ flags: opcode << 11 }), question]));
      assert.equal(rcodeOf(res), "NOTIMP", name);
      assert.equal(opcodeOf(res), name);
      assert.equal(res.questions?.length, 1);
      const noQuestion = ask(responder, header({ flags: opcode << 11, qd: 0 }));
      assert.equal(rcodeOf(noQuestion), "NOTIMP");
    }
    assert.equal(responder.stats.responses.udp.NOTIMP, 10);
  });

  it("odd bytes in a label are echoed exactly and answered, not mangled", () => {
    const { responder } = makeResponder();
    const name = Buffer.from([3, 0xff, 0x2e, 0x41, 0]); // one label: ÿ . A
    const msg = Buffer.concat([header({}), name, Buffer.from([0, 1, 0, 1])]);
    const res = responder.respond(msg, "udp")!;
    assert.deepEqual(res.subarray(12, 12 + name.length + 4), msg.subarray(12));
    assert.equal(res[3]! & 0xf, 5, "REFUSED");
  });

  const invariants = (responder: DnsResponder, msg: Buffer, transport: "udp" | "tcp"): void => {
    const res = responder.respond(msg, transport);
    if (res === undefined) return;
    const p = decode(res);
    assert.equal(p.type, "response");
    assert.equal(p.id, msg.readUInt16BE(0));
    assert.ok(res.length <= (transport === "udp" ? 1232 : 65_535));
    if (msg.length > 0 && rcodeOf(p) === "NOERROR" && (p.answers?.length ?? 0) > 0) {
      assert.equal(p.flag_aa, true);
    }
  };
  const counted = (r: DnsResponder): number =>
    Object.values(r.stats.responses.udp).reduce((a, b) => a + b, 0) +
    Object.values(r.stats.responses.tcp).reduce((a, b) => a + b, 0) +
    Object.values(r.stats.dropped).reduce((a, b) => a + b, 0);

  it("property: any bytes get a decodable response or a counted drop, never a throw", () => {
    const anyBytes = fc.oneof(
      fc.uint8Array({ maxLength: 600, size: "max" }),
      // A plausible header (QR clear, one question) over random bytes reaches the name parser.
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
    );
    const { responder } = makeResponder();
    let sent = 0;
    fc.assert(
      fc.property(anyBytes, fc.constantFrom("udp" as const, "tcp" as const), (bytes, transport) => {
        sent++;
        invariants(responder, Buffer.from(bytes), transport);
      }),
      { numRuns: 2000, seed: 0x5eed },
    );
    assert.equal(counted(responder), sent);
    assert.equal(responder.stats.internalErrors, 0);
    const s = responder.stats;
    assert.ok(s.dropped.short > 0 && s.dropped.response > 0, "short and response drops were generated");
    assert.ok(s.responses.udp.FORMERR + s.responses.tcp.FORMERR > 0, "FORMERR was generated");
    assert.ok(s.responses.udp.NOTIMP + s.responses.tcp.NOTIMP > 0, "NOTIMP was generated");
  });

  it("property: corrupted valid queries (byte flips, cuts, splices) likewise", () => {
    const { responder } = makeResponder();
    let sent = 0;
    const corrupted = fc
      .tuple(
        fc.array(fc.tuple(fc.nat(validQuery.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(validQuery.length),
        fc.uint8Array({ maxLength: 40 }),
      )
      .map(([flips, cut, tail]) => {
        const b = Buffer.from(validQuery);
        for (const [at, value] of flips) b[at] = value;
        // Keep QR clear most of the time, so the deep paths are reached rather than dropped.
        b[2] = b[2]! & 0x7f;
        return Buffer.concat([b.subarray(0, Math.max(cut, 12)), Buffer.from(tail)]);
      });
    fc.assert(
      fc.property(corrupted, (msg) => {
        sent++;
        invariants(responder, msg, "udp");
      }),
      { numRuns: 3000, seed: 0xf00d },
    );
    assert.equal(counted(responder), sent);
    assert.equal(responder.stats.internalErrors, 0);
    assert.ok(responder.stats.responses.udp.NOERROR > 0 && responder.stats.responses.udp.FORMERR > 0);
  });

  it("property: for any pool and buffer size, UDP fits and holds only the pool's records; TCP holds all", () => {
    const target = fc.oneof(
      fc.ipV4().map((host) => ({ host, port: 80 })),
      fc.ipV6().map((host) => ({ host, port: 443 })),
      fc.domain().map((host) => ({ host, port: 8443 })),
    );
    fc.assert(
      fc.property(
        fc.array(target, { maxLength: 150 }),
        fc.option(fc.integer({ min: 0, max: 65_535 })),
        (targets, size) => {
          const responder = new DnsResponder({ lookup: (p) => (p === "p" ? { targets } : undefined) });
          const extra = size === null ? {} : withEdns(size);
          const limit = udpLimit(size ?? undefined);
          const expectedA = new Set(
            targets
              .map((t) => classifyHost(t.host))
              .filter((c) => c?.kind === "ipv4")
              .map((c) => c!.value),
          );
          const udp = ask(responder, query("p.service.vigil", "A", extra));
          assert.ok(udp.bytes.length <= limit);
          for (const ip of dataOf(udp.answers, "A")) assert.ok(expectedA.has(ip as string));
          assert.equal(udp.flag_tc, (udp.answers?.length ?? 0) < expectedA.size);
          const tcp = ask(responder, query("p.service.vigil", "A", extra), "tcp");
          assert.deepEqual(new Set(dataOf(tcp.answers, "A")), expectedA);
          const srv = ask(responder, query("_p._tcp.service.vigil", "SRV", extra), "tcp");
          const srvKeys = new Set(
            targets.flatMap((t) => {
              const c = classifyHost(t.host);
              if (c === undefined) return [];
              return [`${c.kind === "name" ? c.value : `${addrLabel(c)}.addr.vigil`}:${t.port}`];
            }),
          );
          assert.equal(srv.answers?.length, srvKeys.size);
        },
      ),
      { numRuns: 200, seed: 42 },
    );
  });
});
