import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
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
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      // Fields after "(comm) ": state is the first; utime and stime are fields 14 and 15.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) * 10;
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
