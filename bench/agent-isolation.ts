import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import {
  type AgentLoadRun,
  arg,
  argString,
  buildC,
  procCpuMs,
  progress,
  round,
  runAgentLoad,
  spawnServer,
  writeResults,
} from "./lib.ts";

const self = fileURLToPath(import.meta.url);
const serve = argString("serve", "");
/** Memory this process holds on its main thread before serving (the memory phase). */
const ballastMb = arg("hold-mb", 0);

/** Small objects, as a heap of targets is, until the process's RSS reaches `mb`. */
function holdMemory(mb: number): unknown[] {
  const held: unknown[] = [];
  for (let i = 0; process.memoryUsage().rss < mb * 1024 * 1024; i++)
    for (let k = 0; k < 100_000; k++) held.push({ i, name: `t${i}:${k}`, list: [k] });
  return held;
}
const held = isMainThread && ballastMb > 0 ? holdMemory(ballastMb) : [];

/** Serving mode (a child of the benchmark): start the server, print its port, run until killed. */
async function serveAgent(): Promise<number> {
  const { startAgentServer } = await import("../src/serve/agent-server.ts");
  const verdict = { state: "up" as const, reason: "status 200" };
  const transport = argString("transport", "libuv") === "net" ? "net" : "libuv";
  const s = await startAgentServer({ host: "127.0.0.1", port: 0, transport, lookup: () => verdict });
  return s.port;
}

if (serve === "hold") {
  // Memory and nothing else: print a port-shaped line once it is held, then idle.
  process.stdout.write(`0\n`);
  setInterval(() => held.length, 60_000);
} else if (serve === "main") {
  process.stdout.write(`${await serveAgent()}\n`);
} else if (serve === "worker") {
  if (isMainThread) {
    const w = new Worker(self, {
      argv: ["--serve=worker", `--transport=${argString("transport", "libuv")}`],
    });
    w.on("message", (port: number) => process.stdout.write(`${port}\n`));
    setInterval(() => held.length, 60_000);
  } else {
    parentPort!.postMessage(await serveAgent());
  }
} else {
  await main();
}

type Run = AgentLoadRun & {
  /** The server process's CPU (user + system) per answered lookup. */
  serverCpuMicrosPerLookup: number;
};

interface Served {
  port: number;
  pid: number;
  cpuMs: () => number;
  stop: () => void;
}

async function startServer(cmd: string, args: string[]): Promise<Served> {
  const s = await spawnServer(cmd, args);
  return {
    ...s,
    cpuMs: () => {
      const { userMs, systemMs } = procCpuMs(`/proc/${s.pid}/stat`);
      return userMs + systemMs;
    },
  };
}

/** One generator run against `server`, with the server's CPU over it. */
async function measure(gen: string, server: Served, rate: number, seconds: number): Promise<Run> {
  const cpu0 = server.cpuMs();
  const r = await runAgentLoad(gen, server.port, rate, seconds);
  const cpuMs = server.cpuMs() - cpu0;
  return { ...r, serverCpuMicrosPerLookup: round((cpuMs * 1000) / Math.max(1, r.answered), 1) };
}

/** CPU ms of the kernel's DAMON threads so far, or undefined when the machine runs none. */
function kdamondCpuMs(): number | undefined {
  let total: number | undefined;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("kdamond")) continue;
      const { userMs, systemMs } = procCpuMs(`/proc/${pid}/stat`);
      total = (total ?? 0) + userMs + systemMs;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? 0 : Math.round(Number(m[1]) / 1024);
}

interface MemoryArm {
  arm: string;
  runs: (Run & { kdamondCpuMs: number | undefined; rssMb: number[] })[];
}

/** The memory phase: one server, with memory in use alone / elsewhere / in its own process. */
async function memoryPhase(gen: string, rate: number, seconds: number, runs: number): Promise<MemoryArm[]> {
  const mb = arg("ballast-mb", 850);
  if (mb <= 0) return [];
  const settleMs = arg("settle", 20) * 1000;
  const rounds = arg("memory-rounds", 2);
  const worker = [self, "--serve=worker", "--transport=libuv"];
  const arms: { arm: string; procs: string[][] }[] = [
    { arm: "alone", procs: [worker] },
    {
      arm: `beside an idle process holding ${mb} MB`,
      procs: [worker, [self, "--serve=hold", `--hold-mb=${mb}`]],
    },
    { arm: `in a process holding ${mb} MB on its main thread`, procs: [[...worker, `--hold-mb=${mb}`]] },
  ];
  const out: MemoryArm[] = arms.map((a) => ({ arm: a.arm, runs: [] }));
  for (let round = 0; round < rounds; round++)
    for (let k = 0; k < arms.length; k++) {
      const procs: Served[] = [];
      try {
        for (const args of arms[k]!.procs) procs.push(await startServer(process.execPath, args));
        await new Promise((r) => setTimeout(r, settleMs));
        const server = procs[0]!;
        await runAgentLoad(gen, server.port, rate, seconds); // warm-up, not kept
        for (let i = 0; i < runs; i++) {
          const k0 = kdamondCpuMs();
          const r = await measure(gen, server, rate, seconds);
          const k1 = kdamondCpuMs();
          const run = {
            ...r,
            kdamondCpuMs: k0 === undefined || k1 === undefined ? undefined : k1 - k0,
            rssMb: procs.map((p) => rssMb(p.pid)),
          };
          progress(
            `memory, ${arms[k]!.arm}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ` +
              `RSS ${run.rssMb.join(" + ")} MB, kdamond ${run.kdamondCpuMs ?? "-"} ms`,
          );
          out[k]!.runs.push(run);
        }
      } finally {
        for (const p of procs) p.stop();
      }
    }
  return out;
}

async function main(): Promise<void> {
  const rate = arg("rate", 5000);
  const seconds = arg("seconds", 5);
  const runs = arg("runs", 3);
  const gen = buildC("agent-load", ["-lm"]);
  const floor = buildC("agent-floor");
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
    for (const server of started) await runAgentLoad(gen, server.port, rate, seconds); // warm-up, not kept
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
  const memory = await memoryPhase(gen, rate, seconds, runs);
  const path = writeResults("agent-isolation", {
    notes:
      "Agent-check lookups (a connection each, closed by the server after its line; the C generator closes with a reset, as HAProxy does) at a fixed rate from bench/agent-load.c; latency from connect() to the reply read. The servers answer a fixed verdict with no node around them; compare bench/results/lookup.json for the same server inside a node.",
    rate,
    seconds,
    loadavg: { before: load, after: loadavg() },
    results,
    memory,
  });
  progress(`wrote ${path}`);
}
