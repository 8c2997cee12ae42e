// Pool documents as the HTTP API sees them: JSON bodies of PUT /v1/pools/{pool}, validated with
// the file's pool schema, errors relative to the pool; and the document form echoed back.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseHostPort } from "../../src/config/address.ts";
import { formatDurationMs } from "../../src/config/duration.ts";
import { parseDefaultsDocument, parsePoolDocument, poolToDocument } from "../../src/config/load.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { limits } from "../../src/core/limits.ts";

function errorOf(fn: () => unknown): VigilError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.config);
    assert.equal(e.file, undefined);
    return e;
  }
  return assert.fail("expected an error");
}

// Fixed seed: the same cases on every run (a failure prints the seed and the counterexample).
fc.configureGlobal({ seed: 20_240_601 });

const web = { check: { type: "http" }, targets: ["10.0.1.10:8080"] };

describe("parsePoolDocument", () => {
  it("accepts a JSON pool and fills defaults", () => {
    const spec = parsePoolDocument("web", JSON.parse(JSON.stringify(web)));
    assert.equal(spec.name, "web");
    assert.equal(spec.intervalMs, 10_000);
    assert.deepEqual(spec.targets, [{ host: "10.0.1.10", port: 8080, key: "10.0.1.10:8080" }]);
  });

  it("layers the given defaults under the document", () => {
    const defaults = parseDefaultsDocument({ interval: "30s", rise: 4 });
    assert.deepEqual(defaults, { intervalMs: 30_000, rise: 4 });
    const spec = parsePoolDocument("web", { ...web, rise: 1 }, defaults);
    assert.deepEqual([spec.intervalMs, spec.fastIntervalMs, spec.rise], [30_000, 30_000, 1]);
  });

  const bad: [string, unknown, string | undefined, string][] = [
    [
      "status out of range",
      { ...web, check: { type: "http", expect: { status: ["200-299", 700] } } },
      "check.expect.status[1]",
      `expected a status or range like "200-299" between 100 and 599, got 700`,
    ],
    [
      "duplicate target",
      { ...web, targets: ["a.local:1", "b.local:1", "A.LOCAL:1"] },
      "targets[2]",
      "targets[0] and targets[2]",
    ],
    ["unknown key", { ...web, intervall: "10s" }, "intervall", `(did you mean "interval"?)`],
    ["numeric duration", { ...web, interval: 10_000 }, "interval", `got 10000`],
    ["timeout above interval", { ...web, interval: "1s", timeout: "2s" }, "timeout", `got "2s"`],
    ["missing targets", { check: { type: "tcp" } }, "targets", "missing required key"],
    ["body is a list", [web], undefined, "expected a pool: a mapping with check and targets, got a list"],
    ["body is null", null, undefined, "got an empty value"],
    ["body is empty", undefined, undefined, "missing required key: expected a pool"],
  ];
  for (const [name, doc, path, message] of bad) {
    it(`refuses ${name}, with a path relative to the pool`, () => {
      const e = errorOf(() => parsePoolDocument("web", doc));
      assert.equal(e.path, path);
      assert.ok(e.message.includes(message), e.message);
    });
  }

  it("says where a conflict comes from when defaults are involved", () => {
    const defaults = parseDefaultsDocument({ timeout: "5s" });
    const e = errorOf(() => parsePoolDocument("web", { ...web, interval: "1s" }, defaults));
    assert.equal(e.path, "interval");
    assert.match(e.message, /no shorter than the timeout \(5s from defaults\), got "1s"/);
    const e2 = errorOf(() => parsePoolDocument("web", web, parseDefaultsDocument({ timeout: "15s" })));
    assert.equal(e2.path, "timeout");
    assert.match(e2.message, /got "15s" \(from defaults\)$/);
  });

  it("refuses a bad pool name without a path", () => {
    for (const name of ["", "Web", "-web", "web.v2", "a".repeat(limits.maxPoolNameChars + 1), "web/x"]) {
      const e = errorOf(() => parsePoolDocument(name, web));
      assert.equal(e.path, undefined);
      assert.match(e.message, /^expected a pool name of lowercase letters/);
    }
    assert.equal(parsePoolDocument("a".repeat(limits.maxPoolNameChars), web).name.length, 62);
    assert.equal(parsePoolDocument("0_web-1", web).name, "0_web-1");
  });
});

