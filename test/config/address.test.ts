import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AddressProblem, isDnsQueryName, isHostName, parseHostPort } from "../../src/config/address.ts";

describe("parseHostPort", () => {
  const good: [string, string, number, string][] = [
    ["10.0.1.10:8080", "10.0.1.10", 8080, "10.0.1.10:8080"],
    ["0.0.0.0:1", "0.0.0.0", 1, "0.0.0.0:1"],
    ["[::1]:80", "::1", 80, "[::1]:80"],
    ["[0:0::1]:80", "::1", 80, "[::1]:80"],
    ["[2001:DB8:0:0:0:0:0:1]:443", "2001:db8::1", 443, "[2001:db8::1]:443"],
    ["Web-1.Example.com:65535", "web-1.example.com", 65_535, "web-1.example.com:65535"],
    ["localhost:7000", "localhost", 7000, "localhost:7000"],
  ];
  for (const [text, host, port, key] of good) {
    it(`reads ${text}`, () => assert.deepEqual(parseHostPort(text), { host, port, key }));
  }

  const bad: [string, RegExp][] = [
    ["10.0.1.10", /expected "host:port" with a port/],
    ["10.0.1.10:0", /expected a port from 1 to 65535/],
    ["10.0.1.10:70000", /expected a port from 1 to 65535, got "10.0.1.10:70000"/],
    ["10.0.1.10:", /expected a port/],
    ["10.0.1.10:+80", /expected a port/],
    ["256.0.0.1:80", /expected a valid IPv4 address/],
    ["10.0.1:80", /expected a valid IPv4 address/],
    ["010.0.0.1:80", /expected a valid IPv4 address/],
    ["::1:80", /expected an IPv6 address in brackets like "\[::1\]:80"/],
    ["[::g]:80", /expected a valid IPv6 address in brackets/],
    ["[::1]80", /with a port after the bracket/],
    ["[::1:80", /closing the IPv6 address/],
    ["[fe80::1%eth0]:80", /without a zone id/],
    ["bad_host:80", /expected a host that is an IPv4 address/],
    ["-web:80", /expected a host/],
    ["web..local:80", /expected a host/],
    [":80", /expected a host/],
    [`${"a".repeat(64)}.com:80`, /expected a host/],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseHostPort(text),
        (e: unknown) => e instanceof AddressProblem && message.test(e.message),
      );
    });
  }

  it("accepts port 0 only when asked (listen addresses)", () => {
    assert.equal(parseHostPort("127.0.0.1:0", { allowPortZero: true }).port, 0);
    assert.throws(() => parseHostPort("127.0.0.1:0"), AddressProblem);
  });
});

describe("names", () => {
  it("host names follow RFC 1123", () => {
    assert.ok(isHostName("a"));
    assert.ok(isHostName("a-b.c1"));
    assert.ok(!isHostName("a_b"));
    assert.ok(!isHostName("a."));
    assert.ok(!isHostName("1.2.3"));
    assert.ok(!isHostName(`${"a.".repeat(127)}ab`)); // 256 characters
  });
  it("query names allow underscores and a trailing dot", () => {
    assert.ok(isDnsQueryName("_http._tcp.example.com."));
    assert.ok(!isDnsQueryName("."));
    assert.ok(!isDnsQueryName("a..b"));
    assert.ok(!isDnsQueryName("a b"));
  });
});
