// Convergence of the whole Vigil node (membership + node core) on the simulator:
//  1. how long a verdict change takes to reach every node, for N = 10, 100, 500;
//  2. gossip + anti-entropy bytes per node per second while targets flip;
//  3. memory per target held in a replica.
// Writes bench/results/convergence.json; propagation entries of sizes not run this time are
// kept from the previous file (each says when it was measured). Bounded: every run has a
// fixed simulated duration.
//
//   npx node bench/convergence.ts [--sizes=10,100,500] [--targets=1000] [--flip-targets=10000] [--seed=1000]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { SIM_WALL_EPOCH_MS, VigilSim } from "../sim/vigil.ts";
import { arg, percentile, progress, RESULTS_DIR, round, writeResults } from "./lib.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const sizesArg = process.argv.find((a) => a.startsWith("--sizes="))?.split("=")[1];
const SIZES = (sizesArg ?? "10,100,500").split(",").map(Number);

function poolDoc(targets: string[]): unknown {
  return {
    check: { type: "http" },
    targets,
    interval: "10s",
    fastinter: "2s",
    timeout: "1s",
    rise: 2,
    fall: 2,
  };
}

function addr(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:80`;
}

/** Builds a joined cluster of n nodes with the given pools; returns it once membership converged. */
function cluster(
  seed: number,
  n: number,
  pools: [string, unknown][],
  originUp: (k: string, now: number) => boolean,
) {
  const sim = new VigilSim({ seed, originUp });
  sim.recordChecks = false;
  sim.setPools(pools);
  const first = sim.addNode("n0");
  // Each node starts when it joins, as a real one does with `join` seeds: it holds its checks
  // from the start. Started early and joined later, a node runs alone meanwhile, owns every
  // target and writes a register for each (at 500 nodes, ~250 per target).
  for (let i = 1; i < n; i++) sim.at(i * 20, () => sim.join(sim.addNode(`n${i}`), [first]));
  const t = sim.runUntil(
    () => sim.live().length === n && sim.live().every((x) => x.membership!.countByState().alive === n),
    120_000,
    500,
  );
  if (t === undefined) throw new Error(`membership of ${n} did not converge`);
  return sim;
}

/** Every live node holds, for every target, each owner's own latest register. */
function replicasHoldOwnersLatest(sim: VigilSim): boolean {
  const live = sim.live();
  const ref = live[0]!.core!;
  for (const t of ref.targetsOf("web")!) {
    for (const o of ref.owners(t.id)) {
      const latest = sim.node(o).core!.observations.get(t.id, o)?.counter;
      if (latest === undefined) return false;
      for (const x of live) if (x.core!.observations.get(t.id, o)?.counter !== latest) return false;
    }
  }
  return true;
}

// ── 1. verdict propagation ─────────────────────────────────────────────────
interface Propagation {
  nodes: number;
  targets: number;
  flips: number;
  /** From the first node showing the new verdict to the last one. */
  spreadMsP50: number;
  spreadMsP99: number;
  /** From the origin changing to every node showing it (includes detection: interval + fall × fastinter). */
  endToEndMsP50: number;
  endToEndMsP99: number;
  realSeconds: number;
  /** Flips seen by every node within the run (the percentiles are over these). */
  reachedEveryNode: number;
  /**
   * Simulated time from the first join until every node saw every member alive, every target
   * up, and held every owner's latest register (the flips start 1 s later).
   */
  settledAfterMs: number;
  /** Mean registers per target held by a replica at the end (owners plus former owners). */
  registersPerTarget: number;
  /** Replication broadcasts dropped from full queues, summed over nodes (start-up burst). */
  broadcastsDropped: number;
  /** Heap of the whole simulation (all n replicas) at the end of the run. */
  heapMiB: number;
  measuredAt: string;
}

function propagation(n: number, targetCount: number, flips: number): Propagation {
  const t0 = performance.now();
  const targets = Array.from({ length: targetCount }, (_, i) => addr(i));
  const downSince = new Map<string, number>();
  const sim = cluster(arg("seed", 1000) + n, n, [["web", poolDoc(targets)]], (k, now) => {
    const d = downSince.get(k);
    return d === undefined || now < d;
  });
  // Settle: every node has every target up and holds every owner's latest register. Verdicts
  // alone are not enough: at start every target flips from unknown to up at once, gossip queues
  // overflow and some replicas get an owner's `up` only by anti-entropy, tens of seconds later.
  // Meanwhile they count only the other owner's vote, so a flip then is seen early by them and
  // the spread measures the start-up backlog, not the dissemination of one change.
  const settled = sim.runUntil(
    () =>
      sim.live().every((x) => x.core!.targetsOf("web")!.every((t) => t.verdict === "up")) &&
      replicasHoldOwnersLatest(sim),
    180_000,
    1_000,
  );
  if (settled === undefined)
    throw new Error(`N=${n}: verdicts and owners' registers did not settle on every node in 180 s`);
  progress(`  N=${n}: joined and settled at ${round(settled / 1000, 1)} s simulated`);
  for (const x of sim.nodes) x.events.length = 0;
  const flipAt = new Map<string, number>();
  for (let f = 0; f < flips; f++) {
    const key = targets[(f * 7919) % targets.length]!;
    const at = sim.now + 1_000 + f * 500;
    sim.at(at, () => {
      downSince.set(key, at);
      flipAt.set(key, at);
    });
  }
  sim.runFor(1_000 + flips * 500 + 30_000);
  const spread: number[] = [];
  const e2e: number[] = [];
  for (const [key, at] of flipAt) {
    const target = key;
    const times: number[] = [];
    for (const x of sim.nodes) {
      const ev = x.events.find((e) => e.target === target && e.to === "down");
      if (ev !== undefined) times.push(ev.ts - SIM_WALL_EPOCH_MS);
    }
    if (times.length < n) continue; // not everywhere within the run: counted below
    spread.push(Math.max(...times) - Math.min(...times));
    if (process.env.BENCH_DEBUG)
      progress(
        `  ${key}: spread ${Math.round(Math.max(...times) - Math.min(...times))} times ${times.map((t) => Math.round(t - at)).join(",")}`,
      );
    e2e.push(Math.max(...times) - at);
  }
  if (spread.length < flips)
    progress(`  N=${n}: only ${spread.length}/${flips} flips reached every node in time`);
  let registers = 0;
  let broadcastsDropped = 0;
  for (const x of sim.live()) {
    registers += x.core!.observations.stats().registers;
    broadcastsDropped += x.core!.broadcastsDropped;
  }
  return {
    nodes: n,
    targets: targetCount,
    flips,
    spreadMsP50: round(percentile([...spread], 50), 0),
    spreadMsP99: round(percentile([...spread], 99), 0),
    endToEndMsP50: round(percentile([...e2e], 50), 0),
    endToEndMsP99: round(percentile([...e2e], 99), 0),
    realSeconds: round((performance.now() - t0) / 1000, 1),
    reachedEveryNode: spread.length,
    settledAfterMs: settled,
    registersPerTarget: round(registers / n / targetCount, 1),
    broadcastsDropped,
    heapMiB: round(process.memoryUsage().heapUsed / 2 ** 20, 0),
    measuredAt: new Date().toISOString(),
  };
}