describe("poolToDocument", () => {
  it("writes every key, durations as strings", () => {
    const spec = parsePoolDocument("web", {
      check: {
        type: "https",
        path: "/h",
        expect: { status: [204, "200-299"], body_regex: "ok" },
        sni: "a.b",
      },
      targets: ["[::1]:443"],
      interval: "90000ms",
      timeout: "1500ms",
      verdict: 2,
    });
    assert.deepEqual(poolToDocument(spec), {
      check: {
        type: "https",
        method: "GET",
        path: "/h",
        headers: {},
        expect: { status: ["204", "200-299"], body_regex: "ok" },
        max_body_bytes: 65_536,
        keepalive: false,
        sni: "a.b",
        tls_verify: true,
      },
      targets: ["[::1]:443"],
      interval: "1m30s",
      fastinter: "1m30s",
      downinter: "1m30s",
      timeout: "1.5s",
      jitter: 0.1,
      rise: 2,
      fall: 3,
      observers: 2,
      verdict: 2,
      spread: "none",
      fail_open: false,
    });
  });

  it("gives back what parsePoolDocument read, for any valid pool (through JSON)", () => {
    fc.assert(
      fc.property(poolDocument, fc.constantFrom("web", "a", "0_x-y"), (doc, name) => {
        const spec = parsePoolDocument(name, doc);
        const echoed = JSON.parse(JSON.stringify(poolToDocument(spec)));
        assert.deepEqual(parsePoolDocument(name, echoed), spec);
        assert.deepEqual(poolToDocument(parsePoolDocument(name, echoed)), echoed);
      }),
      { numRuns: 500 },
    );
  });
});

// ── generators of valid pool documents ──

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** Drops undefined values, as a JSON body would not have them. */
function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

const durationText = (minMs: number, maxMs: number) =>
  fc.oneof(
    fc.integer({ min: minMs, max: maxMs }).map(formatDurationMs),
    fc.integer({ min: minMs, max: maxMs }).map((ms) => `${ms}ms`),
    fc.integer({ min: Math.ceil(minMs / 1000), max: Math.floor(maxMs / 1000) }).map((s) => `${s}s`),
  );

const status = fc.oneof(
  fc.integer({ min: 100, max: 599 }),
  fc.integer({ min: 100, max: 599 }).map(String),
  fc
    .tuple(fc.integer({ min: 100, max: 599 }), fc.integer({ min: 100, max: 599 }))
    .map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
);

const word = fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/);
const hostName = fc.array(word, { minLength: 1, maxLength: 3 }).map((labels) => labels.join("."));
const visible = fc.stringMatching(/^[\x21-\x7e]{1,20}$/);

const httpFields = {
  method: optional(fc.constantFrom("GET", "HEAD", "POST", "OPTIONS")),
  path: optional(fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/)),
  headers: optional(
    fc
      .dictionary(fc.stringMatching(/^X-[A-Za-z]{1,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 4 })
      .filter((h) => new Set(Object.keys(h).map((k) => k.toLowerCase())).size === Object.keys(h).length),
  ),
  host: optional(
    fc.oneof(
      hostName,
      hostName.map((h) => `${h}:8080`),
      fc.ipV4(),
    ),
  ),
  expect: optional(
    fc
      .record({
        status: optional(fc.array(status, { minLength: 1, maxLength: 4 })),
        body_contains: optional(fc.string({ minLength: 1, maxLength: 30 })),
        body_regex: optional(fc.constantFrom("ok", "^up$", "a+b", "\\d{3}")),
      })
      .map(compact),
  ),
  max_body_bytes: optional(fc.integer({ min: 100, max: limits.maxBodyBytesCeiling })),
  keepalive: optional(fc.boolean()),
};

