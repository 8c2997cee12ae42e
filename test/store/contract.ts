// The Store contract: one suite, run against every implementation (sqlite.test.ts,
// postgres.test.ts). A behaviour pinned here holds for both.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import type { BatchOptions } from "../../src/store/batch-writer.ts";
import { eventId } from "../../src/store/event-id.ts";
import { LatencySketch, SKETCH_RELATIVE_ACCURACY } from "../../src/store/sketch.ts";
import type {
  EventQuery,
  EventRecord,
  LwwKind,
  LwwRecord,
  RollupRow,
  Store,
  StoredEvent,
} from "../../src/store/types.ts";

export interface StoreHarness {
  /** Switches to a new, empty database; later open() calls use it. */
  fresh(): Promise<void>;
  /** A handle on the current database for `node` (several handles may be open at once). */
  open(node: string, opts?: { batch?: Partial<BatchOptions> }): Promise<Store>;
  cleanup(): Promise<void>;
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Hour-aligned wall time the rollup tests start at. */
const T0 = Date.UTC(2024, 0, 1);

export function isCode(code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** Deterministic pseudo-random numbers (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ev(i: number, over: Partial<StoredEvent> = {}): StoredEvent {
  const base = { type: "verdict.changed", ts: 1_700_000_000_000 + i, pool: "web", target: `10.0.0.${i}:80` };
  const e = { ...base, from: "up", to: "down", ...over };
  return { id: over.id ?? eventId(e), ...e };
}

function samplesFor(seed: number, n: number): number[] {
  const r = rng(seed);
  // Log-normal-ish latencies from tens of µs to seconds, plus the odd exact zero.
  return Array.from({ length: n }, () => (r() < 0.05 ? 0 : Math.exp(r() * 14 - 7)));
}

function rollup(
  node: string,
  target: string,
  minuteStartMs: number,
  samples: number[],
  failures = 0,
): RollupRow {
  return {
    node,
    pool: "web",
    target,
    minuteStartMs,
    count: samples.length,
    failures,
    latencyMsMin: Math.min(...samples),
    latencyMsMax: Math.max(...samples),
    latencyMsSum: samples.reduce((a, b) => a + b, 0),
    sketch: LatencySketch.of(samples).encode(),
  };
}

async function allEvents(s: Store, q: Omit<EventQuery, "limit" | "afterCursor"> = {}, limit = 7) {
  const out: EventRecord[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await s.queryEvents({
      ...q,
      limit,
      ...(cursor === undefined ? {} : { afterCursor: cursor }),
    });
    if (page.events.length > 0) assert.equal(page.nextCursor, page.events[page.events.length - 1]!.cursor);
    else assert.equal(page.nextCursor, cursor ?? "0");
    out.push(...page.events);
    if (page.events.length < limit) return out;
    cursor = page.nextCursor;
  }
  throw new Error("paging did not end");
}

/**
 * Every event matching `q` (its afterCursor and beforeCursor as bounds), page by page in `order`,
 * checking each page's nextCursor: the last event's, else the bound paged from, else "0".
 */
async function pageThrough(
  s: Store,
  q: Omit<EventQuery, "limit" | "order">,
  order: "asc" | "desc",
  limit: number,
) {
  const out: EventRecord[] = [];
  const key = order === "asc" ? "afterCursor" : "beforeCursor";
  let cursor = q[key];
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await s.queryEvents({
      ...q,
      order,
      limit,
      ...(cursor === undefined ? {} : { [key]: cursor }),
    });
    if (page.events.length > 0) assert.equal(page.nextCursor, page.events[page.events.length - 1]!.cursor);
    else assert.equal(page.nextCursor, cursor ?? "0");
    out.push(...page.events);
    if (page.events.length < limit) return out;
    cursor = page.nextCursor;
  }
  throw new Error("paging did not end");
}

/** The order the stores keep: wall, logical, origin by UTF-8 bytes (ASCII names here). */
function compareStamp(x: LwwRecord, y: LwwRecord): number {
  if (x.wallMs !== y.wallMs) return x.wallMs - y.wallMs;
  if (x.logical !== y.logical) return x.logical - y.logical;
  return x.origin < y.origin ? -1 : x.origin > y.origin ? 1 : 0;
}

export function runStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHarness;
    const opened: Store[] = [];
    const open = async (node: string, opts?: { batch?: Partial<BatchOptions> }): Promise<Store> => {
      const s = await h.open(node, opts);
      opened.push(s);
      return s;
    };

    before(async () => {
      h = await makeHarness();
    });
    after(async () => {
      await h.cleanup();
    });
    beforeEach(async () => {
      await h.fresh();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it("appends events and reads them back in cursor order with every field", async () => {
      const s = await open("n1");
      const events = [
        ev(1, { cause: "3 failures: connect ECONNREFUSED", data: { observers: ["n1", "n2"], rise: 2 } }),
        ev(2, {
          type: "member.dead",
          pool: undefined,
          target: undefined,
          node: "n7",
          from: "suspect",
          to: "dead",
        }),
        { id: "bare", ts: 5, type: "pool.created" },
      ];
      await s.appendEvents(events);
      const page = await s.queryEvents({ limit: 10 });
      assert.deepEqual(
        page.events.map(({ cursor: _c, ...rest }) => rest),
        events.map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined))),
      );
      const cursors = page.events.map((e) => BigInt(e.cursor));
      for (let i = 1; i < cursors.length; i++) assert.ok(cursors[i]! > cursors[i - 1]!, "cursors increase");
      assert.equal(page.nextCursor, page.events[2]!.cursor);
      const after = await s.queryEvents({ limit: 10, afterCursor: page.nextCursor });
      assert.deepEqual(after, { events: [], nextCursor: page.nextCursor });
      await s.appendEvents([ev(3)]);
      const more = await s.queryEvents({ limit: 10, afterCursor: page.nextCursor });
      assert.deepEqual(
        more.events.map((e) => e.id),
        [ev(3).id],
      );
    });

