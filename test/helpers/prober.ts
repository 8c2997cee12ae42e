// A prober for tests whose results the test sets per target host: nothing is sent anywhere.
import type { CheckResult, Prober } from "../../src/checkers/types.ts";

const up: CheckResult = { ok: true, latencyMs: 0.1, reason: "status 200" };

/** `results` maps a target host to what its checks return now; every other host is up. */
export function scriptedProber(): { prober: Prober; results: Map<string, CheckResult> } {
  const results = new Map<string, CheckResult>();
  return {
    results,
    prober: {
      check: (req) => Promise.resolve(results.get(req.target.host) ?? up),
      close: () => Promise.resolve(),
    },
  };
}
