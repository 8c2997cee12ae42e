import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { startVigil } from "../helpers/spawn.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// A real `vigil agent` process reloading its config file on SIGHUP: a pool added and a token
// rotated through the files, then a broken file that changes nothing, then SIGTERM.

const OLD_TOKEN = "ops-token-before-0123456789";
const NEW_TOKEN = "ops-token-after-0123456789";

describe("vigil agent: SIGHUP reloads the config file", { timeout: 60_000 }, () => {
  let dir: string;
  let origin: TestOrigin;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-sighup-"));
    origin = await startTestOrigin(200, "ok");
  });
  after(async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("applies the edited file, keeps running on a broken one (counted), exits 0 on SIGTERM", async () => {
    const tokenFile = join(dir, "ops.token");
    writeFileSync(tokenFile, `${OLD_TOKEN}\n`);
    const config = join(dir, "vigil.yaml");
    const head = `node:
  name: hup1
  api: "127.0.0.1:0"
  gossip: "127.0.0.1:0"
  data_dir: "${tmpDataDir("sighup")}"
  api_tokens: [{ name: ops, scope: write, token_file: "${tokenFile}" }]
defaults: { interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }
pools:
  web: { check: { type: http }, targets: [${origin.key}] }
`;
    writeFileSync(config, head);
    const agent = startVigil(["agent", "--config", config]);
    try {
      const base = (await agent.waitFor(/API (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
      const get = async (path: string, token: string) => {
        const r = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
        return { status: r.status, text: await r.text() };
      };
      assert.equal((await get("/v1/pools/web", OLD_TOKEN)).status, 200);
      assert.equal((await get("/v1/pools/api", OLD_TOKEN)).status, 404);

      // A pool added to the file, and the token file rotated.
      writeFileSync(config, `${head}  api: { check: { type: tcp }, targets: [${origin.key}] }\n`);
      writeFileSync(tokenFile, `${NEW_TOKEN}\n`);
      process.kill(agent.child.pid!, "SIGHUP");
      const pool = await eventually(async () => {
        const r = await get("/v1/pools/api", NEW_TOKEN);
        return r.status === 200 ? (JSON.parse(r.text) as { spec: { check: { type: string } } }) : undefined;
      }, "the reloaded pool served with the new token");
      assert.equal(pool.spec.check.type, "tcp");
      assert.equal((await get("/v1/pools/web", OLD_TOKEN)).status, 401);

      // A broken file: nothing changes, the error is logged and counted.
      writeFileSync(config, `${head}  api: { check: { type: tcp }, targets: [${origin.key}], rise: zero }\n`);
      process.kill(agent.child.pid!, "SIGHUP");
      const metrics = await eventually(async () => {
        const r = await get("/metrics", NEW_TOKEN);
        return /^vigil_config_reloads_total\{result="error"\} 1$/m.test(r.text) ? r.text : undefined;
      }, "the failed reload counted");
      assert.match(metrics, /^vigil_config_reloads_total\{result="ok"\} 1$/m);
      assert.match(metrics, /^vigil_config_last_reload_success_timestamp_seconds \d+(\.\d+)?$/m);
      await eventually(() => /pools\.api\.rise/.test(agent.stderr()), "the error in the log");
      assert.ok(agent.stderr().includes(`${config}: pools.api.rise: expected`), agent.stderr());
      assert.equal((await get("/v1/pools/api", NEW_TOKEN)).status, 200, "the node stopped serving");
      assert.equal((await get("/v1/health", NEW_TOKEN)).status, 200);

      agent.child.kill("SIGTERM");
      const exit = await agent.exited;
      assert.equal(exit.code, 0, agent.stderr());
    } finally {
      if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
    }
  });
});
