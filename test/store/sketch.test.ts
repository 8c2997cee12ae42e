import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode } from "../../src/core/errors.ts";
import {
  LatencySketch,
  SKETCH_MAX_BUCKETS,
  SKETCH_MAX_TRACKED_MS,
  SKETCH_MIN_TRACKED_MS,
  SKETCH_RELATIVE_ACCURACY,
} from "../../src/store/sketch.ts";

const latency = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  {
    weight: 12,
    arbitrary: fc.double({ min: SKETCH_MIN_TRACKED_MS, max: SKETCH_MAX_TRACKED_MS, noNaN: true }),
  },
  // Realistic latencies cluster: many close values stress bucket edges.
  { weight: 6, arbitrary: fc.double({ min: 0.5, max: 50, noNaN: true }) },
);
const latencies = fc.array(latency, { maxLength: 300 });
const sketchArb = latencies.map((xs) => LatencySketch.of(xs));

function bytesOf(s: LatencySketch): Uint8Array {
  return s.encode();
}

describe("LatencySketch", () => {
  it("reads every quantile within the relative accuracy of the exact one", () => {
    fc.assert(
      fc.property(
        fc.array(latency, { minLength: 1, maxLength: 400 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (xs, q) => {
          const s = LatencySketch.of(xs);
          const exact = [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
          const est = s.quantile(q)!;
          if (exact < SKETCH_MIN_TRACKED_MS) return est === 0;
          return Math.abs(est - exact) <= SKETCH_RELATIVE_ACCURACY * exact * (1 + 1e-9);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("merges commutatively and associatively, exactly as adding everything to one sketch", () => {
    fc.assert(
      fc.property(latencies, latencies, latencies, (xs, ys, zs) => {
        const [a, b, c] = [LatencySketch.of(xs), LatencySketch.of(ys), LatencySketch.of(zs)];
        const ab = a.clone().merge(b);
        assert.deepEqual(bytesOf(ab), bytesOf(b.clone().merge(a)));
        assert.deepEqual(bytesOf(ab.clone().merge(c)), bytesOf(a.clone().merge(b.clone().merge(c))));
        assert.deepEqual(bytesOf(ab.clone().merge(c)), bytesOf(LatencySketch.of([...xs, ...ys, ...zs])));
        assert.equal(ab.count, xs.length + ys.length);
        // merge leaves its argument alone
        assert.deepEqual(bytesOf(b), bytesOf(LatencySketch.of(ys)));
      }),
      { numRuns: 300 },
    );
  });

  it("round-trips through encode and decode", () => {
    fc.assert(
      fc.property(sketchArb, (s) => {
        const r = LatencySketch.decode(s.encode());
        assert.ok(r.ok);
        assert.deepEqual(r.value.encode(), s.encode());
        assert.equal(r.value.count, s.count);
        for (const q of [0, 0.25, 0.5, 0.99, 1]) assert.equal(r.value.quantile(q), s.quantile(q));
      }),
      { numRuns: 300 },
    );
  });

  it("decodes any bytes to a sketch or an error, never a throw, and accepts only canonical bytes", () => {
    const mutated = sketchArb.chain((s) => {
      const b = s.encode();
      return fc
        .array(fc.tuple(fc.nat(Math.max(0, b.length - 1)), fc.integer({ min: 0, max: 255 })), {
          maxLength: 4,
        })
        .map((edits) => {
          const out = Uint8Array.from(b);
          for (const [i, v] of edits) if (i < out.length) out[i] = v;
          return out;
        });
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
        const r = LatencySketch.decode(bytes);
        if (!r.ok) {
          assert.equal(r.error.code, ErrorCode.decode);
          assert.match(r.error.message, /^bad latency sketch: /);
          return;
        }
        assert.deepEqual(r.value.encode(), bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses each kind of bad bytes with a reason", () => {
    const cases: [number[] | Uint8Array, RegExp][] = [
      [[], /empty/],
      [[2, 0, 0], /unknown version 2/],
      [[1], /zero count: truncated/],
      [[1, 0, 1, 2], /bucket 0 count: truncated/],
      [[1, 0, 0, 0], /1 trailing bytes/],
      [[1, 0x80, 0], /overlong varint/],
      [[1, 0, 1, 2, 0], /bucket 0 count is 0/],
      [[1, 0, 2, 2, 1, 0, 1], /bucket 1 index does not increase/],
      [[1, 0, 1, 0xff, 0x7f, 1], /index .* out of range/],
      [[1, 0, 0xff, 0x7f], /buckets exceeds/],
      [[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], /longer than 8 bytes/],
      [[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0], /exceeds 2\^53/],
      [new Uint8Array(20_000), /exceeds/],
    ];
    for (const [bytes, why] of cases) {
      const r = LatencySketch.decode(Uint8Array.from(bytes));
      assert.ok(!r.ok, `accepted ${JSON.stringify([...bytes].slice(0, 12))}`);
      assert.match(r.error.message, why);
    }
  });

  it("keeps its buckets bounded over the whole range, and clamps beyond it", () => {
    const s = new LatencySketch();
    for (let x = SKETCH_MIN_TRACKED_MS / 2; x < SKETCH_MAX_TRACKED_MS * 100; x *= 1.001) s.add(x);
    assert.ok(s.bucketCount <= SKETCH_MAX_BUCKETS, `${s.bucketCount} buckets`);
    assert.ok(s.bucketCount > SKETCH_MAX_BUCKETS - 5, "the range really is covered");
    const r = LatencySketch.decode(s.encode());
    assert.ok(r.ok, "a full sketch still decodes within the byte bound");
    const top = LatencySketch.of([1e12]).quantile(1)!;
    assert.ok(Math.abs(top - SKETCH_MAX_TRACKED_MS) <= SKETCH_RELATIVE_ACCURACY * SKETCH_MAX_TRACKED_MS);
  });

  it("answers nothing when empty, counts weights, and refuses impossible values", () => {
    const s = new LatencySketch();
    assert.equal(s.quantile(0.5), undefined);
    assert.deepEqual(LatencySketch.decode(s.encode()), { ok: true, value: s });
    s.add(10, 3).add(20);
    assert.equal(s.count, 4);
    assert.ok(Math.abs(s.quantile(0.5)! - 10) <= 0.1);
    assert.ok(Math.abs(s.quantile(1)! - 20) <= 0.2);
    assert.throws(() => s.add(-1), /invariant/);
    assert.throws(() => s.add(Number.NaN), /invariant/);
    assert.throws(() => s.add(Number.POSITIVE_INFINITY), /invariant/);
    assert.throws(() => s.add(1, 0), /invariant/);
    assert.throws(() => s.quantile(1.5), /invariant/);
  });

  it("encodes a typical minute in a few bytes", () => {
    const minute = LatencySketch.of([12.1, 11.7, 13.4, 12.9, 40.2, 12.3]);
    assert.ok(minute.encode().length <= 16, `${minute.encode().length} bytes`);
  });
});
