import { parseArgs } from "node:util";
import { createProber } from "../checkers/index.ts";
import { loadConfigFile } from "../config/load.ts";
import { systemRandom } from "../core/random.ts";
import { systemClock } from "../runtime/clock.ts";
import { createLogger } from "../runtime/log.ts";
import { VigilNode } from "../runtime/node.ts";
import { UsageError } from "./usage.ts";

/** `vigil agent --config FILE [--name N] [--join a,b]`: run a node until SIGTERM/SIGINT. */
export async function cmdAgent(args: string[]): Promise<number> {
  let values: { config?: string; name?: string; join?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: { config: { type: "string", short: "c" }, name: { type: "string" }, join: { type: "string" } },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.config === undefined) throw new UsageError("agent needs --config FILE");
  const config = loadConfigFile(values.config);
  if (values.name !== undefined) config.node.name = values.name;
  if (values.join !== undefined) config.node.join = values.join.split(",").filter((s) => s !== "");

  const logger = createLogger();
  const node = new VigilNode(config, {
    clock: systemClock,
    random: systemRandom(),
    prober: createProber(),
    logger,
  });
  await node.start();
  process.stdout.write(`vigil agent ${config.node.name}: API ${node.apiUrl} gossip ${node.gossipAddr}\n`);
  await waitForSignal();
  await node.stop();
  logger.flush();
  return 0;
}

/** Resolves on the first SIGTERM or SIGINT; a second one exits at once. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      process.once("SIGTERM", () => process.exit(130));
      process.once("SIGINT", () => process.exit(130));
      resolve(sig);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
