import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { KeyedMinHeap } from "../../src/core/scheduler/heap.ts";

type Op =
  | { kind: "push"; key: string; priority: number }
  | { kind: "update"; key: string; priority: number }
  | { kind: "delete"; key: string }
  | { kind: "pop" };

/** The model: an array kept sorted by (priority, seq), seq counting pushes and updates. */
interface ModelEntry {
  key: string;
  priority: number;
  seq: number;
}

// Keys enough for a four-level heap (a delete deep in it can need a sift up), few enough that
// pushes hit present keys; priorities few enough to tie often.
const keyArb = fc.integer({ min: 0, max: 23 }).map((i) => `k${i}`);
const priorityArb = fc.integer({ min: 0, max: 9 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("push" as const), key: keyArb, priority: priorityArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("update" as const), key: keyArb, priority: priorityArb }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), key: keyArb }) },
  { weight: 3, arbitrary: fc.constant({ kind: "pop" as const }) },
);

function sortModel(model: ModelEntry[]): void {
  model.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
}

describe("KeyedMinHeap", () => {
  it("pops what a sorted array would, ties first-in first-out, under any push/update/delete/pop sequence", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 300, size: "max" }), (ops) => {
        const heap = new KeyedMinHeap<string>();
        const model: ModelEntry[] = [];
        let seq = 0;
        for (const op of ops) {
          const at = op.kind === "pop" ? -1 : model.findIndex((e) => e.key === op.key);
          switch (op.kind) {
            case "push":
              if (at !== -1) continue; // pushing a present key is a programmer error, tested below
              heap.push(op.key, op.priority);
              model.push({ key: op.key, priority: op.priority, seq: seq++ });
              break;
            case "update":
              if (at === -1) continue;
              heap.update(op.key, op.priority);
              model[at] = { key: op.key, priority: op.priority, seq: seq++ };
              break;
            case "delete":
              assert.equal(heap.delete(op.key), at !== -1);
              if (at !== -1) model.splice(at, 1);
              break;
            case "pop": {
              sortModel(model);
              assert.equal(heap.pop(), model.shift()?.key);
              break;
            }
          }
          sortModel(model);
          heap.checkInvariants();
          assert.equal(heap.size, model.length);
          assert.equal(heap.peekKey(), model[0]?.key);
          assert.equal(heap.peekPriority(), model[0]?.priority);
          for (const e of model) assert.equal(heap.priorityOf(e.key), e.priority);
        }
        // Drain: the whole remaining order matches.
        const drained: string[] = [];
        for (let k = heap.pop(); k !== undefined; k = heap.pop()) drained.push(k);
        assert.deepEqual(
          drained,
          model.map((e) => e.key),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("sorts a large random load", () => {
    const heap = new KeyedMinHeap<number>();
    const priorities: number[] = [];
    let x = 12345;
    for (let i = 0; i < 10_000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      priorities.push(x % 1000);
      heap.push(i, x % 1000);
    }
    heap.checkInvariants();
    const out: number[] = [];
    for (let k = heap.pop(); k !== undefined; k = heap.pop()) out.push(priorities[k]!);
    assert.deepEqual(
      out,
      [...priorities].sort((a, b) => a - b),
    );
  });

  it("an updated key ranks after keys already waiting at the same priority", () => {
    const heap = new KeyedMinHeap<string>();
    heap.push("a", 5);
    heap.push("b", 5);
    heap.push("c", 5);
    heap.update("a", 5);
    assert.deepEqual([heap.pop(), heap.pop(), heap.pop(), heap.pop()], ["b", "c", "a", undefined]);
  });

  it("rejects programmer errors: a key pushed twice, an absent key updated, a NaN priority", () => {
    const heap = new KeyedMinHeap<string>();
    heap.push("a", 1);
    assert.throws(() => heap.push("a", 2), /pushed twice/);
    assert.throws(() => heap.update("zz", 2), /absent key/);
    assert.throws(() => heap.push("b", Number.NaN), /NaN/);
    assert.throws(() => heap.update("a", Number.NaN), /NaN/);
    assert.equal(heap.delete("zz"), false);
    heap.checkInvariants();
    assert.equal(heap.size, 1);
    assert.equal(heap.priorityOf("a"), 1);
  });
});
