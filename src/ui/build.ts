// Builds the dashboard into src/ui/dist: one JS bundle and one stylesheet with content hashes
// in their names (cached for good by the node) and an index.html that names them. Run by
// `npm run build`; `npm start` and `npm test` run it first.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
export const uiDistDir = join(here, "dist");
const sourceDir = join(here, "app");

export interface BuildReport {
  files: { name: string; bytes: number }[];
  ms: number;
}

/** Builds into a fresh directory and swaps it in, so a node serving dist never sees half a build. */
export async function buildUi(outDir: string = uiDistDir): Promise<BuildReport> {
  const started = performance.now();
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const result = await build({
    entryPoints: { app: join(sourceDir, "main.tsx") },
    bundle: true,
    format: "esm",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
    sourcemap: false,
    jsx: "automatic",
    jsxImportSource: "preact",
    outdir: join(tmp, "assets"),
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((n) => n.endsWith(".js"));
  const css = outputs.find((n) => n.endsWith(".css"));
  if (js === undefined || css === undefined) throw new Error("invariant: the build made no app .js and .css");
  const html = readFileSync(join(here, "index.html"), "utf8")
    .replace("%APP_JS%", `/ui/assets/${js}`)
    .replace("%APP_CSS%", `/ui/assets/${css}`);
  writeFileSync(join(tmp, "index.html"), html);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(dirname(outDir), { recursive: true });
  renameSync(tmp, outDir);
  const files = listFiles(outDir).map((p) => ({ name: relative(outDir, p), bytes: statSync(p).size }));
  return { files, ms: Math.round(performance.now() - started) };
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? listFiles(join(dir, d.name)) : [join(dir, d.name)],
  );
}

/** The newest modification time among the dashboard's sources. */
export function newestSourceMs(): number {
  const files = [...listFiles(sourceDir), join(here, "index.html"), fileURLToPath(import.meta.url)];
  return Math.max(...files.map((p) => statSync(p).mtimeMs));
}

/** True when dist is missing or older than a source file. */
export function uiBuildIsStale(outDir: string = uiDistDir): boolean {
  const index = statSync(join(outDir, "index.html"), { throwIfNoEntry: false });
  return index === undefined || index.mtimeMs < newestSourceMs();
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildUi();
  for (const f of r.files)
    process.stdout.write(`  src/ui/dist/${f.name}  ${(f.bytes / 1024).toFixed(1)} KiB\n`);
  process.stdout.write(`dashboard built in ${r.ms} ms\n`);
}
