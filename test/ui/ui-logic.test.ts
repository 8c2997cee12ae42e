import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { eventsQuery, targetPath, targetsUrl } from "../../src/ui/app/api.ts";
import { effectiveOf, formatDuration, formatLatency, formatSince } from "../../src/ui/app/format.ts";
import { parseHistory, recentToPoints, timelineSegments } from "../../src/ui/app/history.ts";
import { splitSearch } from "../../src/ui/app/search.ts";
import { pagesCovering, RowPages, visibleRange } from "../../src/ui/app/virtual.ts";

// The dashboard's logic that needs no browser: windowing, history parsing, formatting, URLs.

describe("virtual list windowing", () => {
  it("renders the rows on screen plus the overscan, clamped to the list", () => {
    assert.deepEqual(visibleRange(0, 440, 44, 10_000, 5), { first: 0, end: 16 });
    assert.deepEqual(visibleRange(44 * 100, 440, 44, 10_000, 5), { first: 95, end: 116 });
    assert.deepEqual(visibleRange(44 * 9_995, 440, 44, 10_000, 5), { first: 9_990, end: 10_000 });
    assert.deepEqual(visibleRange(0, 440, 44, 0, 5), { first: 0, end: 0 });
    assert.deepEqual(visibleRange(0, 440, 44, 3, 5), { first: 0, end: 3 });
  });

  it("property: the range is inside the list, covers the viewport and stays small", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.integer({ min: 10, max: 100 }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 0, max: 20 }),
        (scroll, viewport, row, total, overscan) => {
          const r = visibleRange(scroll, viewport, row, total, overscan);
          assert.ok(r.first >= 0 && r.end <= total && r.first <= r.end);
          assert.ok(r.end - r.first <= Math.ceil(viewport / row) + 2 + 2 * overscan);
          const top = Math.floor(scroll / row);
          if (top < total) {
            assert.ok(r.first <= top && r.end >= Math.min(total, top + Math.ceil(viewport / row)));
          }
        },
      ),
    );
  });

  it("names the pages that hold a range", () => {
    assert.deepEqual(pagesCovering({ first: 0, end: 0 }, 200), []);
    assert.deepEqual(pagesCovering({ first: 190, end: 420 }, 200), [0, 1, 2]);
    assert.deepEqual(pagesCovering({ first: 200, end: 400 }, 200), [1]);
  });

  it("keeps stale rows on screen until their refetch lands, and drops answers to an old query", () => {
    const pages = new RowPages<string>(2, 3);
    assert.deepEqual(pages.toFetch([0, 1]), [0, 1]);
    const t0 = pages.begin(0);
    assert.deepEqual(pages.toFetch([0, 1]), [1], "in flight is not fetched twice");
    assert.ok(pages.put(0, ["a", "b"], 10, t0));
    assert.equal(pages.row(1), "b");
    assert.equal(pages.total, 10);
    pages.invalidate();
    assert.equal(pages.row(0), "a", "stale rows still show");
    assert.deepEqual(pages.toFetch([0]), [0]);
    assert.equal(
      pages.patch(
        (r) => r === "a",
        () => "A",
      ),
      1,
    );
    assert.equal(pages.row(0), "A");
    const old = pages.begin(0);
    pages.reset();
    assert.equal(pages.put(0, ["x", "y"], 2, old), false);
    assert.equal(pages.row(0), undefined);
    assert.equal(pages.total, 0);
  });

  it("keeps at most maxPages, dropping those farthest from the rows in view", () => {
    const pages = new RowPages<number>(1, 3);
    for (const p of [0, 1, 2, 3, 4]) pages.put(p, [p], 100, pages.begin(p), [4]);
    assert.equal(pages.loadedPages, 3);
    assert.equal(pages.row(0), undefined);
    assert.equal(pages.row(4), 4);
    assert.equal(pages.row(2), 2);
  });
});

