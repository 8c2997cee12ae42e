import assert from "node:assert/strict";
import { test } from "node:test";
import { SimCluster } from "../../sim/cluster.ts";
import { withSeed } from "../../sim/seed.ts";
import { allSee, convergedCluster, describeViews, recordDeaths } from "./sim-util.ts";

test("a graceful leave shows as left everywhere (not dead), then is reaped after the reap time", () =>
  withSeed(301, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 15);
    const leaver = nodes[3]!;
    const others = nodes.filter((n) => n !== leaver);
    const deaths = recordDeaths(c);
    let leaveDoneMs: number | undefined;
    const reapedAt = new Map<string, number>();
    c.onEvent((node, ev, now) => {
      if (ev.type === "leave.done" && node === leaver) leaveDoneMs = now;
      if (ev.type === "member.reaped" && ev.member.name === leaver.name) reapedAt.set(node.name, now);
    });
    c.leave(leaver);
    const leftMs = c.now;
    const t = c.runUntil(() => allSee(c, others, [leaver], "left"), 5_000, 10);
    assert.ok(t !== undefined, "left not seen everywhere within 5 s");
    c.runUntil(() => leaveDoneMs !== undefined, c.config.leaveTimeoutMs, 10);
    // Done because the announcement was gossiped its full count, not because the timeout ran out.
    assert.ok(leaveDoneMs !== undefined && leaveDoneMs - leftMs < 2_000, `leave.done at ${leaveDoneMs}`);
    c.crash(leaver); // the process exits after leave.done
    // Not reaped before its time...
    c.runUntil(() => false, c.config.leftReapMs - (c.now - leftMs) - 100);
    assert.ok(allSee(c, others, [leaver], "left"), "still listed as left just before the reap time");
    // ...and gone everywhere shortly after.
    c.runFor(5_000);
    for (const o of others) assert.equal(o.core!.member(leaver.name), undefined, `${o.name} still lists it`);
    assert.equal(reapedAt.size, others.length);
    for (const at of reapedAt.values()) assert.ok(at - leftMs >= c.config.leftReapMs);
    assert.deepEqual(deaths, [], "a leave is not a death");
  }));

test("a metadata update propagates to every node", () =>
  withSeed(302, (seed) => {
    const c = new SimCluster({ seed, meta: (name) => new TextEncoder().encode(`zone=a;name=${name}`) });
    const nodes = convergedCluster(c, 30);
    const changed = nodes[11]!;
    const updates = new Set<string>();
    c.onEvent((node, ev) => {
      if (ev.type === "member.updated" && ev.member.name === changed.name) updates.add(node.name);
    });
    const meta = new TextEncoder().encode("zone=b;weight=3;api=10.0.0.11:7000;version=1.2.0");
    c.setMeta(changed, meta);
    const seesNew = (): boolean =>
      nodes.every(
        (o) =>
          new TextDecoder().decode(o.core!.member(changed.name)!.meta) === new TextDecoder().decode(meta),
      );
    const t = c.runUntil(seesNew, 5_000, 10);
    assert.ok(t !== undefined, "metadata not everywhere within 5 s");
    assert.equal(updates.size, nodes.length, "every node, the changed one included, emitted member.updated");
    for (const o of nodes) assert.equal(o.core!.member(changed.name)!.incarnation, changed.core!.incarnation);
  }));

test("a slow node (200 ms extra on everything) stays alive", () =>
  withSeed(303, (seed) => {
    const c = new SimCluster({ seed });
    const nodes = convergedCluster(c, 10);
    const deaths = recordDeaths(c);
    c.setSlow(nodes[2]!, 200);
    c.runFor(120_000);
    assert.deepEqual(deaths, []);
    assert.ok(allSee(c, nodes, nodes, "alive"), describeViews(nodes));
  }));
