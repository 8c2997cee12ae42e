import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadConfigFile, parseConfigText, parsePoolDocument } from "../../src/config/load.ts";
import type { PoolSpec } from "../../src/config/types.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { limits } from "../../src/core/limits.ts";

const key1 = Buffer.alloc(32, 1).toString("base64");
const key2 = Buffer.alloc(32, 2).toString("base64");

/** Every key the file accepts, set to a value other than its default. */
const fullConfig = `
node:
  name: n1
  zone: z1
  weight: 2.5
  gossip: 10.0.0.1:7946
  api: "[::1]:7000"
  agent: 127.0.0.1:7001
  dns: 127.0.0.1:8600
  join: [10.0.0.2:7946, "[2001:db8::2]:7946", seed.example.com:7946]
  data_dir: /var/lib/vigil
  profile: wan
  encrypt_keys: [${key1}, ${key2}]
  max_concurrent_checks: 64
defaults:
  interval: 30s
  fastinter: 5s
  downinter: 1m
  timeout: 3s
  jitter: 0.2
  rise: 3
  fall: 4
  observers: 3
  verdict: all
  spread: zone
  fail_open: true
pools:
  web:
    check:
      type: https
      method: HEAD
      path: /healthz?deep=1
      headers: { X-Probe: vigil, Accept: text/plain }
      host: www.example.com
      sni: tls.example.com
      expect: { status: ["200-299", 304], body_contains: ok, body_regex: "^ok$" }
      max_body_bytes: 1024
      tls_verify: false
      tls_ca: /etc/ssl/ca.pem
      keepalive: true
    targets: [10.0.1.10:8443, "[2001:db8::10]:8443", Web-3.Example.com:8443]
    interval: 2s
    fastinter: 500ms
    downinter: 1m30s
    timeout: 250ms
    jitter: 0
    rise: 1
    fall: 1
    observers: 5
    verdict: 2
    spread: none
    fail_open: false
  redis:
    check: { type: tcp, send: "PING\\r\\n", expect: "+PONG" }
    targets: [10.0.2.1:6379]
  resolver:
    check: { type: dns, name: _http._tcp.example.com., record_type: SRV, expect_answer: x, protocol: tcp }
    targets: [10.0.3.1:53]
  rpc:
    check: { type: grpc, service: grpc.health.v1.Health, tls: true, tls_verify: false, tls_ca: ca.pem, authority: rpc.local:443 }
    targets: [10.0.4.1:50051]
  certs:
    check: { type: tls, sni: example.com, min_days: 30, tls_verify: false, tls_ca: ca.pem }
    targets: [example.com:443]
`;

