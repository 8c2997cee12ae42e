import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type HistorySettings, historyDefaults } from "../../src/config/history.ts";
import { ManualClock } from "../../src/core/clock.ts";
import { EventLog, type VigilEvent } from "../../src/runtime/events.ts";
import {
  COUNTER_META_KEY,
  History,
  type HistoryView,
  historyLimits,
  recordsOnSharedStore,
} from "../../src/runtime/history.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { eventId } from "../../src/store/event-id.ts";
import { LatencySketch } from "../../src/store/sketch.ts";
import { eventually } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// History on its own: a SQLite store in a temporary directory, a clock moved by hand.

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A whole hour, so minute and hour boundaries are easy to read. */
const T0 = Date.UTC(2026, 0, 5, 10);

const newDir = (): string => tmpDataDir("history");

/** A clock whose wall time starts at `wallMs`. */
function clockAt(wallMs: number): ManualClock {
  return new ManualClock(0, wallMs);
}

const since = new Map<string, number>();
const view: HistoryView = {
  owners: () => [],
  observedSinceMs: (id, observer) => since.get(`${id}|${observer}`),
  liveMembers: () => ["n1"],
};

function open(
  dir: string,
  clock: ManualClock,
  settings: HistorySettings = historyDefaults,
): Promise<History> {
  return History.open({
    node: "n1",
    dataDir: dir,
    settings,
    clock,
    logger: silentLogger,
    view,
    // Timers far away: the tests call flushMinutes and compact themselves.
    tuning: { flushIntervalMs: 3_600_000, compactIntervalMs: 3_600_000 },
  });
}

const ok = (latencyMs: number) => ({ ok: true, latencyMs, reason: "status 200" });
const fail = (latencyMs: number) => ({ ok: false, latencyMs, reason: "status 503" });

