// Runs every benchmark in turn (each writes bench/results/<name>.json). Long: tens of minutes.
//   npm run bench            all of them
//   npm run bench -- checks  only the named ones
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const all = [
  "placement",
  "state-memory",
  "membership",
  "convergence",
  "checks",
  "http-checker",
  "lookup",
  "agent-isolation",
  "lookup-isolation",
  "store",
  "history",
  "history-flush",
  "dashboard",
];
const picked = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all;
let failed = 0;
for (const name of picked) {
  if (!all.includes(name)) {
    process.stderr.write(`unknown benchmark "${name}"; one of: ${all.join(", ")}\n`);
    process.exit(2);
  }
  process.stderr.write(`── bench ${name}\n`);
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", fileURLToPath(new URL(`./${name}.ts`, import.meta.url))],
    {
      stdio: "inherit",
    },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
