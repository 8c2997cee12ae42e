// What history costs the checker: one node's check throughput (and CPU per check) with history
// off (`store: none`), on SQLite, and on PostgreSQL when VIGIL_TEST_PG is set. Each phase offers
// more checks than the node can run, so checks/s is its capacity. Two probers:
//
//   http  real HTTP checks against local origins (another process), new connection per check:
//         what a node spends on a check in practice;
//   null  a prober that answers on the next turn of the event loop: the node's own cost per
//         check alone, where history's share is the largest it can be.
//
// Phases alternate off/on for `--rounds` rounds, so drift on a shared machine hits both alike.
// Writes bench/results/history.json.
//
//   npx node bench/history.ts [--http-targets=10000 --null-targets=40000 --seconds=60 --rounds=2]

import { spawn } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Pool } from "pg";
import { createProber } from "../src/checkers/index.ts";
import type { CheckRequest, CheckResult, Prober } from "../src/checkers/types.ts";
import { parseConfigText } from "../src/config/load.ts";
import { SeededRandom } from "../src/core/random.ts";
import { systemClock } from "../src/runtime/clock.ts";
import { silentLogger } from "../src/runtime/log.ts";
import { VigilNode } from "../src/runtime/node.ts";
import { arg, percentile, progress, round, writeResults } from "./lib.ts";

const ORIGIN_PORTS = 250;
const HTTP_TARGETS = arg("http-targets", 10_000);
const NULL_TARGETS = arg("null-targets", 40_000);
// A whole minute: the minute rollups are written once a minute, a cost a shorter window over- or under-counts.
const SECONDS = arg("seconds", 60);
const WARMUP_S = arg("warmup", 3);
const ROUNDS = arg("rounds", 2);
const pgUrl = process.env.VIGIL_TEST_PG;
/** `--only=null:sqlite,http:none`: just these phases (for profiling one). */
const ONLY = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");

type Mode = "none" | "sqlite" | "postgres";
type ProberKind = "http" | "null";

/** Answers every check on the next turn of the loop; one target in 100 flaps (events). */
class NullProber implements Prober {
  private n = 0;
  check(req: CheckRequest): Promise<CheckResult> {
    const i = this.n++;
    const flapping = req.target.port % 100 === 0;
    const ok = !flapping || Math.floor(i / 7) % 2 === 0;
    return new Promise((resolve) =>
      setImmediate(() =>
        resolve({ ok, latencyMs: 1 + (i % 50) / 3, reason: ok ? "status 200" : "status 503" }),
      ),
    );
  }
  async close(): Promise<void> {}
}

async function startOrigins(): Promise<{ ports: number[]; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./origin-server.ts", import.meta.url)), String(ORIGIN_PORTS)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return { ports: (JSON.parse(line) as { ports: number[] }).ports, stop: () => child.kill("SIGKILL") };
}

function configFor(kind: ProberKind, ports: number[], store: string, dataDir: string): string {
  const targets = kind === "http" ? HTTP_TARGETS : NULL_TARGETS;
  const intervalMs = kind === "http" ? 1_000 : 500;
  const perPool = kind === "http" ? ports.length : 1_000;
  const pools: string[] = [];
  for (let p = 0; p * perPool < targets; p++) {
    const n = Math.min(perPool, targets - p * perPool);
    const list =
      kind === "http"
        ? ports.slice(0, n).map((port) => `127.0.0.1:${port}`)
        : Array.from({ length: n }, (_, i) => `10.${p}.${i >> 8}.${i & 255}:${1 + i}`);
    pools.push(`  p${p}:\n    check: { type: http, path: /healthz }\n    targets: [${list.join(", ")}]`);
  }
  return `node: { name: bench, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", store: "${store}" }
defaults: { interval: ${intervalMs}ms, timeout: ${Math.min(2_000, intervalMs)}ms, rise: 2, fall: 3, jitter: 0.1 }
pools:
${pools.join("\n")}
`;
}

interface PhaseResult {
  mode: Mode;
  prober: ProberKind;
  targets: number;
  seconds: number;
  checks: number;
  checksPerSecond: number;
  cpuMicrosPerCheck: number;
  /** The event loop thread alone (no worker threads): what bounds a saturated node's checks/s. */
  mainThreadMicrosPerCheck: number;
  lagMsP99: number;
  eventsWritten: number;
  rollupRowsWritten: number;
  historyDropped: number;
}

