import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withSeed } from "../../sim/seed.ts";
import { SIM_WALL_EPOCH_MS, VigilSim, type VigilSimNode } from "../../sim/vigil.ts";

// Small simulated clusters (virtual time) for the replicated admin states, pool writes and
// deletes, verdict policies and fail_open, on every node.

const targets = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];

function cluster(
  seed: number,
  n: number,
  doc: Record<string, unknown>,
  originUp: (k: string, now: number, node: string) => boolean,
) {
  const sim = new VigilSim({ seed, originUp });
  sim.setPools([
    ["web", { check: { type: "http" }, targets, interval: "2s", timeout: "1s", rise: 1, fall: 1, ...doc }],
  ]);
  const first = sim.addNode("n0");
  for (let i = 1; i < n; i++) sim.join(sim.addNode(`n${i}`), [first]);
  const ok = sim.runUntil(() => sim.live().every((x) => x.membership!.countByState().alive === n), 30_000);
  assert.ok(ok !== undefined, "membership converged");
  sim.runFor(10_000);
  return sim;
}

const wall = (sim: VigilSim) => SIM_WALL_EPOCH_MS + sim.now;
const verdicts = (x: VigilSimNode) => targets.map((t) => x.core!.target("web", t)?.verdict);

describe("replicated admin states and pools (simulated)", () => {
  it("maint set on one node is seen on every node and leaves `healthy`; none restores it", () =>
    withSeed(51, (seed) => {
      const sim = cluster(seed, 5, {}, () => true);
      const n3 = sim.node("n3");
      assert.ok(n3.core!.setAdmin("web", targets[0]!, "maint", "deploy", sim.now, wall(sim)));
      const seen = sim.runUntil(
        () => sim.live().every((x) => x.core!.admin(`web/${targets[0]}`).state === "maint"),
        10_000,
      );
      assert.ok(seen !== undefined, "maint replicated");
      for (const x of sim.live()) {
        assert.deepEqual(
          x.core!.healthy("web")!.map((a) => a.key),
          targets.slice(1),
        );
        assert.equal(x.core!.admin(`web/${targets[0]}`).reason, "deploy");
      }
      sim.node("n1").core!.setAdmin("web", targets[0]!, "none", undefined, sim.now, wall(sim));
      const back = sim.runUntil(() => sim.live().every((x) => x.core!.healthy("web")!.length === 4), 10_000);
      assert.ok(back !== undefined, "none replicated");
    }));

  it("a pool written on one node and deleted on another converges everywhere; the tombstone expires", () =>
    withSeed(52, (seed) => {
      const sim = cluster(seed, 5, {}, () => true);
      const doc = { check: { type: "tcp" }, targets: ["10.0.1.1:22"], interval: "5s" };
      sim.node("n1").core!.putPool("ssh", doc, sim.now, wall(sim));
      assert.ok(
        sim.runUntil(() => sim.live().every((x) => x.core!.poolSpec("ssh") !== undefined), 10_000) !==
          undefined,
      );
      assert.throws(
        () => sim.node("n2").core!.putPool("bad", { check: { type: "tcp" } }, sim.now, wall(sim)),
        /targets/,
      );
      assert.ok(sim.node("n4").core!.deletePool("ssh", sim.now, wall(sim)));
      assert.ok(
        sim.runUntil(() => sim.live().every((x) => x.core!.poolSpec("ssh") === undefined), 10_000) !==
          undefined,
      );
      assert.ok(
        sim.live().every((x) => x.core!.poolSpec("bad") === undefined),
        "a rejected write reached no one",
      );
    }));
});

describe("verdict policies and fail_open (simulated)", () => {
  // Origin 10.0.0.1 looks down from node n0 only (a vantage-point problem). With 3 observers
  // on 3 nodes, "any" says down; "majority" and "all" say up.
  for (const [verdict, expected] of [
    ["any", "down"],
    ["majority", "up"],
    ["all", "up"],
    [2, "up"],
    [1, "down"],
  ] as const) {
    it(`verdict: ${verdict} with one of three observers seeing down → ${expected}`, () =>
      withSeed(53, (seed) => {
        const sim = cluster(
          seed,
          3,
          { observers: 3, verdict },
          (k, _now, node) => !(k === targets[0] && node === "n0"),
        );
        for (const x of sim.live()) {
          const t = x.core!.target("web", targets[0]!)!;
          assert.equal(t.verdict, expected, x.name);
          const view = x.core!.view(t);
          assert.deepEqual(
            view.observers
              .filter((o) => o.voting)
              .map((o) => `${o.node}:${o.state}`)
              .sort(),
            ["n0:down", "n1:up", "n2:up"],
          );
        }
      }));
  }

  it("fail_open serves every target not in maint when none is up, and says so", () =>
    withSeed(54, (seed) => {
      const sim = cluster(seed, 3, { fail_open: true }, () => false);
      for (const x of sim.live()) {
        assert.deepEqual(verdicts(x), ["down", "down", "down", "down"]);
        assert.equal(x.core!.failOpenActive("web"), true);
        assert.equal(x.core!.healthy("web")!.length, 4);
      }
      sim.node("n0").core!.setAdmin("web", targets[3]!, "maint", undefined, sim.now, wall(sim));
      sim.runFor(5_000);
      for (const x of sim.live()) assert.equal(x.core!.healthy("web")!.length, 3);
    }));

  it("without fail_open nothing is served when everything is down", () =>
    withSeed(55, (seed) => {
      const sim = cluster(seed, 3, {}, () => false);
      for (const x of sim.live()) {
        assert.equal(x.core!.healthy("web")!.length, 0);
        assert.equal(x.core!.failOpenActive("web"), false);
      }
    }));
});
