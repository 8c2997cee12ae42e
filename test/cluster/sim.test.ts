import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withSeed } from "../../sim/seed.ts";
import { VigilSim, type VigilSimNode } from "../../sim/vigil.ts";

// The whole Vigil node (membership + node core) on the simulator: 30 nodes × 3,000 targets,
// observers: 2, on virtual time. A failure prints its seed (replay with SIM_SEED=...).

const NODES = 30;
const POOLS = 3;
const PER_POOL = 1000;
const INTERVAL_MS = 10_000;
const FASTINTER_MS = 2_000;
const FALL = 2;

function targetKey(pool: number, i: number): string {
  return `10.${pool + 1}.${i >> 8}.${i & 255}:80`;
}

function poolDocs(): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let p = 0; p < POOLS; p++) {
    const targets = Array.from({ length: PER_POOL }, (_, i) => targetKey(p, i));
    out.push([
      `pool${p}`,
      {
        check: { type: "http", path: "/healthz" },
        targets,
        interval: "10s",
        fastinter: "2s",
        timeout: "1s",
        rise: 2,
        fall: FALL,
        observers: 2,
      },
    ]);
  }
  return out;
}

function allIds(): string[] {
  const ids: string[] = [];
  for (let p = 0; p < POOLS; p++) for (let i = 0; i < PER_POOL; i++) ids.push(`pool${p}/${targetKey(p, i)}`);
  return ids;
}

function startCluster(seed: number, originUp?: (key: string, now: number) => boolean): VigilSim {
  const sim = new VigilSim({ seed, ...(originUp === undefined ? {} : { originUp }) });
  sim.setPools(poolDocs());
  const first = sim.addNode("n0");
  for (let i = 1; i < NODES; i++) {
    const n = sim.addNode(`n${i}`);
    sim.at(i * 50, () => sim.join(n, [first]));
  }
  const converged = sim.runUntil(
    () => sim.live().every((n) => n.membership!.countByState().alive === NODES),
    60_000,
  );
  assert.ok(converged !== undefined, "membership converged");
  return sim;
}

/** Owners of every target agree on every live node and are `k` distinct live nodes. */
function assertOwnership(sim: VigilSim, k: number): void {
  const live = sim.live();
  const liveNames = new Set(live.map((n) => n.name));
  const ref = live[0]!.core!;
  for (const id of allIds()) {
    const owners = ref.owners(id);
    assert.equal(owners.length, k, `${id} has ${owners.length} owners`);
    assert.equal(new Set(owners).size, k);
    for (const o of owners) assert.ok(liveNames.has(o), `${id} owned by non-live ${o}`);
    for (const n of live) assert.deepEqual(n.core!.owners(id), owners, `${n.name} disagrees on ${id}`);
  }
}

/** The longest time any target went unchecked within [from, to]. */
function maxGapMs(sim: VigilSim, from: number, to: number): { gap: number; id: string } {
  let worst = { gap: 0, id: "" };
  for (const id of allIds()) {
    const times = (sim.checkTimes.get(id) ?? []).filter((t) => t >= from && t <= to);
    let prev = from;
    for (const t of [...times, to]) {
      if (t - prev > worst.gap) worst = { gap: t - prev, id };
      prev = t;
    }
  }
  return worst;
}

function verdictOf(n: VigilSimNode, pool: string, key: string): string | undefined {
  return n.core!.target(pool, key)?.verdict;
}

