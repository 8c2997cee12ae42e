import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { runVigil, startVigil } from "../helpers/spawn.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

const dir = mkdtempSync(join(tmpdir(), "vigil-cli-"));
const writeConfig = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe("vigil check", () => {
  let up: TestOrigin;
  let down: TestOrigin;
  before(async () => {
    up = await startTestOrigin(200, "ok");
    down = await startTestOrigin(503, "no");
  });
  after(async () => {
    await up.close();
    await down.close();
  });

  it("exits 0 and prints UP for a healthy origin", async () => {
    const r = await runVigil(["check", `http://${up.key}/healthz`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^UP\s+http:\/\/127\.0\.0\.1:\d+\/healthz\s+[\d.]+ms\s+status 200/);
  });
  it("exits 1 and prints the reason for a failing origin", async () => {
    const r = await runVigil(["check", `http://${down.key}/`]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^DOWN .* status 503/);
  });
  it("--json prints one JSON object", async () => {
    const r = await runVigil(["check", "--json", `tcp://${up.key}`]);
    assert.equal(r.code, 0);
    const o = JSON.parse(r.stdout) as { ok: boolean; target: string };
    assert.equal(o.ok, true);
    assert.equal(o.target, up.key);
  });
  it("exits 2 on bad usage: unknown scheme, no URL, bad timeout", async () => {
    for (const args of [
      ["check", "gopher://x:1"],
      ["check"],
      ["check", `http://${up.key}/`, "--timeout", "soon"],
    ]) {
      const r = await runVigil(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^vigil: /);
    }
  });
});

describe("vigil (usage)", () => {
  it("unknown command exits 2 with the help", async () => {
    const r = await runVigil(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /vigil agent --config/);
  });
  it("keygen prints 32 random bytes in base64", async () => {
    const a = await runVigil(["keygen"]);
    const b = await runVigil(["keygen"]);
    assert.equal(a.code, 0);
    assert.equal(Buffer.from(a.stdout.trim(), "base64").length, 32);
    assert.notEqual(a.stdout, b.stdout);
  });
});

describe("vigil agent", () => {
  it("a bad config exits 2 naming the file, the path and what was expected", async () => {
    const p = writeConfig(
      "bad.yaml",
      "pools:\n  web:\n    check: { type: http }\n    targets: [127.0.0.1:80]\n    rise: zero\n",
    );
    const r = await runVigil(["agent", "--config", p]);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(p), r.stderr);
    assert.match(r.stderr, /pools\.web\.rise/);
  });
  it("a missing config file exits 2", async () => {
    const r = await runVigil(["agent", "--config", join(dir, "nope.yaml")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope\.yaml/);
  });
  it("serves, answers status, and exits 0 on SIGTERM after in-flight checks finish", async () => {
    const slow = await startTestOrigin(200, "ok");
    const fast = await startTestOrigin(503, "no");
    try {
      const p = writeConfig(
        "good.yaml",
        `node: { name: cli1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${tmpDataDir()}" }
defaults: { interval: 300ms, timeout: 250ms, rise: 1, fall: 1 }
pools:
  web:
    check: { type: http }
    targets: [${slow.key}, ${fast.key}]
`,
      );
      const agent = startVigil(["agent", "--config", p]);
      const m = await agent.waitFor(/API (http:\/\/127\.0\.0\.1:\d+)/);
      const server = m[1]!;
      // wait until both have a verdict
      let table = "";
      for (let i = 0; i < 100; i++) {
        const st = await runVigil(["status", "--server", server]);
        table = st.stdout;
        if (/UP/.test(table) && /DOWN/.test(table)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(table, /^POOL\s+TARGET\s+STATE\s+SINCE\s+OBSERVERS\s+REASON/m);
      assert.match(table, new RegExp(`web\\s+${fast.key}\\s+DOWN\\s+\\S+\\s+cli1:down\\s+status 503`));
      const one = await runVigil(["status", `web/${slow.key}`, "--server", server]);
      assert.equal(one.code, 0, one.stdout + one.stderr);
      const other = await runVigil(["status", `web/${fast.key}`, "--server", server, "--json"]);
      assert.equal(other.code, 1);
      assert.equal((JSON.parse(other.stdout) as { state: string }).state, "down");
      const missing = await runVigil(["status", "nopool", "--server", server]);
      assert.equal(missing.code, 1);
      // a check in flight when the signal arrives is allowed to finish
      slow.delayMs = 200;
      await new Promise((r) => setTimeout(r, 350));
      agent.child.kill("SIGTERM");
      const exit = await agent.exited;
      assert.equal(exit.code, 0, agent.stderr());
      // node:sqlite (the default store) is still experimental in Node 24; its warning is dropped.
      assert.doesNotMatch(agent.stderr(), /ExperimentalWarning|experimental feature/);
    } finally {
      await slow.close();
      await fast.close();
    }
  });
  it("status against a server that is not there exits 1", async () => {
    const r = await runVigil(["status", "--server", "http://127.0.0.1:9"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach/);
  });
});

describe("vigil demo", () => {
  it("starts the origins and a 3-node cluster, prints the URLs and transitions, stops cleanly", async () => {
    const r = await runVigil(["demo", "--duration", "5", "--port", "0"], 30_000);
    assert.equal(r.code, 0, r.stderr);
    for (const n of [1, 2, 3])
      assert.match(r.stdout, new RegExp(`demo-${n}\\s+http://127\\.0\\.0\\.1:\\d+/`));
    assert.match(r.stdout, /demo-\d\s+sees\s+web\/127\.0\.0\.1:\d+\s+UNKNOWN → UP/);
    assert.match(r.stdout, /agent\s+printf 'web\/127\.0\.0\.1:\d+\\n' \| nc 127\.0\.0\.1 \d+ /);
    assert.match(r.stdout, /dns\s+dig @127\.0\.0\.1 -p \d+ web\.service\.vigil A \+short/);
    assert.match(r.stdout, /verdict\s+web\/127\.0\.0\.1:\d+\s+UNKNOWN → UP/);
    assert.match(r.stdout, /UNKNOWN → DOWN\s+\(connect ECONNREFUSED\)/);
    assert.match(r.stdout, /stopping/);
  });
});
