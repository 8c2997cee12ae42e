import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseHostPort } from "../../src/config/address.ts";
import { allowLimits, ipv6Bytes, parseAllowRule, TargetsAllow } from "../../src/config/allow.ts";
import { isVigilError } from "../../src/core/errors.ts";

// node.targets_allow (src/config/allow.ts): parsing each entry, and matching targets against
// the list, checked against simple reference implementations.

const allowed = (list: string[], target: string): boolean =>
  new TargetsAllow(list).allows(parseHostPort(target));

function problemOf(input: unknown): string {
  try {
    parseAllowRule(input);
  } catch (e) {
    assert.ok(isVigilError(e), `expected a VigilError, got ${String(e)}`);
    assert.equal(e.code, "VIGIL_ERR_CONFIG");
    return e.message;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

describe("targets_allow entries", () => {
  it("reads CIDRs, bare addresses and host patterns into canonical text", () => {
    const cases: [string, string, string][] = [
      ["10.0.0.0/8", "cidr", "10.0.0.0/8"],
      ["0.0.0.0/0", "cidr", "0.0.0.0/0"],
      ["192.168.1.7", "cidr", "192.168.1.7/32"],
      ["fd00::/8", "cidr", "fd00::/8"],
      ["FD00:0:0::/16", "cidr", "fd00::/16"],
      ["::1", "cidr", "::1/128"],
      ["::/0", "cidr", "::/0"],
      ["*.svc.internal", "host", "*.svc.internal"],
      ["DB-?.Example.COM", "host", "db-?.example.com"],
      ["**.corp", "host", "**.corp"],
      ["localhost", "host", "localhost"],
      ["*", "host", "*"],
    ];
    for (const [input, kind, text] of cases) {
      const r = parseAllowRule(input);
      assert.equal(r.kind, kind, input);
      assert.equal(r.text, text, input);
    }
  });

  it("refuses bad CIDRs with a reason", () => {
    const cases: [unknown, RegExp][] = [
      ["10.0.0.0/33", /prefix length from 0 to 32/],
      ["fd00::/129", /prefix length from 0 to 128/],
      ["10.0.0.0/-1", /prefix length/],
      ["10.0.0.0/", /prefix length/],
      ["10.0.0.0/08", /prefix length/],
      ["10.0.0.0/8/8", /prefix length/],
      ["10.0.0/8", /"10\.0\.0" is not an IP address/],
      ["300.1.1.1/8", /is not an IP address/],
      ["/8", /"" is not an IP address/],
      ["10.1.2.3/8", /no bits set past the prefix.*did you mean "10\.0\.0\.0\/8".*"10\.1\.2\.3\/32"/],
      ["fd00::1/8", /did you mean "fd00::\/8"/],
      ["[fd00::]/8", /without brackets/],
      ["fe80::1%eth0/64", /without a zone id/],
      ["fd00:::/8", /is not an IP address/],
    ];
    for (const [input, re] of cases) assert.match(problemOf(input), re, String(input));
  });

  it("refuses bad host patterns with a reason", () => {
    const cases: [unknown, RegExp][] = [
      ["", /expected a CIDR/],
      [42, /got 42/],
      [null, /got an empty value/],
      [" *.corp", /without spaces/],
      ["a..b", /no empty label/],
      [".corp", /no empty label/],
      ["corp.", /no empty label/],
      ["a**.corp", /"\*\*" as a whole label/],
      ["***.corp", /"\*\*" as a whole label/],
      ["web_1.corp", /letters, digits/],
      ["web$.corp", /letters, digits/],
      [`${"a".repeat(64)}.corp`, /at most 63 characters/],
      ["a".repeat(allowLimits.maxPatternChars + 1), /at most 253 characters/],
      ["10.0.*.*", /write IP ranges as CIDRs/],
      ["10.*", /write IP ranges as CIDRs/],
      ["192.168.1.?", /write IP ranges as CIDRs/],
      ["10.0.0", /write IP ranges as CIDRs/],
    ];
    for (const [input, re] of cases) assert.match(problemOf(input), re, String(input));
  });
});

describe("targets_allow matching", () => {
  it("matches IP targets by CIDR and never by host pattern", () => {
    const list = ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "*"];
    assert.equal(allowed(list, "10.1.2.3:80"), true);
    assert.equal(allowed(list, "10.255.255.255:80"), true);
    assert.equal(allowed(list, "11.0.0.1:80"), false);
    assert.equal(allowed(list, "192.168.1.7:443"), true);
    assert.equal(allowed(list, "192.168.1.8:443"), false);
    assert.equal(allowed(list, "[fd12:3456::1]:80"), true);
    assert.equal(allowed(list, "[fe80::1]:80"), false);
    // "*" matches one-label names only, never an address.
    assert.equal(allowed(list, "127.0.0.1:80"), false);
    assert.equal(allowed(list, "localhost:80"), true);
  });

  it("matches an IPv4-mapped IPv6 target as the IPv4 address it reaches", () => {
    assert.equal(allowed(["10.0.0.0/8"], "[::ffff:10.0.0.1]:80"), true);
    assert.equal(allowed(["10.0.0.0/8"], "[::ffff:127.0.0.1]:80"), false);
    // An IPv6 list does not let a mapped loopback in...
    assert.equal(allowed(["fd00::/8"], "[::ffff:127.0.0.1]:80"), false);
    // ...unless it names the mapped range itself.
    assert.equal(allowed(["::ffff:0:0/96"], "[::ffff:127.0.0.1]:80"), true);
  });

  it("matches host names by pattern, whole labels, case-insensitively", () => {
    const list = ["*.svc.internal", "db-?.example.com", "**.corp", "API.Example.org"];
    const cases: [string, boolean][] = [
      ["web.svc.internal:80", true],
      ["WEB.Svc.Internal:80", true],
      ["svc.internal:80", false],
      ["a.b.svc.internal:80", false],
      ["evilsvc.internal:80", false],
      ["web.svc.internal.evil.com:80", false],
      ["db-1.example.com:5432", true],
      ["db-12.example.com:5432", false],
      ["x.corp:1", true],
      ["x.y.z.corp:1", true],
      ["corp:1", false],
      ["api.example.org:443", true],
      ["www.api.example.org:443", false],
    ];
    for (const [target, want] of cases) assert.equal(allowed(list, target), want, target);
  });

  it("describes the list and names the refused target", () => {
    const allow = new TargetsAllow([
      "10.0.0.0/8",
      "a.corp",
      "b.corp",
      "c.corp",
      "d.corp",
      "e.corp",
      "f.corp",
    ]);
    assert.equal(allow.describe(), "10.0.0.0/8, a.corp, b.corp, c.corp, d.corp and 2 more");
    const t = parseHostPort("11.0.0.1:80");
    assert.match(
      allow.refusal(t),
      /^target "11\.0\.0\.1:80" is not allowed by node\.targets_allow .*IP targets/,
    );
    assert.match(allow.refusal(parseHostPort("x.org:80")), /host names must match one of its host patterns/);
    const first = allow.firstRefused([parseHostPort("10.0.0.1:1"), parseHostPort("a.corp:1"), t]);
    assert.equal(first?.index, 2);
    assert.equal(allow.firstRefused([parseHostPort("10.0.0.1:1")]), undefined);
  });
});

// ── properties against reference implementations ──

function v4Number(ip: string): bigint {
  return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
}

function bytesNumber(b: Uint8Array): bigint {
  return [...b].reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
}

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const v6 = fc
  .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
  .map((g) => g.map((x) => x.toString(16)).join(":"));

describe("targets_allow properties", () => {
  it("an IPv4 CIDR allows exactly the addresses sharing its first prefix bits", () => {
    fc.assert(
      fc.property(v4, fc.integer({ min: 0, max: 32 }), v4, (net, prefix, addr) => {
        const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(32 - prefix);
        const network = v4Number(net) & mask;
        const networkText = [24n, 16n, 8n, 0n].map((s) => String((network >> s) & 255n)).join(".");
        const want = (v4Number(addr) & mask) === network;
        return allowed([`${networkText}/${prefix}`], `${addr}:80`) === want;
      }),
      { numRuns: 2000 },
    );
  });

  it("an IPv6 CIDR allows exactly the addresses sharing its first prefix bits", () => {
    fc.assert(
      fc.property(v6, fc.integer({ min: 0, max: 128 }), v6, fc.boolean(), (net, prefix, addr, near) => {
        const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
        const network = bytesNumber(ipv6Bytes(net)) & mask;
        const groups: string[] = [];
        for (let i = 7; i >= 0; i--) groups.push(((network >> BigInt(16 * i)) & 0xffffn).toString(16));
        // Half the time, an address inside the network, so both answers are exercised.
        const a = near
          ? network | (bytesNumber(ipv6Bytes(addr)) & ~mask & ((1n << 128n) - 1n))
          : bytesNumber(ipv6Bytes(addr));
        const aGroups: string[] = [];
        for (let i = 7; i >= 0; i--) aGroups.push(((a >> BigInt(16 * i)) & 0xffffn).toString(16));
        const aText = aGroups.join(":");
        // Mapped addresses are matched as IPv4 as well: keep them out of this property.
        if (aText.startsWith("0:0:0:0:0:ffff:")) return true;
        const want = (a & mask) === network;
        return allowed([`${groups.join(":")}/${prefix}`], `[${aText}]:80`) === want;
      }),
      { numRuns: 2000 },
    );
  });

  it("host patterns agree with a regular-expression reference", () => {
    const label = fc.stringMatching(/^[ab*?-]{1,4}$/).filter((l) => !l.includes("**"));
    const pattern = fc.array(fc.oneof(label, fc.constant("**")), { minLength: 1, maxLength: 4 });
    const hostLabel = fc.stringMatching(/^[ab]{1,3}$/);
    const host = fc.array(hostLabel, { minLength: 1, maxLength: 5 });
    const reference = (p: string[]): RegExp =>
      new RegExp(
        `^${p
          .map((l) =>
            l === "**"
              ? "[a-z0-9-]+(?:\\.[a-z0-9-]+)*"
              : l.replace(/[*?]/g, (c) => (c === "*" ? "[a-z0-9-]*" : "[a-z0-9-]")),
          )
          .join("\\.")}$`,
      );
    fc.assert(
      fc.property(pattern, host, (p, h) => {
        const text = p.join(".");
        // Entries that are all digits and wildcards are refused; none here has a digit.
        const want = reference(p).test(h.join("."));
        return new TargetsAllow([text]).allowsHost(h.join(".")) === want;
      }),
      { numRuns: 3000 },
    );
  });

  it("a pathological pattern against a long name answers at once", () => {
    const pattern = `${"*a".repeat(20)}*.**.**.**.${"*b".repeat(20)}*`;
    const name = `${"a".repeat(63)}.${"x.".repeat(90)}${"a".repeat(40)}`;
    const started = performance.now();
    new TargetsAllow([pattern]).allowsHost(name);
    assert.ok(performance.now() - started < 50, "matching took more than 50 ms");
  });
});
