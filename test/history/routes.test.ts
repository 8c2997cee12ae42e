import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import {
  computeUptime,
  EVENTS_PAGE_DEFAULT,
  parseEventsRequest,
  parsePeerAnswer,
  parseTimeParam,
  type VerdictChange,
} from "../../src/serve/api/history-routes.ts";
import { LatencySketch } from "../../src/store/sketch.ts";

// The pure parts of the history routes: uptime from verdict changes, a peer's answer, times.

fc.configureGlobal({ seed: 20_261_122 });

const H = 3_600_000;

describe("computeUptime", () => {
  it("with no change in the window, the current verdict held throughout", () => {
    const up = computeUptime([], 0, 24 * H, "up");
    assert.deepEqual(
      [up.availabilityPercent, up.upMs, up.downMs, up.incidentCount, up.mttrMs, up.sinceLastIncidentMs],
      [100, 24 * H, 0, 0, null, null],
    );
    const unknown = computeUptime([], 0, H, "unknown");
    assert.equal(unknown.availabilityPercent, null, "nothing judged: no availability");
    assert.equal(unknown.unknownMs, H);
    const down = computeUptime([], 0, H, "down");
    assert.deepEqual(down.incidents, [
      { start: 0, end: null, durationMs: H, cause: null, ongoing: true, beforeWindow: true },
    ]);
    assert.equal(down.sinceLastIncidentMs, 0);
  });

  it("turns down spans into incidents with their cause, and averages the ended ones into MTTR", () => {
    const changes: VerdictChange[] = [
      { ts: 1 * H, from: "unknown", to: "up" },
      { ts: 2 * H, from: "up", to: "down", cause: "status 503" },
      { ts: 3 * H, from: "down", to: "up" },
      { ts: 5 * H, from: "up", to: "down", cause: "connect ECONNREFUSED" },
      { ts: 5 * H + 30 * 60_000, from: "down", to: "unknown" },
      { ts: 6 * H, from: "unknown", to: "up" },
    ];
    const r = computeUptime(changes, 0, 10 * H, "up");
    assert.deepEqual(
      r.incidents.map((i) => [i.start, i.end, i.durationMs, i.cause, i.ongoing]),
      [
        [2 * H, 3 * H, H, "status 503", false],
        [5 * H, 5.5 * H, 0.5 * H, "connect ECONNREFUSED", false],
      ],
    );
    assert.equal(r.mttrMs, 0.75 * H);
    assert.equal(r.downMs, 1.5 * H);
    assert.equal(r.upMs, 1 * H + 2 * H + 4 * H);
    assert.equal(r.unknownMs, 1 * H + 0.5 * H);
    assert.equal(r.availabilityPercent, Math.round((1e6 * 7) / 8.5) / 1e4);
    assert.equal(r.sinceLastIncidentMs, 10 * H - 5.5 * H);
    assert.deepEqual(r.lastIncident?.cause, "connect ECONNREFUSED");
  });

  it("counts a change recorded twice (two recorders on a shared store) as one incident", () => {
    const r = computeUptime(
      [
        { ts: H, from: "up", to: "down", cause: "a" },
        { ts: H + 5, from: "up", to: "down", cause: "b" },
        { ts: 2 * H, from: "down", to: "up" },
        { ts: 2 * H + 3, from: "down", to: "up" },
      ],
      0,
      3 * H,
      "up",
    );
    assert.equal(r.incidentCount, 1);
    assert.deepEqual([r.incidents[0]!.start, r.incidents[0]!.cause, r.incidents[0]!.durationMs], [H, "a", H]);
  });

  it("keeps every span inside the window and accounts for all of it", () => {
    const state = fc.constantFrom("up", "down", "unknown", "bogus");
    fc.assert(
      fc.property(
        fc.array(fc.record({ ts: fc.integer({ min: 0, max: 10_000 }), to: state, from: state }), {
          maxLength: 40,
        }),
        state,
        (raw, current) => {
          const changes = raw.sort((a, b) => a.ts - b.ts);
          const r = computeUptime(changes, 0, 10_000, current);
          assert.equal(r.upMs + r.downMs + r.unknownMs, 10_000);
          assert.equal(
            r.incidents.reduce((s, i) => s + i.durationMs, 0),
            r.downMs,
          );
          let prevEnd = 0;
          for (const i of r.incidents) {
            assert.ok(i.start >= prevEnd && i.durationMs >= 0 && i.start + i.durationMs <= 10_000);
            prevEnd = i.start + i.durationMs;
          }
          assert.ok(r.incidents.filter((i) => i.ongoing).length <= 1);
          if (r.availabilityPercent !== null)
            assert.ok(r.availabilityPercent >= 0 && r.availabilityPercent <= 100);
        },
      ),
    );
  });
});

