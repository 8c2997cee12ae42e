import { mkdirSync, writeFileSync } from "node:fs";
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
