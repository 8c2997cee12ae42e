import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCheckUrl, targetAddr } from "../../src/checkers/url.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { limits } from "../../src/core/limits.ts";

const httpDefaults = {
  method: "GET",
  headers: {},
  expect: { status: [{ lo: 200, hi: 399 }] },
  maxBodyBytes: limits.maxBodyBytesDefault,
  tlsVerify: true,
  keepalive: false,
};

describe("parseCheckUrl", () => {
  it("reads http and https with default ports, path and query", () => {
    assert.deepEqual(parseCheckUrl("http://example.com"), {
      spec: { type: "http", path: "/", ...httpDefaults },
      target: { host: "example.com", port: 80, key: "example.com:80" },
    });
    assert.deepEqual(parseCheckUrl("https://Example.COM/healthz?deep=1&x=%20y#frag"), {
      spec: { type: "https", path: "/healthz?deep=1&x=%20y", ...httpDefaults },
      target: { host: "example.com", port: 443, key: "example.com:443" },
    });
    const r = parseCheckUrl("http://10.0.0.1:8080?q=1");
    assert.equal((r.spec as { path: string }).path, "/?q=1");
    assert.deepEqual(r.target, { host: "10.0.0.1", port: 8080, key: "10.0.0.1:8080" });
    assert.deepEqual(parseCheckUrl("http://[::1]:8080/x").target, {
      host: "::1",
      port: 8080,
      key: "[::1]:8080",
    });
    assert.deepEqual(parseCheckUrl("HTTPS://[2001:db8::5]/").target, {
      host: "2001:db8::5",
      port: 443,
      key: "[2001:db8::5]:443",
    });
  });

  it("reads tcp with its optional send and expect", () => {
    assert.deepEqual(parseCheckUrl("tcp://db.internal:5432"), {
      spec: { type: "tcp" },
      target: { host: "db.internal", port: 5432, key: "db.internal:5432" },
    });
    assert.deepEqual(parseCheckUrl("tcp://127.0.0.1:6379/?send=PING%0D%0A&expect=PONG").spec, {
      type: "tcp",
      send: "PING\r\n",
      expect: "PONG",
    });
  });

  it("reads dns with the default port, type A, and its options", () => {
    assert.deepEqual(parseCheckUrl("dns://1.1.1.1/example.com"), {
      spec: { type: "dns", name: "example.com", recordType: "A", protocol: "udp" },
      target: { host: "1.1.1.1", port: 53, key: "1.1.1.1:53" },
    });
    assert.deepEqual(
      parseCheckUrl("dns://[::1]:5353/example.com.?type=aaaa&protocol=tcp&expect=2001:db8::1"),
      {
        spec: {
          type: "dns",
          name: "example.com.",
          recordType: "AAAA",
          protocol: "tcp",
          expectAnswer: "2001:db8::1",
        },
        target: { host: "::1", port: 5353, key: "[::1]:5353" },
      },
    );
    assert.equal(
      (parseCheckUrl("dns://ns1/_sip._tcp.example.com?type=SRV").spec as { name: string }).name,
      "_sip._tcp.example.com",
    );
  });

  it("reads grpc with an optional service and tls", () => {
    assert.deepEqual(parseCheckUrl("grpc://10.1.1.1:50051"), {
      spec: { type: "grpc", service: "", tls: false, tlsVerify: true },
      target: { host: "10.1.1.1", port: 50051, key: "10.1.1.1:50051" },
    });
    assert.deepEqual(parseCheckUrl("grpc://api:443/my.pkg.Orders?tls=1").spec, {
      type: "grpc",
      service: "my.pkg.Orders",
      tls: true,
      tlsVerify: true,
    });
  });

  it("reads tls with the default port, minDays 7, and min_days / sni", () => {
    assert.deepEqual(parseCheckUrl("tls://example.com"), {
      spec: { type: "tls", minDays: 7, tlsVerify: true },
      target: { host: "example.com", port: 443, key: "example.com:443" },
    });
    assert.deepEqual(parseCheckUrl("tls://10.0.0.1:8443?min_days=14&sni=www.example.com").spec, {
      type: "tls",
      minDays: 14,
      tlsVerify: true,
      sni: "www.example.com",
    });
    assert.equal((parseCheckUrl("tls://h:1/?min_days=0.5").spec as { minDays: number }).minDays, 0.5);
  });

  it("rejects bad URLs with a usage error that says what is wrong", () => {
    const cases: [string, RegExp][] = [
      ["", /^empty URL$/],
      ["example.com:80", /expected <scheme>:\/\/…/],
      ["ftp://example.com/", /unknown scheme "ftp" \(expected http, https, tcp, dns, grpc, tls\)/],
      ["tcp://db.internal", /tcp:\/\/ needs a port: tcp:\/\/host:port/],
      ["grpc://api/svc", /grpc:\/\/ needs a port/],
      ["tcp://h:0", /bad port "0" \(expected 1-65535\)/],
      ["http://h:65536/", /bad port "65536"/],
      ["http://h:8o/", /bad port "8o"/],
      ["http://h:/", /bad port ""/],
      ["http:///path", /missing host/],
      ["http://:80/", /missing host/],
      ["http://user:pw@h/", /credentials in the URL are not supported/],
      ["http://[::1/", /unterminated IPv6 address/],
      ["http://[not:v6]/", /"not:v6" is not an IPv6 address/],
      ["http://[::1]x/", /unexpected "x" after the IPv6 address/],
      ["http://bad host/", /bad host "bad host"/],
      ["http://300.1.1.1/", /bad host "300.1.1.1" \(expected an IPv4 address, \[IPv6\] or a host name\)/],
      ["http://-lead.example/", /bad host "-lead.example"/],
      ["dns://1.1.1.1/bad..name", /bad DNS name "bad..name"/],
      ["http://h/a path", /the path must be URL-encoded/],
      ["dns://1.1.1.1", /dns:\/\/ needs a name to query/],
      ["dns://1.1.1.1/", /dns:\/\/ needs a name to query/],
      ["dns://1.1.1.1/x?type=BOGUS", /unknown record type "BOGUS" \(expected A, AAAA/],
      ["dns://1.1.1.1/x?protocol=quic", /bad protocol "quic"/],
      ["dns://1.1.1.1/%E0%A4%A", /bad percent-encoding in the name/],
      ["tcp://h:1/path", /tcp:\/\/ takes no path \(got "\/path"\)/],
      ["tcp://h:1?send=x&timeout=3", /unknown parameter "timeout" for tcp:\/\/ \(expected send, expect\)/],
      ["tls://h:443?min_days=-1", /bad min_days "-1"/],
      ["tls://h:443?min_days=", /bad min_days ""/],
      ["tls://h:443?min_days=soon", /bad min_days "soon"/],
      ["grpc://h:1?tls=maybe", /bad tls "maybe" \(expected true or false\)/],
    ];
    for (const [url, message] of cases) {
      assert.throws(
        () => parseCheckUrl(url),
        (e: unknown) => {
          assert.ok(e instanceof VigilError, `${url}: not a VigilError`);
          assert.equal(e.code, ErrorCode.usage);
          assert.match(e.message, message, url);
          return true;
        },
        url,
      );
    }
  });
});

describe("targetAddr", () => {
  it("brackets IPv6 in the key and strips brackets from the host", () => {
    assert.deepEqual(targetAddr("::1", 80), { host: "::1", port: 80, key: "[::1]:80" });
    assert.deepEqual(targetAddr("[fe80::1]", 8080), { host: "fe80::1", port: 8080, key: "[fe80::1]:8080" });
    assert.deepEqual(targetAddr("10.0.0.1", 443), { host: "10.0.0.1", port: 443, key: "10.0.0.1:443" });
    assert.deepEqual(targetAddr("web-1.example", 9000), {
      host: "web-1.example",
      port: 9000,
      key: "web-1.example:9000",
    });
    // The same canonical forms as config's addresses, so a target has one key.
    assert.deepEqual(targetAddr("[::0:1]", 80), { host: "::1", port: 80, key: "[::1]:80" });
    assert.deepEqual(targetAddr("Web.Local", 80), { host: "web.local", port: 80, key: "web.local:80" });
  });

  it("refuses a port out of range as a programmer error", () => {
    assert.throws(() => targetAddr("h", 0), /invariant/);
    assert.throws(() => targetAddr("h", 65536), /invariant/);
    assert.throws(() => targetAddr("h", 1.5), /invariant/);
  });
});