// ── 2. bandwidth under flips ────────────────────────────────────────────────
interface Bandwidth {
  nodes: number;
  targets: number;
  flipsPerMinute: number;
  simulatedSeconds: number;
  bytesPerNodePerSecond: number;
  gossipBytesPerNodePerSecond: number;
  streamBytesPerNodePerSecond: number;
  note: string;
}

function bandwidth(n: number, targetCount: number, flipsPerMinute: number, seconds: number): Bandwidth {
  const targets = Array.from({ length: targetCount }, (_, i) => addr(i));
  const down = new Set<string>();
  const sim = cluster(77, n, [["web", poolDoc(targets)]], (k) => !down.has(k));
  sim.runFor(60_000); // let the start-up burst settle
  const everyMs = 60_000 / flipsPerMinute;
  let f = 0;
  const flip = (): void => {
    const key = targets[(f++ * 104_729) % targets.length]!;
    if (down.has(key)) down.delete(key);
    else down.add(key);
    sim.at(sim.now + everyMs, flip);
  };
  sim.at(sim.now, flip);
  const before = { ...sim.traffic };
  sim.runFor(seconds * 1000);
  const udp = sim.traffic.udpBytes - before.udpBytes;
  const streams = sim.traffic.streamBytes - before.streamBytes;
  return {
    nodes: n,
    targets: targetCount,
    flipsPerMinute,
    simulatedSeconds: seconds,
    bytesPerNodePerSecond: round((udp + streams) / n / seconds, 0),
    gossipBytesPerNodePerSecond: round(udp / n / seconds, 0),
    streamBytesPerNodePerSecond: round(streams / n / seconds, 0),
    note: "payload bytes before encryption (+29 bytes per packet with a keyring); membership and replication together",
  };
}