    it("stores an event id once across two nodes' handles, first write wins", async () => {
      const a = await open("n1");
      const b = await open("n2");
      const events = Array.from({ length: 40 }, (_, i) => ev(i));
      // Overlapping, concurrent, and repeated: every id still lands exactly once.
      await Promise.all([
        a.appendEvents(events.slice(0, 30)),
        b.appendEvents(events.slice(10)),
        a.appendEvents(events.slice(5, 15)),
        b.appendEvents(events.slice(0, 2)),
      ]);
      await a.appendEvents([{ ...events[0]!, cause: "a different cause" }]);
      const fromA = await allEvents(a, {}, 1000);
      const fromB = await allEvents(b, {}, 1000);
      assert.equal(fromA.length, 40);
      assert.deepEqual(new Set(fromA.map((e) => e.id)), new Set(events.map((e) => e.id)));
      assert.deepEqual(
        fromB.map((e) => e.id),
        fromA.map((e) => e.id),
      );
      assert.equal(fromA.find((e) => e.id === events[0]!.id)!.cause, undefined);
    });

    it("many concurrent appends all commit, and each resolves only once readable", async () => {
      const s = await open("n1");
      const calls = Array.from({ length: 50 }, (_, c) =>
        s.appendEvents(Array.from({ length: 10 }, (_, i) => ev(c * 10 + i))).then(async () => {
          const got = await s.queryEvents({ limit: 1, target: `10.0.0.${c * 10}:80` });
          assert.equal(got.events.length, 1, `call ${c} acknowledged before readable`);
        }),
      );
      await Promise.all(calls);
      assert.equal((await allEvents(s, {}, 1000)).length, 500);
    });

    it("pages through filters exactly as a model does", async () => {
      const s = await open("n1");
      const r = rng(7);
      const types = ["verdict.changed", "observation.changed", "member.dead", "target.admin"];
      const model: StoredEvent[] = [];
      for (let batch = 0; batch < 6; batch++) {
        const events: StoredEvent[] = [];
        for (let i = 0; i < 50; i++) {
          const n = batch * 50 + i;
          events.push({
            id: `e${n}`,
            ts: 1_000_000 + Math.floor(r() * 100_000),
            type: types[Math.floor(r() * types.length)]!,
            pool: `p${Math.floor(r() * 3)}`,
            target: `t${Math.floor(r() * 4)}`,
          });
        }
        await s.appendEvents(events);
        model.push(...events);
      }
      const filters: Omit<EventQuery, "limit">[] = [
        {},
        { pool: "p1" },
        { pool: "p2", target: "t3" },
        { target: "t0" },
        { types: ["member.dead", "target.admin"] },
        { types: [] },
        { fromMs: 1_020_000, toMs: 1_050_000 },
        { pool: "p0", types: ["verdict.changed"], fromMs: 1_010_000 },
        { pool: "nope" },
      ];
      for (const f of filters) {
        const want = model.filter(
          (e) =>
            (f.pool === undefined || e.pool === f.pool) &&
            (f.target === undefined || e.target === f.target) &&
            (f.types === undefined || f.types.includes(e.type)) &&
            (f.fromMs === undefined || e.ts >= f.fromMs) &&
            (f.toMs === undefined || e.ts < f.toMs),
        );
        for (const limit of [1, 7, 1000]) {
          const got = await allEvents(s, f, limit);
          assert.deepEqual(
            got.map((e) => e.id),
            want.map((e) => e.id),
            `filter ${JSON.stringify(f)} limit ${limit}`,
          );
        }
      }
    });

    it("serves the newest first and pages older with beforeCursor, unmoved by newer events", async () => {
      const s = await open("n1");
      assert.deepEqual(await s.queryEvents({ order: "desc", limit: 5 }), { events: [], nextCursor: "0" });
      await s.appendEvents([1, 2, 3, 4, 5].map((i) => ev(i)));
      const ids = (events: EventRecord[]) => events.map((e) => e.target);
      const head = await s.queryEvents({ order: "desc", limit: 2 });
      assert.deepEqual(ids(head.events), ["10.0.0.5:80", "10.0.0.4:80"]);
      assert.equal(head.nextCursor, head.events[1]!.cursor);
      assert.ok(BigInt(head.events[0]!.cursor) > BigInt(head.events[1]!.cursor), "cursors decrease");
      // A new event lands above the head: the older pages stay where they were.
      await s.appendEvents([ev(6)]);
      const older = await s.queryEvents({ order: "desc", limit: 2, beforeCursor: head.nextCursor });
      assert.deepEqual(ids(older.events), ["10.0.0.3:80", "10.0.0.2:80"]);
      const oldest = await s.queryEvents({ order: "desc", limit: 2, beforeCursor: older.nextCursor });
      assert.deepEqual(ids(oldest.events), ["10.0.0.1:80"]);
      const end = await s.queryEvents({ order: "desc", limit: 2, beforeCursor: oldest.nextCursor });
      assert.deepEqual(end, { events: [], nextCursor: oldest.nextCursor });
      assert.deepEqual((await s.queryEvents({ order: "desc", limit: 2, beforeCursor: "0" })).events, []);
      assert.deepEqual(ids((await s.queryEvents({ order: "desc", limit: 1 })).events), ["10.0.0.6:80"]);
      // Filters and the time range apply the same newest first.
      const ranged = await s.queryEvents({
        order: "desc",
        limit: 10,
        fromMs: ev(2).ts,
        toMs: ev(5).ts,
        target: "10.0.0.3:80",
      });
      assert.deepEqual(ids(ranged.events), ["10.0.0.3:80"]);
      // Both bounds: a window, either way round.
      const all = await allEvents(s, {}, 1000);
      const window = { afterCursor: all[1]!.cursor, beforeCursor: all[4]!.cursor };
      assert.deepEqual(ids((await s.queryEvents({ ...window, order: "desc", limit: 10 })).events), [
        "10.0.0.4:80",
        "10.0.0.3:80",
      ]);
      assert.deepEqual(ids((await s.queryEvents({ ...window, limit: 10 })).events), [
        "10.0.0.3:80",
        "10.0.0.4:80",
      ]);
    });