describe("History: minute rollups of this node's checks", () => {
  it("writes thousands of minutes that end together a slice at a time, each after the one before is committed, a target checked meanwhile once, and flush() the rest at once", async () => {
    const dir = newDir();
    const clock = clockAt(T0 + 5_000);
    const h = await open(dir, clock);
    const slice = historyLimits.minutesPerSlice;
    const n = 2 * slice + slice / 2;
    const idOf = (i: number) => `big/10.1.${i >> 8}.${i & 255}:80`;
    for (let i = 0; i < n; i++) h.recordCheck(idOf(i), ok(1 + (i % 5)), T0 + 5_000);
    await new Promise((r) => setImmediate(r)); // folded
    const isOpen = (i: number) => {
      const [pool, target] = idOf(i).split("/") as [string, string];
      return h.openBuckets(pool, target, T0, T0 + HOUR).length === 1;
    };
    const openCount = () => Array.from({ length: n }, (_, i) => i).filter(isOpen).length;
    assert.equal(openCount(), n);
    clock.advance(MIN);
    h.flushMinutes(false);
    // One slice now, in the open map's order; the rest waits for the next turns.
    assert.equal(openCount(), n - slice);
    assert.equal(isOpen(slice - 1), false);
    assert.equal(isOpen(slice), true);
    // A target still waiting is checked in the next minute: it rolls its minute over itself,
    // and the slice that comes to it later leaves the new minute open.
    const late = n - 1;
    h.recordCheck(idOf(late), fail(9), T0 + MIN + 6_000);
    // The next slice, once the first is committed: one slice more, not the rest.
    await eventually(() => openCount() < n - slice, "a second slice written");
    assert.equal(openCount(), n - 2 * slice);
    // The first slice at least is committed (the late target's rolled-over minute went to the
    // store after it and may share its commit or the next one: the store runs on its own thread).
    assert.ok(h.stats.rollupRowsWritten >= slice, `${h.stats.rollupRowsWritten} rows written`);
    // flush() takes what is left at once.
    await h.flush();
    assert.equal(openCount(), 1);
    assert.equal(isOpen(late), true);
    const rowsOf = async (i: number) => {
      const [pool, target] = idOf(i).split("/") as [string, string];
      return h.store.queryRollups({ pool, target, fromMs: T0, toMs: T0 + HOUR });
    };
    for (const i of [0, slice, 2 * slice, late]) {
      const rows = await rowsOf(i);
      assert.deepEqual(
        rows.map((r) => [r.startMs, r.count, r.failures]),
        [[T0, 1, 0]],
        `target ${i}`,
      );
    }
    assert.equal(h.stats.rollupRowsWritten, n);
    // Closing writes the late target's new minute beside its first.
    await h.close();
    const again = await open(dir, clock);
    const [pool, target] = idOf(late).split("/") as [string, string];
    assert.deepEqual(
      (await again.store.queryRollups({ pool, target, fromMs: T0, toMs: T0 + HOUR })).map((r) => [
        r.startMs,
        r.count,
        r.failures,
      ]),
      [
        [T0, 1, 0],
        [T0 + MIN, 1, 1],
      ],
    );
    await again.close();
  });

  it("aggregates count, failures, latency and a sketch per target per minute, and writes a minute once it is over", async () => {
    const dir = newDir();
    const clock = clockAt(T0 + 5_000);
    const h = await open(dir, clock);
    const id = "web/10.0.0.1:80";
    h.recordCheck(id, ok(10), T0 + 5_000);
    h.recordCheck(id, ok(20), T0 + 15_000);
    h.recordCheck(id, fail(40), T0 + 25_000);
    h.recordCheck(id, ok(30), T0 + 35_000);
    h.recordCheck("web/10.0.0.2:80", ok(5), T0 + 36_000);
    // The next minute starts: the first minute of target 1 is queued at once.
    h.recordCheck(id, ok(50), T0 + MIN + 1_000);
    await h.flush();
    const stored = await h.store.queryRollups({
      pool: "web",
      target: "10.0.0.1:80",
      fromMs: T0,
      toMs: T0 + HOUR,
    });
    assert.equal(stored.length, 1, "only the finished minute is written");
    const row = stored[0]!;
    assert.deepEqual(
      { start: row.startMs, node: row.node, count: row.count, failures: row.failures },
      { start: T0, node: "n1", count: 4, failures: 1 },
    );
    assert.deepEqual([row.latencyMsMin, row.latencyMsMax, row.latencyMsSum], [10, 40, 100]);
    const sketch = LatencySketch.decode(row.sketch);
    assert.ok(sketch.ok);
    assert.equal(sketch.value.count, 4);
    assert.ok(Math.abs(sketch.value.quantile(0.5)! - 20) <= 0.2, `p50 ${sketch.value.quantile(0.5)}`);

    // The open minute is part of what this node answers, before it is written.
    const r = await h.rollups({
      pool: "web",
      target: "10.0.0.1:80",
      fromMs: T0,
      toMs: T0 + HOUR,
      hourly: false,
      node: "n1",
    });
    assert.deepEqual(
      r.rows.map((x) => [x.startMs, x.count]),
      [
        [T0, 4],
        [T0 + MIN, 1],
      ],
    );
    assert.equal(r.truncated, false);

    // The periodic flush writes target 2's minute (over) and keeps target 1's (still open).
    clock.advance(MIN);
    h.flushMinutes(false);
    await h.flush();
    assert.equal(
      (await h.store.queryRollups({ pool: "web", target: "10.0.0.2:80", fromMs: T0, toMs: T0 + HOUR }))
        .length,
      1,
    );
    assert.equal(h.stats.checksRecorded, 6);
    await h.close();

    // Closing wrote the open minute; a restart writing more of that minute merges into it.
    const h2 = await open(dir, clock);
    h2.recordCheck(id, fail(70), T0 + MIN + 50_000);
    await h2.close();
    const h3 = await open(dir, clock);
    const rows = await h3.store.queryRollups({
      pool: "web",
      target: "10.0.0.1:80",
      fromMs: T0,
      toMs: T0 + HOUR,
    });
    assert.deepEqual(
      rows.map((x) => [x.startMs, x.count, x.failures, x.latencyMsMax]),
      [
        [T0, 4, 1, 40],
        [T0 + MIN, 2, 1, 70],
      ],
    );
    await h3.close();
  });

  it("reads hour rows where an hour is rolled up and minute rows for the rest, never both", async (t) => {
    const clock = clockAt(T0 + 3 * HOUR);
    const h = await open(newDir(), clock);
    t.after(() => h.close());
    // Minutes in hour 0 (ended long ago: rolled up) and in hour 2 (ending now: not yet).
    for (const m of [0, 1, 59]) h.recordCheck("web/a:1", ok(10 + m), T0 + m * MIN);
    for (const m of [120, 121]) h.recordCheck("web/a:1", ok(5), T0 + m * MIN);
    h.flushMinutes(true);
    await h.flush();
    await h.compact();
    const q = { pool: "web", target: "a:1", fromMs: T0, toMs: T0 + 3 * HOUR };
    const hours = await h.store.queryRollups({ ...q, resolution: "hour" });
    assert.deepEqual(
      hours.map((x) => [x.startMs, x.count]),
      [[T0, 3]],
    );
    assert.equal(
      (await h.store.queryRollups(q)).length,
      5,
      "minute rows are kept after their hour is rolled up",
    );
    const r = await h.rollups({ ...q, hourly: true });
    assert.deepEqual(
      r.rows.map((x) => [x.startMs, x.stepMs, x.count]).sort((a, b) => a[0]! - b[0]!),
      [
        [T0, HOUR, 3],
        [T0 + 120 * MIN, MIN, 1],
        [T0 + 121 * MIN, MIN, 1],
      ],
      "each check counted once: the hour row, not its minutes",
    );
  });

  it("never passes a bad latency to the sketch, and ignores an id that names no pool", async () => {
    const h = await open(newDir(), clockAt(T0));
    h.recordCheck("web/a:1", { ok: false, latencyMs: Number.NaN, reason: "x" }, T0);
    h.recordCheck("web/a:1", { ok: false, latencyMs: -3, reason: "x" }, T0 + 1);
    h.recordCheck("no-slash", ok(1), T0);
    const r = await h.rollups({ pool: "web", target: "a:1", fromMs: T0, toMs: T0 + MIN, hourly: false });
    assert.equal(h.stats.checksRecorded, 2);
    assert.equal(h.stats.checksDropped, 1);
    assert.deepEqual([r.rows[0]?.count, r.rows[0]?.failures, r.rows[0]?.latencyMsMax], [2, 2, 0]);
    await h.close();
  });
});