describe("simulated cluster: 30 nodes × 3,000 targets, observers 2", () => {
  it("every target is owned by exactly 2 live nodes and checked every interval through a crash and a join", () =>
    withSeed(4101, (seed) => {
      const sim = startCluster(seed);
      sim.runFor(30_000);
      assertOwnership(sim, 2);
      const from = sim.now;
      const victim = sim.node("n7");
      sim.crash(victim);
      // the crash is detected and its targets handed over
      const detected = sim.runUntil(
        () => sim.live().every((n) => n.membership!.member("n7")?.state === "dead"),
        60_000,
      );
      assert.ok(detected !== undefined, "crash detected by all");
      sim.runFor(5_000);
      assertOwnership(sim, 2);
      // a node joins
      const joiner = sim.addNode("n30");
      sim.join(joiner, [sim.node("n0")]);
      sim.runUntil(() => sim.live().every((n) => n.membership!.countByState().alive === NODES), 30_000);
      sim.runFor(15_000);
      assertOwnership(sim, 2);
      assert.ok(joiner.core!.ownedCount() > 100, `the joiner took a share: ${joiner.core!.ownedCount()}`);
      const worst = maxGapMs(sim, from, sim.now);
      // jitter is ±10%: one interval plus its jitter, plus check latency
      assert.ok(worst.gap <= INTERVAL_MS * 1.1 + 100, `${worst.id} unchecked for ${worst.gap}ms`);
    }));

  it("an origin going down is down on every node within interval + fall × fastinter + dissemination", () =>
    withSeed(4102, (seed) => {
      const downKey = targetKey(1, 42);
      let downAt = Number.POSITIVE_INFINITY;
      const sim = startCluster(seed, (key, now) => !(key === downKey && now >= downAt));
      const live = sim.live();
      const upAt = sim.runUntil(() => live.every((n) => verdictOf(n, "pool1", downKey) === "up"), 90_000);
      assert.ok(upAt !== undefined, "up everywhere first");
      sim.runFor(5_000);
      downAt = sim.now;
      const bound = INTERVAL_MS * 1.1 + FALL * FASTINTER_MS * 1.1 + 3_000;
      const t = sim.runUntil(
        () => live.every((n) => verdictOf(n, "pool1", downKey) === "down"),
        bound + 10_000,
        50,
      );
      assert.ok(t !== undefined, "down everywhere");
      assert.ok(t - downAt <= bound, `took ${t - downAt}ms, bound ${bound}ms`);
    }));

  it("a 60 s partition then heal: every replica and every verdict equal afterwards", () =>
    withSeed(4103, (seed) => {
      let flipFrom = Number.POSITIVE_INFINITY;
      // during the partition a tenth of pool0 goes down
      const sim = startCluster(
        seed,
        (key, now) =>
          !(
            now >= flipFrom &&
            key.startsWith("10.1.0.") &&
            Number(key.split(".")[3]!.split(":")[0]) % 10 === 0
          ),
      );
      sim.runFor(20_000);
      const side = sim.nodes.filter((n) => n.index < 12).map((n) => n.index);
      const other = sim.nodes.filter((n) => n.index >= 12).map((n) => n.index);
      const p = sim.net.partition(side, other);
      flipFrom = sim.now + 5_000;
      sim.runFor(60_000);
      sim.net.heal(p);
      // writes have stopped (origins are stable now); let anti-entropy and membership settle
      sim.runFor(90_000);
      const live = sim.live();
      assert.ok(
        live.every((n) => n.membership!.countByState().alive === NODES),
        "membership healed",
      );
      const snap = (n: VigilSimNode) =>
        JSON.stringify(
          n
            .core!.observations.snapshot()
            .registers.map((r) => [r.targetId, r.observer, r.counter])
            .sort(),
        );
      const ref = snap(live[0]!);
      for (const n of live) assert.equal(snap(n), ref, `${n.name}'s replica differs from ${live[0]!.name}'s`);
      const verdicts = (n: VigilSimNode) =>
        allIds().map((id) => n.core!.target(id.split("/")[0]!, id.slice(id.indexOf("/") + 1))!.verdict);
      const refV = verdicts(live[0]!);
      // 10.1.0.{0,10,…,250}: 26 targets went down during the partition
      assert.equal(refV.filter((v) => v === "down").length, 26, "the flipped targets are down");
      for (const n of live) assert.deepEqual(verdicts(n), refV, `${n.name}'s verdicts differ`);
      assertOwnership(sim, 2);
    }));

  it("churn: a node leaving and one joining every 10 s for 5 minutes leaves no target unchecked for two intervals", () =>
    withSeed(4104, (seed) => {
      const sim = startCluster(seed);
      sim.runFor(20_000);
      const from = sim.now;
      // Every 10 s a node leaves gracefully (its process exits) and the one that left in the
      // previous round comes back with a fresh state, as after a redeploy.
      let away: VigilSimNode | undefined;
      for (let round = 0; round < 30; round++) {
        const candidates = sim.live().filter((n) => n.name !== "n0");
        const leaver = candidates[(round * 7) % candidates.length]!;
        sim.leave(leaver);
        sim.runFor(1_000);
        sim.crash(leaver);
        if (away !== undefined) sim.restart(away, [sim.node("n0")]);
        away = leaver;
        sim.runFor(9_000);
      }
      sim.runFor(10_000);
      const worst = maxGapMs(sim, from, sim.now);
      assert.ok(worst.gap <= 2 * INTERVAL_MS, `${worst.id} unchecked for ${worst.gap}ms`);
    }));
});
