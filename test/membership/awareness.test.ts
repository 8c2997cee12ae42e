import assert from "node:assert/strict";
import { test } from "node:test";
import { Awareness } from "../../src/core/membership/awareness.ts";

test("a healthy node probes at the configured pace", () => {
  const a = new Awareness(8);
  assert.equal(a.score, 0);
  assert.equal(a.scaleTimeout(1000), 1000);
});

test("failures raise the score and stretch timeouts; successes bring it back", () => {
  const a = new Awareness(8);
  a.applyDelta(1);
  a.applyDelta(2);
  assert.equal(a.score, 3);
  assert.equal(a.scaleTimeout(500), 2000);
  a.applyDelta(-1);
  assert.equal(a.score, 2);
  assert.equal(a.scaleTimeout(1000), 3000);
});

test("the score stays within [0, max - 1], so the scale never exceeds the max multiplier", () => {
  const a = new Awareness(8);
  a.applyDelta(100);
  assert.equal(a.score, 7);
  assert.equal(a.scaleTimeout(1000), 8000);
  a.applyDelta(-100);
  assert.equal(a.score, 0);
  a.applyDelta(-1);
  assert.equal(a.score, 0);
});

test("a multiplier below 1 is a programmer error", () => {
  assert.throws(() => new Awareness(0), /invariant/);
});
