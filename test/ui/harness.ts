import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { chromium } from "playwright-core";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { buildUi, uiBuildIsStale } from "../../src/ui/build.ts";
import { eventually } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// Shared by the dashboard's browser test and its benchmark: a real cluster of VigilNodes in
// this process, the built dashboard, and Debian's Chromium driven by playwright-core.

export const CHROMIUM_PATH = process.env.VIGIL_CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOT_DIR = join(fileURLToPath(new URL("../../", import.meta.url)), "test-results");

/** Builds the dashboard when a source is newer than the build (npm test builds it first anyway). */
export async function ensureUiBuilt(): Promise<void> {
  if (uiBuildIsStale()) await buildUi();
}

/** Starts headless Chromium; a missing browser is a failure with the fix, never a skip. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: the dashboard's browser tests need it. ` +
        "Install it with `apt-get update && apt-get install -y chromium` (or set VIGIL_CHROMIUM to a Chromium binary).",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return join(SCREENSHOT_DIR, `${name}.png`);
}

export interface ClusterOptions {
  size: number;
  /** The `defaults:` and `pools:` part of the config, the same on every node. */
  poolsYaml: string;
}

/** `size` nodes on loopback, the first the seed the others join; resolves when all see all alive. */
export async function startCluster(opts: ClusterOptions): Promise<VigilNode[]> {
  const nodes: VigilNode[] = [];
  try {
    for (let i = 1; i <= opts.size; i++) {
      const join = i === 1 ? "" : `, join: ["${nodes[0]!.gossipAddr}"]`;
      const cfg = parseConfigText(
        `node: { name: n${i}, zone: z${i}, api: "127.0.0.1:0", gossip: "127.0.0.1:0", profile: local, data_dir: "${tmpDataDir()}"${join} }\n${opts.poolsYaml}`,
        `<n${i}>`,
      );
      const node = new VigilNode(cfg, {
        clock: systemClock,
        random: new SeededRandom(100 + i),
        prober: createProber(),
        logger: silentLogger,
      });
      await node.start();
      nodes.push(node);
    }
    for (const n of nodes) {
      await eventually(
        () => (n.members() as { state: string }[]).filter((m) => m.state === "alive").length === opts.size,
        `${n.name} to see ${opts.size} members alive`,
        15_000,
      );
    }
    return nodes;
  } catch (e) {
    await stopCluster(nodes);
    throw e;
  }
}

export async function stopCluster(nodes: readonly VigilNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.stop()));
}

export async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}
