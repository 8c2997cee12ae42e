import assert from "node:assert/strict";
import { test } from "node:test";
import { SimCluster } from "../../sim/cluster.ts";
import { withSeed } from "../../sim/seed.ts";
import { allSee, convergedCluster, describeViews, recordDeaths } from "./sim-util.ts";

test("50 nodes join through one seed and all see 50 alive", () =>
  withSeed(101, (seed) => {
    const c = new SimCluster({ seed });
    let joinsDone = 0;
    let suspicions = 0;
    c.onEvent((_node, ev) => {
      if (ev.type === "join.done" && ev.contacted === 1) joinsDone++;
      if (ev.type === "member.suspect") suspicions++;
    });
    const nodes = c.addNodes(50, { staggerMs: 2_000 });
    const t = c.runUntil(() => allSee(c, nodes, nodes, "alive"), 30_000);
    assert.ok(t !== undefined, `not converged after 30 s: ${describeViews(nodes)}`);
    // memberlist joins 30 members in 0.6 s; here 50 arrive over 2 s and must be in within seconds of the last.
    assert.ok(t <= 8_000, `converged only at ${t} ms`);
    assert.equal(joinsDone, 49);
    for (const n of nodes)
      assert.deepEqual(n.core!.countByState(), { alive: 50, suspect: 0, dead: 0, left: 0 });
    assert.equal(suspicions, 0, "no suspicion on a clean network");
  }));

test("a crashed node that restarts rejoins with a higher incarnation and is alive everywhere", () =>
  withSeed(102, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 10);
    const victim = nodes[4]!;
    c.crash(victim);
    const others = nodes.filter((n) => n !== victim);
    assert.ok(c.runUntil(() => allSee(c, others, [victim], "dead"), 40_000) !== undefined);
    const deadIncarnation = others[0]!.core!.member(victim.name)!.incarnation;
    c.restart(victim);
    const t = c.runUntil(() => allSee(c, nodes, nodes, "alive"), 20_000);
    assert.ok(t !== undefined, describeViews(nodes));
    // The fresh process started at incarnation 1, heard it was dead, and outbid that.
    assert.ok(victim.core!.incarnation > deadIncarnation);
    for (const o of others) assert.equal(o.core!.member(victim.name)!.incarnation, victim.core!.incarnation);
  }));

test("the same seed replays the same run; another seed does not", () => {
  const run = (seed: number): string => {
    const c = new SimCluster({
      seed,
      network: { loss: 0.05, jitterMsMean: 3, duplicate: 0.01, reorder: 0.05 },
    });
    const deaths = recordDeaths(c);
    const log: string[] = [];
    c.onEvent((node, ev, now) => {
      if ("member" in ev) log.push(`${now.toFixed(3)} ${node.name} ${ev.type} ${ev.member.name}`);
    });
    const nodes = c.addNodes(12, { staggerMs: 500 });
    c.runFor(5_000);
    c.crash(nodes[3]!);
    c.runFor(30_000);
    return JSON.stringify({ log, deaths: deaths.length, traffic: c.traffic, net: c.net.counters });
  };
  const a = run(7);
  assert.equal(run(7), a);
  assert.notEqual(run(8), a);
});
