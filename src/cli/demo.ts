import { parseArgs } from "node:util";
import { createProber } from "../checkers/index.ts";
import { parseConfigText } from "../config/load.ts";
import { systemClock } from "../core/clock.ts";
import { systemRandom } from "../core/random.ts";
import { type DemoOrigin, demoFleet, startOrigin } from "../demo/origins.ts";
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

  const yamlFor = (apiPort: number): string => `
node:
  name: demo-1
  zone: local
  api: 127.0.0.1:${apiPort}
  gossip: 127.0.0.1:0
  data_dir: ./vigil-data/demo-1
  profile: local
defaults:
  interval: 2s
  fastinter: 500ms
  downinter: 3s
  timeout: 1s
  rise: 2
  fall: 2
pools:
  web:
    check: { type: http, path: /healthz, expect: { status: ["200-299"], body_contains: ok } }
    targets: [${web.map((o) => `127.0.0.1:${o.port}`).join(", ")}]
  api:
    check: { type: http, path: /ready }
    targets: [${api.map((o) => `127.0.0.1:${o.port}`).join(", ")}]
`;

  const logger = createLogger({}, process.env.VIGIL_LOG_LEVEL ?? "warn");
  const makeNode = (apiPort: number): VigilNode =>
    new VigilNode(parseConfigText(yamlFor(apiPort), "<demo>"), {
      clock: systemClock,
      random: systemRandom(),
      prober: createProber(),
      logger,
    });
  let node = makeNode(preferredPort);
  try {
    await node.start();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
    node = makeNode(0);
    await node.start();
  }

  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(`Vigil demo: 1 node checking ${origins.length} local origins (some flapping, one slow, one refusing).`);
  out(`  API        ${node.apiUrl}/v1/pools`);
  out(`  metrics    ${node.apiUrl}/metrics`);
  out(`  status     npx vigil status --server ${node.apiUrl}`);
  out("Transitions as they happen (Ctrl-C to stop):");
  node.events.subscribe((e) => {
    const line = formatTransition(e, nameByKey);
    if (line !== undefined) out(line);
  });

  const stopSignal =
    durationS === undefined ? waitForSignal() : new Promise((r) => setTimeout(r, durationS * 1000));
  await stopSignal;
  out("stopping…");
  await node.stop();
  await Promise.all(origins.map((o) => o.close()));
  logger.flush();
  return 0;
}

function formatTransition(e: VigilEvent, names: Map<string, string>): string | undefined {
  if (e.type !== "verdict.changed" && e.type !== "observation.changed") return undefined;
  const time = new Date(e.ts).toISOString().slice(11, 19);
  const who = names.get(e.target ?? "") ?? "";
  const what = e.type === "verdict.changed" ? "verdict    " : `${e.node} sees`;
  return `${time}  ${what}  ${`${e.pool}/${e.target}`.padEnd(22)} ${String(e.from).toUpperCase()} → ${String(e.to).toUpperCase()}  (${e.cause ?? ""})  ${who}`;
}