describe("a full config", () => {
  const config = parseConfigText(fullConfig, "full.yaml");
  const pool = (name: string): PoolSpec => {
    const p = config.pools.get(name);
    assert.ok(p, `pool ${name}`);
    return p;
  };

  it("reads every node setting", () => {
    assert.deepEqual(config.node, {
      name: "n1",
      zone: "z1",
      weight: 2.5,
      gossip: "10.0.0.1:7946",
      api: "[::1]:7000",
      agent: "127.0.0.1:7001",
      dns: "127.0.0.1:8600",
      join: ["10.0.0.2:7946", "[2001:db8::2]:7946", "seed.example.com:7946"],
      dataDir: "/var/lib/vigil",
      profile: "wan",
      encryptKeys: [key1, key2],
      maxConcurrentChecks: 64,
    });
  });

  it("keeps pools in file order", () => {
    assert.deepEqual([...config.pools.keys()], ["web", "redis", "resolver", "rpc", "certs"]);
    assert.deepEqual([...config.rawPools.keys()], ["web", "redis", "resolver", "rpc", "certs"]);
  });

  it("reads every key of a pool and its https check", () => {
    assert.deepEqual(pool("web"), {
      name: "web",
      check: {
        type: "https",
        method: "HEAD",
        path: "/healthz?deep=1",
        headers: { "X-Probe": "vigil", Accept: "text/plain" },
        host: "www.example.com",
        sni: "tls.example.com",
        expect: {
          status: [
            { lo: 200, hi: 299 },
            { lo: 304, hi: 304 },
          ],
          bodyContains: "ok",
          bodyRegex: "^ok$",
        },
        maxBodyBytes: 1024,
        tlsVerify: false,
        tlsCa: "/etc/ssl/ca.pem",
        keepalive: true,
      },
      targets: [
        { host: "10.0.1.10", port: 8443, key: "10.0.1.10:8443" },
        { host: "2001:db8::10", port: 8443, key: "[2001:db8::10]:8443" },
        { host: "web-3.example.com", port: 8443, key: "web-3.example.com:8443" },
      ],
      intervalMs: 2_000,
      fastIntervalMs: 500,
      downIntervalMs: 90_000,
      timeoutMs: 250,
      jitter: 0,
      rise: 1,
      fall: 1,
      observers: 5,
      verdict: 2,
      spread: "none",
      failOpen: false,
    });
  });

  it("reads tcp, dns, grpc and tls checks", () => {
    assert.deepEqual(pool("redis").check, { type: "tcp", send: "PING\r\n", expect: "+PONG" });
    assert.deepEqual(pool("resolver").check, {
      type: "dns",
      name: "_http._tcp.example.com.",
      recordType: "SRV",
      expectAnswer: "x",
      protocol: "tcp",
    });
    assert.deepEqual(pool("rpc").check, {
      type: "grpc",
      service: "grpc.health.v1.Health",
      tls: true,
      tlsVerify: false,
      tlsCa: "ca.pem",
      authority: "rpc.local:443",
    });
    assert.deepEqual(pool("certs").check, {
      type: "tls",
      sni: "example.com",
      minDays: 30,
      tlsVerify: false,
      tlsCa: "ca.pem",
    });
  });

  it("layers defaults under the pools that do not set a key", () => {
    const redis = pool("redis");
    assert.deepEqual(
      {
        intervalMs: redis.intervalMs,
        fastIntervalMs: redis.fastIntervalMs,
        downIntervalMs: redis.downIntervalMs,
        timeoutMs: redis.timeoutMs,
        jitter: redis.jitter,
        rise: redis.rise,
        fall: redis.fall,
        observers: redis.observers,
        verdict: redis.verdict,
        spread: redis.spread,
        failOpen: redis.failOpen,
      },
      {
        intervalMs: 30_000,
        fastIntervalMs: 5_000,
        downIntervalMs: 60_000,
        timeoutMs: 3_000,
        jitter: 0.2,
        rise: 3,
        fall: 4,
        observers: 3,
        verdict: "all",
        spread: "zone",
        failOpen: true,
      },
    );
  });

  it("keeps each raw pool as written, with the file's defaults filled in under it", () => {
    const raw = config.rawPools.get("redis") as Record<string, unknown>;
    assert.deepEqual(raw, {
      check: { type: "tcp", send: "PING\r\n", expect: "+PONG" },
      targets: ["10.0.2.1:6379"],
      interval: "30s",
      fastinter: "5s",
      downinter: "1m",
      timeout: "3s",
      jitter: 0.2,
      rise: 3,
      fall: 4,
      observers: 3,
      verdict: "all",
      spread: "zone",
      fail_open: true,
    });
    // Self-contained: a node with different defaults reads the same pool from it.
    for (const [name, spec] of config.pools) {
      assert.deepEqual(parsePoolDocument(name, config.rawPools.get(name)), spec);
    }
  });
});

