import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];
let cleanupArmed = false;

/**
 * A fresh data_dir for a node under test: nodes never share one, nor write into the repo. Removed
 * when the test process exits (each test file runs in its own process).
 */
export function tmpDataDir(label = "node"): string {
  const dir = mkdtempSync(join(tmpdir(), `vigil-${label}-`));
  made.push(dir);
  if (!cleanupArmed) {
    cleanupArmed = true;
    process.once("exit", () => {
      for (const d of made) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}
