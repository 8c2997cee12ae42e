import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "results");

/** Nearest-rank percentile of unsorted samples (sorted in place). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  samples.sort((a, b) => a - b);
  const i = Math.min(samples.length - 1, Math.max(0, Math.ceil((p / 100) * samples.length) - 1));
  return samples[i]!;
}

export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(
    path,
    `${JSON.stringify({ bench: name, at: new Date().toISOString(), node: process.version, ...(data as object) }, null, 2)}\n`,
  );
  return path;
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function progress(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** `--name=value` or env BENCH_NAME, else the default. */
export function arg(name: string, dflt: number): number {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`));
  const v = flag?.split("=")[1] ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, "_")}`];
  return v === undefined ? dflt : Number(v);
}

/** `--name=value` or env BENCH_NAME as a string, else the default. */
export function argString(name: string, dflt: string): string {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`));
  return flag?.split("=")[1] ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, "_")}`] ?? dflt;
}

/** User and system CPU ms a process or thread has used so far, from its /proc …/stat (10 ms ticks). */
export function procCpuMs(statPath: string): { userMs: number; systemMs: number } {
  const stat = readFileSync(statPath, "utf8");
  // Fields after "(comm) ": state is the first; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { userMs: Number(f[11]) * 10, systemMs: Number(f[12]) * 10 };
}

/**
 * CPU milliseconds used so far by each kind of thread of this process (Linux /proc, 10 ms
 * ticks), keyed by thread name: "MainThread", "V8Worker" (GC and compiler helpers),
 * "libuv-worker", worker threads ("WorkerThread"). Empty where /proc is missing.
 */
export function threadCpuMs(): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      const { userMs, systemMs } = procCpuMs(`/proc/self/task/${tid}/stat`);
      out[name] = (out[name] ?? 0) + userMs + systemMs;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Per-thread-kind CPU ms between two threadCpuMs() readings. */
export function threadCpuDiff(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after)) {
    const d = ms - (before[name] ?? 0);
    if (d > 0) out[name] = d;
  }
  return out;
}

const LINEAR_US = 1024;
const SUB = 64;
const DOUBLINGS = 20;

/**
 * Latency histogram shared with the C generator (bench/agent-load.c writes the same buckets as
 * sparse [bucket, count] pairs): 1 µs buckets below 1,024 µs, then 64 per doubling (within
 * 1.6%), up to ~9 minutes.
 */
export class LatencyHistogram {
  readonly counts = new Float64Array(LINEAR_US + SUB * DOUBLINGS);
  n = 0;

  record(ms: number): void {
    const us = ms < 0 ? 0 : ms * 1000;
    let i: number;
    if (us < LINEAR_US) i = Math.floor(us);
    else {
      const e = Math.min(Math.floor(Math.log2(us)), 10 + DOUBLINGS - 1);
      const sub = Math.min(SUB - 1, Math.floor((us / 2 ** e - 1) * SUB));
      i = LINEAR_US + (e - 10) * SUB + sub;
    }
    this.counts[i]!++;
    this.n++;
  }

  /** The upper edge of bucket i, in ms: percentiles err on the slow side. */
  static upperMs(i: number): number {
    if (i < LINEAR_US) return (i + 1) / 1000;
    const e = 10 + Math.floor((i - LINEAR_US) / SUB);
    const sub = (i - LINEAR_US) % SUB;
    return (2 ** e * (1 + (sub + 1) / SUB)) / 1000;
  }

  /** Nearest-rank percentile; NaN when empty. */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return round(LatencyHistogram.upperMs(i), 3);
    }
    return Number.NaN;
  }

  toJSON(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]! > 0) out.push([i, this.counts[i]!]);
    return out;
  }

  merge(sparse: [number, number][]): void {
    for (const [i, c] of sparse) {
      this.counts[i]! += c;
      this.n += c;
    }
  }
}

/** A server in a process of its own: the first line it prints (its port) and its pid. */
export interface SpawnedServer {
  port: number;
  pid: number;
  stop: () => void;
}

/** Starts `cmd args`, a server that prints its port on a line once it listens. */
export async function spawnServer(cmd: string, args: string[]): Promise<SpawnedServer> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return { port: Number(line), pid: child.pid!, stop: () => child.kill("SIGKILL") };
}

/** Builds bench/<name>.c with the machine's C compiler into a temp dir; throws without one. */
export function buildC(name: string, extra: string[] = []): string {
  const out = join(mkdtempSync(join(tmpdir(), `vigil-${name}-`)), name);
  execFileSync("cc", ["-O2", "-o", out, fileURLToPath(new URL(`./${name}.c`, import.meta.url)), ...extra], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return out;
}

/** One run of the C agent generator (bench/agent-load.c) against `port`. */
export interface AgentLoadRun {
  answered: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
}

/** Runs bench/agent-load.c (built by buildC) at `rate` for `seconds`, 64 connections at most. */
export function runAgentLoad(
  gen: string,
  port: number,
  rate: number,
  seconds: number,
): Promise<AgentLoadRun> {
  return new Promise((resolve, reject) => {
    const g = spawn(
      gen,
      [`--port=${port}`, `--rate=${rate}`, `--seconds=${seconds}`, "--conns=64", "--offset=0"],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    let out = "";
    g.stdout!.on("data", (d) => {
      out += d;
    });
    g.stdin!.end("go\n");
    g.on("error", reject);
    g.on("exit", () => {
      try {
        const r = JSON.parse(out.trim().split("\n").at(-1) ?? "") as {
          answered: number;
          errors: number;
          latency: [number, number][];
          lag: [number, number][];
        };
        const latency = new LatencyHistogram();
        latency.merge(r.latency);
        const lag = new LatencyHistogram();
        lag.merge(r.lag);
        resolve({
          answered: r.answered,
          errors: r.errors,
          p50Ms: latency.percentile(50),
          p99Ms: latency.percentile(99),
          maxMs: latency.percentile(100),
          sendLagP99Ms: lag.percentile(99),
        });
      } catch (e) {
        reject(new Error(`generator report unreadable: ${(e as Error).message}`));
      }
    });
  });
}