describe("History: events", () => {
  function logEvent(log: EventLog, ts: number, e: Omit<VigilEvent, "seq" | "ts">): VigilEvent {
    return log.append(ts, e);
  }

  it("stores every event of the log with an id; a replicated observation change is stored as the observer's, once", async () => {
    const h = await open(newDir(), clockAt(T0));
    const log = new EventLog();
    h.start(log);
    since.set("web/a:1|n2", T0 - 700);
    // The observer's own event (as it would be written on n2) and the copy n1 learns by gossip later.
    const own = h.toStored({
      seq: 1,
      ts: T0 - 700,
      type: "observation.changed",
      pool: "web",
      target: "a:1",
      node: "n2",
      from: "up",
      to: "down",
      cause: "status 503",
    });
    logEvent(log, T0, {
      type: "observation.changed",
      pool: "web",
      target: "a:1",
      node: "n2",
      to: "down",
      cause: "status 503",
      replicated: true,
    });
    // A register rewritten without a state change (a new owner reporting): the same fact again.
    logEvent(log, T0 + 5, {
      type: "observation.changed",
      pool: "web",
      target: "a:1",
      node: "n2",
      to: "down",
      cause: "status 503",
      replicated: true,
    });
    logEvent(log, T0 + 10, {
      type: "verdict.changed",
      pool: "web",
      target: "a:1",
      node: "n1",
      from: "up",
      to: "down",
      cause: "status 503",
      observers: "n2:down",
    });
    logEvent(log, T0 + 10, { type: "target.admin", pool: "web", target: "a:1", node: "n1", to: "maint" });
    logEvent(log, T0 + 10, { type: "target.admin", pool: "web", target: "a:1", node: "n1", to: "none" });
    logEvent(log, T0 + 10, { type: "target.admin", pool: "web", target: "a:1", node: "n1", to: "maint" });
    logEvent(log, T0 + 11, { type: "member.dead", node: "n3", incarnation: 4, cause: "dead" });
    await h.flush();
    const page = await h.store.queryEvents({ limit: 100 });
    const types = page.events.map((e) => e.type);
    assert.deepEqual(types, [
      "observation.changed",
      "verdict.changed",
      "target.admin",
      "target.admin",
      "target.admin",
      "member.dead",
    ]);
    const obs = page.events[0]!;
    assert.equal(obs.id, own.id, "the replicated copy has the id the observer computes");
    assert.equal(
      obs.id,
      eventId({
        type: "observation.changed",
        ts: T0 - 700,
        pool: "web",
        target: "a:1",
        node: "n2",
        to: "down",
      }),
    );
    assert.equal(obs.ts, T0 - 700, "stored at the observer's time, not when gossip brought it");
    assert.deepEqual(obs.data, { replicated: true, seenAt: T0 });
    assert.deepEqual(page.events[1]!.data, { observers: "n2:down" });
    assert.deepEqual(page.events[5]!.data, { incarnation: 4 });
    assert.equal(
      new Set(page.events.map((e) => e.id)).size,
      6,
      "three admin flips in one ms stay three events",
    );
    assert.equal(h.stats.eventsWritten, 7);
    await h.close();
  });

  it("fits strings the store would refuse (NUL, over-long causes) instead of losing the event", async () => {
    const h = await open(newDir(), clockAt(T0));
    const log = new EventLog();
    h.start(log);
    log.append(T0, { type: "pool.created", pool: "web", node: "n1", cause: `a\u0000b${"x".repeat(10_000)}` });
    log.append(T0, { type: "pool.updated", pool: "web", node: "n1", cause: "", huge: "y".repeat(100_000) });
    await h.flush();
    const page = await h.store.queryEvents({ limit: 10 });
    assert.equal(page.events.length, 2);
    assert.equal(page.events[0]!.cause?.length, 4_096);
    assert.ok(page.events[0]!.cause?.startsWith("a\ufffdb"));
    assert.equal(page.events[1]!.cause, undefined);
    assert.equal(page.events[1]!.data, undefined, "data over the store's bound is left out");
    await h.close();
  });

  it("counts and drops what the store refuses, without throwing into the node", async (t) => {
    const h = await open(newDir(), clockAt(T0));
    t.after(() => h.close());
    await h.store.close();
    h.recordEvent({ seq: 1, ts: T0, type: "pool.created", pool: "web" });
    h.recordCheck("web/a:1", ok(1), T0);
    h.flushMinutes(true);
    await h.flush().catch(() => {});
    assert.equal(h.stats.eventsDropped, 1);
    assert.equal(h.stats.rollupRowsDropped, 1);
  });
});

