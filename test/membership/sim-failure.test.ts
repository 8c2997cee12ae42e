import assert from "node:assert/strict";
import { test } from "node:test";
import { SimCluster } from "../../sim/cluster.ts";
import { withSeed } from "../../sim/seed.ts";
import { suspicionTimeoutMs, suspicionTimeoutMsMax } from "../../src/core/membership/suspicion.ts";
import { allSee, convergedCluster, describeViews, recordDeaths } from "./sim-util.ts";

test("a crashed node is declared dead by every live node within the suspicion maximum, and much sooner with confirmations", () =>
  withSeed(201, (seed) => {
    const n = 20;
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, n);
    c.runFor(5_000);
    const victim = nodes[7]!;
    const live = nodes.filter((x) => x !== victim);
    let firstSuspectMs: number | undefined;
    c.onEvent((_node, ev, now) => {
      if (ev.type === "member.suspect" && ev.member.name === victim.name) firstSuspectMs ??= now;
    });
    const deaths = recordDeaths(c);
    c.crash(victim);
    const crashMs = c.now;
    const cfg = c.config;
    const minMs = suspicionTimeoutMs(n, cfg.suspicionMult, cfg.probeIntervalMs);
    const maxMs = suspicionTimeoutMsMax(minMs, cfg.suspicionMaxTimeoutMult);
    // Slack: someone must probe the victim (one probe interval, plus its timeout), and the news must spread.
    const slackMs = 2 * cfg.probeIntervalMs;
    const t = c.runUntil(() => allSee(c, live, [victim], "dead"), maxMs + slackMs, 10);
    assert.ok(t !== undefined, `not dead everywhere within ${maxMs + slackMs} ms: ${describeViews(live)}`);
    assert.ok(firstSuspectMs !== undefined);
    const suspicionMs = t - firstSuspectMs;
    // Three independent confirmations drive the timer to its minimum: far from the maximum.
    assert.ok(suspicionMs <= minMs + 2_000, `suspicion lasted ${suspicionMs} ms; min ${minMs}, max ${maxMs}`);
    assert.ok(suspicionMs < maxMs / 4, `suspicion lasted ${suspicionMs} ms of max ${maxMs}`);
    assert.ok(t - crashMs < 15_000, `known to all only ${t - crashMs} ms after the crash`);
    assert.ok(
      deaths.every((d) => d.target === victim.name),
      "only the crashed node dies",
    );
  }));

test("10% packet loss on every link for 10 minutes: no live node is declared dead", () =>
  withSeed(202, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 25);
    const deaths = recordDeaths(c);
    c.net.setLoss(0.1);
    c.runFor(10 * 60_000);
    assert.deepEqual(deaths, []);
    assert.ok(allSee(c, nodes, nodes, "alive"), describeViews(nodes));
    // The loss did bite: direct probes failed and were rescued by helpers or TCP.
    const rescued = nodes.reduce((a, n) => a + n.core!.stats().probes.ackedIndirect, 0);
    assert.ok(rescued > 500, `only ${rescued} probes needed help`);
    assert.ok(c.net.counters.packetsLost > 3_000, `only ${c.net.counters.packetsLost} packets lost`);
  }));

test("a node paused 2 s at a time, again and again, refutes and is never declared dead", () =>
  withSeed(203, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 20);
    const sleeper = nodes[5]!;
    const deaths = recordDeaths(c);
    let suspectedTimes = 0;
    c.onEvent((_node, ev) => {
      if (ev.type === "member.suspect" && ev.member.name === sleeper.name) suspectedTimes++;
    });
    for (let i = 0; i < 30; i++) {
      c.pause(sleeper, 2_000);
      c.runFor(5_000);
    }
    c.runFor(10_000);
    assert.deepEqual(deaths, [], "nobody dies, the sleeper included");
    assert.ok(suspectedTimes > 0, "the pauses were long enough to be suspected");
    assert.ok(sleeper.core!.stats().selfRefutations > 0, "the sleeper refuted");
    assert.ok(allSee(c, nodes, nodes, "alive"), describeViews(nodes));
  }));

test("a two-way partition of 20/30 nodes for 60 s, then heal: one view again, 50 alive everywhere", () =>
  withSeed(204, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 50);
    const a = nodes.slice(0, 20);
    const b = nodes.slice(20);
    const cut = c.net.partition(
      a.map((n) => n.index),
      b.map((n) => n.index),
    );
    c.runFor(60_000);
    // Each side has given up on the other, and still agrees within itself.
    assert.ok(allSee(c, a, b, "dead") && allSee(c, b, a, "dead"), "each side sees the other dead");
    assert.ok(allSee(c, a, a, "alive") && allSee(c, b, b, "alive"));
    c.net.heal(cut);
    const healedMs = c.now;
    // Reconnect attempts run every 30 s; then one exchange makes both sides refute.
    const t = c.runUntil(() => allSee(c, nodes, nodes, "alive"), 90_000);
    assert.ok(t !== undefined, `no single view 90 s after healing: ${describeViews(nodes)}`);
    assert.ok(t - healedMs <= 90_000);
  }));

test("a one-way partition: the cut-off side's accusations do not kill reachable nodes", () =>
  withSeed(205, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 12);
    const deaths = recordDeaths(c);
    // Packets from n0 to n1 are lost (UDP and TCP), everything else flows.
    c.net.partition([nodes[0]!.index], [nodes[1]!.index], true);
    c.runFor(120_000);
    assert.deepEqual(deaths, []);
    assert.ok(allSee(c, nodes, nodes, "alive"), describeViews(nodes));
  }));

test("duplicated, reordered and jittery packets: no false deaths, and a crash is still found", () =>
  withSeed(206, (seed) => {
    const c = new SimCluster({
      seed,
      network: { duplicate: 0.05, reorder: 0.1, reorderDelayMsMax: 50, jitterMsMean: 10, loss: 0.02 },
    });
    const nodes = convergedCluster(c, 20);
    const deaths = recordDeaths(c);
    c.runFor(5 * 60_000);
    assert.equal(deaths.length, 0, JSON.stringify(deaths));
    assert.ok(c.net.counters.packetsDuplicated > 500, `${c.net.counters.packetsDuplicated} duplicated`);
    const victim = nodes[13]!;
    c.crash(victim);
    const live = nodes.filter((n) => n !== victim);
    assert.ok(c.runUntil(() => allSee(c, live, [victim], "dead"), 30_000) !== undefined, describeViews(live));
    assert.ok(deaths.every((d) => d.target === victim.name));
  }));