describe("defaults", () => {
  const minimal = `
pools:
  web:
    check: { type: http }
    targets: [10.0.1.10:8080]
  secure:
    check: { type: https }
    targets: []
  ping:
    check: { type: tcp }
    targets: []
  resolver:
    check: { type: dns, name: example.com }
    targets: []
  rpc:
    check: { type: grpc }
    targets: []
  certs:
    check: { type: tls }
    targets: []
`;
  const config = parseConfigText(minimal, "minimal.yaml");

  it("fills every node setting", () => {
    assert.deepEqual(config.node, {
      name: hostname(),
      zone: "default",
      weight: 1,
      gossip: "127.0.0.1:7946",
      api: "127.0.0.1:7000",
      join: [],
      dataDir: "./vigil-data",
      profile: "lan",
      encryptKeys: [],
      maxConcurrentChecks: limits.maxConcurrentChecksDefault,
    });
    assert.ok(!("agent" in config.node) && !("dns" in config.node), "agent and dns stay off unless asked");
  });

  it("fills every pool setting", () => {
    const { check: _check, ...web } = config.pools.get("web") ?? assert.fail("web");
    assert.deepEqual(web, {
      name: "web",
      targets: [{ host: "10.0.1.10", port: 8080, key: "10.0.1.10:8080" }],
      intervalMs: 10_000,
      fastIntervalMs: 10_000,
      downIntervalMs: 10_000,
      timeoutMs: 2_000,
      jitter: 0.1,
      rise: 2,
      fall: 3,
      observers: 2,
      verdict: "majority",
      spread: "none",
      failOpen: false,
    });
  });

  it("fills every check setting", () => {
    const check = (name: string) => config.pools.get(name)?.check;
    const http = {
      method: "GET",
      path: "/",
      headers: {},
      expect: { status: [{ lo: 200, hi: 399 }] },
      maxBodyBytes: 64 * 1024,
      tlsVerify: true,
      keepalive: false,
    };
    assert.deepEqual(check("web"), { type: "http", ...http });
    assert.deepEqual(check("secure"), { type: "https", ...http });
    assert.deepEqual(check("ping"), { type: "tcp" });
    assert.deepEqual(check("resolver"), {
      type: "dns",
      name: "example.com",
      recordType: "A",
      protocol: "udp",
    });
    assert.deepEqual(check("rpc"), { type: "grpc", service: "", tls: false, tlsVerify: true });
    assert.deepEqual(check("certs"), { type: "tls", minDays: 7, tlsVerify: true });
  });

  it("treats empty sections as absent and a file without pools as having none", () => {
    const config = parseConfigText("node:\ndefaults:\npools:\n", "empty-sections.yaml");
    assert.equal(config.pools.size, 0);
    assert.equal(config.node.api, "127.0.0.1:7000");
    assert.equal(parseConfigText("node: { name: solo }\n", "no-pools.yaml").pools.size, 0);
  });

  it("layers built-ins < defaults < the pool's own keys", () => {
    const config = parseConfigText(
      `
defaults: { interval: 20s, rise: 5, verdict: any, fastinter: 1s }
pools:
  plain:
    check: { type: tcp }
    targets: []
  own:
    check: { type: tcp }
    targets: []
    interval: 1m
    rise: 1
    verdict: all
`,
      "layers.yaml",
    );
    const plain = config.pools.get("plain");
    const own = config.pools.get("own");
    assert.ok(plain && own);
    assert.deepEqual(
      [plain.intervalMs, plain.fastIntervalMs, plain.downIntervalMs, plain.rise, plain.verdict, plain.fall],
      [20_000, 1_000, 20_000, 5, "any", 3],
    );
    // downinter follows the pool's own interval; fastinter comes from defaults.
    assert.deepEqual(
      [own.intervalMs, own.fastIntervalMs, own.downIntervalMs, own.rise, own.verdict, own.fall],
      [60_000, 1_000, 60_000, 1, "all", 3],
    );
  });
});

