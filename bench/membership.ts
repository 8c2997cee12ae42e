// Membership on the simulator, lan profile: N = 10, 100, 500 nodes at 0%, 10% and 30% packet
// loss on every link. For each combination, over several seeds:
// - time until a crash is known to every survivor (p50 / p99 over crashes),
// - time until a metadata update has reached every node (dissemination),
// - false deaths per node-hour (a live node declared dead by anyone) under loss,
// - bytes per node per second (UDP + TCP, steady state),
// - real CPU time per simulated node-second.
// Writes bench/results/membership.json.
//
//   npx node bench/membership.ts [--runs-scale=1] [--steady-s=0 (per-N default)]
//
// Reference (DESIGN.md): memberlist, lan, makes a crash known to all in ~6.0 / 8.0 / 9.6 s for
// 5 / 10 / 30 members, and disseminates to 99.99% of 1,000 nodes in ~2.2 s at 0% loss.

import { SimCluster, type SimNode } from "../sim/cluster.ts";
import { suspicionTimeoutMs, suspicionTimeoutMsMax } from "../src/core/membership/suspicion.ts";
import { arg, percentile, progress, round, writeResults } from "./lib.ts";

interface Combo {
  n: number;
  loss: number;
  runs: number;
  crashesPerRun: number;
  steadyMs: number;
}

const runsScale = arg("runs-scale", 1);
const steadyOverrideS = arg("steady-s", 0);

function combos(): Combo[] {
  // At 30% loss a 500-node cluster gossips ~25× more (suspicions and refutations): one shorter run.
  const plan: Combo[] = [
    { n: 10, loss: 0, runs: 10, crashesPerRun: 2, steadyMs: 300_000 },
    { n: 10, loss: 0.1, runs: 10, crashesPerRun: 2, steadyMs: 300_000 },
    { n: 10, loss: 0.3, runs: 10, crashesPerRun: 2, steadyMs: 300_000 },
    { n: 100, loss: 0, runs: 3, crashesPerRun: 3, steadyMs: 180_000 },
    { n: 100, loss: 0.1, runs: 3, crashesPerRun: 3, steadyMs: 180_000 },
    { n: 100, loss: 0.3, runs: 3, crashesPerRun: 3, steadyMs: 180_000 },
    { n: 500, loss: 0, runs: 2, crashesPerRun: 2, steadyMs: 60_000 },
    { n: 500, loss: 0.1, runs: 2, crashesPerRun: 2, steadyMs: 60_000 },
    { n: 500, loss: 0.3, runs: 1, crashesPerRun: 2, steadyMs: 30_000 },
  ];
  return plan.map((c) => ({
    ...c,
    runs: Math.max(1, Math.round(c.runs * runsScale)),
    steadyMs: steadyOverrideS > 0 ? steadyOverrideS * 1000 : c.steadyMs,
  }));
}

function allAliveEverywhere(nodes: SimNode[]): boolean {
  return nodes.every((o) => o.core!.countByState().alive === nodes.length);
}

interface RunResult {
  joinedMs: number | undefined;
  crashToAllMs: number[];
  crashesUndetected: number;
  disseminationMs: number | undefined;
  /** Distinct lives (member@incarnation) of running nodes that some node declared dead. */
  falseDeaths: number;
  /** member.dead events about running nodes, one per observer. */
  falseDeathEvents: number;
  /** How long each such event stood before the observer saw the member alive again. */
  falseDeathHeldMs: number[];
  nodeHours: number;
  bytesPerNodePerS: number;
  cpuUsPerNodeS: number;
}

