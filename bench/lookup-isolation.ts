import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AgentLoadRun, arg, buildC, progress, runAgentLoad, spawnServer, writeResults } from "./lib.ts";
import { lookupPoolsYaml, startJudgedNode } from "./lookup-node.ts";

function config(isolation: string): string {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-bench-"));
  return `node: { name: bench, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", agent: "127.0.0.1:0", max_concurrent_checks: 2048, lookup_isolation: ${isolation} }
defaults: { interval: 2s, timeout: 1s, rise: 1, fall: 1, jitter: 0.1 }
pools:
${lookupPoolsYaml().join("\n")}
`;
}

async function main(): Promise<void> {
  const rate = arg("rate", 5000);
  const seconds = arg("seconds", 5);
  const runs = arg("runs", 3);
  const rounds = arg("rounds", 2);
  const settleMs = arg("settle", 20) * 1000;
  const gen = buildC("agent-load", ["-lm"]);
  const load = loadavg();
  const results: Record<string, { node: AgentLoadRun[]; beside: AgentLoadRun[] }> = {
    thread: { node: [], beside: [] },
    process: { node: [], beside: [] },
  };
  for (let round = 0; round < rounds; round++)
    for (const isolation of ["thread", "process"] as const) {
      const node = await startJudgedNode(config(isolation), "1h");
      const standalone = await spawnServer(process.execPath, [
        fileURLToPath(new URL("./agent-isolation.ts", import.meta.url)),
        "--serve=worker",
        "--transport=libuv",
      ]);
      try {
        const besidePort = standalone.port;
        await new Promise((r) => setTimeout(r, settleMs));
        await runAgentLoad(gen, besidePort, rate, seconds); // warm-ups, not kept
        await runAgentLoad(gen, node.agentPort!, rate, seconds);
        for (let i = 0; i < runs; i++) {
          const beside = await runAgentLoad(gen, besidePort, rate, seconds);
          const own = await runAgentLoad(gen, node.agentPort!, rate, seconds);
          progress(
            `${isolation}: node p99 ${own.p99Ms} ms (p50 ${own.p50Ms}), ` +
              `standalone beside it p99 ${beside.p99Ms} ms (p50 ${beside.p50Ms})`,
          );
          results[isolation]!.node.push(own);
          results[isolation]!.beside.push(beside);
        }
      } finally {
        standalone.stop();
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
