// Check throughput of one node: HTTP checks against local origins (new connection per check),
// scheduler lag, CPU per check, memory; then a hold test of many targets at a 10 s interval.
// Writes bench/results/checks.json. Bounded: every phase has a fixed duration.
//
//   npx node bench/checks.ts [--rate-targets=5000 --rate-interval-ms=1000 --rate-seconds=20]
//                            [--hold-targets=20000 --hold-seconds=120] [--origin=raw|node-http]
import { spawn } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type CheckResult, createProber, type Prober } from "../src/checkers/index.ts";
import { parseConfigText } from "../src/config/load.ts";
import { SeededRandom } from "../src/core/random.ts";
import { systemClock } from "../src/runtime/clock.ts";
import { silentLogger } from "../src/runtime/log.ts";
import { VigilNode } from "../src/runtime/node.ts";
import {
  arg,
  argString,
  percentile,
  progress,
  round,
  threadCpuDiff,
  threadCpuMs,
  writeResults,
} from "./lib.ts";

const ORIGIN_PORTS = 250;
/** raw (default): a minimal net server; node-http: node:http's server (see origin-server.ts). */
const ORIGIN_KIND = argString("origin", "raw");
/**
 * real (default): HTTP checks over loopback. stub: every check answers "up" on the next
 * event-loop turn without a socket, so the figures are the node's own cost around a check
 * (scheduler, core, replication, history, metrics), apart from the checker's.
 */
const PROBER = argString("prober", "real");

/** A prober without sockets: ok on the next turn (setImmediate, as an I/O callback would be). */
function stubProber(): Prober {
  return {
    check: () =>
      new Promise<CheckResult>((resolve) => {
        setImmediate(resolve, { ok: true, latencyMs: 0.2, reason: "status 200" });
      }),
    close: async () => {},
  };
}

async function startOrigins(): Promise<{ ports: number[]; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./origin-server.ts", import.meta.url)), String(ORIGIN_PORTS), ORIGIN_KIND],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return { ports: (JSON.parse(line) as { ports: number[] }).ports, stop: () => child.kill("SIGKILL") };
}

function configFor(ports: number[], targets: number, intervalMs: number, maxConcurrent: number): string {
  // Targets are unique within a pool, so spread them over pools of at most `ports.length`.
  const pools: string[] = [];
  for (let p = 0; p * ports.length < targets; p++) {
    const n = Math.min(ports.length, targets - p * ports.length);
    pools.push(
      `  p${p}:\n    check: { type: http, path: /healthz }\n    targets: [${ports
        .slice(0, n)
        .map((port) => `127.0.0.1:${port}`)
        .join(", ")}]`,
    );
  }
  return `node: { name: bench, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${mkdtempSync(join(tmpdir(), "vigil-bench-"))}", max_concurrent_checks: ${maxConcurrent} }
defaults: { interval: ${intervalMs}ms, timeout: ${Math.min(2000, intervalMs)}ms, rise: 2, fall: 3, jitter: 0.1 }
pools:
${pools.join("\n")}
`;
}

interface PhaseResult {
  targets: number;
  intervalMs: number;
  seconds: number;
  checks: number;
  checksPerSecond: number;
  failures: number;
  lagMsP50: number;
  lagMsP99: number;
  lagMsMax: number;
  latencyMsP50: number;
  latencyMsP99: number;
  cpuMicrosPerCheck: number;
  cpuSeconds: number;
  /** µs per check by thread kind: MainThread, V8Worker (GC helpers), WorkerThread (lookup thread)... */
  cpuMicrosPerCheckByThread: Record<string, number>;
  rssMiB: number;
  heapUsedMiB: number;
  lagP99MsByWindow: number[];
}