describe("History: the observation counter", () => {
  it("starts past the boot epoch and past every counter a previous run reserved", async () => {
    const dir = newDir();
    const clock = clockAt(T0);
    const h = await open(dir, clock);
    const epoch = T0 * 1000;
    assert.equal(await h.startCounter(epoch), epoch);
    assert.equal(await h.store.getMeta(COUNTER_META_KEY), String(epoch + historyLimits.counterReserve));
    // Below the low-water mark nothing is written; past it, a new reservation.
    h.noteCounter(epoch + 10);
    assert.equal(h.stats.counterWrites, 1);
    h.noteCounter(epoch + historyLimits.counterReserve - historyLimits.counterLowWater + 1);
    await h.flush();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.stats.counterWrites, 2);
    const reserved = epoch + 2 * historyLimits.counterReserve - historyLimits.counterLowWater + 1;
    assert.equal(await h.store.getMeta(COUNTER_META_KEY), String(reserved));
    await h.close();

    // The clock went back an hour: the persisted reservation wins over the boot epoch.
    const h2 = await open(dir, clock);
    assert.equal(await h2.startCounter(epoch - HOUR * 1000), reserved);
    // A counter past the reservation (it could not be written in time) is counted.
    h2.noteCounter(reserved + historyLimits.counterReserve + 5);
    assert.equal(h2.stats.counterOverruns, 1);
    await h2.close();
  });

  it("ignores an unreadable persisted counter", async () => {
    const dir = newDir();
    const h = await open(dir, clockAt(T0));
    await h.store.setMeta(COUNTER_META_KEY, "12abc");
    assert.equal(await h.startCounter(7_000), 7_000);
    await h.store.setMeta(COUNTER_META_KEY, "9999999999999999");
    assert.equal(await h.startCounter(7_000), 7_000, "past 2^53 is damage");
    await h.close();
  });
});

