// The node the lookup benchmarks measure (bench/lookup.ts, bench/lookup-isolation.ts): 10,000
// targets in 10 pools, checked by a stub that answers at once (every 20th target down), then
// left idle with a long check interval. The node's modules are imported only when a node is
// started: the load generators import this file for the target names alone.
import type { CheckResult, Prober } from "../src/checkers/types.ts";
import type { VigilNode } from "../src/runtime/node.ts";
import { progress } from "./lib.ts";

export const LOOKUP_POOLS = 10;
export const LOOKUP_TARGETS = 10_000;

/** Target i: a distinct loopback-range address, never dialled (the stub answers). */
export function lookupTargetKey(i: number): string {
  return `127.1.${(i >> 8) & 255}.${i & 255}:9`;
}

export function lookupPoolOf(i: number): string {
  return `p${i % LOOKUP_POOLS}`;
}

/** The `pools:` entries for every target, as YAML lines. */
export function lookupPoolsYaml(): string[] {
  const pools: string[] = [];
  for (let p = 0; p < LOOKUP_POOLS; p++) {
    const keys: string[] = [];
    for (let i = p; i < LOOKUP_TARGETS; i += LOOKUP_POOLS) keys.push(lookupTargetKey(i));
    pools.push(`  p${p}:\n    check: { type: http, path: /healthz }\n    targets: [${keys.join(", ")}]`);
  }
  return pools;
}

/** Checks answer at once: every 20th target fails with 503, the rest are up. */
export const stubProber: Prober = {
  check(req): Promise<CheckResult> {
    const ok = Number(req.target.host.split(".")[3]) % 20 !== 0;
    return Promise.resolve({ ok, latencyMs: 0.4, reason: ok ? "status 200" : "status 503" });
  },
  close: () => Promise.resolve(),
};

/**
 * Starts a node from `configText` with the stub prober, waits until every target has a
 * verdict (first checks spread over one interval), then sets every pool's interval to
 * `checkInterval` ("1h": checks barely run while lookups are measured).
 */
export async function startJudgedNode(
  configText: string,
  checkInterval: string,
  lookupThread = true,
): Promise<VigilNode> {
  const { parseConfigText } = await import("../src/config/load.ts");
  const { systemClock } = await import("../src/runtime/clock.ts");
  const { SeededRandom } = await import("../src/core/random.ts");
  const { silentLogger } = await import("../src/runtime/log.ts");
  const { VigilNode } = await import("../src/runtime/node.ts");
  const node = new VigilNode(parseConfigText(configText, "<bench>"), {
    clock: systemClock,
    random: new SeededRandom(5),
    prober: stubProber,
    logger: silentLogger,
    lookupThread,
  });
  await node.start();
  const deadline = performance.now() + 15_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const counts = (node.listPools() as { counts: Record<string, number> }[]).reduce(
      (acc, p) => {
        for (const [k, v] of Object.entries(p.counts)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      },
      {} as Record<string, number>,
    );
    if ((counts.unknown ?? 0) === 0) {
      progress(`all targets judged: ${JSON.stringify(counts)}`);
      break;
    }
    if (performance.now() > deadline) throw new Error(`targets still unknown: ${JSON.stringify(counts)}`);
  }
  for (const name of node.core.poolNames()) {
    const raw = node.config.rawPools.get(name) as Record<string, unknown>;
    node.putPool(name, { ...raw, interval: checkInterval });
  }
  return node;
}
