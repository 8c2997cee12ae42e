import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  expectedConfirmations,
  remainingSuspicionTimeMs,
  suspicionTimeoutMs,
  suspicionTimeoutMsMax,
} from "../../src/core/membership/suspicion.ts";

describe("suspicionTimeoutMs", () => {
  test("is mult × max(1, log10(n)) × probe interval", () => {
    // Below 10 members the log is under 1, so the floor of 1 holds.
    assert.equal(suspicionTimeoutMs(1, 4, 1000), 4000);
    assert.equal(suspicionTimeoutMs(5, 4, 1000), 4000);
    assert.equal(suspicionTimeoutMs(10, 4, 1000), 4000);
    assert.equal(suspicionTimeoutMs(100, 4, 1000), 8000);
    assert.equal(suspicionTimeoutMs(1000, 4, 1000), 12000);
    assert.equal(suspicionTimeoutMs(50, 4, 1000), Math.floor(4 * Math.log10(50) * 1000));
    assert.equal(suspicionTimeoutMs(0, 4, 1000), 4000, "an empty cluster still gets the floor");
  });

  test("the maximum is maxMult × the minimum", () => {
    assert.equal(suspicionTimeoutMsMax(4000, 6), 24000);
  });
});

describe("expectedConfirmations", () => {
  test("is indirect checks, capped by the members other than us and the suspect", () => {
    assert.equal(expectedConfirmations(3, 50), 3);
    assert.equal(expectedConfirmations(3, 5), 3);
    assert.equal(expectedConfirmations(3, 4), 2);
    assert.equal(expectedConfirmations(3, 2), 0);
    assert.equal(expectedConfirmations(3, 1), 0);
  });
});

describe("remainingSuspicionTimeMs", () => {
  const min = 2000;
  const max = 30000;

  test("memberlist's table: confirmations drive the timeout from max to min", () => {
    // The same cases as memberlist's suspicion_test.go, in milliseconds.
    const cases: Array<[number, number, number, number]> = [
      [0, 3, 0, 30000],
      [1, 3, 2000, 14000],
      [2, 3, 3000, 4810],
      [3, 3, 4000, -2000],
      [4, 3, 5000, -3000],
      [5, 3, 10000, -8000],
    ];
    for (const [c, k, elapsed, want] of cases)
      assert.equal(
        remainingSuspicionTimeMs(c, k, elapsed, min, max),
        want,
        `c=${c} k=${k} elapsed=${elapsed}`,
      );
  });

  test("never below min, never above max, shrinking with every confirmation", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 0, max: 20 }), (k, c) => {
        const t = remainingSuspicionTimeMs(c, k, 0, min, max);
        assert.ok(t >= min && t <= max, `t=${t}`);
        assert.ok(remainingSuspicionTimeMs(c + 1, k, 0, min, max) <= t);
        if (c >= k) assert.equal(t, min);
      }),
    );
  });

  test("with nobody expected to confirm, the minimum applies at once", () => {
    assert.equal(remainingSuspicionTimeMs(0, 0, 500, min, max), min - 500);
  });
});
