import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type ExchangeBudget,
  type ExchangeCursor,
  type ExchangeReply,
  ObservationMap,
  type Register,
} from "../../src/core/state/index.ts";

// missingFor answers from a per-observer index that skips observers the peer already covers.
// The model: the plain scan over everything the replica holds (snapshot() is every register,
// hidden ones too, in canonical order), filtered and cut exactly as missingFor documents.
// Random operations exercise every path that adds, updates or drops a register.

type Value = { v: number };
const SELF = "a";
const OTHERS = ["b", "c", "d"] as const;
const OBSERVERS = [SELF, ...OTHERS];
const TARGETS = 6;

type Op =
  | { kind: "write"; target: number }
  | { kind: "gen"; observer: number; target: number; skip: number }
  | { kind: "genOwn"; target: number; ahead: number }
  | { kind: "replay"; pick: number }
  | { kind: "exchange"; picks: number[]; complete: boolean }
  | { kind: "remove"; target: number }
  | { kind: "restore"; target: number }
  | { kind: "reap"; observer: number }
  | { kind: "admit"; observer: number }
  | { kind: "gc"; advanceMs: number };

const target = fc.integer({ min: 0, max: TARGETS - 1 });
const other = fc.integer({ min: 0, max: OTHERS.length - 1 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("write" as const), target }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("gen" as const),
      observer: other,
      target,
      skip: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("genOwn" as const),
      target,
      ahead: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("replay" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("exchange" as const),
      picks: fc.array(fc.nat(), { maxLength: 5 }),
      complete: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), target }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("restore" as const), target }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reap" as const), observer: other }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("admit" as const), observer: other }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("gc" as const), advanceMs: fc.integer({ min: 0, max: 30 }) }),
  },
);

interface Query {
  peer: number[];
  maxRegisters: number;
  maxBytes: number;
  cursor: { observer: number; counter: number } | undefined;
}

const queryArb: fc.Arbitrary<Query> = fc.record({
  peer: fc.array(fc.integer({ min: 0, max: 12 }), {
    minLength: OBSERVERS.length,
    maxLength: OBSERVERS.length,
  }),
  maxRegisters: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1000)),
  maxBytes: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(Number.POSITIVE_INFINITY)),
  cursor: fc.option(
    fc.record({
      observer: fc.integer({ min: 0, max: OBSERVERS.length - 1 }),
      counter: fc.integer({ min: 0, max: 12 }),
    }),
    { nil: undefined },
  ),
});

const sizeOf = (r: Register<unknown>): number => r.targetId.length + 1 + ((r.value as Value).v % 5);

/** A replica under test plus the registers "the network" produced, with unique dots. */
class Harness {
  readonly map = new ObservationMap<Value>({
    self: SELF,
    retentionMs: 20,
    maxRemovedTargets: 1,
    maxReapedObservers: 2,
  });
  readonly produced: Register<Value>[] = [];
  private readonly seq = new Map<string, number>();
  private nowMs = 0;
  private nextValue = 0;

  private fresh(observer: string, targetIdx: number, counter: number): Register<Value> {
    const r = { targetId: `t${targetIdx}`, observer, counter, value: { v: this.nextValue++ } };
    this.produced.push(r);
    return r;
  }

  run(op: Op): void {
    const m = this.map;
    switch (op.kind) {
      case "write":
        m.localWrite(`t${op.target}`, { v: this.nextValue++ });
        return;
      case "gen": {
        // Counters of one observer are unique across its registers; gaps leave room for
        // deltas that arrive out of order.
        const o = OTHERS[op.observer]!;
        const c = (this.seq.get(o) ?? 0) + 1 + op.skip;
        this.seq.set(o, c);
        m.applyDelta([this.fresh(o, op.target, c)]);
        return;
      }
      case "genOwn":
        // Our own write from before a restart, ahead of the counter.
        m.applyDelta([this.fresh(SELF, op.target, m.counter + op.ahead)]);
        return;
      case "replay":
        if (this.produced.length > 0) m.applyDelta([this.produced[op.pick % this.produced.length]!]);
        return;
      case "exchange": {
        if (this.produced.length === 0) return;
        const regs = [...new Set(op.picks.map((i) => this.produced[i % this.produced.length]!))].sort(
          (x, y) => (x.observer < y.observer ? -1 : x.observer > y.observer ? 1 : x.counter - y.counter),
        );
        const vector = OBSERVERS.map(
          (o) => [o, regs.reduce((c, r) => (r.observer === o ? r.counter : c), 0)] as const,
        );
        m.mergeExchange(regs, vector, op.complete);
        return;
      }
      case "remove":
        m.removeTarget(`t${op.target}`, this.nowMs);
        return;
      case "restore":
        m.restoreTarget(`t${op.target}`);
        return;
      case "reap":
        m.reapObserver(OTHERS[op.observer]!, this.nowMs);
        return;
      case "admit":
        m.admitObserver(OTHERS[op.observer]!);
        return;
      case "gc":
        this.nowMs += op.advanceMs;
        m.gc(this.nowMs);
        return;
    }
  }
}

