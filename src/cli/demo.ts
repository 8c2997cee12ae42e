import { parseArgs } from "node:util";
import { createProber } from "../checkers/index.ts";
import { parseConfigText } from "../config/load.ts";
import { systemRandom } from "../core/random.ts";
import { type DemoOrigin, demoFleet, startOrigin } from "../demo/origins.ts";
import { systemClock } from "../runtime/clock.ts";
import type { VigilEvent } from "../runtime/events.ts";
import { createLogger } from "../runtime/log.ts";
import { VigilNode } from "../runtime/node.ts";
import { waitForSignal } from "./agent.ts";
import { UsageError } from "./usage.ts";

/**
 * `vigil demo [--duration 30s] [--port 7000]`: local origins and a Vigil node checking them,
 * printing transitions as they happen. Ctrl-C stops everything cleanly.
 */
export async function cmdDemo(args: string[]): Promise<number> {
  let values: { duration?: string; port?: string };
  try {
    ({ values } = parseArgs({ args, options: { duration: { type: "string" }, port: { type: "string" } } }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const durationS = values.duration === undefined ? undefined : Number.parseFloat(values.duration);
  if (durationS !== undefined && !(durationS > 0))
    throw new UsageError("--duration takes a number of seconds");
  const preferredPort = values.port === undefined ? 7000 : Number(values.port);

  const origins: DemoOrigin[] = [];
  for (const o of demoFleet) origins.push(await startOrigin(o.name, o.behaviour, () => Date.now()));
  const web = origins.filter((o) => o.name.startsWith("web"));
  const api = origins.filter((o) => o.name.startsWith("api"));
  const nameByKey = new Map(origins.map((o) => [`127.0.0.1:${o.port}`, `${o.name} (${o.behaviour.kind})`]));

  // Three nodes in three zones, each target checked by 2 of them.
  const yamlFor = (i: number, apiPort: number, join: string | undefined): string => `
node:
  name: demo-${i}
  zone: zone-${i}
  api: 127.0.0.1:${apiPort}
  gossip: 127.0.0.1:0
  data_dir: ./vigil-data/demo-${i}
  profile: local
${i === 1 ? "  agent: 127.0.0.1:0\n  dns: 127.0.0.1:0\n" : ""}${join === undefined ? "" : `  join: ["${join}"]\n`}
defaults:
  interval: 2s
  fastinter: 500ms
  downinter: 3s
  timeout: 1s
  rise: 2
  fall: 2
  observers: 2
  spread: zone
pools:
  web:
    check: { type: http, path: /healthz, expect: { status: ["200-299"], body_contains: ok } }
    targets: [${web.map((o) => `127.0.0.1:${o.port}`).join(", ")}]
  api:
    check: { type: http, path: /ready }
    targets: [${api.map((o) => `127.0.0.1:${o.port}`).join(", ")}]
`;

  const logger = createLogger({}, process.env.VIGIL_LOG_LEVEL ?? "warn");
  const startNode = async (i: number, apiPort: number, join: string | undefined): Promise<VigilNode> => {
    const make = (port: number) =>
      new VigilNode(parseConfigText(yamlFor(i, port, join), "<demo>"), {
        clock: systemClock,
        random: systemRandom(),
        prober: createProber(),
        logger,
      });
    let node = make(apiPort);
    try {
      await node.start();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || apiPort === 0) throw e;
      node = make(0);
      await node.start();
    }
    return node;
  };
  const nodes: VigilNode[] = [];
  nodes.push(await startNode(1, preferredPort, undefined));
  for (const i of [2, 3]) {
    nodes.push(await startNode(i, preferredPort === 0 ? 0 : preferredPort + i - 1, nodes[0]!.gossipAddr));
  }
  const first = nodes[0]!;

  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(
    `Vigil demo: 3 nodes checking ${origins.length} local origins (some flapping, one slow, one refusing);`,
  );
  out("each origin is checked by 2 of the 3 nodes, in different zones.");
  for (const n of nodes) out(`  ${n.name}     ${n.apiUrl}/  (dashboard)   ${n.apiUrl}/v1/pools`);
  out(`  metrics    ${first.apiUrl}/metrics`);
  out(`  status     npx vigil status --server ${first.apiUrl}`);
  // The load balancers' view, from demo-1 (docs/haproxy.md, docs/dns.md).
  const sample = web[0] === undefined ? "127.0.0.1:80" : `127.0.0.1:${web[0].port}`;
  out(`  agent      printf 'web/${sample}\\n' | nc 127.0.0.1 ${first.agentPort}   (HAProxy agent-check)`);
  out(`  dns        dig @127.0.0.1 -p ${first.dnsPort} web.service.vigil A +short`);
  out("Transitions as they happen (Ctrl-C to stop):");
  // Each node prints what it observed itself; verdicts are printed from the first node's view
  // (every node computes the same ones).
  for (const n of nodes) {
    n.events.subscribe((e) => {
      if (e.type === "observation.changed" && e.replicated === true) return;
      if (e.type === "verdict.changed" && n !== first) return;
      const line = formatTransition(e, nameByKey);
      if (line !== undefined) out(line);
    });
  }

  const stopSignal =
    durationS === undefined ? waitForSignal() : new Promise((r) => setTimeout(r, durationS * 1000));
  await stopSignal;
  out("stopping…");
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(origins.map((o) => o.close()));
  logger.flush();
  return 0;
}

function formatTransition(e: VigilEvent, names: Map<string, string>): string | undefined {
  if (e.type !== "verdict.changed" && e.type !== "observation.changed") return undefined;
  const time = new Date(e.ts).toISOString().slice(11, 19);
  const who = names.get(e.target ?? "") ?? "";
  const target = `${e.pool}/${e.target}`.padEnd(22);
  const change = `${String(e.from).toUpperCase()} → ${String(e.to).toUpperCase()}`;
  if (e.type === "verdict.changed") {
    return `${time}  verdict       ${target} ${change}  (${e.cause ?? ""})  by ${e.observers ?? "-"}  ${who}`;
  }
  return `${time}  ${String(e.node).padEnd(6)} sees   ${target} ${change}  (${e.cause ?? ""})  ${who}`;
}
