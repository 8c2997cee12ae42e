import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type ExchangeCursor, ObservationMap, type Register } from "../../src/core/state/index.ts";

// A small world: three replicas, each also an observer, writing to a few targets. Deltas go
// into a pool that is delivered at random (any order, duplicates, some never); push-pull
// exchanges run with random small budgets; replicas restart from their persisted counter.

const NODES = ["a", "b", "c"] as const;
type Value = { v: number };

type Op =
  | { kind: "write"; node: number; target: number }
  | { kind: "deliver"; pick: number; to: number }
  | { kind: "exchange"; asker: number; peer: number; maxRegisters: number }
  | { kind: "restart"; node: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      node: fc.integer({ min: 0, max: 2 }),
      target: fc.integer({ min: 0, max: 5 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("deliver" as const),
      pick: fc.nat(),
      to: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("exchange" as const),
      asker: fc.integer({ min: 0, max: 2 }),
      peer: fc.integer({ min: 0, max: 2 }),
      maxRegisters: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("restart" as const), node: fc.integer({ min: 0, max: 2 }) }),
  },
);

class World {
  replicas = NODES.map((n) => new ObservationMap<Value>({ self: n }));
  readonly pool: Register<Value>[] = [];
  /** The newest write of every register: `${target}|${observer}` → counter. */
  readonly newest = new Map<string, number>();
  readonly restarted = new Set<string>();
  /** Paged sessions in progress, by "asker>peer". */
  private readonly cursors = new Map<string, ExchangeCursor | undefined>();
  private nextValue = 0;

  /** One page of a push-pull session; returns whether the session is done. */
  page(asker: ObservationMap<Value>, peer: ObservationMap<Value>, maxRegisters: number): boolean {
    const session = `${asker.self}>${peer.self}`;
    const after = this.cursors.get(session);
    const reply = peer.missingFor(
      asker.vector(),
      { maxRegisters, maxBytes: Number.POSITIVE_INFINITY },
      after,
    );
    asker.mergeExchange(reply.registers, reply.vector, reply.complete, after);
    const next = ObservationMap.nextCursor(reply);
    this.cursors.set(session, next);
    return next === undefined;
  }

  run(op: Op): void {
    switch (op.kind) {
      case "write": {
        const r = this.replicas[op.node]!;
        const [reg] = r.localWrite(`t${op.target}`, { v: this.nextValue++ });
        this.pool.push(reg!);
        this.newest.set(`${reg!.targetId}|${reg!.observer}`, reg!.counter);
        break;
      }
      case "deliver":
        if (this.pool.length > 0) this.replicas[op.to]!.applyDelta([this.pool[op.pick % this.pool.length]!]);
        break;
      case "exchange":
        this.page(this.replicas[op.asker]!, this.replicas[op.peer]!, op.maxRegisters);
        break;
      case "restart": {
        const old = this.replicas[op.node]!;
        this.replicas[op.node] = new ObservationMap<Value>({ self: old.self, counterStart: old.counter });
        this.restarted.add(old.self);
        for (const session of this.cursors.keys())
          if (session.includes(old.self)) this.cursors.delete(session);
        break;
      }
    }
  }

  /** Every replica's vector only claims dots it holds: the newest of each covered register. */
  checkVectors(): void {
    for (const r of this.replicas) {
      const vv = r.vector();
      const held = new Map(r.snapshot().registers.map((x) => [`${x.targetId}|${x.observer}`, x.counter]));
      for (const [reg, counter] of this.newest) {
        const observer = reg.split("|")[1]!;
        if (counter <= (vv.get(observer) ?? 0)) {
          assert.equal(
            held.get(reg),
            counter,
            `${r.self} claims ${observer}:${vv.get(observer)} but lacks ${reg}@${counter}`,
          );
        }
      }
    }
  }