function isAfter(r: Register<unknown>, after: ExchangeCursor): boolean {
  return r.observer > after.observer || (r.observer === after.observer && r.counter > after.counter);
}

/** The reference: the whole held state, filtered, then cut to the budget. */
function naiveMissingFor(
  m: ObservationMap<Value>,
  peer: ReadonlyMap<string, number>,
  budget: ExchangeBudget,
  after: ExchangeCursor | undefined,
): ExchangeReply<Value> {
  const size = budget.sizeOf ?? sizeOf;
  const out: Register<Value>[] = [];
  let bytes = 0;
  let complete = true;
  for (const r of m.snapshot().registers) {
    if (r.counter <= (peer.get(r.observer) ?? 0)) continue;
    if (after !== undefined && !isAfter(r, after)) continue;
    const s = size(r);
    if (out.length > 0 && (out.length >= budget.maxRegisters || bytes + s > budget.maxBytes)) {
      complete = false;
      break;
    }
    out.push(r);
    bytes += s;
  }
  const vector = m.vectorEntries().filter(([o]) => !m.isReaped(o));
  return { registers: out, vector, complete };
}

function ask(h: Harness, q: Query): void {
  const peer = new Map(OBSERVERS.map((o, i) => [o, q.peer[i]!] as const));
  const after =
    q.cursor === undefined
      ? undefined
      : { observer: OBSERVERS[q.cursor.observer]!, counter: q.cursor.counter };
  const budget = { maxRegisters: q.maxRegisters, maxBytes: q.maxBytes, sizeOf };
  assert.deepEqual(h.map.missingFor(peer, budget, after), naiveMissingFor(h.map, peer, budget, after));
}

/** Pages from an empty vector until complete: the union is everything held, once each. */
function pageThrough(h: Harness, maxRegisters: number): void {
  const empty = new Map<string, number>();
  const seen: Register<Value>[] = [];
  let after: ExchangeCursor | undefined;
  for (let page = 0; page < 1000; page++) {
    const reply = h.map.missingFor(empty, { maxRegisters, maxBytes: Number.POSITIVE_INFINITY }, after);
    seen.push(...reply.registers);
    after = ObservationMap.nextCursor(reply);
    if (after === undefined) {
      assert.deepEqual(seen, h.map.snapshot().registers);
      return;
    }
  }
  assert.fail("paging did not finish");
}

describe("ObservationMap anti-entropy index", () => {
  it("missingFor equals the plain scan after any sequence of operations", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(opArb, fc.array(queryArb, { minLength: 1, maxLength: 3 })), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 1, max: 3 }),
        (steps, pageSize) => {
          const h = new Harness();
          for (const [op, queries] of steps) {
            h.run(op);
            for (const q of queries) ask(h, q);
          }
          pageThrough(h, pageSize);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("skips covered observers and still sends the rest in canonical order", () => {
    const m = new ObservationMap<Value>({ self: "a" });
    for (let i = 0; i < 5; i++) m.localWrite(`t${i}`, { v: i });
    m.applyDelta([
      { targetId: "t0", observer: "c", counter: 7, value: { v: 70 } },
      { targetId: "t1", observer: "b", counter: 3, value: { v: 30 } },
      { targetId: "t2", observer: "c", counter: 4, value: { v: 40 } },
    ]);
    const budget = { maxRegisters: 100, maxBytes: Number.POSITIVE_INFINITY };
    const reply = m.missingFor(
      new Map([
        ["a", 5],
        ["b", 0],
        ["c", 4],
      ]),
      budget,
    );
    assert.deepEqual(
      reply.registers.map((r) => `${r.observer}:${r.counter}:${r.targetId}`),
      ["b:3:t1", "c:7:t0"],
    );
    assert.equal(reply.complete, true);
    // A target forgotten after removal takes its registers out of the index too.
    const small = new ObservationMap<Value>({ self: "a", maxRemovedTargets: 0 });
    small.applyDelta([{ targetId: "t9", observer: "z", counter: 9, value: { v: 9 } }]);
    small.removeTarget("t9", 0);
    assert.deepEqual(small.missingFor(new Map(), budget).registers, []);
    // Forgetting targets out of the middle of an observer's index keeps the rest intact.
    const many = new ObservationMap<Value>({ self: "a", maxRemovedTargets: 0 });
    for (let i = 0; i < 5; i++)
      many.applyDelta([{ targetId: `t${i}`, observer: "z", counter: i + 1, value: { v: i } }]);
    for (const t of ["t0", "t4", "t2"]) many.removeTarget(t, 0);
    assert.deepEqual(
      many.missingFor(new Map(), budget).registers.map((r) => r.targetId),
      ["t1", "t3"],
    );
  });
});
