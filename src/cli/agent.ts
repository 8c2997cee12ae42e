import { parseArgs } from "node:util";
import { createProber } from "../checkers/index.ts";
import { loadConfigFile } from "../config/load.ts";
import type { VigilConfig } from "../config/types.ts";
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
  const path = values.config;
  // At start and at every reload alike: the file, then the command line on top.
  const load = (): VigilConfig => {
    const config = loadConfigFile(path);
    if (values.name !== undefined) config.node.name = values.name;
    if (values.join !== undefined) config.node.join = values.join.split(",").filter((s) => s !== "");
    return config;
  };
  const config = load();

  const logger = createLogger();
  const node = new VigilNode(config, {
    clock: systemClock,
    random: systemRandom(),
    prober: createProber(),
    logger,
  });
  // SIGHUP reloads the config (README, "Reloading the config"). Caught from before the start, so
  // an early one does not kill the process: it is held until the node runs.
  const reloads = reloadOnSighup(() => node.reloadConfig(load));
  try {
    await node.start();
    reloads.ready();
    process.stdout.write(`vigil agent ${config.node.name}: API ${node.apiUrl} gossip ${node.gossipAddr}\n`);
    await waitForSignal();
  } finally {
    await reloads.stop();
  }
  await node.stop();
  logger.flush();
  return 0;
}

/**
 * Runs `reload` on each SIGHUP once `ready()` is called (one that came earlier runs then). After
 * `stop()` (which waits for a reload under way), SIGHUPs are ignored: they no longer end the process.
 */
export function reloadOnSighup(reload: () => Promise<unknown>): { ready(): void; stop(): Promise<void> } {
  let ready = false;
  let held = false;
  let stopped = false;
  let last: Promise<unknown> = Promise.resolve();
  const run = (): void => {
    // reload never rejects (VigilNode.reloadConfig); the catch keeps a surprise from crashing the agent.
    last = reload().catch((e: unknown) => {
      process.stderr.write(`vigil: config reload: ${(e as Error)?.stack ?? String(e)}\n`);
    });
  };
  const onHup = (): void => {
    if (stopped) return;
    if (!ready) held = true;
    else run();
  };
  process.on("SIGHUP", onHup);
  return {
    ready() {
      ready = true;
      if (held) run();
    },
    async stop() {
      stopped = true;
      await last;
    },
  };
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
