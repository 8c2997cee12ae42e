// Bad configs: each must fail with one VigilError naming the file, the exact path and what was
// expected. A typo that loads silently, or a message only a zod maintainer can read, is a bug.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../src/config/load.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";

const file = "bad.yaml";
const shortKey = Buffer.alloc(16, 7).toString("base64");

/** A one-pool file; `keys` are extra pool lines, `check` the check's flow mapping. */
function pool(keys: string, check = "{ type: http }", targets = "[10.0.1.10:8080]"): string {
  const extra = keys === "" ? "" : `\n${keys.replace(/^/gm, "    ")}`;
  return `pools:\n  web:\n    check: ${check}\n    targets: ${targets}${extra}\n`;
}

interface BadCase {
  name: string;
  text: string;
  /** undefined: the error is about the file as a whole (syntax, emptiness). */
  path: string | undefined;
  message: string | RegExp;
}

const cases: BadCase[] = [
  // ── unknown keys ──
  {
    name: "unknown top-level key",
    text: "nodes: { name: n1 }\n",
    path: "nodes",
    message: `unknown key "nodes" for the top level (did you mean "node"?)`,
  },
  {
    name: "unknown top-level key with nothing close",
    text: "listeners: []\n",
    path: "listeners",
    message: `unknown key "listeners" for the top level (expected one of: node, defaults, pools, alerts)`,
  },
  {
    name: "unknown pool key, with did-you-mean",
    text: pool("intervall: 10s"),
    path: "pools.web.intervall",
    message: `unknown key "intervall" for a pool (did you mean "interval"?)`,
  },
  {
    name: "camelCase spelling of a snake_case key",
    text: pool("failOpen: true"),
    path: "pools.web.failOpen",
    message: `(did you mean "fail_open"?)`,
  },
  {
    name: "misspelt required key is reported as the typo, not as missing",
    text: "pools:\n  web:\n    chekc: { type: tcp }\n    targets: []\n",
    path: "pools.web.chekc",
    message: `unknown key "chekc" for a pool (did you mean "check"?)`,
  },
  {
    name: "check key of another check type (body_contains on tcp)",
    text: pool("", "{ type: tcp, body_contains: ok }"),
    path: "pools.web.check.body_contains",
    message: `unknown key "body_contains" for a tcp check (expected one of: type, send, expect)`,
  },
  {
    name: "TLS key on a plain http check",
    text: pool("", "{ type: http, sni: example.com }"),
    path: "pools.web.check.sni",
    message: `unknown key "sni" for an http check`,
  },
  {
    name: "unknown key under expect",
    text: pool("", "{ type: http, expect: { bodycontains: ok } }"),
    path: "pools.web.check.expect.bodycontains",
    message: `(did you mean "body_contains"?)`,
  },
  {
    name: "unknown node key",
    text: "node: { gosip: 127.0.0.1:7946 }\n",
    path: "node.gosip",
    message: `unknown key "gosip" for node (did you mean "gossip"?)`,
  },
  {
    name: "a pool-only key in defaults",
    text: "defaults: { check: { type: tcp } }\n",
    path: "defaults.check",
    message: `unknown key "check" for defaults (expected one of: interval,`,
  },

  // ── types and missing keys ──
  {
    name: "string for rise",
    text: pool(`rise: "2"`),
    path: "pools.web.rise",
    message: `expected a rise count from 1 to 100, got "2"`,
  },
  {
    name: "fraction for fall",
    text: pool("fall: 1.5"),
    path: "pools.web.fall",
    message: "expected a fall count from 1 to 100, got 1.5",
  },
  {
    name: "YAML 1.1 boolean spelling",
    text: pool("", "{ type: https, tls_verify: no }"),
    path: "pools.web.check.tls_verify",
    message: `expected true or false, got "no"`,
  },
  {
    name: "empty value",
    text: pool("rise:"),
    path: "pools.web.rise",
    message: "got an empty value",
  },
  {
    name: "missing check",
    text: "pools:\n  web:\n    targets: []\n",
    path: "pools.web.check",
    message: "missing required key: expected a check",
  },
  {
    name: "check given as a string",
    text: pool("", "http"),
    path: "pools.web.check",
    message: `expected a check: a mapping with a type (http, https, tcp, dns, grpc, tls), got "http"`,
  },
  {
    name: "missing check type",
    text: pool("", "{ path: /healthz }"),
    path: "pools.web.check.type",
    message: "missing required key: expected a check type: http, https, tcp, dns, grpc or tls",
  },
  {
    name: "unknown check type",
    text: pool("", "{ type: icmp }"),
    path: "pools.web.check.type",
    message: `expected a check type: http, https, tcp, dns, grpc or tls, got "icmp"`,
  },
  {
    name: "pools as a list",
    text: "pools:\n  - name: web\n",
    path: "pools",
    message: "expected a mapping of pool names to pools, got a list",
  },
  {
    name: "targets as a string",
    text: pool("", "{ type: tcp }", "10.0.1.10:80"),
    path: "pools.web.targets",
    message: `expected a list of targets like ["10.0.1.10:8080"], got "10.0.1.10:80"`,
  },

  // ── durations and timing ──
  {
    name: "duration in words",
    text: pool("interval: 10 seconds"),
    path: "pools.web.interval",
    message: `expected a duration like "10s", got "10 seconds"`,
  },
  {
    name: "bare number as a duration",
    text: pool("timeout: 2"),
    path: "pools.web.timeout",
    message: `expected a duration with a unit like "10s" or "250ms", got 2`,
  },
  {
    name: "interval too small",
    text: pool("interval: 50ms"),
    path: "pools.web.interval",
    message: `expected an interval from 100ms to 24h, got "50ms"`,
  },
  {
    name: "interval too large",
    text: pool("downinter: 25h"),
    path: "pools.web.downinter",
    message: `expected a downinter interval from 100ms to 24h, got "25h"`,
  },
  {
    name: "timeout above the interval",
    text: pool("interval: 1s\ntimeout: 1500ms"),
    path: "pools.web.timeout",
    message: `expected a timeout no longer than the interval (1s), got "1.5s"`,
  },
  {
    name: "the pool's interval below the timeout from defaults",
    text: `defaults: { timeout: 5s }\n${pool("interval: 1s")}`,
    path: "pools.web.interval",
    message: `expected an interval no shorter than the timeout (5s from defaults), got "1s"`,
  },
  {
    name: "defaults' timeout above the built-in interval",
    text: `defaults: { timeout: 15s }\n${pool("")}`,
    path: "defaults.timeout",
    message: `expected a timeout no longer than the interval (10s by default), got "15s"`,
  },
  {
    name: "jitter above one half",
    text: pool("jitter: 0.7"),
    path: "pools.web.jitter",
    message: "expected a jitter fraction from 0 to 0.5, got 0.7",
  },

  // ── counts and policy ──
  {
    name: "rise 0",
    text: pool("rise: 0"),
    path: "pools.web.rise",
    message: "expected a rise count from 1 to 100, got 0",
  },
  {
    name: "fall 101",
    text: pool("fall: 101"),
    path: "pools.web.fall",
    message: "expected a fall count from 1 to 100, got 101",
  },
  {
    name: "observers 0",
    text: pool("observers: 0"),
    path: "pools.web.observers",
    message: "expected a number of observers from 1 to 16, got 0",
  },
  {
    name: "bad verdict",
    text: pool("verdict: most"),
    path: "pools.web.verdict",
    message: `expected majority, any, all or a number of observers from 1 to 16, got "most"`,
  },
  {
    name: "verdict larger than observers",
    text: pool("observers: 2\nverdict: 3"),
    path: "pools.web.verdict",
    message: "expected a verdict no larger than observers (2), got 3",
  },
  {
    name: "bad spread",
    text: pool("spread: region"),
    path: "pools.web.spread",
    message: `expected none or zone, got "region"`,
  },

  // ── checks ──
  {
    name: "status out of range",
    text: pool("", `{ type: http, expect: { status: ["200-299", "700"] } }`),
    path: "pools.web.check.expect.status[1]",
    message: `expected a status or range like "200-299" between 100 and 599, got "700"`,
  },
  {
    name: "reversed status range",
    text: pool("", `{ type: http, expect: { status: [204, "299-200"] } }`),
    path: "pools.web.check.expect.status[1]",
    message: `expected a range with the lower status first, like "200-299", got "299-200"`,
  },
  {
    name: "integer status out of range",
    text: pool("", "{ type: http, expect: { status: [99] } }"),
    path: "pools.web.check.expect.status[0]",
    message: "between 100 and 599, got 99",
  },
  {
    name: "empty status list",
    text: pool("", "{ type: http, expect: { status: [] } }"),
    path: "pools.web.check.expect.status",
    message: "expected at least one status or range, got an empty list",
  },
  {
    name: "invalid body_regex",
    text: pool("", `{ type: http, expect: { body_regex: "ok(" } }`),
    path: "pools.web.check.expect.body_regex",
    message: `expected a valid regular expression, got "ok(": `,
  },
  {
    name: "max_body_bytes above the ceiling",
    text: pool("", "{ type: http, max_body_bytes: 20000000 }"),
    path: "pools.web.check.max_body_bytes",
    message: "expected a byte count from 1 to 16777216, got 20000000",
  },
  {
    name: "body_contains longer than max_body_bytes",
    text: pool("", "{ type: http, max_body_bytes: 2, expect: { body_contains: abc } }"),
    path: "pools.web.check.expect.body_contains",
    message: "expected a string no longer than max_body_bytes (2), got 3 bytes",
  },
  {
    name: "path without a leading slash",
    text: pool("", "{ type: http, path: healthz }"),
    path: "pools.web.check.path",
    message: `expected a request path starting with "/", without spaces, got "healthz"`,
  },
  {
    name: "unknown HTTP method",
    text: pool("", "{ type: http, method: GTE }"),
    path: "pools.web.check.method",
    message: `expected GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH, got "GTE"`,
  },
  {
    name: "Host given as a header",
    text: pool("", "{ type: http, headers: { Host: example.com } }"),
    path: "pools.web.check.headers.Host",
    message: `header "Host" is not allowed: the Host header is set with the check's "host" key`,
  },
  {
    name: "header value that is a number",
    text: pool("", "{ type: http, headers: { X-Retries: 3 } }"),
    path: "pools.web.check.headers.X-Retries",
    message: "expected a header value as a string (quote numbers), got 3",
  },
  {
    name: "SNI that is an IP address",
    text: pool("", "{ type: tls, sni: 10.0.0.1 }"),
    path: "pools.web.check.sni",
    message: `expected a server name (a DNS host name, not an IP address), got "10.0.0.1"`,
  },
  {
    name: "dns check without a name",
    text: pool("", "{ type: dns }"),
    path: "pools.web.check.name",
    message: "missing required key: expected a DNS name to query",
  },
  {
    name: "A record expected answer that is not an IPv4 address",
    text: pool("", "{ type: dns, name: example.com, expect_answer: example.org }"),
    path: "pools.web.check.expect_answer",
    message: `expected an IPv4 address for A records, got "example.org"`,
  },
  {
    name: "unknown record type",
    text: pool("", "{ type: dns, name: example.com, record_type: a }"),
    path: "pools.web.check.record_type",
    message: `expected A, AAAA, CNAME, MX, TXT, NS, SRV, SOA or PTR, got "a"`,
  },

  // ── targets and pool names ──
  {
    name: "target without a port",
    text: pool("", "{ type: tcp }", "[10.0.1.10]"),
    path: "pools.web.targets[0]",
    message: `expected "host:port" with a port, got "10.0.1.10"`,
  },
  {
    name: "port 70000",
    text: pool("", "{ type: tcp }", "[10.0.1.10:80, 10.0.1.11:70000]"),
    path: "pools.web.targets[1]",
    message: `expected a port from 1 to 65535, got "10.0.1.11:70000"`,
  },
  {
    name: "duplicate target",
    text: `pools:\n  api:\n    check: { type: tcp }\n    targets: [a.local:80, b.local:80, c.local:80, B.Local:80]\n`,
    path: "pools.api.targets[3]",
    message: `duplicate target "b.local:80": targets[1] and targets[3] are the same address`,
  },
  {
    name: "duplicate IPv6 target in another spelling",
    text: pool("", "{ type: tcp }", `["[::1]:80", "[0:0::1]:80"]`),
    path: "pools.web.targets[1]",
    message: `duplicate target "[::1]:80": targets[0] and targets[1]`,
  },
  {
    name: "bad IPv6 target",
    text: pool("", "{ type: tcp }", `["[2001:db8::zz]:80"]`),
    path: "pools.web.targets[0]",
    message: `expected a valid IPv6 address in brackets, got "[2001:db8::zz]:80"`,
  },
  {
    name: "IPv6 target without brackets",
    text: pool("", "{ type: tcp }", `["2001:db8::1:80"]`),
    path: "pools.web.targets[0]",
    message: `expected an IPv6 address in brackets like "[::1]:80"`,
  },
  {
    name: "bad host name",
    text: pool("", "{ type: tcp }", "[web_1.local:80]"),
    path: "pools.web.targets[0]",
    message: `expected a host that is an IPv4 address, an IPv6 address in brackets, or a host name, got "web_1.local:80"`,
  },
  {
    name: "bad pool name",
    text: "pools:\n  Web:\n    check: { type: tcp }\n    targets: []\n",
    path: "pools.Web",
    message: `expected a pool name of lowercase letters, digits, "-" and "_"`,
  },
  {
    name: "pool name that is not a plain word",
    text: `pools:\n  "web.v2":\n    check: { type: tcp }\n    targets: []\n`,
    path: `pools["web.v2"]`,
    message: `got "web.v2"`,
  },

  // ── node ──
  {
    name: "bad base64 key",
    text: "node: { encrypt_keys: [not-base64!] }\n",
    path: "node.encrypt_keys[0]",
    message: `expected a base64 key of 32 bytes (as printed by "vigil keygen"), got a string of 11 characters that is not base64`,
  },
  {
    name: "key of the wrong length",
    text: `node: { encrypt_keys: [${Buffer.alloc(32).toString("base64")}, "${shortKey}"] }\n`,
    path: "node.encrypt_keys[1]",
    message: "expected a key of 32 bytes (AES-256), got 16 bytes",
  },
  {
    name: "bad profile",
    text: "node: { profile: lan2 }\n",
    path: "node.profile",
    message: `expected lan, wan or local, got "lan2"`,
  },
  {
    name: "weight 0",
    text: "node: { weight: 0 }\n",
    path: "node.weight",
    message: "expected a weight above 0 and at most 1000, got 0",
  },
  {
    name: "weight above 1000",
    text: "node: { weight: 1001 }\n",
    path: "node.weight",
    message: "expected a weight above 0 and at most 1000, got 1001",
  },
  {
    name: "gossip address without a port",
    text: "node: { gossip: 127.0.0.1 }\n",
    path: "node.gossip",
    message: `expected "host:port" with a port, got "127.0.0.1"`,
  },
  {
    name: "join address with port 0",
    text: "node: { join: [10.0.0.1:7946, 10.0.0.2:0] }\n",
    path: "node.join[1]",
    message: `expected a port from 1 to 65535, got "10.0.0.2:0"`,
  },
  {
    name: "node name with a space",
    text: `node: { name: "my node" }\n`,
    path: "node.name",
    message: `expected a node name of letters, digits, ".", "-" and "_", at most 128 characters, got "my node"`,
  },
  {
    name: "max_concurrent_checks 0",
    text: "node: { max_concurrent_checks: 0 }\n",
    path: "node.max_concurrent_checks",
    message: "expected a number of checks from 1 to 65536, got 0",
  },
  {
    name: "lookup_threads 0",
    text: "node: { lookup_threads: 0 }\n",
    path: "node.lookup_threads",
    message: "expected a number of lookup threads from 1 to 64, got 0",
  },
  {
    name: "lookup_isolation not thread or process",
    text: "node: { lookup_isolation: fork }\n",
    path: "node.lookup_isolation",
    message: /thread.*process/,
  },
  {
    name: "lookup_rt_priority 0",
    text: "node: { lookup_rt_priority: 0 }\n",
    path: "node.lookup_rt_priority",
    message: "expected a real-time priority from 1 to 99, got 0",
  },
  {
    name: "lookup_rt_priority 100",
    text: "node: { lookup_rt_priority: 100 }\n",
    path: "node.lookup_rt_priority",
    message: "expected a real-time priority from 1 to 99, got 100",
  },
  {
    name: "lookup_rt_priority a word",
    text: "node: { lookup_rt_priority: high }\n",
    path: "node.lookup_rt_priority",
    message: /^expected a real-time priority from 1 to 99/,
  },
  {
    name: "lookup_rt_priority with lookup_isolation thread",
    text: "node: { lookup_rt_priority: 10, lookup_isolation: thread }\n",
    path: "node.lookup_rt_priority",
    message:
      "expected no lookup_rt_priority with lookup_isolation: thread (the priority is given to the lookup processes; a thread is part of the node's)",
  },
  {
    name: "lookup_api not a boolean",
    text: "node: { lookup_api: yes please }\n",
    path: "node.lookup_api",
    message: 'expected true or false, got "yes please"',
  },
  {
    name: "lookup_api with lookup_isolation thread",
    text: "node: { lookup_api: true, lookup_isolation: thread }\n",
    path: "node.lookup_api",
    message:
      "expected no lookup_api with lookup_isolation: thread (a thread cannot hand a connection to the node; the API's port needs lookup processes)",
  },
  {
    name: "lookup_threads not a whole number",
    text: "node: { lookup_threads: 1.5 }\n",
    path: "node.lookup_threads",
    message: /^expected a number of lookup threads from 1 to 64/,
  },

  // ── the file as a whole ──
  {
    name: "YAML syntax error",
    text: "pools:\n  web:\n    check: { type: tcp\n    targets: []\n",
    path: undefined,
    message: /^invalid YAML at line \d+, column \d+: /,
  },
  {
    name: "duplicate YAML key",
    text: "node:\n  name: a\n  name: b\n",
    path: undefined,
    message: "invalid YAML at line 3, column 3: Map keys must be unique",
  },
  {
    name: "unknown YAML tag",
    text: "node:\n  name: !secret n1\n",
    path: undefined,
    message: "invalid YAML at line 2, column 9: Unresolved tag: !secret",
  },
  {
    name: "unresolved alias",
    text: "node:\n  name: *nodename\n",
    path: undefined,
    message: "invalid YAML: Unresolved alias",
  },
  {
    name: "several documents",
    text: "node: {}\n---\npools: {}\n",
    path: undefined,
    message: "invalid YAML at line 2, column 1: Source contains multiple documents",
  },
  {
    name: "empty file",
    text: "",
    path: undefined,
    message: "the file is empty: expected a mapping with node, defaults and pools",
  },
  {
    name: "comments only",
    text: "# nothing yet\n",
    path: undefined,
    message: "the file is empty",
  },
  {
    name: "root is a list",
    text: "- node\n- pools\n",
    path: undefined,
    message: "expected a mapping with node, defaults and pools, got a list",
  },
  {
    name: "root is a scalar",
    text: "vigil\n",
    path: undefined,
    message: `expected a mapping with node, defaults and pools, got "vigil"`,
  },
];

