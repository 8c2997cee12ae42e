// The simulated network itself: partitions, loss, duplication and determinism.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SimNetwork } from "../../sim/network.ts";
import { SeededRandom } from "../../src/core/random.ts";

test("a two-way partition cuts both directions; a one-way partition only one; heal restores", () => {
  const net = new SimNetwork(new SeededRandom(1));
  const two = net.partition([0, 1], [2]);
  assert.ok(net.blocked(0, 2) && net.blocked(2, 1));
  assert.ok(!net.blocked(0, 1) && !net.blocked(2, 3));
  net.heal(two);
  assert.ok(!net.blocked(0, 2));
  net.partition([0], [1], true);
  assert.ok(net.blocked(0, 1));
  assert.ok(!net.blocked(1, 0));
  assert.deepEqual(net.packetDelays(0, 1), []);
  assert.equal(net.streamLegMs(0, 1), undefined);
  assert.ok(net.streamLegMs(1, 0) !== undefined);
  net.healAll();
  assert.ok(!net.blocked(0, 1));
});

test("loss and duplication happen at their configured rates", () => {
  const net = new SimNetwork(new SeededRandom(2), { loss: 0.1, duplicate: 0.05 });
  let delivered = 0;
  const trials = 20_000;
  for (let i = 0; i < trials; i++) delivered += net.packetDelays(i % 7, (i + 1) % 7).length;
  const lost = net.counters.packetsLost / trials;
  const dup = net.counters.packetsDuplicated / (trials - net.counters.packetsLost);
  assert.ok(Math.abs(lost - 0.1) < 0.01, `lost ${lost}`);
  assert.ok(Math.abs(dup - 0.05) < 0.01, `duplicated ${dup}`);
  assert.equal(delivered, trials - net.counters.packetsLost + net.counters.packetsDuplicated);
  net.setLinkLoss(3, 4, 1);
  assert.deepEqual(net.packetDelays(3, 4), []);
  assert.ok(net.packetDelays(4, 3).length >= 0);
});

test("each link has a fixed base latency within range, and the same seed gives the same delays", () => {
  const a = new SimNetwork(new SeededRandom(3), {
    baseLatencyMsMin: 1,
    baseLatencyMsMax: 5,
    jitterMsMean: 0,
  });
  const b = new SimNetwork(new SeededRandom(3), {
    baseLatencyMsMin: 1,
    baseLatencyMsMax: 5,
    jitterMsMean: 0,
  });
  for (let i = 0; i < 50; i++) {
    const base = a.linkBaseMs(i, i + 1);
    assert.ok(base >= 1 && base <= 5);
    assert.equal(a.linkBaseMs(i, i + 1), base);
    assert.deepEqual(a.packetDelays(i, i + 1), [base]);
    assert.deepEqual(b.packetDelays(i, i + 1), [base]);
  }
});