describe("History: compaction and retention", () => {
  it("applies the configured retention", async () => {
    const clock = clockAt(T0 + 10 * DAY);
    const settings: HistorySettings = {
      store: { kind: "sqlite" },
      retention: { eventsMs: 2 * DAY, minuteRollupsMs: DAY, hourRollupsMs: 5 * DAY },
    };
    const h = await open(newDir(), clock, settings);
    h.recordEvent({ seq: 1, ts: T0, type: "pool.created", pool: "old" });
    h.recordEvent({ seq: 2, ts: T0 + 9 * DAY, type: "pool.created", pool: "recent" });
    h.recordCheck("web/a:1", ok(3), T0); // ten days old: its hour row is past 5 days too
    h.recordCheck("web/a:1", ok(3), T0 + 8 * DAY); // its minute row is past a day, its hour row is kept
    h.flushMinutes(true);
    await h.flush();
    await h.compact();
    const events = await h.store.queryEvents({ limit: 10 });
    assert.deepEqual(
      events.events.map((e) => e.pool),
      ["recent"],
    );
    const q = { pool: "web", target: "a:1", fromMs: 0, toMs: T0 + 11 * DAY };
    assert.equal((await h.store.queryRollups({ ...q, resolution: "minute" })).length, 0);
    assert.deepEqual(
      (await h.store.queryRollups({ ...q, resolution: "hour" })).map((r) => r.startMs),
      [T0 + 8 * DAY],
    );
    assert.equal(h.stats.compactRuns, 1);
    await h.close();
  });
});

describe("recordsOnSharedStore: one designated recorder per fact", () => {
  const v = (owners: string[], live: string[]) => ({ owners: () => owners, liveMembers: () => live });
  const cases: [string, Omit<VigilEvent, "seq" | "ts">, string[], string[], string, boolean][] = [
    ["the observer records its own change", { type: "observation.changed", node: "n2" }, [], [], "n2", true],
    [
      "the first other owner records a replicated copy",
      { type: "observation.changed", pool: "p", target: "t:1", node: "n2", replicated: true },
      ["n2", "n1", "n3"],
      [],
      "n1",
      true,
    ],
    [
      "no other node does",
      { type: "observation.changed", pool: "p", target: "t:1", node: "n2", replicated: true },
      ["n2", "n1", "n3"],
      [],
      "n3",
      false,
    ],
    [
      "an observer no longer owning: the first owner",
      { type: "observation.changed", pool: "p", target: "t:1", node: "n4", replicated: true },
      ["n3", "n1"],
      [],
      "n3",
      true,
    ],
    [
      "the first owner records a verdict",
      { type: "verdict.changed", pool: "p", target: "t:1" },
      ["n2", "n1"],
      [],
      "n2",
      true,
    ],
    [
      "the second owner does not",
      { type: "verdict.changed", pool: "p", target: "t:1" },
      ["n2", "n1"],
      [],
      "n1",
      false,
    ],
    [
      "no owners: the first live member",
      { type: "verdict.changed", pool: "p", target: "t:1" },
      [],
      ["n3", "n2"],
      "n2",
      true,
    ],
    ["the node that made a pool change", { type: "pool.created", cause: "api" }, [], [], "n1", true],
    ["not a node that learned it", { type: "pool.updated", cause: "replicated" }, [], [], "n1", false],
    ["the node that set an admin state", { type: "target.admin", node: "n1" }, [], [], "n1", true],
    ["not a node that learned it", { type: "target.admin", node: "replicated" }, [], [], "n2", false],
    [
      "membership: the first live member",
      { type: "member.dead", node: "n3" },
      [],
      ["n1", "n2", "n3"],
      "n1",
      true,
    ],
    ["membership: not the others", { type: "member.dead", node: "n3" }, [], ["n1", "n2", "n3"], "n2", false],
    [
      "membership: never the subject itself",
      { type: "member.joined", node: "n1" },
      [],
      ["n1", "n2"],
      "n2",
      true,
    ],
  ];
  for (const [what, e, owners, live, self, want] of cases) {
    it(`${what}: ${self} ${want ? "records" : "skips"} ${e.type}`, () => {
      assert.equal(recordsOnSharedStore({ seq: 1, ts: 0, ...e } as VigilEvent, self, v(owners, live)), want);
    });
  }
});