function errorOf(text: string): VigilError {
  try {
    parseConfigText(text, file);
  } catch (e) {
    assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
    return e;
  }
  return assert.fail(`expected the config to be refused:\n${text}`);
}

describe("bad configs", () => {
  for (const c of cases) {
    it(c.name, () => {
      const e = errorOf(c.text);
      assert.equal(e.code, ErrorCode.config);
      assert.equal(e.file, file);
      assert.equal(e.path, c.path, `path of: ${e.message}`);
      if (typeof c.message === "string") assert.ok(e.message.includes(c.message), `message: ${e.message}`);
      else assert.match(e.message, c.message);
      // zod's own wording must never reach a user.
      assert.doesNotMatch(e.message, /Invalid input|received|Unrecognized key|Too (small|big)/);
      assert.equal(
        e.describe(),
        c.path === undefined ? `${file}: ${e.message}` : `${file}: ${c.path}: ${e.message}`,
      );
    });
  }

  it("never echoes an encryption key into the message", () => {
    const secret = "c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
    const e = errorOf(`node: { encrypt_keys: ["${secret}"] }\n`);
    assert.equal(e.path, "node.encrypt_keys[0]");
    assert.ok(!e.message.includes(secret), e.message);
  });

  it("reports the first problem in the file when there are several", () => {
    const e = errorOf(`node: { weight: 0 }\n${pool("rise: 0")}`);
    assert.equal(e.path, "node.weight");
  });

  it("cuts a long found value", () => {
    const e = errorOf(pool(`interval: ${"9".repeat(200)}x`));
    assert.ok(e.message.length < 200, e.message);
    assert.match(e.message, /…"/);
  });
});
