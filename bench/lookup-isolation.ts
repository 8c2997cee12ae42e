// Agent-check tail of a node by `node.lookup_isolation` (thread or process), next to the same
// agent server in a small process of its own beside that node. A node with 10,000 targets
// (checks answered by a stub, then a 1 h interval: the node idles) starts with one isolation;
// a standalone agent server (bench/agent-isolation.ts --serve=worker) starts beside it; the C
// generator (bench/agent-load.c) then takes turns at 5,000 lookups/s on the node's agent port
// and the standalone one, `--runs` times. Then the same with the other isolation. Rounds of
// both go `--rounds` times, so the machine's noise lands on both alike.
//
// bench/lookup.ts measures much more (HTTP, rates, closed loop) around one node; this one asks
// only whether the node's lookups answer as fast as a small process beside it does.
// Writes bench/results/lookup-isolation.json.
//
//   npx node bench/lookup-isolation.ts [--rate=5000 --seconds=5 --runs=3 --rounds=2 --settle=20]
//
// Loopback only; needs a C compiler (cc) for the generator.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { CheckResult, Prober } from "../src/checkers/types.ts";
import { parseConfigText } from "../src/config/load.ts";
import { SeededRandom } from "../src/core/random.ts";
import { systemClock } from "../src/runtime/clock.ts";
import { silentLogger } from "../src/runtime/log.ts";
import { VigilNode } from "../src/runtime/node.ts";
import { arg, LatencyHistogram, progress, writeResults } from "./lib.ts";

const TARGETS = 10_000;
const POOLS = 10;

/** Checks answer at once: every 20th target fails with 503, the rest are up. */
const stubProber: Prober = {
  check(req): Promise<CheckResult> {
    const ok = Number(req.target.host.split(".")[3]) % 20 !== 0;
    return Promise.resolve({ ok, latencyMs: 0.4, reason: ok ? "status 200" : "status 503" });
  },
  close: () => Promise.resolve(),
};

function config(isolation: string): string {
  const pools: string[] = [];
  for (let p = 0; p < POOLS; p++) {
    const keys: string[] = [];
    for (let i = p; i < TARGETS; i += POOLS) keys.push(`127.1.${(i >> 8) & 255}.${i & 255}:9`);
    pools.push(`  p${p}:\n    check: { type: http, path: /healthz }\n    targets: [${keys.join(", ")}]`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-bench-"));
  return `node: { name: bench, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", agent: "127.0.0.1:0", max_concurrent_checks: 2048, lookup_isolation: ${isolation} }
defaults: { interval: 2s, timeout: 1s, rise: 1, fall: 1, jitter: 0.1 }
pools:
${pools.join("\n")}
`;
}

async function startNode(isolation: string): Promise<VigilNode> {
  const node = new VigilNode(parseConfigText(config(isolation), "<bench>"), {
    clock: systemClock,
    random: new SeededRandom(5),
    prober: stubProber,
    logger: silentLogger,
  });
  await node.start();
  const deadline = performance.now() + 30_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const unknown = (node.listPools() as { counts: Record<string, number> }[]).reduce(
      (n, p) => n + (p.counts.unknown ?? 0),
      0,
    );
    if (unknown === 0) break;
    if (performance.now() > deadline) throw new Error(`${unknown} targets still unknown`);
  }
  for (const name of node.core.poolNames()) {
    const raw = node.config.rawPools.get(name) as Record<string, unknown>;
    node.putPool(name, { ...raw, interval: "1h" });
  }
  return node;
}

interface Run {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  answered: number;
  errors: number;
}

function generate(gen: string, port: number, rate: number, seconds: number): Promise<Run> {
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
        };
        const h = new LatencyHistogram();
        h.merge(r.latency);
        resolve({
          p50Ms: h.percentile(50),
          p99Ms: h.percentile(99),
          maxMs: h.percentile(100),
          answered: r.answered,
          errors: r.errors,
        });
      } catch (e) {
        reject(new Error(`generator report unreadable: ${(e as Error).message}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const rate = arg("rate", 5000);
  const seconds = arg("seconds", 5);
  const runs = arg("runs", 3);
  const rounds = arg("rounds", 2);
  const settleMs = arg("settle", 20) * 1000;
  const gen = join(mkdtempSync(join(tmpdir(), "vigil-agent-load-")), "agent-load");
  execFileSync("cc", ["-O2", "-o", gen, fileURLToPath(new URL("./agent-load.c", import.meta.url)), "-lm"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const load = loadavg();
  const results: Record<string, { node: Run[]; beside: Run[] }> = {
    thread: { node: [], beside: [] },
    process: { node: [], beside: [] },
  };
  for (let round = 0; round < rounds; round++)
    for (const isolation of ["thread", "process"] as const) {
      const node = await startNode(isolation);
      const standalone = spawn(
        process.execPath,
        [
          fileURLToPath(new URL("./agent-isolation.ts", import.meta.url)),
          "--serve=worker",
          "--transport=libuv",
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      try {
        const besidePort = Number(
          await new Promise<string>((resolve) =>
            createInterface({ input: standalone.stdout! }).once("line", resolve),
          ),
        );
        await new Promise((r) => setTimeout(r, settleMs));
        await generate(gen, besidePort, rate, seconds); // warm-ups, not kept
        await generate(gen, node.agentPort!, rate, seconds);
        for (let i = 0; i < runs; i++) {
          const beside = await generate(gen, besidePort, rate, seconds);
          const own = await generate(gen, node.agentPort!, rate, seconds);
          progress(
            `${isolation}: node p99 ${own.p99Ms} ms (p50 ${own.p50Ms}), ` +
              `standalone beside it p99 ${beside.p99Ms} ms (p50 ${beside.p50Ms})`,
          );
          results[isolation]!.node.push(own);
          results[isolation]!.beside.push(beside);
        }
      } finally {
        standalone.kill("SIGKILL");
        await node.stop();
      }
    }
  const path = writeResults("lookup-isolation", {
    notes:
      "Agent-check lookups at a fixed rate (bench/agent-load.c, a connection each) against a node with 10,000 targets, idle, by node.lookup_isolation, and against Vigil's agent server alone in a small process beside that node (a fixed verdict), taking turns.",
    rate,
    seconds,
    loadavg: { before: load, after: loadavg() },
    results,
  });
  progress(`wrote ${path}`);
}

await main();
process.exit(0);