  /** Push-pull between every pair, with a small budget, until a whole pass changes nothing. */
  heal(maxRegisters: number): void {
    for (let pass = 0; pass < 500; pass++) {
      const before = JSON.stringify(this.replicas.map((r) => r.snapshot()));
      for (const asker of this.replicas) {
        for (const peer of this.replicas) {
          if (asker === peer) continue;
          for (let pages = 0; pages < 1000 && !this.page(asker, peer, maxRegisters); pages++);
        }
      }
      if (JSON.stringify(this.replicas.map((r) => r.snapshot())) === before) return;
    }
    assert.fail("anti-entropy did not quiesce");
  }
}

type Snapshot = ReturnType<ObservationMap<Value>["snapshot"]>;

/** The state join: a neutral replica (it never writes) that merges whole states. */
function join(...states: Snapshot[]): Snapshot {
  const m = new ObservationMap<Value>({ self: "viewer" });
  for (const s of states) m.mergeExchange(s.registers, s.vector, true);
  return m.snapshot();
}

const worldArb = fc.array(opArb, { minLength: 1, maxLength: 80 });

describe("ObservationMap properties", () => {
  it("merge is commutative, associative and idempotent on reachable states", () => {
    fc.assert(
      fc.property(worldArb, (ops) => {
        const w = new World();
        for (const op of ops) w.run(op);
        const [s1, s2, s3] = w.replicas.map((r) => r.snapshot()) as [Snapshot, Snapshot, Snapshot];
        assert.deepEqual(join(s1, s2), join(s2, s1));
        assert.deepEqual(join(join(s1, s2), s3), join(s1, join(s2, s3)));
        assert.deepEqual(join(s1, s1), join(s1));
        assert.deepEqual(join(join(s1, s2), s2), join(s1, s2));
      }),
      { numRuns: 200 },
    );
  });

  it("the vector never claims a dot the replica lacks, after any step", () => {
    fc.assert(
      fc.property(worldArb, (ops) => {
        const w = new World();
        for (const op of ops) {
          w.run(op);
          w.checkVectors();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("anti-entropy after random partial, reordered, duplicated delivery leaves replicas equal", () => {
    fc.assert(
      fc.property(worldArb, fc.integer({ min: 1, max: 3 }), (ops, budget) => {
        const w = new World();
        for (const op of ops) w.run(op);
        // What survives: the newest version any replica still holds (restarts lose unsent writes).
        const expected = join(...w.replicas.map((r) => r.snapshot())).registers;
        w.heal(budget);
        w.checkVectors();
        const snaps = w.replicas.map((r) => r.snapshot());
        for (const s of snaps) assert.deepEqual(s, snaps[0]);
        assert.deepEqual(snaps[0]!.registers, expected);
        // Without restarts nothing was lost: every register's newest write is everywhere.
        for (const [reg, counter] of w.newest) {
          const [targetId, observer] = reg.split("|") as [string, string];
          if (w.restarted.has(observer)) continue;
          assert.equal(w.replicas[0]!.get(targetId, observer)?.counter, counter, reg);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("late deltas for a removed target or a reaped observer never become visible", () => {
    fc.assert(
      fc.property(worldArb, fc.array(fc.nat(), { maxLength: 30 }), (ops, late) => {
        const w = new World();
        for (const op of ops) w.run(op);
        const r = w.replicas[0]!;
        r.removeTarget("t1", 0);
        r.reapObserver("c", 0);
        // More writes happen elsewhere after the removal; everything arrives late, in any order.
        w.run({ kind: "write", node: 1, target: 1 });
        w.run({ kind: "write", node: 2, target: 2 });
        for (const i of late) if (w.pool.length > 0) r.applyDelta([w.pool[i % w.pool.length]!]);
        for (const peer of w.replicas.slice(1)) {
          const reply = peer.missingFor(r.vector(), {
            maxRegisters: 100,
            maxBytes: Number.POSITIVE_INFINITY,
          });
          r.mergeExchange(reply.registers, reply.vector, reply.complete);
        }
        assert.deepEqual(r.observationsOf("t1"), []);
        for (const x of r.registers()) {
          assert.notEqual(x.targetId, "t1");
          assert.notEqual(x.observer, "c");
        }
        assert.ok(r.snapshot().registers.every((x) => x.observer !== "c"));
      }),
      { numRuns: 200 },
    );
  });
});