describe("parsePeerAnswer", () => {
  const sketch = Buffer.from(LatencySketch.of([1, 2, 3]).encode()).toString("base64");
  const bucket = { start: 120_000, count: 3, failures: 1, min: 1, max: 3, sum: 6, sketch };
  const parse = (buckets: unknown[], extra: Record<string, unknown> = {}) =>
    parsePeerAnswer({ node: "n2", buckets, ...extra }, 60_000, 600_000, 60_000);

  it("reads a good answer, sketches decoded", () => {
    const r = parse([bucket], { truncated: true });
    assert.ok(typeof r !== "string");
    assert.equal(r.buckets[0]!.sketch?.count, 3);
    assert.deepEqual(
      [r.buckets[0]!.startMs, r.buckets[0]!.latencyMsSum, r.truncated, r.badSketches],
      [120_000, 6, true, 0],
    );
  });

  it("keeps the counts of a bucket whose sketch is bad, and counts it", () => {
    const r = parse([
      { ...bucket, sketch: "!!!" },
      { ...bucket, start: 180_000, sketch: undefined },
    ]);
    assert.ok(typeof r !== "string");
    assert.equal(r.badSketches, 2);
    assert.equal(r.buckets.length, 2);
  });

  it("refuses answers that are not what a node sends", () => {
    const bad: [unknown, RegExp][] = [
      [null, /not an object/],
      [{ buckets: "x" }, /no buckets/],
      [{ buckets: [5] }, /bucket 0: not an object/],
      [{ buckets: [{ ...bucket, start: 0 }] }, /start out of range/],
      [{ buckets: [{ ...bucket, start: 600_000 }] }, /start out of range/],
      [{ buckets: [{ ...bucket, start: 130_000 }] }, /start out of range/],
      [{ buckets: [{ ...bucket, count: 0 }] }, /bad count/],
      [{ buckets: [{ ...bucket, count: 1.5 }] }, /bad count/],
      [{ buckets: [{ ...bucket, failures: 4 }] }, /bad failures/],
      [{ buckets: [{ ...bucket, min: -1 }] }, /bad min/],
      [{ buckets: [{ ...bucket, sum: Number.NaN }] }, /bad sum/],
      [{ buckets: [{ ...bucket, min: 5 }] }, /min above max/],
      [{ buckets: Array.from({ length: 10_081 }, () => bucket) }, /too many buckets/],
    ];
    for (const [body, message] of bad) {
      const r = parsePeerAnswer(body, 60_000, 600_000, 60_000);
      assert.equal(typeof r, "string", JSON.stringify(body)?.slice(0, 80));
      assert.match(r as string, message);
    }
  });
});

describe("parseTimeParam", () => {
  const now = Date.UTC(2026, 0, 2, 15, 4, 5);
  it("reads ms, RFC 3339, now and now-<duration>", () => {
    assert.equal(parseTimeParam("from", "1700000000000", now), 1_700_000_000_000);
    assert.equal(parseTimeParam("from", "2026-01-02T15:04:05Z", now), now);
    assert.equal(parseTimeParam("from", "2026-01-02T16:04:05+01:00", now), now);
    assert.equal(parseTimeParam("from", "2026-01-02", now), Date.UTC(2026, 0, 2));
    assert.equal(parseTimeParam("to", "now", now), now);
    assert.equal(parseTimeParam("from", "now-1h30m", now), now - 1.5 * H);
    assert.equal(parseTimeParam("from", "now-7d", now), now - 7 * 24 * H);
  });
  it("refuses anything else with a 400 naming the parameter", () => {
    for (const raw of [
      "yesterday",
      "",
      "-5",
      "2026-02-30T99:00:00Z",
      "now+1h",
      "now-",
      "now-5",
      "1e12",
      `${"9".repeat(17)}`,
    ]) {
      assert.throws(
        () => parseTimeParam("to", raw, now),
        (e: unknown) => e instanceof VigilError && e.code === ErrorCode.badRequest && e.path === "to",
        raw,
      );
    }
  });
});