    it("paging newest first through any filter and bounds is exactly the reverse of oldest first", async () => {
      const s = await open("n1");
      const types = ["verdict.changed", "observation.changed", "member.dead", "target.admin"];
      const pools = ["p0", "p1", "p2"];
      const targets = ["t0", "t1"];
      const event = fc.record({
        type: fc.constantFrom(...types),
        pool: fc.option(fc.constantFrom(...pools), { nil: undefined }),
        target: fc.option(fc.constantFrom(...targets), { nil: undefined }),
        ts: fc.integer({ min: 0, max: 1_000 }),
      });
      const filter = fc.record(
        {
          pool: fc.constantFrom(...pools, "nope"),
          target: fc.constantFrom(...targets),
          types: fc.subarray(types),
          fromMs: fc.integer({ min: 0, max: 1_000 }),
          toMs: fc.integer({ min: 0, max: 1_001 }),
        },
        { requiredKeys: [] },
      );
      // Bounds pick among the stored cursors, "0" and one past the newest (indexes modulo that list).
      const bound = fc.option(fc.nat(), { nil: undefined });
      // Runs add to one database: every run pages through what all runs so far stored.
      let run = 0;
      let stored: EventRecord[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.array(event, { maxLength: 30 }),
          filter,
          fc.integer({ min: 1, max: 12 }),
          bound,
          bound,
          async (events, f, limit, afterAt, beforeAt) => {
            const r = run++;
            if (events.length > 0) {
              await s.appendEvents(events.map((e, i) => ({ id: `r${r}-${i}`, ...e })));
              stored = await allEvents(s, {}, 1000);
            }
            const candidates = [
              "0",
              ...stored.map((e) => e.cursor),
              String(Number(stored.at(-1)?.cursor ?? 0) + 5),
            ];
            const pick = (at: number | undefined) =>
              at === undefined ? undefined : candidates[at % candidates.length]!;
            const afterCursor = pick(afterAt);
            const beforeCursor = pick(beforeAt);
            const q: Omit<EventQuery, "limit" | "order"> = {
              ...f,
              ...(afterCursor === undefined ? {} : { afterCursor }),
              ...(beforeCursor === undefined ? {} : { beforeCursor }),
            };
            const want = stored.filter(
              (e) =>
                (f.pool === undefined || e.pool === f.pool) &&
                (f.target === undefined || e.target === f.target) &&
                (f.types === undefined || f.types.includes(e.type)) &&
                (f.fromMs === undefined || e.ts >= f.fromMs) &&
                (f.toMs === undefined || e.ts < f.toMs) &&
                (afterCursor === undefined || Number(e.cursor) > Number(afterCursor)) &&
                (beforeCursor === undefined || Number(e.cursor) < Number(beforeCursor)),
            );
            const asc = await pageThrough(s, q, "asc", limit);
            const desc = await pageThrough(s, q, "desc", limit);
            assert.deepEqual(asc, want, "oldest first: the model");
            assert.deepEqual(desc, [...asc].reverse(), "newest first: the reverse");
          },
        ),
        { numRuns: 40, seed: 4321 },
      );
      assert.ok(stored.length > 100, `the runs stored events (${stored.length})`);
    });

    it("refuses bad queries and bad events, and writes nothing from a refused call", async () => {
      const s = await open("n1");
      for (const afterCursor of ["abc", "-1", "1.5", " 1", "99999999999999999999", "0x10"]) {
        await assert.rejects(
          s.queryEvents({ limit: 10, afterCursor }),
          isCode(ErrorCode.badRequest),
          afterCursor,
        );
      }
      for (const beforeCursor of ["abc", "-1", "1.5", " 1", "99999999999999999999", "0x10"]) {
        await assert.rejects(
          s.queryEvents({ limit: 10, order: "desc", beforeCursor }),
          isCode(ErrorCode.badRequest),
          beforeCursor,
        );
      }
      for (const order of ["sideways", "DESC", "", null, 1]) {
        await assert.rejects(
          s.queryEvents({ limit: 10, order: order as "asc" }),
          isCode(ErrorCode.badRequest),
          String(order),
        );
      }
      for (const limit of [0, -1, 1.5, 1001, Number.NaN]) {
        await assert.rejects(s.queryEvents({ limit }), isCode(ErrorCode.badRequest), String(limit));
        await assert.rejects(
          s.queryEvents({ limit, order: "desc" }),
          isCode(ErrorCode.badRequest),
          `desc ${limit}`,
        );
      }
      await assert.rejects(s.queryEvents({ limit: 1, fromMs: 1.5 }), isCode(ErrorCode.badRequest));
      await assert.rejects(
        s.queryEvents({ limit: 1, types: Array.from({ length: 65 }, (_, i) => `t${i}`) }),
        isCode(ErrorCode.badRequest),
      );
      const bad: unknown[] = [
        { id: "", ts: 1, type: "x" },
        { id: "x".repeat(201), ts: 1, type: "x" },
        { id: "a", ts: -1, type: "x" },
        { id: "a", ts: 1.5, type: "x" },
        { id: "a", ts: 1 },
        { id: "a", ts: 1, type: "x", pool: 7 },
        { id: "a", ts: 1, type: "x", cause: "c".repeat(5000) },
        { id: "a", ts: 1, type: "x", cause: 5 },
        { id: "a", ts: 1, type: "x", target: "10.0.0.1:80\u0000" },
        { id: "a", ts: 1, type: "x", data: { big: "d".repeat(17 * 1024) } },
        { id: "a", ts: 1, type: "x", data: [1, 2] },
        null,
      ];
      for (const b of bad) {
        await assert.rejects(
          s.appendEvents([ev(1), b as StoredEvent]),
          isCode(ErrorCode.badRequest),
          JSON.stringify(b),
        );
      }
      const good = rollup("n1", "t", T0, [1, 2]);
      const badRollups: Partial<RollupRow>[] = [
        { minuteStartMs: T0 + 1 },
        { minuteStartMs: -MIN },
        { count: 0 },
        { failures: 3 },
        { failures: -1 },
        { latencyMsMin: 5, latencyMsMax: 1 },
        { latencyMsSum: Number.NaN },
        { latencyMsMax: Number.POSITIVE_INFINITY },
        { sketch: new Uint8Array([9, 9, 9]) },
        { node: "" },
      ];
      for (const over of badRollups) {
        await assert.rejects(
          s.writeRollups([good, { ...good, ...over }]),
          isCode(ErrorCode.badRequest),
          JSON.stringify(over),
        );
      }
      await assert.rejects(
        s.queryRollups({ pool: "web", target: "t", fromMs: 0, toMs: 1, limit: 0 }),
        isCode(ErrorCode.badRequest),
      );
      await s.flush();
      assert.deepEqual((await s.queryEvents({ limit: 10 })).events, []);
      assert.deepEqual(await s.queryRollups({ pool: "web", target: "t", fromMs: 0, toMs: T0 + HOUR }), []);
    });

    it("round-trips rollups and merges a minute written twice", async () => {
      const s = await open("n1");
      const s1 = samplesFor(1, 6);
      const s2 = samplesFor(2, 6);
      const s3 = samplesFor(3, 3);
      await s.writeRollups([
        rollup("n1", "a:80", T0, s1, 1),
        rollup("n2", "a:80", T0, s3),
        rollup("n1", "b:80", T0, s1),
      ]);
      // The same minute again: once in its own batch, once twice within one batch.
      await s.writeRollups([rollup("n1", "a:80", T0, s2, 2)]);
      await Promise.all([
        s.writeRollups([rollup("n1", "a:80", T0, s3)]),
        s.writeRollups([rollup("n1", "a:80", T0, s3)]),
      ]);
      await s.writeRollups([rollup("n1", "a:80", T0 + MIN, s3)]);

      const rows = await s.queryRollups({ pool: "web", target: "a:80", fromMs: T0, toMs: T0 + 2 * MIN });
      assert.deepEqual(
        rows.map((r) => [r.startMs, r.node, r.stepMs]),
        [
          [T0, "n1", MIN],
          [T0, "n2", MIN],
          [T0 + MIN, "n1", MIN],
        ],
      );
      const all = [...s1, ...s2, ...s3, ...s3];
      const merged = rows[0]!;
      assert.equal(merged.count, all.length);
      assert.equal(merged.failures, 3);
      assert.equal(merged.latencyMsMin, Math.min(...all));
      assert.equal(merged.latencyMsMax, Math.max(...all));
      assert.ok(Math.abs(merged.latencyMsSum - all.reduce((a, b) => a + b, 0)) < 1e-9);
      // Merging is exact: the stored sketch is byte for byte the sketch of all the samples.
      assert.deepEqual(merged.sketch, LatencySketch.of(all).encode());
      assert.deepEqual(rows[1]!.sketch, LatencySketch.of(s3).encode());

      const onlyN2 = await s.queryRollups({
        pool: "web",
        target: "a:80",
        fromMs: T0,
        toMs: T0 + 2 * MIN,
        node: "n2",
      });
      assert.deepEqual(
        onlyN2.map((r) => r.node),
        ["n2"],
      );
      // [fromMs, toMs): the end is exclusive.
      assert.equal(
        (await s.queryRollups({ pool: "web", target: "a:80", fromMs: T0, toMs: T0 + MIN })).length,
        2,
      );
      assert.equal(
        (await s.queryRollups({ pool: "web", target: "a:80", fromMs: T0 + 1, toMs: T0 + HOUR })).length,
        1,
      );
      assert.equal(
        (await s.queryRollups({ pool: "web", target: "a:80", fromMs: T0, toMs: T0 + HOUR, limit: 1 })).length,
        1,
      );
      assert.deepEqual(
        await s.queryRollups({ pool: "other", target: "a:80", fromMs: 0, toMs: T0 + HOUR }),
        [],
      );
      assert.deepEqual(
        await s.queryRollups({ pool: "web", target: "a:80", fromMs: 0, toMs: T0 + HOUR, resolution: "hour" }),
        [],
        "no hour rows before compaction",
      );
    });

    it("compacts finished hours into hour rows with merged counts and quantiles, once", async () => {
      const s = await open("n1");
      const samples = new Map<string, number[]>(); // node|target|hour → all samples
      const rows: RollupRow[] = [];
      let seed = 100;
      for (const node of ["n1", "n2"]) {
        for (const target of ["a:80", "b:80"]) {
          for (let m = 0; m < 3 * 60 + 10; m++) {
            const xs = samplesFor(seed++, 1 + (m % 6));
            const hour = T0 + Math.floor(m / 60) * HOUR;
            const k = `${node}|${target}|${hour}`;
            samples.set(k, [...(samples.get(k) ?? []), ...xs]);
            rows.push(rollup(node, target, T0 + m * MIN, xs, m % 2));
          }
        }
      }
      await s.writeRollups(rows);
      const now = T0 + 3 * HOUR + 10 * MIN; // hours 0..2 are over (plus 5 min); hour 3 is not
      const report = await s.compact(now);
      assert.equal(report.hoursCompacted, 3);
      assert.equal(report.hourRowsWritten, 3 * 2 * 2);
      assert.equal(report.badSketches, 0);
      assert.equal(report.done, true);

      const check = async (target: string, hours: number) => {
        const got = await s.queryRollups({
          pool: "web",
          target,
          fromMs: 0,
          toMs: T0 + DAY,
          resolution: "hour",
        });
        assert.equal(got.length, hours * 2, target);
        for (const r of got) {
          const xs = samples.get(`${r.node}|${target}|${r.startMs}`)!;
          assert.equal(r.stepMs, HOUR);
          assert.equal(r.count, xs.length);
          assert.equal(r.failures, 30);
          assert.equal(r.latencyMsMin, Math.min(...xs));
          assert.equal(r.latencyMsMax, Math.max(...xs));
          const decoded = LatencySketch.decode(r.sketch);
          assert.ok(decoded.ok);
          const exact = [...xs].sort((a, b) => a - b);
          for (const q of [0, 0.5, 0.9, 0.99, 1]) {
            const want = exact[Math.floor(q * (exact.length - 1))]!;
            const est = decoded.value.quantile(q)!;
            assert.ok(
              want < 0.001 ? est === 0 : Math.abs(est - want) <= SKETCH_RELATIVE_ACCURACY * want * (1 + 1e-9),
              `q${q}: ${est} vs exact ${want}`,
            );
          }
          assert.deepEqual(r.sketch, LatencySketch.of(xs).encode());
        }
      };
      await check("a:80", 3);
      await check("b:80", 3);
      // Minute rows stay for their own retention.
      assert.equal(
        (await s.queryRollups({ pool: "web", target: "a:80", fromMs: 0, toMs: T0 + DAY })).length,
        380,
      );

      const again = await s.compact(now);
      assert.equal(again.hoursCompacted, 0);
      await check("a:80", 3);

      // A minute arriving late for a rolled-up hour folds into the hour row too.
      const late = samplesFor(999, 4);
      await s.writeRollups([rollup("n1", "a:80", T0 + HOUR + 7 * MIN, late, 0)]);
      const k = `n1|a:80|${T0 + HOUR}`;
      samples.set(k, [...samples.get(k)!, ...late]);
      const hourRow = (
        await s.queryRollups({
          pool: "web",
          target: "a:80",
          fromMs: T0 + HOUR,
          toMs: T0 + 2 * HOUR,
          resolution: "hour",
          node: "n1",
        })
      )[0]!;
      assert.equal(hourRow.count, samples.get(k)!.length);
      assert.equal(hourRow.failures, 30);
      assert.deepEqual(hourRow.sketch, LatencySketch.of(samples.get(k)!).encode());

      const later = await s.compact(now + HOUR);
      assert.equal(later.hoursCompacted, 1);
      const h3 = await s.queryRollups({
        pool: "web",
        target: "b:80",
        fromMs: T0 + 3 * HOUR,
        toMs: T0 + 4 * HOUR,
        resolution: "hour",
      });
      assert.deepEqual(
        h3.map((r) => [r.node, r.count]),
        [
          ["n1", samples.get(`n1|b:80|${T0 + 3 * HOUR}`)!.length],
          ["n2", samples.get(`n2|b:80|${T0 + 3 * HOUR}`)!.length],
        ],
      );
    });

    it("counts a minute written while its hour is being rolled up exactly once, with two compactors", async () => {
      const a = await open("n1");
      const b = await open("n2");
      // Several SQLite compaction chunks of series: the late writes commit between chunks, some
      // behind the compaction watermark and some ahead of it.
      const targets = 1500;
      const want = new Map<string, number[]>();
      const rows: RollupRow[] = [];
      for (let t = 0; t < targets; t++) {
        for (let m = 0; m < 3; m++) {
          const xs = samplesFor(t * 10 + m, 2);
          want.set(`t${t}`, [...(want.get(`t${t}`) ?? []), ...xs]);
          rows.push(rollup("n1", `t${t}`, T0 + m * MIN, xs));
        }
      }
      await a.writeRollups(rows);
      const now = T0 + HOUR + 10 * MIN;
      const compacting = Promise.all([a.compact(now), b.compact(now)]);
      const late: Promise<void>[] = [];
      for (const t of [0, 1, 299, 300, 1200, targets - 1]) {
        const xs = samplesFor(50_000 + t, 3);
        want.set(`t${t}`, [...want.get(`t${t}`)!, ...xs]);
        late.push(a.writeRollups([rollup("n1", `t${t}`, T0 + 30 * MIN, xs)]));
      }
      await a.flush();
      const reports = await compacting;
      await Promise.all(late);
      assert.ok(reports.some((r) => r.hoursCompacted === 1));
      for (const [t, xs] of want) {
        const got = await b.queryRollups({
          pool: "web",
          target: t,
          fromMs: T0,
          toMs: T0 + HOUR,
          resolution: "hour",
        });
        assert.equal(got.length, 1, t);
        assert.equal(got[0]!.count, xs.length, t);
        assert.deepEqual(got[0]!.sketch, LatencySketch.of(xs).encode(), t);
      }
    });

    it("deletes each kind after its own retention, and minute rows only once rolled up", async () => {
      const s = await open("n1");
      const now = T0 + 48 * HOUR + 30 * MIN;
      const events = [
        ev(1, { ts: now - 11 * DAY }),
        ev(2, { ts: now - 10 * DAY - 1 }),
        ev(3, { ts: now - 10 * DAY }),
        ev(4, { ts: now - DAY }),
      ];
      await s.appendEvents(events);
      const at = [T0 + 10 * HOUR, T0 + 45 * HOUR, T0 + 47 * HOUR + 30 * MIN, T0 + 48 * HOUR + 10 * MIN];
      await s.writeRollups(at.map((m, i) => rollup("n1", "a:80", m, samplesFor(i, 3))));
      const report = await s.compact(now, {
        eventsMs: 10 * DAY,
        minuteRollupsMs: 2 * HOUR,
        hourRollupsMs: DAY,
      });
      assert.deepEqual(report, {
        hoursCompacted: 3,
        hourRowsWritten: 3,
        eventsDeleted: 2,
        minuteRowsDeleted: 2,
        hourRowsDeleted: 1,
        badSketches: 0,
        done: true,
      });
      assert.deepEqual(
        (await allEvents(s)).map((e) => e.id),
        [events[2]!.id, events[3]!.id],
      );
      const minutes = await s.queryRollups({ pool: "web", target: "a:80", fromMs: 0, toMs: now + DAY });
      assert.deepEqual(
        minutes.map((r) => r.startMs),
        at.slice(2),
      );
      const hours = await s.queryRollups({
        pool: "web",
        target: "a:80",
        fromMs: 0,
        toMs: now + DAY,
        resolution: "hour",
      });
      assert.deepEqual(
        hours.map((r) => r.startMs),
        [T0 + 45 * HOUR, T0 + 47 * HOUR],
      );

      // Defaults: events 90 days.
      const old = [ev(5, { ts: now - 91 * DAY }), ev(6, { ts: now - 89 * DAY })];
      await s.appendEvents(old);
      const byDefault = await s.compact(now);
      assert.equal(byDefault.eventsDeleted, 1);
      assert.deepEqual(
        (await allEvents(s)).map((e) => e.id),
        [events[2]!.id, events[3]!.id, old[1]!.id],
      );
      await assert.rejects(s.compact(now, { eventsMs: -1 }), isCode(ErrorCode.badRequest));
      await assert.rejects(s.compact(Number.NaN), isCode(ErrorCode.badRequest));
    });

    it("bounds the hours one compact call rolls up, and keeps their minute rows until rolled up", async () => {
      const s = await open("n1");
      const hours = 50;
      await s.writeRollups(
        Array.from({ length: hours }, (_, i) => rollup("n1", "a:80", T0 + i * HOUR, [1, 2, 3])),
      );
      const now = T0 + hours * HOUR + HOUR;
      const retention = { minuteRollupsMs: 0 };
      const first = await s.compact(now, retention);
      assert.equal(first.hoursCompacted, 48);
      assert.equal(first.done, false);
      assert.equal(first.minuteRowsDeleted, 48, "only rolled-up minutes may go");
      const left = await s.queryRollups({ pool: "web", target: "a:80", fromMs: 0, toMs: now });
      assert.deepEqual(
        left.map((r) => r.startMs),
        [T0 + 48 * HOUR, T0 + 49 * HOUR],
      );
      const second = await s.compact(now, retention);
      assert.equal(second.hoursCompacted, 2);
      assert.equal(second.done, true);
      const all = await s.queryRollups({
        pool: "web",
        target: "a:80",
        fromMs: 0,
        toMs: now,
        resolution: "hour",
      });
      assert.equal(all.length, hours);
      assert.ok(all.every((r) => r.count === 3));
    });

    it("keeps meta and docs per node, durably across reopening", async () => {
      let a = await open("n1");
      assert.equal(await a.getMeta("observation.counter"), undefined);
      await a.setMeta("observation.counter", "41");
      await a.setMeta("observation.counter", "42");
      await a.putDoc(
        "pool",
        "web",
        { check: { type: "http" }, targets: ["10.0.0.1:80"] },
        "0000017f:0001:n1",
      );
      await a.putDoc("pool", "api", { check: { type: "tcp" } }, "h1");
      await a.putDoc("pool", "gone", null, "h2");
      await a.putDoc("admin", "web/10.0.0.1:80", { state: "drain", reason: "deploy" }, "h3");
      await a.putDoc("pool", "api", { check: { type: "grpc" } }, "h4");
      await a.close();

      a = await open("n1");
      assert.equal(await a.getMeta("observation.counter"), "42");
      assert.deepEqual(await a.listDocs("pool"), [
        { namespace: "pool", key: "api", value: { check: { type: "grpc" } }, hlc: "h4" },
        { namespace: "pool", key: "gone", value: null, hlc: "h2" },
        {
          namespace: "pool",
          key: "web",
          value: { check: { type: "http" }, targets: ["10.0.0.1:80"] },
          hlc: "0000017f:0001:n1",
        },
      ]);
      assert.deepEqual(await a.getDoc("admin", "web/10.0.0.1:80"), {
        namespace: "admin",
        key: "web/10.0.0.1:80",
        value: { state: "drain", reason: "deploy" },
        hlc: "h3",
      });
      await a.deleteDoc("pool", "gone");
      await a.deleteDoc("pool", "never-there");
      assert.deepEqual(
        (await a.listDocs("pool")).map((d) => d.key),
        ["api", "web"],
      );
      assert.equal(await a.getDoc("pool", "gone"), undefined);

      const b = await open("n2");
      assert.equal(await b.getMeta("observation.counter"), undefined);
      assert.deepEqual(await b.listDocs("pool"), []);
      await b.setMeta("observation.counter", "7");
      assert.equal(await a.getMeta("observation.counter"), "42");

      await assert.rejects(a.setMeta("", "x"), isCode(ErrorCode.badRequest));
      await assert.rejects(a.setMeta("k", "v".repeat(65 * 1024)), isCode(ErrorCode.badRequest));
      await assert.rejects(a.setMeta("k", 5 as unknown as string), isCode(ErrorCode.badRequest));
      await assert.rejects(a.setMeta("k", "a\u0000b"), isCode(ErrorCode.badRequest));
      await assert.rejects(a.putDoc("", "k", {}, "h"), isCode(ErrorCode.badRequest));
      await assert.rejects(a.putDoc("pool", "k", undefined, "h"), isCode(ErrorCode.badRequest));
      await assert.rejects(a.putDoc("pool", "k", { n: 1n }, "h"), isCode(ErrorCode.badRequest));
    });

    it("keeps the newest stamp of each LWW entry whichever handle writes it, tombstones included", async () => {
      const a = await open("n1");
      const b = await open("n2");
      const T = 1_700_000_000_000;
      const pool = (value: unknown, wallMs: number, logical: number, origin: string): LwwRecord => ({
        kind: "pool",
        key: "web",
        value,
        wallMs,
        logical,
        origin,
      });
      const web = async () => (await a.listLww("pool")).find((r) => r.key === "web");

      assert.equal(await a.putLww([pool({ v: 1 }, T, 0, "n1")]), 1);
      // Same wall and logical: the origin breaks the tie, by bytes.
      assert.equal(await b.putLww([pool({ v: 2 }, T, 0, "n2")]), 1);
      assert.deepEqual(await web(), pool({ v: 2 }, T, 0, "n2"));
      // Older, from either handle: no regression. An equal stamp keeps the first write.
      assert.equal(await a.putLww([pool({ v: 3 }, T, 0, "n1")]), 0);
      assert.equal(await a.putLww([pool({ v: 4 }, T - 1, 99, "n9")]), 0);
      assert.equal(await b.putLww([pool({ v: 5 }, T, 0, "n2")]), 0);
      assert.equal(await a.putLww([pool({ v: 6 }, T, 0, "N3")]), 0, '"N3" < "n2" in bytes');
      assert.deepEqual(await web(), pool({ v: 2 }, T, 0, "n2"));
      // A greater logical counter wins over a greater origin.
      assert.equal(await a.putLww([pool({ v: 7 }, T, 1, "n0")]), 1);
      // A tombstone wins like any write; an older live value cannot bring the key back.
      assert.equal(await b.putLww([pool(null, T + 1, 0, "n2")]), 1);
      assert.equal(await a.putLww([pool({ v: 8 }, T, 5, "n1")]), 0);
      assert.deepEqual(await web(), pool(null, T + 1, 0, "n2"));
      // Duplicates in one call: the greatest stamp is the one written, whatever the order.
      assert.equal(
        await a.putLww([
          pool({ v: 9 }, T + 3, 0, "n1"),
          pool({ v: 10 }, T + 4, 0, "n1"),
          pool({ v: 11 }, T + 2, 0, "n1"),
        ]),
        1,
      );
      assert.deepEqual(await web(), pool({ v: 10 }, T + 4, 0, "n1"));

      // Kinds are separate maps; a key may hold megabytes-ish JSON and any characters.
      const admin: LwwRecord = {
        kind: "admin",
        key: "web/10.0.0.1:80",
        value: { state: "maint", reason: "disk «swap» \u0000 ok" },
        wallMs: T,
        logical: 2,
        origin: "n1",
      };
      const big: LwwRecord = {
        kind: "pool",
        key: "api",
        value: { targets: Array.from({ length: 20_000 }, (_, i) => `10.1.${i >> 8}.${i & 255}:443`) },
        wallMs: T,
        logical: 0,
        origin: "n2",
      };
      assert.equal(await b.putLww([admin, big, pool(null, T - 5, 0, "n1")]), 2);
      await a.close();
      await b.close();

      const c = await open("n3");
      assert.deepEqual(await c.listLww(), [admin, big, pool({ v: 10 }, T + 4, 0, "n1")]);
      assert.deepEqual(await c.listLww("admin"), [admin]);
      assert.deepEqual(
        (await c.listLww("pool")).map((r) => r.key),
        ["api", "web"],
      );
    });

    it("prunes LWW tombstones past their retention and nothing else", async () => {
      const s = await open("n1");
      const T = 1_700_000_000_000;
      const rec = (kind: LwwKind, key: string, value: unknown, wallMs: number): LwwRecord => ({
        kind,
        key,
        value,
        wallMs,
        logical: 0,
        origin: "n1",
      });
      await s.putLww([
        rec("pool", "old-gone", null, T - 10),
        rec("pool", "edge-gone", null, T),
        rec("pool", "old-live", { a: 1 }, T - 10),
        rec("admin", "p/x:1", null, T - 1),
      ]);
      assert.equal(await s.pruneLwwTombstones(T), 2);
      assert.equal(await s.pruneLwwTombstones(T), 0);
      assert.deepEqual(
        (await s.listLww()).map((r) => `${r.kind}:${r.key}`),
        ["pool:edge-gone", "pool:old-live"],
      );
      // Pruned, the key is free again: a later write of any stamp is stored.
      assert.equal(await s.putLww([rec("pool", "old-gone", { back: true }, T - 20)]), 1);
      await assert.rejects(s.pruneLwwTombstones(-1), isCode(ErrorCode.badRequest));
      await assert.rejects(s.pruneLwwTombstones(1.5), isCode(ErrorCode.badRequest));
    });

    it("refuses bad LWW records, writing nothing of the call", async () => {
      const s = await open("n1");
      const good: LwwRecord = {
        kind: "pool",
        key: "web",
        value: { a: 1 },
        wallMs: 5,
        logical: 0,
        origin: "n1",
      };
      const bad: [string, unknown][] = [
        ["kind", { ...good, kind: "pools" }],
        ["empty key", { ...good, key: "" }],
        ["long key", { ...good, key: "k".repeat(1025) }],
        ["NUL in key", { ...good, key: "a\u0000b" }],
        ["empty origin", { ...good, origin: "" }],
        ["origin not a string", { ...good, origin: 7 }],
        ["long origin", { ...good, origin: "o".repeat(1025) }],
        ["negative wall", { ...good, wallMs: -1 }],
        ["fractional wall", { ...good, wallMs: 1.5 }],
        ["NaN logical", { ...good, logical: Number.NaN }],
        ["undefined value", { ...good, value: undefined }],
        ["bigint value", { ...good, value: { n: 1n } }],
        ["function value", { ...good, value: () => 1 }],
        ["not an object", null],
      ];
      for (const [what, r] of bad) {
        await assert.rejects(s.putLww([good, r as LwwRecord]), isCode(ErrorCode.badRequest), what);
      }
      await assert.rejects(s.putLww("x" as unknown as LwwRecord[]), isCode(ErrorCode.badRequest));
      await assert.rejects(
        s.putLww(Array.from({ length: 10_001 }, (_, i) => ({ ...good, key: `k${i}` }))),
        isCode(ErrorCode.badRequest),
      );
      await assert.rejects(s.listLww("x" as LwwKind), isCode(ErrorCode.badRequest));
      assert.deepEqual(await s.listLww(), []);
      assert.equal(await s.putLww([]), 0);
      // Within the bound, one call is one transaction.
      assert.equal(
        await s.putLww(Array.from({ length: 10_000 }, (_, i) => ({ ...good, key: `k${i}` }))),
        10_000,
      );
    });

    it("LWW entries converge to the greatest stamp per key for any interleaving of writers", async () => {
      const a = await open("n1");
      const b = await open("n2");
      const stamp = fc.record({
        kind: fc.constantFrom<LwwKind>("pool", "admin"),
        key: fc.constantFrom("a", "b", "c"),
        wallMs: fc.integer({ min: 0, max: 3 }),
        logical: fc.integer({ min: 0, max: 2 }),
        origin: fc.constantFrom("n1", "n2", "N1", "n10"),
        deleted: fc.boolean(),
        writer: fc.constantFrom(0, 1),
      });
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(stamp, { minLength: 1, maxLength: 4 }), { maxLength: 12 }),
          async (calls) => {
            // Keys unique to this run, so runs share the database without seeing each other.
            const prefix = `r${run++}-`;
            const want = new Map<string, LwwRecord>();
            const toRecord = (x: (typeof calls)[number][number], i: number): LwwRecord => ({
              kind: x.kind,
              key: prefix + x.key,
              value: x.deleted ? null : { i },
              wallMs: x.wallMs,
              logical: x.logical,
              origin: x.origin,
            });
            let i = 0;
            for (const call of calls) {
              const records = call.map((x) => toRecord(x, i++));
              for (const r of records) {
                const k = `${r.kind}/${r.key}`;
                const had = want.get(k);
                if (had === undefined || compareStamp(r, had) > 0) want.set(k, r);
              }
              await [a, b][call[0]!.writer]!.putLww(records);
            }
            const got = (await a.listLww()).filter((r) => r.key.startsWith(prefix));
            const expected = [...want.values()].sort((x, y) =>
              x.kind !== y.kind ? (x.kind < y.kind ? -1 : 1) : x.key < y.key ? -1 : 1,
            );
            assert.deepEqual(got, expected);
          },
        ),
        { numRuns: 40, seed: 1234 },
      );
    });

    it("refuses every call once closed, and closing twice is fine", async () => {
      const s = await open("n1");
      await s.close();
      await s.close();
      await assert.rejects(s.appendEvents([ev(1)]), isCode(ErrorCode.store));
      await assert.rejects(s.queryEvents({ limit: 1 }), isCode(ErrorCode.store));
      await assert.rejects(s.getMeta("k"), isCode(ErrorCode.store));
      await assert.rejects(s.compact(T0), isCode(ErrorCode.store));
      await assert.rejects(s.putLww([]), isCode(ErrorCode.store));
      await assert.rejects(s.listLww(), isCode(ErrorCode.store));
      await assert.rejects(s.pruneLwwTombstones(0), isCode(ErrorCode.store));
    });

    it("rejects appends past the queue bound at once, and close commits what was queued", async () => {
      const s = await open("n1", { batch: { maxQueuedRows: 10, flushIntervalMs: 60_000, flushRows: 1000 } });
      const first = s.appendEvents(Array.from({ length: 8 }, (_, i) => ev(i)));
      await assert.rejects(
        s.appendEvents(Array.from({ length: 5 }, (_, i) => ev(100 + i))),
        isCode(ErrorCode.unavailable),
      );
      await s.close();
      await first;
      const again = await open("n1");
      assert.equal((await allEvents(again, {}, 100)).length, 8);
    });
  });
}
