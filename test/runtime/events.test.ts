import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EventLog, type EventQuery, type EventType, type VigilEvent } from "../../src/runtime/events.ts";

// The in-memory event ring (the log of a node with `store: none`): paging oldest first with
// `since`, newest first with `before`, filters alike both ways, across the ring's wraparound.

const seqs = (events: readonly VigilEvent[]): number[] => events.map((e) => e.seq);

function logOf(capacity: number, count: number): EventLog {
  const log = new EventLog(capacity);
  for (let i = 1; i <= count; i++) {
    log.append(1_000 + i, {
      type: "verdict.changed",
      pool: i % 2 === 0 ? "even" : "odd",
      target: `t${i % 3}`,
    });
  }
  return log;
}

/** Every matching event, page by page, following `next`. */
function pageThrough(log: EventLog, q: Omit<EventQuery, "limit">, limit: number): VigilEvent[] {
  const desc = q.order === "desc";
  const out: VigilEvent[] = [];
  let cursor = desc ? q.before : q.since;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = log.query({
      ...q,
      limit,
      ...(cursor === undefined ? {} : desc ? { before: cursor } : { since: cursor }),
    });
    out.push(...page.events);
    if (page.events.length < limit) return out;
    assert.equal(page.next, page.events.at(-1)!.seq, "a full page continues after its last event");
    cursor = page.next;
  }
  throw new Error("paging did not end");
}

describe("EventLog.query", () => {
  it("pages oldest first with since, as before: next skips what the filter left out", () => {
    const log = logOf(100, 10);
    assert.deepEqual(log.query({ limit: 3 }), { events: log.query({ since: 0, limit: 3 }).events, next: 3 });
    assert.deepEqual(seqs(log.query({ since: 3, limit: 3 }).events), [4, 5, 6]);
    const odd = log.query({ since: 6, pool: "odd", limit: 10 });
    assert.deepEqual(seqs(odd.events), [7, 9]);
    assert.equal(odd.next, 10, "the last event examined, though it did not match");
    assert.deepEqual(log.query({ since: 10, limit: 10 }), { events: [], next: 10 });
    assert.deepEqual(log.query({ since: 50, limit: 10 }), { events: [], next: 50 });
  });

  it("pages newest first with before, and new events do not move the older pages", () => {
    const log = logOf(100, 10);
    const head = log.query({ order: "desc", limit: 3 });
    assert.deepEqual(seqs(head.events), [10, 9, 8]);
    assert.equal(head.next, 8);
    log.append(2_000, { type: "pool.created", pool: "new" });
    const older = log.query({ order: "desc", before: head.next, limit: 3 });
    assert.deepEqual(seqs(older.events), [7, 6, 5]);
    const odd = log.query({ order: "desc", before: 5, pool: "odd", limit: 10 });
    assert.deepEqual(seqs(odd.events), [3, 1]);
    assert.equal(odd.next, 1);
    assert.deepEqual(log.query({ order: "desc", before: 1, limit: 10 }), { events: [], next: 1 });
    assert.deepEqual(seqs(log.query({ order: "desc", limit: 1 }).events), [11]);
    assert.deepEqual(seqs(log.query({ order: "desc", before: 1_000, limit: 2 }).events), [11, 10]);
    assert.deepEqual(new EventLog(10).query({ order: "desc", limit: 5 }), { events: [], next: 0 });
  });

  it("applies pool, target, types and the time range the same in both orders", () => {
    const log = logOf(100, 30);
    const q = { pool: "even", target: "t1", types: new Set(["verdict.changed"]), fromMs: 1_005, toMs: 1_029 };
    const asc = log.query({ ...q, limit: 100 }).events;
    assert.deepEqual(seqs(asc), [10, 16, 22, 28]);
    assert.deepEqual(seqs(log.query({ ...q, order: "desc", limit: 100 }).events), [28, 22, 16, 10]);
    assert.deepEqual(
      log.query({ ...q, types: new Set(["member.dead"]), order: "desc", limit: 100 }).events,
      [],
    );
  });

  it("reaches back only as far as the ring holds once it has wrapped", () => {
    const log = logOf(5, 12);
    assert.equal(log.firstSeq, 8);
    assert.deepEqual(seqs(log.query({ order: "desc", limit: 10 }).events), [12, 11, 10, 9, 8]);
    assert.deepEqual(seqs(log.query({ order: "desc", before: 10, limit: 10 }).events), [9, 8]);
    assert.deepEqual(log.query({ order: "desc", before: 8, limit: 10 }), { events: [], next: 8 });
    assert.deepEqual(log.query({ order: "desc", before: 3, limit: 10 }), { events: [], next: 3 });
    assert.deepEqual(seqs(log.query({ since: 2, limit: 10 }).events), [8, 9, 10, 11, 12]);
  });

  it("caps a page at limits.maxEventsPerPage", () => {
    const log = logOf(5_000, 2_500);
    assert.equal(log.query({ order: "desc", limit: 5_000 }).events.length, 1_000);
    assert.equal(log.query({ limit: 5_000 }).events.length, 1_000);
  });

  it("paging newest first is exactly the reverse of oldest first, for any filter, bounds and wraparound", () => {
    const types: EventType[] = ["verdict.changed", "observation.changed", "member.dead"];
    const event = fc.record({
      type: fc.constantFrom(...types),
      pool: fc.option(fc.constantFrom("a", "b"), { nil: undefined }),
      target: fc.option(fc.constantFrom("t0", "t1"), { nil: undefined }),
      ts: fc.integer({ min: 0, max: 100 }),
    });
    const filter = fc.record(
      {
        pool: fc.constantFrom("a", "b", "nope"),
        target: fc.constantFrom("t0", "t1"),
        types: fc.subarray(types).map((t) => new Set<string>(t)),
        fromMs: fc.integer({ min: 0, max: 100 }),
        toMs: fc.integer({ min: 0, max: 101 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(event, { maxLength: 80 }),
        filter,
        fc.integer({ min: 1, max: 9 }),
        fc.option(fc.integer({ min: 0, max: 90 }), { nil: undefined }),
        (capacity, events, f, limit, before) => {
          const log = new EventLog(capacity);
          const held: VigilEvent[] = [];
          for (const e of events) held.push(log.append(e.ts, e));
          const want = held
            .slice(-capacity)
            .filter(
              (e) =>
                (f.pool === undefined || e.pool === f.pool) &&
                (f.target === undefined || e.target === f.target) &&
                (f.types === undefined || f.types.has(e.type)) &&
                (f.fromMs === undefined || e.ts >= f.fromMs) &&
                (f.toMs === undefined || e.ts < f.toMs) &&
                (before === undefined || e.seq < before),
            );
          const desc = pageThrough(
            log,
            { ...f, order: "desc", ...(before === undefined ? {} : { before }) },
            limit,
          );
          assert.deepEqual(seqs(desc), seqs(want).reverse());
          const asc = pageThrough(log, f, limit).filter((e) => before === undefined || e.seq < before);
          assert.deepEqual(seqs(asc), seqs(want));
        },
      ),
      { numRuns: 300, seed: 20_260_301 },
    );
  });
});