function oneRun(combo: Combo, seed: number): RunResult {
  const c = new SimCluster({ seed });
  const nodes = c.addNodes(combo.n, { staggerMs: Math.min(10_000, combo.n * 20) });
  // Join on a clean network; the loss under test applies to the steady state.
  const joinedMs = c.runUntil(() => allAliveEverywhere(nodes), 180_000, 250);
  const crashed = new Set<string>();
  const falseLives = new Set<string>();
  let falseDeathEvents = 0;
  const heldSince = new Map<string, number>();
  const falseDeathHeldMs: number[] = [];
  c.onEvent((node, ev, now) => {
    if (!("member" in ev) || crashed.has(ev.member.name)) return;
    const pair = `${node.name}>${ev.member.name}`;
    if (ev.type === "member.dead") {
      falseLives.add(`${ev.member.name}@${ev.member.incarnation}`);
      falseDeathEvents++;
      heldSince.set(pair, now);
    } else if (ev.type === "member.joined" && heldSince.has(pair)) {
      falseDeathHeldMs.push(now - heldSince.get(pair)!);
      heldSince.delete(pair);
    }
  });
  c.net.setLoss(combo.loss);
  const lossFromMs = c.now;
  c.runFor(10_000);

  // Steady state: bytes and CPU per node, false deaths.
  const bytes0 = c.traffic.udpBytes + c.traffic.streamBytes;
  const cpu0 = process.cpuUsage();
  c.runFor(combo.steadyMs);
  const cpu = process.cpuUsage(cpu0);
  const steadyS = combo.steadyMs / 1000;
  const bytesPerNodePerS = (c.traffic.udpBytes + c.traffic.streamBytes - bytes0) / (combo.n * steadyS);
  const cpuUsPerNodeS = (cpu.user + cpu.system) / (combo.n * steadyS);

  // Dissemination of one alive message (a metadata update) to every node.
  const changed = nodes[1 + (seed % (combo.n - 1))]!;
  const meta = new TextEncoder().encode(`bench-${seed}`);
  c.setMeta(changed, meta);
  const startMs = c.now;
  const seen = c.runUntil(
    () => nodes.every((o) => o.core!.member(changed.name)?.meta.length === meta.length),
    30_000,
    10,
  );
  const disseminationMs = seen === undefined ? undefined : seen - startMs;

  // Crashes, one at a time: time until every survivor lists the victim as dead.
  const crashToAllMs: number[] = [];
  let crashesUndetected = 0;
  const cfg = c.config;
  for (let i = 0; i < combo.crashesPerRun; i++) {
    const live = nodes.filter((x) => x.core !== undefined);
    const victim = live[(seed * 7 + i * 13) % live.length]!;
    crashed.add(victim.name);
    c.crash(victim);
    const survivors = live.filter((x) => x !== victim);
    const minMs = suspicionTimeoutMs(survivors.length + 1, cfg.suspicionMult, cfg.probeIntervalMs);
    const capMs = suspicionTimeoutMsMax(minMs, cfg.suspicionMaxTimeoutMult) + 30_000;
    const t0 = c.now;
    const t = c.runUntil(() => survivors.every((o) => c.view(o, victim) === "dead"), capMs, 20);
    if (t === undefined) crashesUndetected++;
    else crashToAllMs.push(t - t0);
    c.runFor(5_000);
  }
  for (const since of heldSince.values()) falseDeathHeldMs.push(c.now - since);
  // Node-hours observed under loss: from the moment loss was applied.
  const nodeHours = (combo.n * (c.now - lossFromMs)) / 3_600_000;
  return {
    joinedMs,
    crashToAllMs,
    crashesUndetected,
    disseminationMs,
    falseDeaths: falseLives.size,
    falseDeathEvents,
    falseDeathHeldMs,
    nodeHours,
    bytesPerNodePerS,
    cpuUsPerNodeS,
  };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

const results: unknown[] = [];
const table: string[] = [];
const started = performance.now();
for (const combo of combos()) {
  const t0 = performance.now();
  const runs: RunResult[] = [];
  for (let r = 0; r < combo.runs; r++) runs.push(oneRun(combo, 1000 + r));
  const crashes = runs.flatMap((r) => r.crashToAllMs);
  const dissemination = runs.flatMap((r) => (r.disseminationMs === undefined ? [] : [r.disseminationMs]));
  const joined = runs.flatMap((r) => (r.joinedMs === undefined ? [] : [r.joinedMs]));
  const falseDeaths = runs.reduce((a, r) => a + r.falseDeaths, 0);
  const nodeHours = runs.reduce((a, r) => a + r.nodeHours, 0);
  const row = {
    nodes: combo.n,
    loss: combo.loss,
    runs: combo.runs,
    joinAllAliveMsMax: joined.length === runs.length ? Math.max(...joined) : null,
    crashKnownToAllMs: {
      samples: crashes.length,
      undetected: runs.reduce((a, r) => a + r.crashesUndetected, 0),
      p50: round(percentile([...crashes], 50), 0),
      p99: round(percentile([...crashes], 99), 0),
      mean: round(mean(crashes), 0),
    },
    disseminationToAllMs: {
      samples: dissemination.length,
      p50: round(percentile([...dissemination], 50), 0),
      max: round(Math.max(...dissemination), 0),
    },
    falseDeaths,
    falseDeathEvents: runs.reduce((a, r) => a + r.falseDeathEvents, 0),
    falseDeathHeldMsMean: round(mean(runs.flatMap((r) => r.falseDeathHeldMs)), 0),
    falseDeathsPerNodeHour: round(falseDeaths / nodeHours, 3),
    nodeHours: round(nodeHours, 2),
    bytesPerNodePerS: round(mean(runs.map((r) => r.bytesPerNodePerS)), 0),
    cpuUsPerSimNodeS: round(mean(runs.map((r) => r.cpuUsPerNodeS)), 1),
    realS: round((performance.now() - t0) / 1000, 1),
  };
  results.push(row);
  const line =
    `N=${String(combo.n).padStart(3)} loss=${String(combo.loss * 100).padStart(2)}%  ` +
    `crash→all p50 ${(row.crashKnownToAllMs.p50 / 1000).toFixed(1)} s p99 ${(row.crashKnownToAllMs.p99 / 1000).toFixed(1)} s (${crashes.length})  ` +
    `meta→all p50 ${(row.disseminationToAllMs.p50 / 1000).toFixed(2)} s  ` +
    `false deaths ${row.falseDeaths} (${row.falseDeathsPerNodeHour}/node-h, seen by ${row.falseDeathEvents}, held ${(row.falseDeathHeldMsMean / 1000).toFixed(1)} s)  ` +
    `${row.bytesPerNodePerS} B/node/s  ` +
    `cpu ${row.cpuUsPerSimNodeS} µs/node-s  [${row.realS} s]`;
  table.push(line);
  progress(line);
}

const path = writeResults("membership", {
  profile: "lan",
  network: "per-link base latency 0.2-2 ms, exponential jitter mean 0.5 ms; loss on every link",
  method:
    "join on a clean network, then apply loss; 10 s settle; steady window (bytes, CPU); one metadata update; then crashes one at a time",
  falseDeaths:
    "distinct lives (member@incarnation) of running nodes declared dead by any node, per node-hour under loss; falseDeathEvents counts observers; falseDeathHeldMsMean is how long an observer held one before seeing the member alive again",
  cpu: "real process CPU per simulated node-second in the steady window, simulator included",
  reference: {
    memberlistCrashKnownToAllS: { 5: 6.0, 10: 8.0, 30: 9.6 },
    memberlistDissemination: "99.99% of 1,000 nodes in ~2.2 s at 0% loss",
  },
  results,
  totalRealS: round((performance.now() - started) / 1000, 1),
});
console.log(table.join("\n"));
console.log(`wrote ${path}`);