describe("parseEventsRequest (GET /v1/events)", () => {
  const now = Date.UTC(2026, 0, 2, 15, 4, 5);
  const parse = (query: string) => parseEventsRequest(new URL(`http://x/v1/events?${query}`), now);
  const paging = (query: string) => {
    const r = parse(query);
    // `since` is read into the query's `after` bound.
    return { order: r.order, since: r.after, before: r.before, limit: r.limit };
  };

  it("answers a bare request newest first; since pages oldest first, before newest first", () => {
    assert.deepEqual(paging(""), { order: "desc", since: 0, before: undefined, limit: EVENTS_PAGE_DEFAULT });
    assert.deepEqual(paging("pool=web&from=now-1h"), {
      order: "desc",
      since: 0,
      before: undefined,
      limit: 100,
    });
    assert.deepEqual(paging("since=0"), { order: "asc", since: 0, before: undefined, limit: 100 });
    assert.deepEqual(paging("since=42&limit=7"), { order: "asc", since: 42, before: undefined, limit: 7 });
    assert.deepEqual(paging("order=asc"), { order: "asc", since: 0, before: undefined, limit: 100 });
    assert.deepEqual(paging("since=5&order=asc"), { order: "asc", since: 5, before: undefined, limit: 100 });
    assert.deepEqual(paging("before=42"), { order: "desc", since: 0, before: 42, limit: 100 });
    assert.deepEqual(paging("before=0&order=desc"), { order: "desc", since: 0, before: 0, limit: 100 });
    assert.deepEqual(paging("order=desc&limit=1000"), {
      order: "desc",
      since: 0,
      before: undefined,
      limit: 1000,
    });
  });

  it("reads the filters the same in both orders", () => {
    const q = "pool=web&target=10.0.0.1:80&type=verdict.changed,,target.admin&from=now-1h&to=now";
    const filters = (query: string) => {
      const { order: _o, after: _a, before: _b, limit: _l, ...rest } = parse(query);
      return rest;
    };
    const want = {
      pool: "web",
      target: "10.0.0.1:80",
      types: ["verdict.changed", "target.admin"],
      fromMs: now - H,
      toMs: now,
    };
    assert.deepEqual(filters(q), want);
    assert.deepEqual(filters(`${q}&order=desc&before=9`), want);
    assert.deepEqual(filters(`${q}&since=9`), want);
  });

  it("refuses bad and conflicting parameters with a 400 naming the parameter", () => {
    const cases: [string, string, RegExp][] = [
      ["order=sideways", "order", /order must be "asc" or "desc", got "sideways"/],
      ["order=DESC", "order", /order must be "asc" or "desc"/],
      ["order=", "order", /order must be "asc" or "desc", got ""/],
      ["order=asc&order=desc", "order", /given more than once/],
      ["since=3&before=9", "before", /before cannot be combined with since/],
      ["since=3&before=9&order=desc", "before", /before cannot be combined with since/],
      ["before=9&order=asc", "before", /before pages newest first: use it with order=desc/],
      ["since=3&order=desc", "since", /since pages oldest first: use it with order=asc/],
      ["before=abc", "before", /before must be a non-negative integer cursor, got "abc"/],
      ["before=-1", "before", /before must be a non-negative integer cursor/],
      ["before=", "before", /before must be a non-negative integer cursor, got ""/],
      [`before=${"9".repeat(17)}`, "before", /before must be a non-negative integer cursor/],
      ["before=9007199254740993", "before", /before must be a non-negative integer cursor/],
      ["since=1.5", "since", /since must be a non-negative integer cursor/],
      ["limit=0&order=desc", "limit", /limit must be an integer between 1 and 1000/],
      ["Order=desc", "Order", /unknown query parameter "Order"/],
    ];
    for (const [query, path, message] of cases) {
      assert.throws(
        () => parse(query),
        (e: unknown) => {
          assert.ok(e instanceof VigilError, query);
          assert.equal(e.code, ErrorCode.badRequest, query);
          assert.equal(e.path, path, query);
          assert.match(e.message, message, query);
          return true;
        },
        query,
      );
    }
  });
});
