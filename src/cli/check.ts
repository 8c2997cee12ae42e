import { parseArgs } from "node:util";
import { createProber } from "../checkers/index.ts";
import { parseCheckUrl } from "../checkers/url.ts";
import { parseDurationMs } from "../config/duration.ts";
import { UsageError } from "./usage.ts";

/** `vigil check <url> [--timeout 2s] [--json]`: exit 0 up, 1 down, 2 usage. */
export async function cmdCheck(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const url = parsed.positionals[0];
  if (url === undefined || parsed.positionals.length > 1) throw new UsageError("check takes exactly one URL");
  const { spec, target } = parseCheckUrl(url);
  let timeoutMs = 2000;
  if (parsed.values.timeout !== undefined) {
    try {
      timeoutMs = parseDurationMs(parsed.values.timeout);
    } catch (e) {
      throw new UsageError(`--timeout: ${(e as Error).message}`);
    }
  }
  const prober = createProber();
  try {
    const r = await prober.check({ spec, target, timeoutMs });
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify({ url, target: target.key, ...r })}\n`);
    } else {
      process.stdout.write(`${r.ok ? "UP  " : "DOWN"}  ${url}  ${r.latencyMs.toFixed(1)}ms  ${r.reason}\n`);
    }
    return r.ok ? 0 : 1;
  } finally {
    await prober.close();
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { timeout: { type: "string" }, json: { type: "boolean" } },
  });
}
