import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConnList, type Linked } from "../../src/serve/conn-list.ts";

interface Entry extends Linked<Entry> {
  id: number;
}

const entry = (id: number): Entry => ({ id, prev: undefined, next: undefined, listed: false });
const ids = (l: ConnList<Entry>): number[] => [...l].map((e) => e.id);

describe("ConnList", () => {
  it("keeps entries in the order they were added, and removes from anywhere", () => {
    const l = new ConnList<Entry>();
    const [a, b, c, d] = [entry(1), entry(2), entry(3), entry(4)];
    for (const e of [a, b, c, d]) l.push(e);
    assert.deepEqual(ids(l), [1, 2, 3, 4]);
    l.remove(b);
    l.remove(d);
    assert.deepEqual(ids(l), [1, 3]);
    assert.equal(l.size, 2);
    assert.equal(l.head, a);
    assert.equal(l.tail, c);
    l.remove(a);
    l.remove(c);
    assert.deepEqual(ids(l), []);
    assert.equal(l.head, undefined);
    assert.equal(l.tail, undefined);
    assert.equal(l.size, 0);
  });

  it("leaves a removed entry with no links, and ignores removing it twice or pushing it twice", () => {
    const l = new ConnList<Entry>();
    const [a, b, c] = [entry(1), entry(2), entry(3)];
    for (const e of [a, b, c]) l.push(e);
    l.push(b);
    assert.equal(l.size, 3);
    l.remove(b);
    assert.deepEqual([b.prev, b.next, b.listed], [undefined, undefined, false]);
    l.remove(b);
    assert.equal(l.size, 2);
    assert.deepEqual(ids(l), [1, 3]);
    // Back in, at the end.
    l.push(b);
    assert.deepEqual(ids(l), [1, 3, 2]);
  });

  it("lets an iteration remove the entry it is on", () => {
    const l = new ConnList<Entry>();
    for (let i = 0; i < 6; i++) l.push(entry(i));
    const seen: number[] = [];
    for (const e of l) {
      seen.push(e.id);
      if (e.id % 2 === 0) l.remove(e);
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(ids(l), [1, 3, 5]);
  });

  it("matches an array under any sequence of pushes and removals (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(7)), { maxLength: 60 }), (ops) => {
        const l = new ConnList<Entry>();
        const pool = Array.from({ length: 8 }, (_, i) => entry(i));
        let model: number[] = [];
        for (const [add, i] of ops) {
          if (add) {
            l.push(pool[i]!);
            if (!model.includes(i)) model.push(i);
          } else {
            l.remove(pool[i]!);
            model = model.filter((x) => x !== i);
          }
          assert.deepEqual(ids(l), model);
          assert.equal(l.size, model.length);
          // Walking back from the tail gives the same entries reversed.
          const back: number[] = [];
          for (let e = l.tail; e !== undefined; e = e.prev) back.push(e.id);
          assert.deepEqual(back, [...model].reverse());
        }
        for (const e of pool) {
          if (!e.listed) assert.deepEqual([e.prev, e.next], [undefined, undefined]);
        }
      }),
      { seed: 5, numRuns: 300 },
    );
  });
});
