// Where the agent-check tail comes from: Vigil's agent server (src/serve/agent-server.ts, a
// fixed verdict, no node around it) in a process of its own, on the main thread and on a worker
// thread, and the minimal C server (bench/agent-floor.c), each under the C generator
// (bench/agent-load.c) at a fixed rate. bench/lookup.ts measures the same server inside a node
// with 10,000 targets; the difference between the two is what sharing a process with the node
// costs. Each server gets a warm-up run (JIT, heap growth) that is not kept, then `--runs` runs.
// Writes bench/results/agent-isolation.json.
//
//   npx node bench/agent-isolation.ts [--rate=5000 --seconds=5 --runs=3]
//
// Loopback only; needs a C compiler (cc) for the generator and the C server.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { arg, argString, LatencyHistogram, progress, writeResults } from "./lib.ts";

const self = fileURLToPath(import.meta.url);
const serve = argString("serve", "");

/** Serving mode (a child of the benchmark): start the server, print its port, run until killed. */
async function serveAgent(): Promise<number> {
  const { startAgentServer } = await import("../src/serve/agent-server.ts");
  const verdict = { state: "up" as const, reason: "status 200" };
  const s = await startAgentServer({ host: "127.0.0.1", port: 0, lookup: () => verdict });
  return s.port;
}

if (serve === "main") {
  process.stdout.write(`${await serveAgent()}\n`);
} else if (serve === "worker") {
  if (isMainThread) {
    const w = new Worker(self, { argv: ["--serve=worker"] });
    w.on("message", (port: number) => process.stdout.write(`${port}\n`));
  } else {
    parentPort!.postMessage(await serveAgent());
  }
} else {
  await main();
}

function build(name: string, extra: string[] = []): string {
  const out = join(mkdtempSync(join(tmpdir(), `vigil-${name}-`)), name);
  execFileSync("cc", ["-O2", "-o", out, fileURLToPath(new URL(`./${name}.c`, import.meta.url)), ...extra], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  return out;
}

interface Run {
  answered: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
}

function generate(gen: string, port: number, rate: number, seconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const g = spawn(
      gen,
      [`--port=${port}`, `--rate=${rate}`, `--seconds=${seconds}`, "--conns=64", "--offset=0"],
      {
        stdio: ["pipe", "pipe", "ignore"],
      },
    );
    let out = "";
    g.stdout!.on("data", (d) => {
      out += d;
    });
    g.stdin!.end("go\n");
    g.on("error", reject);
    g.on("exit", () => {
      const line = out.trim().split("\n").at(-1) ?? "";
      try {
        const r = JSON.parse(line) as {
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

async function startServer(cmd: string, args: string[]): Promise<{ port: number; stop: () => void }> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return { port: Number(line), stop: () => child.kill("SIGKILL") };
}

async function main(): Promise<void> {
  const rate = arg("rate", 5000);
  const seconds = arg("seconds", 5);
  const runs = arg("runs", 3);
  const gen = build("agent-load", ["-lm"]);
  const floor = build("agent-floor");
  const servers: { name: string; cmd: string; args: string[] }[] = [
    {
      name: "vigil agent server, own process, main thread",
      cmd: process.execPath,
      args: [self, "--serve=main"],
    },
    {
      name: "vigil agent server, own process, worker thread",
      cmd: process.execPath,
      args: [self, "--serve=worker"],
    },
    { name: "C server (bench/agent-floor.c)", cmd: floor, args: [] },
  ];
  const load = loadavg();
  const results: { server: string; runs: Run[] }[] = [];
  for (const s of servers) {
    const server = await startServer(s.cmd, s.args);
    try {
      await generate(gen, server.port, rate, seconds); // warm-up, not kept
      const kept: Run[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await generate(gen, server.port, rate, seconds);
        progress(
          `${s.name}: ${rate}/s p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, errors ${r.errors}`,
        );
        kept.push(r);
      }
      results.push({ server: s.name, runs: kept });
    } finally {
      server.stop();
    }
  }
  const path = writeResults("agent-isolation", {
    notes:
      "Agent-check lookups (a connection each, closed by the server after its line; the C generator closes with a reset, as HAProxy does) at a fixed rate from bench/agent-load.c; latency from connect() to the reply read. The servers answer a fixed verdict with no node around them; compare bench/results/lookup.json for the same server inside a node.",
    rate,
    seconds,
    loadavg: { before: load, after: loadavg() },
    results,
  });
  progress(`wrote ${path}`);
}
