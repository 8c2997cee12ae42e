// Runs every benchmark in turn (each writes bench/results/<name>.json). Long: tens of minutes.
//   npm run bench            all of them
//   npm run bench -- checks  only the named ones
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** name (as given on the command line) → the bench file and its flags. */
const all: Record<string, { file: string; args?: string[] }> = {
  placement: { file: "placement" },
  "state-memory": { file: "state-memory" },
  membership: { file: "membership" },
  convergence: { file: "convergence" },
  checks: { file: "checks" },
  "http-checker": { file: "http-checker" },
  lookup: { file: "lookup" },
  // node.lookup_api: HTTP target lookups answered by one, then two, lookup processes.
  "lookup-api": { file: "lookup", args: ["--lookup-api=1", "--modes=http"] },
  "lookup-threads2-api": { file: "lookup", args: ["--lookup-api=1", "--modes=http", "--lookup-threads=2"] },
  "agent-isolation": { file: "agent-isolation" },
  "lookup-isolation": { file: "lookup-isolation" },
  store: { file: "store" },
  history: { file: "history" },
  "history-flush": { file: "history-flush" },
  dashboard: { file: "dashboard" },
};
const picked = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(all);
let failed = 0;
for (const name of picked) {
  const bench = all[name];
  if (bench === undefined) {
    process.stderr.write(`unknown benchmark "${name}"; one of: ${Object.keys(all).join(", ")}\n`);
    process.exit(2);
  }
  process.stderr.write(`── bench ${name}\n`);
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", fileURLToPath(new URL(`./${bench.file}.ts`, import.meta.url)), ...(bench.args ?? [])],
    {
      stdio: "inherit",
    },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