describe("the design's example config", () => {
  // Verbatim from DESIGN.md, "Config".
  const example = `node:
  name: n1                 # default: host name
  zone: z1                 # failure domain, for spreading observers
  weight: 1                # share of the checking work
  gossip: 127.0.0.1:7946   # UDP and TCP
  api: 127.0.0.1:7000      # HTTP API, metrics, dashboard
  agent: 127.0.0.1:7001    # HAProxy agent-check (optional)
  dns: 127.0.0.1:8600      # DNS (optional)
  join: [127.0.0.1:7947]
  data_dir: ./vigil-data
  profile: lan             # lan | wan | local
  encrypt_keys: []         # base64 AES-256 keys; first one encrypts
defaults:                  # any pool key may be set here
  interval: 10s
  timeout: 2s
  rise: 2
  fall: 3
  observers: 2
  verdict: majority
pools:
  web:
    check:
      type: http           # http | https | tcp | dns | grpc | tls
      path: /healthz
      expect: { status: ["200-299"], body_contains: ok }
    targets: [10.0.1.10:8080, 10.0.1.11:8080]
`;

  it("loads", () => {
    const config = parseConfigText(example, "vigil.yaml");
    assert.equal(config.node.name, "n1");
    assert.deepEqual(config.node.join, ["127.0.0.1:7947"]);
    const web = config.pools.get("web");
    assert.ok(web);
    assert.equal(web.check.type, "http");
    assert.deepEqual(web.check.type === "http" && web.check.expect, {
      status: [{ lo: 200, hi: 299 }],
      bodyContains: "ok",
    });
    assert.deepEqual(
      web.targets.map((t) => t.key),
      ["10.0.1.10:8080", "10.0.1.11:8080"],
    );
  });
});

describe("loadConfigFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const expectError = (fn: () => unknown, file: string, message: RegExp): VigilError => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
      assert.equal(e.code, ErrorCode.config);
      assert.equal(e.file, file);
      assert.match(e.message, message);
      return e;
    }
    return assert.fail("expected an error");
  };

  it("reads a file", () => {
    const file = join(dir, "vigil.yaml");
    writeFileSync(file, "\uFEFFnode: { name: from-file }\n");
    assert.equal(loadConfigFile(file).node.name, "from-file");
  });

  it("names the file and the path in errors, and describe() puts them first", () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "pools:\n  web:\n    check: { type: tcp }\n    targets: []\n    rise: 0\n");
    const e = expectError(() => loadConfigFile(file), file, /expected a rise count from 1 to 100, got 0/);
    assert.equal(e.path, "pools.web.rise");
    assert.equal(e.describe(), `${file}: pools.web.rise: expected a rise count from 1 to 100, got 0`);
  });

  it("refuses a missing file", () => {
    const file = join(dir, "missing.yaml");
    expectError(() => loadConfigFile(file), file, /cannot open the config file: ENOENT/);
  });

  it("refuses a directory", () => {
    const sub = join(dir, "a-dir");
    mkdirSync(sub);
    expectError(() => loadConfigFile(sub), sub, /expected a regular file/);
  });

  it("refuses a file larger than the limit without reading it", () => {
    const file = join(dir, "huge.yaml");
    writeFileSync(file, "");
    truncateSync(file, limits.maxConfigBytes + 1); // sparse: no 16 MiB written
    const e = expectError(
      () => loadConfigFile(file),
      file,
      new RegExp(
        `expected a file of at most ${limits.maxConfigBytes} bytes \\(16 MiB\\), got ${limits.maxConfigBytes + 1}`,
      ),
    );
    assert.equal(e.path, undefined);
  });

  it("refuses bytes that are not UTF-8", () => {
    const file = join(dir, "latin1.yaml");
    writeFileSync(file, Buffer.from([0x6e, 0x6f, 0x64, 0x65, 0x3a, 0x20, 0xe9, 0x0a]));
    expectError(() => loadConfigFile(file), file, /not valid UTF-8/);
  });

  it("refuses an empty file", () => {
    const file = join(dir, "empty.yaml");
    writeFileSync(file, "");
    expectError(() => loadConfigFile(file), file, /the file is empty/);
  });
});