async function phase(
  ports: number[],
  targets: number,
  intervalMs: number,
  seconds: number,
  warmupS: number,
): Promise<PhaseResult> {
  const cfg = parseConfigText(configFor(ports, targets, intervalMs, 512), "<bench>");
  const node = new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(7),
    prober: PROBER === "stub" ? stubProber() : createProber(),
    logger: silentLogger,
  });
  let lags: number[] = [];
  let lats: number[] = [];
  let checks = 0;
  let failures = 0;
  let windowLags: number[] = [];
  const onStart = (m: unknown): void => {
    const lag = (m as { lagMs: number }).lagMs;
    lags.push(lag);
    windowLags.push(lag);
  };
  const onFinish = (m: unknown): void => {
    const r = (m as { result: { ok: boolean; latencyMs: number } }).result;
    checks++;
    if (!r.ok) failures++;
    lats.push(r.latencyMs);
  };
  subscribe("vigil:check:start", onStart);
  subscribe("vigil:check:finish", onFinish);
  await node.start();
  progress(`phase: ${targets} targets @ ${intervalMs}ms — warming up ${warmupS}s`);
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  lags = [];
  lats = [];
  checks = 0;
  failures = 0;
  windowLags = [];
  const byWindow: number[] = [];
  const windowMs = Math.max(1000, intervalMs);
  const ticker = setInterval(() => {
    byWindow.push(round(percentile(windowLags, 99), 2));
    progress(
      `  ${byWindow.length * (windowMs / 1000)}s: ${checks} checks, window lag p99 ${byWindow.at(-1)}ms`,
    );
    windowLags = [];
  }, windowMs);
  const threads0 = threadCpuMs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const threads = threadCpuDiff(threads0, threadCpuMs());
  clearInterval(ticker);
  const mem = process.memoryUsage();
  const n = checks;
  const f = failures;
  unsubscribe("vigil:check:start", onStart);
  unsubscribe("vigil:check:finish", onFinish);
  await node.stop();
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    targets,
    intervalMs,
    seconds: round(elapsedS, 1),
    checks: n,
    checksPerSecond: round(n / elapsedS, 0),
    failures: f,
    lagMsP50: round(percentile(lags, 50), 3),
    lagMsP99: round(percentile(lags, 99), 3),
    lagMsMax: round(percentile(lags, 100), 3),
    latencyMsP50: round(percentile(lats, 50), 3),
    latencyMsP99: round(percentile(lats, 99), 3),
    cpuMicrosPerCheck: round((cpuS * 1e6) / Math.max(1, n), 1),
    cpuSeconds: round(cpuS, 2),
    cpuMicrosPerCheckByThread: Object.fromEntries(
      Object.entries(threads).map(([name, ms]) => [name, round((ms * 1000) / Math.max(1, n), 1)]),
    ),
    rssMiB: round(mem.rss / 2 ** 20, 1),
    heapUsedMiB: round(mem.heapUsed / 2 ** 20, 1),
    lagP99MsByWindow: byWindow,
  };
}

const loadBefore = loadavg();
const origins = await startOrigins();
try {
  const rate = await phase(
    origins.ports,
    arg("rate-targets", 5000),
    arg("rate-interval-ms", 1000),
    arg("rate-seconds", 20),
    3,
  );
  progress(
    `rate: ${rate.checksPerSecond} checks/s, lag p99 ${rate.lagMsP99}ms, ${rate.cpuMicrosPerCheck}µs CPU/check ${JSON.stringify(rate.cpuMicrosPerCheckByThread)}`,
  );
  const hold = await phase(origins.ports, arg("hold-targets", 20_000), 10_000, arg("hold-seconds", 120), 12);
  progress(
    `hold: ${hold.checksPerSecond} checks/s, lag p99 ${hold.lagMsP99}ms, windows ${hold.lagP99MsByWindow.join(",")}`,
  );
  const path = writeResults(PROBER === "stub" ? "checks-stub" : "checks", {
    machine: { cores: (await import("node:os")).availableParallelism() },
    notes:
      "HTTP checks, new connection per check (closed with a reset), origins in a separate process on loopback; CPU is the agent process only (user+system). Lag = due to started, including waits for a slot under max_concurrent_checks (512).",
    prober: PROBER,
    origin: ORIGIN_KIND,
    loadavg: { before: loadBefore, after: loadavg() },
    rate,
    hold,
  });
  console.log(JSON.stringify({ rate, hold }, null, 2));
  progress(`wrote ${path}`);
} finally {
  origins.stop();
}
