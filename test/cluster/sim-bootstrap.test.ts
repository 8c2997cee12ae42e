import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withSeed } from "../../sim/seed.ts";
import { VigilSim } from "../../sim/vigil.ts";

// A cluster starting the way real nodes start: each node boots with the config file's pools
// (written with its own clock) and joins at once, holding its checks until the join is done.
// Every joiner thus puts a newer stamp on the same pool document; before only content changes
// were passed on, each such stamp started a fan-out epidemic (O(n²) exchanges carrying the
// pool). Measured at 500 nodes in bench/convergence.ts; here at 80, fast.

const NODES = 80;
const TARGETS = 200;

function poolDoc(): unknown {
  return {
    check: { type: "http" },
    // Well over the 1,000 bytes a pool may take on gossip: changes of it go by exchange.
    targets: Array.from({ length: TARGETS }, (_, i) => `10.9.${i >> 8}.${i & 255}:80`),
    interval: "10s",
    fastinter: "2s",
    rise: 2,
    fall: 2,
    observers: 2,
  };
}

describe("simulated cluster start: 80 nodes joining with the same config", () => {
  it("converges with a few exchanges per node, few registers per target, every verdict up", () =>
    withSeed(4301, (seed) => {
      const sim = new VigilSim({ seed });
      sim.recordChecks = false;
      sim.setPools([["web", poolDoc()]]);
      const first = sim.addNode("n0");
      for (let i = 1; i < NODES; i++) sim.at(i * 20, () => sim.join(sim.addNode(`n${i}`), [first]));
      const joined = sim.runUntil(
        () =>
          sim.live().length === NODES &&
          sim.live().every((n) => n.membership!.countByState().alive === NODES),
        60_000,
        250,
      );
      assert.ok(joined !== undefined, "membership converged");
      const settled = sim.runUntil(
        () => sim.live().every((n) => n.core!.targetsOf("web")!.every((t) => t.verdict === "up")),
        60_000,
        500,
      );
      assert.ok(settled !== undefined, "every verdict up on every node");
      let syncs = 0;
      let registers = 0;
      for (const n of sim.live()) {
        syncs += n.core!.stats.syncsStarted;
        registers += n.core!.observations.stats().registers;
      }
      // Periodic anti-entropy is one exchange per node per ~10 s, one more after joining.
      const perNode = syncs / NODES;
      const periodic = settled / 7_500 + 2;
      assert.ok(perNode <= periodic, `${perNode.toFixed(1)} exchanges per node by ${settled} ms`);
      // Owners, and the few nodes that owned a target while their view of the cluster lagged.
      const perTarget = registers / NODES / TARGETS;
      assert.ok(perTarget >= 2 && perTarget < 8, `${perTarget.toFixed(1)} registers per target`);
      // Every replica holds the same stamp of the pool document.
      const stamps = new Set(
        sim.live().map((n) => {
          const e = n.core!.exportState().find((x) => x.kind === "pool" && x.key === "web")!;
          return `${e.ts.wallMs}/${e.ts.logical}/${e.ts.node}`;
        }),
      );
      sim.runFor(60_000);
      const later = new Set(
        sim.live().map((n) => {
          const e = n.core!.exportState().find((x) => x.kind === "pool" && x.key === "web")!;
          return `${e.ts.wallMs}/${e.ts.logical}/${e.ts.node}`;
        }),
      );
      assert.equal(later.size, 1, `stamps held after a minute: ${later.size} (at settling: ${stamps.size})`);
    }));
});
