import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runVigil } from "../helpers/spawn.ts";

// `vigil agent` with a data_dir (or a database) it cannot use: one clear line and a non-zero
// exit, before it binds anything, never a crash or a restart loop.

const dir = mkdtempSync(join(tmpdir(), "vigil-cli-history-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, store: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    `node:
  name: ${name}
  api: 127.0.0.1:0
  gossip: 127.0.0.1:0
${store}
pools:
  web:
    check: { type: tcp }
    targets: [127.0.0.1:1]
`,
  );
  return path;
}

/** Runs the agent and returns its one stderr line (the logger is quiet at warn). */
async function failsWith(path: string): Promise<string> {
  const r = await runVigil(["agent", "--config", path], 20_000);
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.signal, null);
  assert.equal(r.stdout, "", "nothing was started, so nothing announced");
  const lines = r.stderr
    .split("\n")
    .filter((l) => l !== "" && !/ExperimentalWarning|--trace-warnings/.test(l));
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  return lines[0]!;
}

describe("vigil agent: a data_dir it cannot use", () => {
  it("a data_dir that is a file", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    const line = await failsWith(config("f1", `  data_dir: ${file}`));
    assert.equal(line, `vigil: data_dir ${file} is not a directory`);
  });

  it("a data_dir that cannot be created", async () => {
    const file = join(dir, "b-file");
    writeFileSync(file, "x");
    const line = await failsWith(config("f2", `  data_dir: ${join(file, "sub")}`));
    assert.equal(line, `vigil: data_dir ${join(file, "sub")} is not writable: ENOTDIR`);
  });

  it("a corrupt database", async () => {
    const data = join(dir, "corrupt");
    mkdirSync(data);
    writeFileSync(join(data, "vigil.db"), Buffer.alloc(8192, 0x5a));
    const line = await failsWith(config("f3", `  data_dir: ${data}`));
    assert.match(
      line,
      new RegExp(
        `^vigil: database ${join(data, "vigil.db").replace(/[.]/g, "\\.")} is corrupt: .*\\(move it aside to start empty, or restore a backup\\)$`,
      ),
    );
  });

  it("an unreachable PostgreSQL, without printing its password", async () => {
    const line = await failsWith(config("f4", `  store: "postgres://vigil:s3cret@127.0.0.1:1/vigil"`));
    assert.match(
      line,
      /^vigil: cannot open PostgreSQL postgres:\/\/vigil:\*\*\*@127\.0\.0\.1:1\/vigil: .*ECONNREFUSED/,
    );
    assert.doesNotMatch(line, /s3cret/);
  });

  it("a bad store setting is a config error (exit 2) naming the file and key", async () => {
    const path = config("f5", "  store: mongodb");
    const r = await runVigil(["agent", "--config", path], 20_000);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(
        `^vigil: ${path.replace(/[.]/g, "\\.")}: node\\.store: expected "sqlite", "none" or a PostgreSQL URL`,
      ),
    );
  });
});
