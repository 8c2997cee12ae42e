import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  type BroadcastEnd,
  BroadcastQueue,
  retransmitLimit,
} from "../../src/core/membership/broadcast-queue.ts";

const bytes = (tag: number, len = 10): Uint8Array => new Uint8Array(len).fill(tag);

function queueOf(n: number, opts: { mult?: number; max?: number } = {}): BroadcastQueue {
  return new BroadcastQueue({
    retransmitMult: opts.mult ?? 4,
    maxQueued: opts.max ?? 100,
    numMembers: () => n,
  });
}

describe("retransmitLimit", () => {
  test("is mult × ceil(log10(n + 1))", () => {
    assert.equal(retransmitLimit(4, 1), 4);
    assert.equal(retransmitLimit(4, 9), 4);
    assert.equal(retransmitLimit(4, 10), 8);
    assert.equal(retransmitLimit(4, 99), 8);
    assert.equal(retransmitLimit(4, 100), 12);
    assert.equal(retransmitLimit(4, 1000), 16);
  });
});

describe("BroadcastQueue", () => {
  test("each broadcast is sent exactly the retransmit limit times, then reported sent", () => {
    const q = queueOf(5); // limit 4
    const ends: BroadcastEnd[] = [];
    q.queue("a", bytes(1), (e) => ends.push(e));
    let sent = 0;
    for (let i = 0; i < 10; i++) sent += q.getBroadcasts(2, 1000).length;
    assert.equal(sent, 4);
    assert.deepEqual(ends, ["sent"]);
    assert.equal(q.length, 0);
  });

  test("a newer fact about a key invalidates the queued one", () => {
    const q = queueOf(5);
    const ends: string[] = [];
    q.queue("node-a", bytes(1), (e) => ends.push(`old:${e}`));
    q.queue("node-b", bytes(2));
    q.queue("node-a", bytes(3), (e) => ends.push(`new:${e}`));
    assert.deepEqual(ends, ["old:invalidated"]);
    assert.equal(q.length, 2);
    const got = q.getBroadcasts(2, 1000).map((b) => b[0]);
    assert.deepEqual(got.sort(), [2, 3]);
  });

  test("broadcasts without a key are never invalidated", () => {
    const q = queueOf(5);
    q.queue(undefined, bytes(1));
    q.queue(undefined, bytes(2));
    assert.equal(q.length, 2);
  });

  test("least-transmitted first: fresh news overtakes old news", () => {
    const q = queueOf(1000); // limit 16
    q.queue("old", bytes(1));
    q.getBroadcasts(2, 1000);
    q.getBroadcasts(2, 1000);
    q.queue("new", bytes(2));
    // Room for one only: the new one has been sent 0 times, the old one twice.
    const got = q.getBroadcasts(2, 12);
    assert.deepEqual(
      got.map((b) => b[0]),
      [2],
    );
  });

  test("respects the byte budget, overhead included, and skips what does not fit", () => {
    const q = queueOf(5);
    q.queue("big", bytes(1, 100));
    q.queue("small", bytes(2, 10));
    const got = q.getBroadcasts(3, 50);
    assert.deepEqual(
      got.map((b) => b[0]),
      [2],
    );
    assert.deepEqual(q.getBroadcasts(3, 10), [], "nothing fits in 10 bytes with 3 of overhead");
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 1400 }),
        (lens, limit) => {
          const qq = queueOf(50);
          lens.forEach((len, i) => {
            qq.queue(`k${i}`, bytes(i % 256, len));
          });
          const out = qq.getBroadcasts(2, limit);
          const used = out.reduce((a, b) => a + b.length + 2, 0);
          assert.ok(used <= limit, `used ${used} > ${limit}`);
          assert.equal(new Set(out).size, out.length, "no broadcast twice in one call");
        },
      ),
    );
  });

  test("a second call for the same packet skips what the first one took", () => {
    const q = queueOf(5);
    q.queue("a", bytes(1));
    q.queue("b", bytes(2));
    const first = q.getBroadcasts(2, 12);
    assert.equal(first.length, 1);
    const second = q.getBroadcasts(2, 1000, first);
    assert.equal(second.length, 1);
    assert.notEqual(second[0], first[0]);
  });

  test("bounded: beyond maxQueued the most-sent broadcast is dropped and counted", () => {
    const q = queueOf(5, { max: 3 });
    const ends: string[] = [];
    q.queue("a", bytes(1), (e) => ends.push(`a:${e}`));
    q.getBroadcasts(2, 12); // a sent once
    q.queue("b", bytes(2));
    q.queue("c", bytes(3));
    q.queue("d", bytes(4));
    assert.equal(q.length, 3);
    assert.equal(q.dropped, 1);
    assert.deepEqual(ends, ["a:dropped"]);
  });

  test("the retransmit limit follows the cluster size as it changes", () => {
    let n = 100; // limit 12
    const q = new BroadcastQueue({ retransmitMult: 4, maxQueued: 10, numMembers: () => n });
    q.queue("a", bytes(1));
    for (let i = 0; i < 5; i++) q.getBroadcasts(2, 100);
    n = 3; // limit 4: already past it, so the next send is the last
    assert.equal(q.getBroadcasts(2, 100).length, 1);
    assert.equal(q.length, 0);
  });
});