// ── 3. memory per target in a replica ──────────────────────────────────────
function memoryPerTarget(targetCount: number): { targets: number; bytesPerTarget: number; heapMiB: number } {
  const targets = Array.from({ length: targetCount }, (_, i) => addr(i));
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const sim = cluster(5, 3, [["web", poolDoc(targets)]], () => true);
  sim.runFor(40_000);
  gc();
  const h1 = process.memoryUsage().heapUsed;
  // three replicas in this process
  return {
    targets: targetCount,
    bytesPerTarget: round((h1 - h0) / 3 / targetCount, 0),
    heapMiB: round((h1 - h0) / 2 ** 20, 1),
  };
}

const results: { propagation: Propagation[]; bandwidth: Bandwidth[]; memory?: unknown } = {
  propagation: [],
  bandwidth: [],
};
for (const n of SIZES) {
  progress(`propagation: ${n} nodes`);
  const r = propagation(n, arg("targets", n >= 500 ? 500 : 1000), 20);
  progress(
    `  spread p50 ${r.spreadMsP50} ms, p99 ${r.spreadMsP99} ms; end-to-end p99 ${r.endToEndMsP99} ms; ${r.reachedEveryNode}/${r.flips} flips everywhere; ${r.registersPerTarget} registers/target; heap ${r.heapMiB} MiB (${r.realSeconds}s real)`,
  );
  results.propagation.push(r);
  gc();
}
// Sizes not run this time keep their previous measurement.
try {
  const previous = JSON.parse(readFileSync(join(RESULTS_DIR, "convergence.json"), "utf8")) as {
    propagation?: Propagation[];
  };
  for (const p of previous.propagation ?? [])
    if (!SIZES.includes(p.nodes))
      results.propagation.push({ ...p, measuredAt: p.measuredAt ?? "earlier run" });
} catch {
  // no previous results
}
results.propagation.sort((a, b) => a.nodes - b.nodes);
progress("bandwidth: 10 nodes, flips at the rate of 1% of 100k targets per minute");
const bw = bandwidth(10, arg("flip-targets", 10_000), 1_000, 60);
progress(
  `  ${bw.bytesPerNodePerSecond} B/node/s (${bw.gossipBytesPerNodePerSecond} gossip, ${bw.streamBytesPerNodePerSecond} anti-entropy)`,
);
results.bandwidth.push(bw);
progress("memory: 3 replicas of 100k targets");
results.memory = memoryPerTarget(arg("memory-targets", 100_000));
progress(`  ${JSON.stringify(results.memory)}`);
const path = writeResults("convergence", {
  notes:
    "Simulator (sim/vigil.ts), lan profile, whole-node cores. Each node starts when it joins, as a node with join seeds does (checks held until joined). Flips start once every node shows every target up and holds every owner's latest register (settledAfterMs); 20 flips per size, so p99 is the slowest of 20. Propagation spread = last node minus first node showing the verdict; end-to-end includes detection (interval 10 s, fall 2 × fastinter 2 s). Until 2026-11-22 no flip reached all 500 nodes: nodes started early ran alone, left a register on every target and filled it past the 64-register bound, so the owners' registers were refused for good (now a stale non-owner's gives way), and every joiner's config-pool stamp started an O(n) fan-out epidemic (now only content changes are passed on). At start every target flips unknown→up at once: gossip queues overflow (broadcastsDropped) and anti-entropy completes the replicas, which is most of settledAfterMs. Bandwidth: the flip rate of 1% of 100k targets per minute (1000/min) applied to a 10k-target cluster; traffic depends on the flip rate and cluster size, not on the number of targets held. Memory: whole node core per target (pools, placement, scheduler, observations with 2 observers), not only the CRDT; still above the issue's 1 KiB target.",
  ...results,
});
console.log(JSON.stringify(results, null, 2));
progress(`wrote ${path}`);