async function phase(kind: ProberKind, mode: Mode, ports: number[]): Promise<PhaseResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-history-"));
  const schema = `vigil_bench_h${process.pid}`;
  let store: string = mode;
  if (mode === "postgres") {
    const u = new URL(pgUrl!);
    u.searchParams.set("schema", schema);
    store = u.toString();
  }
  const cfg = parseConfigText(configFor(kind, ports, store, dir), "<bench>");
  const node = new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(7),
    prober: kind === "http" ? createProber() : new NullProber(),
    logger: silentLogger,
  });
  let checks = 0;
  let lags: number[] = [];
  const onStart = (m: unknown): void => {
    lags.push((m as { lagMs: number }).lagMs);
  };
  const onFinish = (): void => {
    checks++;
  };
  subscribe("vigil:check:start", onStart);
  subscribe("vigil:check:finish", onFinish);
  await node.start();
  // Past the start: every target's first verdict (a burst of events on a node that starts with
  // thousands of targets, paid once) and then the warm-up proper.
  const targets = kind === "http" ? HTTP_TARGETS : NULL_TARGETS;
  const settleBy = performance.now() + 60_000;
  while (performance.now() < settleBy) {
    let known = 0;
    for (const t of node.core.allTargets()) if (t.verdict !== "unknown") known++;
    if (known >= targets) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const eventsAtStart = node.history?.stats.eventsWritten ?? 0;
  const rowsAtStart = node.history?.stats.rollupRowsWritten ?? 0;
  checks = 0;
  lags = [];
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  const n = checks;
  const lagP99 = percentile(lags, 99);
  unsubscribe("vigil:check:start", onStart);
  unsubscribe("vigil:check:finish", onFinish);
  const stats = node.history === undefined ? undefined : { ...node.history.stats };
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
  if (mode === "postgres") {
    const admin = new Pool({ connectionString: pgUrl, max: 1 });
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
  const r: PhaseResult = {
    mode,
    prober: kind,
    targets: kind === "http" ? HTTP_TARGETS : NULL_TARGETS,
    seconds: round(elapsedS, 1),
    checks: n,
    checksPerSecond: round(n / elapsedS, 0),
    cpuMicrosPerCheck: round((cpu.user + cpu.system) / Math.max(1, n), 1),
    mainThreadMicrosPerCheck: round((main.user + main.system) / Math.max(1, n), 2),
    lagMsP99: round(lagP99, 1),
    eventsWritten: (stats?.eventsWritten ?? 0) - eventsAtStart,
    rollupRowsWritten: (stats?.rollupRowsWritten ?? 0) - rowsAtStart,
    historyDropped:
      (stats?.eventsDropped ?? 0) + (stats?.rollupRowsDropped ?? 0) + (stats?.checksDropped ?? 0),
  };
  progress(
    `${kind} ${mode}: ${r.checksPerSecond} checks/s, ${r.cpuMicrosPerCheck} µs CPU/check (${r.mainThreadMicrosPerCheck} main thread), lag p99 ${r.lagMsP99} ms, ${r.eventsWritten} events, ${r.rollupRowsWritten} rollup rows`,
  );
  return r;
}

/** The median: one round disturbed by the machine's other work does not move it. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const modes: Mode[] =
  pgUrl === undefined || pgUrl === "" ? ["none", "sqlite"] : ["none", "sqlite", "postgres"];
const origins = await startOrigins();
const phases: PhaseResult[] = [];
try {
  for (const kind of ["null", "http"] as const) {
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      // Alternate the order each round so warm-up and drift do not favour one mode.
      const order = round_ % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) {
        if (ONLY === undefined || ONLY.includes(`${kind}:${mode}`))
          phases.push(await phase(kind, mode, origins.ports));
      }
    }
  }
} finally {
  origins.stop();
}

const summary: Record<string, unknown> = {};
for (const kind of ["null", "http"] as const) {
  const of = (mode: Mode) => phases.filter((p) => p.prober === kind && p.mode === mode);
  const off = of("none");
  if (off.length === 0) continue;
  const offRate = median(off.map((p) => p.checksPerSecond));
  const offCpu = median(off.map((p) => p.cpuMicrosPerCheck));
  const offMain = median(off.map((p) => p.mainThreadMicrosPerCheck));
  const row: Record<string, unknown> = {
    off: {
      checksPerSecond: round(offRate, 0),
      cpuMicrosPerCheck: round(offCpu, 1),
      mainThreadMicrosPerCheck: round(offMain, 2),
    },
  };
  for (const mode of modes.filter((m) => m !== "none")) {
    const on = of(mode);
    if (on.length === 0) continue;
    const rate = median(on.map((p) => p.checksPerSecond));
    const cpu = median(on.map((p) => p.cpuMicrosPerCheck));
    const mainCpu = median(on.map((p) => p.mainThreadMicrosPerCheck));
    row[mode] = {
      checksPerSecond: round(rate, 0),
      cpuMicrosPerCheck: round(cpu, 1),
      mainThreadMicrosPerCheck: round(mainCpu, 2),
      // A saturated node runs checks at 1 / (main-thread time per check): what history takes of it.
      capacityCostPercent: round(100 * (1 - offMain / mainCpu), 1),
      measuredThroughputCostPercent: round(100 * (1 - rate / offRate), 1),
      cpuCostPercent: round(100 * (cpu / offCpu - 1), 1),
    };
  }
  summary[kind] = row;
}

const path = writeResults("history", {
  machine: { cores: availableParallelism() },
  notes: [
    "one node, checks/s at saturation (offered rate above capacity); CPU is the agent process (user+system) per check",
    "http: real HTTP checks, new connection per check, 250 origins in another process, 1 s interval",
    "null: a prober answering on the next loop turn (1 target in 100 flapping), 500 ms interval: the node's own cost per check, history's worst case",
    "capacityCostPercent = 1 - (main-thread CPU per check without history / with): the share of a saturated node's check throughput that history takes; target < 10",
    "measuredThroughputCostPercent = 1 - checks/s with / without (medians over rounds): the same end to end, noisier when other work shares the machine",
    "cpuCostPercent counts the whole process, worker threads included (SQLite's WAL checkpointer)",
    "postgres: when VIGIL_TEST_PG is set (test/store/start-postgres.sh, fsync=off)",
  ],
  config: {
    httpTargets: HTTP_TARGETS,
    nullTargets: NULL_TARGETS,
    seconds: SECONDS,
    warmupSeconds: WARMUP_S,
    rounds: ROUNDS,
  },
  summary,
  phases,
});
console.log(JSON.stringify(summary, null, 2));
progress(`wrote ${path}`);