const check = fc.oneof(
  fc.record({ type: fc.constant("http"), ...httpFields }).map(compact),
  fc
    .record({
      type: fc.constant("https"),
      ...httpFields,
      sni: optional(hostName),
      tls_verify: optional(fc.boolean()),
      tls_ca: optional(visible),
    })
    .map(compact),
  fc
    .record({
      type: fc.constant("tcp"),
      send: optional(fc.string({ minLength: 1 })),
      expect: optional(visible),
    })
    .map(compact),
  fc
    .record({
      type: fc.constant("dns"),
      name: hostName,
      record_type: fc.constantFrom("CNAME", "MX", "TXT", "SRV"),
      expect_answer: optional(visible),
      protocol: optional(fc.constantFrom("udp", "tcp")),
    })
    .map(compact),
  fc
    .record({
      type: fc.constant("dns"),
      name: hostName,
      record_type: optional(fc.constant("A")),
      expect_answer: optional(fc.ipV4()),
    })
    .map(compact),
  fc.record({
    type: fc.constant("dns"),
    name: hostName,
    record_type: fc.constant("AAAA"),
    expect_answer: fc.ipV6(),
  }),
  fc
    .record({
      type: fc.constant("grpc"),
      service: optional(fc.stringMatching(/^[a-z.]{0,20}$/)),
      tls: optional(fc.boolean()),
      tls_verify: optional(fc.boolean()),
      tls_ca: optional(visible),
      authority: optional(hostName),
    })
    .map(compact),
  fc
    .record({
      type: fc.constant("tls"),
      sni: optional(hostName),
      min_days: optional(fc.integer({ min: 0, max: 3650 })),
      tls_verify: optional(fc.boolean()),
      tls_ca: optional(visible),
    })
    .map(compact),
);

const port = fc.integer({ min: 1, max: 65_535 });
const target = fc.oneof(
  fc.tuple(fc.ipV4(), port).map(([h, p]) => `${h}:${p}`),
  fc.tuple(fc.ipV6(), port).map(([h, p]) => `[${h}]:${p}`),
  fc.tuple(fc.domain(), port).map(([h, p]) => `${h}:${p}`),
);
const targets = fc.uniqueArray(target, { maxLength: 6, selector: (t) => parseHostPort(t).key });

const timing = fc
  .record({
    interval: optional(fc.integer({ min: limits.intervalMsMin, max: 3_600_000 })),
    fastinter: optional(durationText(limits.intervalMsMin, 3_600_000)),
    downinter: optional(durationText(limits.intervalMsMin, 3_600_000)),
  })
  .chain(({ interval, fastinter, downinter }) => {
    const ceilingMs = Math.min(interval ?? 10_000, limits.timeoutMsMax);
    // The built-in 2 s timeout does not fit a shorter interval: such pools must set one.
    const timeoutMs = fc.integer({ min: limits.timeoutMsMin, max: ceilingMs }).map(formatDurationMs);
    return fc.record({
      interval: fc.constant(interval === undefined ? undefined : formatDurationMs(interval)),
      fastinter: fc.constant(fastinter),
      downinter: fc.constant(downinter),
      timeout: ceilingMs < 2_000 ? timeoutMs : optional(timeoutMs),
    });
  });

const policy = fc.integer({ min: 1, max: limits.observersMax }).chain((observers) =>
  fc.record({
    observers: fc.constant(observers),
    verdict: optional(
      fc.oneof(fc.constantFrom("majority", "any", "all"), fc.integer({ min: 1, max: observers })),
    ),
    jitter: optional(fc.double({ min: 0, max: 0.5, noNaN: true })),
    rise: optional(fc.integer({ min: 1, max: limits.riseFallMax })),
    fall: optional(fc.integer({ min: 1, max: limits.riseFallMax })),
    spread: optional(fc.constantFrom("none", "zone")),
    fail_open: optional(fc.boolean()),
  }),
);

const poolDocument = fc
  .tuple(check, targets, timing, policy)
  .map(([c, t, tm, p]) => compact({ check: c, targets: t, ...compact(tm), ...compact(p) }));