describe("history", () => {
  it("merges observers' rollup rows per bucket, weighted by their checks", () => {
    const pts = parseHistory({
      buckets: [
        { node: "n2", startMs: 60_000, count: 3, failures: 1, latencyMsSum: 30 },
        { node: "n1", startMs: 0, count: 2, failures: 0, latencyMsSum: 4 },
        { node: "n1", startMs: 60_000, count: 1, failures: 0, latencyMsSum: 50 },
      ],
    });
    assert.deepEqual(pts, [
      { t: 0, latencyMs: 2, checks: 2, failures: 0 },
      { t: 60_000, latencyMs: 20, checks: 4, failures: 1 },
    ]);
  });

  it("reads the history route's answer: bucket start, counts, mean and p95 latency", () => {
    const pts = parseHistory({
      pool: "web",
      buckets: [
        {
          start: 120_000,
          count: 4,
          failures: 1,
          latencyMs: { min: 1, mean: 3, max: 9, p50: 2, p95: 8, p99: 9 },
        },
        {
          start: 60_000,
          count: 2,
          failures: 0,
          latencyMs: { min: 1, mean: 1.5, max: 2, p50: 1.5, p95: null },
        },
      ],
    });
    assert.deepEqual(pts, [
      { t: 60_000, latencyMs: 1.5, checks: 2, failures: 0 },
      { t: 120_000, latencyMs: 3, checks: 4, failures: 1, p95Ms: 8 },
    ]);
    assert.deepEqual(parseHistory({ buckets: [] }), []);
  });

  it("accepts the other shapes a history answer may take, and says undefined when it has none", () => {
    assert.deepEqual(parseHistory([{ ts: 5, latencyMsAvg: 1.5, checks: 1 }]), [
      { t: 5, latencyMs: 1.5, checks: 1, failures: 0 },
    ]);
    assert.deepEqual(parseHistory({ points: [{ t: 1, count: 0, failures: 2 }] }), [
      { t: 1, latencyMs: null, checks: 0, failures: 2 },
    ]);
    assert.equal(parseHistory({ nothing: true }), undefined);
    assert.equal(parseHistory(null), undefined);
    assert.deepEqual(
      parseHistory({ buckets: [null, 3, { latencyMs: 2 }] }),
      [],
      "rows without a time are skipped",
    );
  });

  it("turns recent results into points, failures without a latency", () => {
    assert.deepEqual(
      recentToPoints([
        { ts: 2, ok: false, latencyMs: 150, reason: "timeout" },
        { ts: 1, ok: true, latencyMs: 3, reason: "status 200" },
      ]),
      [
        { t: 1, latencyMs: 3, checks: 1, failures: 0 },
        { t: 2, latencyMs: null, checks: 1, failures: 1 },
      ],
    );
    assert.deepEqual(recentToPoints(undefined), []);
  });

  const change = (seq: number, ts: number, from: string, to: string) => ({
    seq,
    ts,
    type: "verdict.changed",
    from,
    to,
  });

  it("builds timeline segments from verdict changes in any order", () => {
    const events = [
      change(2, 500, "up", "down"),
      change(1, 200, "unknown", "up"),
      change(3, 800, "down", "up"),
    ];
    assert.deepEqual(timelineSegments(events, "up", 0, 1000), [
      { startMs: 0, endMs: 200, state: "unknown" },
      { startMs: 200, endMs: 500, state: "up" },
      { startMs: 500, endMs: 800, state: "down" },
      { startMs: 800, endMs: 1000, state: "up" },
    ]);
    assert.deepEqual(timelineSegments(events, "up", 600, 1000), [
      { startMs: 600, endMs: 800, state: "down" },
      { startMs: 800, endMs: 1000, state: "up" },
    ]);
    assert.deepEqual(timelineSegments([], "down", 0, 10), [{ startMs: 0, endMs: 10, state: "down" }]);
    assert.deepEqual(timelineSegments(events, "up", 10, 10), []);
  });

  it("property: segments tile the window without gaps and never repeat a state", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ ts: fc.integer({ min: 0, max: 1000 }), to: fc.constantFrom("up", "down", "unknown") }),
        ),
        fc.integer({ min: 0, max: 999 }),
        (cs, start) => {
          const events = cs.map((c, i) => change(i + 1, c.ts, "unknown", c.to));
          const segs = timelineSegments(events, "up", start, 1000);
          assert.equal(segs[0]!.startMs, start);
          assert.equal(segs.at(-1)!.endMs, 1000);
          for (let i = 1; i < segs.length; i++) {
            assert.equal(segs[i]!.startMs, segs[i - 1]!.endMs);
            assert.notEqual(segs[i]!.state, segs[i - 1]!.state);
          }
        },
      ),
    );
  });
});

describe("formatting and URLs", () => {
  it("formats durations to two units", () => {
    assert.equal(formatDuration(0), "0s");
    assert.equal(formatDuration(59_999), "59s");
    assert.equal(formatDuration(60_000), "1m");
    assert.equal(formatDuration(185_000), "3m 5s");
    assert.equal(formatDuration(2 * 3_600_000 + 600_000), "2h 10m");
    assert.equal(formatDuration(4 * 86_400_000 + 3 * 3_600_000), "4d 3h");
    assert.equal(formatDuration(-5), "0s");
    assert.equal(formatDuration(Number.NaN), "—");
    assert.equal(formatSince(0, 1000), "—");
    assert.equal(formatSince(1000, 61_000), "1m");
    assert.equal(formatLatency(null), "—");
    assert.equal(formatLatency(1.234), "1.2 ms");
    assert.equal(formatLatency(250.4), "250 ms");
    assert.equal(formatLatency(12_345), "12.3 s");
  });

  it("derives the effective state as the server does", () => {
    assert.equal(effectiveOf("down", "maint"), "maint");
    assert.equal(effectiveOf("up", "drain"), "drain");
    assert.equal(effectiveOf("down", "none"), "down");
    assert.equal(effectiveOf("weird", "none"), "unknown");
  });

  it("splits state words out of the search box", () => {
    assert.deepEqual(splitSearch("  web state:down is:UNKNOWN "), {
      text: "web",
      states: ["down", "unknown"],
    });
    assert.deepEqual(splitSearch("state:sideways"), { text: "state:sideways", states: [] });
    assert.deepEqual(splitSearch(""), { text: "", states: [] });
  });

  it("builds API URLs with encoded parts and no empty filters", () => {
    assert.equal(
      targetsUrl({ q: " web ", states: ["down", "up"], pool: "", offset: 200, limit: 200 }),
      "/v1/targets?q=web&state=down%2Cup&offset=200&limit=200",
    );
    assert.equal(targetPath("web", "[::1]:80"), "/v1/pools/web/targets/%5B%3A%3A1%5D%3A80");
    assert.equal(
      eventsQuery({ types: ["verdict.changed"], pool: "web", target: "" }, { since: 5 }),
      "type=verdict.changed&pool=web&since=5",
    );
  });
});
