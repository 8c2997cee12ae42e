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
import { arg, argString, LatencyHistogram, procCpuMs, progress, round, writeResults } from "./lib.ts";

const self = fileURLToPath(import.meta.url);
const serve = argString("serve", "");

/** Serving mode (a child of the benchmark): start the server, print its port, run until killed. */
async function serveAgent(): Promise<number> {
  const { startAgentServer } = await import("../src/serve/agent-server.ts");
  const verdict = { state: "up" as const, reason: "status 200" };
  const transport = argString("transport", "libuv") === "net" ? "net" : "libuv";
  const s = await startAgentServer({ host: "127.0.0.1", port: 0, transport, lookup: () => verdict });
  return s.port;
}

if (serve === "main") {
  process.stdout.write(`${await serveAgent()}\n`);
} else if (serve === "worker") {
  if (isMainThread) {
    const w = new Worker(self, {
      argv: ["--serve=worker", `--transport=${argString("transport", "libuv")}`],
    });
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
  /** The server process's CPU (user + system) per answered lookup. */
  serverCpuMicrosPerLookup: number;
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
          serverCpuMicrosPerLookup: 0,
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

interface Served {
  port: number;
  cpuMs: () => number;
  stop: () => void;
}

async function startServer(cmd: string, args: string[]): Promise<Served> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return {
    port: Number(line),
    cpuMs: () => {
      const { userMs, systemMs } = procCpuMs(`/proc/${child.pid}/stat`);
      return userMs + systemMs;
    },
    stop: () => child.kill("SIGKILL"),
  };
}

/** One generator run against `server`, with the server's CPU over it. */
async function measure(gen: string, server: Served, rate: number, seconds: number): Promise<Run> {
  const cpu0 = server.cpuMs();
  const r = await generate(gen, server.port, rate, seconds);
  const cpuMs = server.cpuMs() - cpu0;
  return { ...r, serverCpuMicrosPerLookup: round((cpuMs * 1000) / Math.max(1, r.answered), 1) };
}

async function main(): Promise<void> {
  const rate = arg("rate", 5000);
  const seconds = arg("seconds", 5);
  const runs = arg("runs", 3);
  const gen = build("agent-load", ["-lm"]);
  const floor = build("agent-floor");
  const servers: { name: string; cmd: string; args: string[] }[] = [];
  for (const transport of ["libuv", "net"])
    servers.push(
      {
        name: `vigil agent server (${transport}), own process, main thread`,
        cmd: process.execPath,
        args: [self, "--serve=main", `--transport=${transport}`],
      },
      {
        name: `vigil agent server (${transport}), own process, worker thread`,
        cmd: process.execPath,
        args: [self, "--serve=worker", `--transport=${transport}`],
      },
    );
  servers.push({ name: "C server (bench/agent-floor.c)", cmd: floor, args: [] });
  const load = loadavg();
  const results: { server: string; runs: Run[] }[] = [];
  // Every server runs at once (idle but the one under load); the runs go round the servers, so
  // the machine's noise lands on each alike.
  const started: Served[] = [];
  try {
    for (const s of servers) started.push(await startServer(s.cmd, s.args));
    for (const server of started) await generate(gen, server.port, rate, seconds); // warm-up, not kept
    const kept: Run[][] = servers.map(() => []);
    for (let i = 0; i < runs; i++)
      for (let k = 0; k < servers.length; k++) {
        const r = await measure(gen, started[k]!, rate, seconds);
        progress(
          `${servers[k]!.name}: ${rate}/s p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ` +
            `${r.serverCpuMicrosPerLookup} µs CPU/lookup, errors ${r.errors}`,
        );
        kept[k]!.push(r);
      }
    results.push(...servers.map((s, k) => ({ server: s.name, runs: kept[k]! })));
  } finally {
    for (const s of started) s.stop();
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
