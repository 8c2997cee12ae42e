import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh data_dir for a node under test: nodes never share one, nor write into the repo. */
export function tmpDataDir(label = "node"): string {
  return mkdtempSync(join(tmpdir(), `vigil-${label}-`));
}
