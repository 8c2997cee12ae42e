import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { eventually } from "../helpers/origins.ts";
import { type Running, startVigil } from "../helpers/spawn.ts";

// Pools and admin states made through the API survive a restart of a lone `vigil agent` on
// SQLite (the default store): after SIGTERM, and after SIGKILL once the change is acknowledged.
//
// Acknowledged means durable: the API answers a PUT or DELETE before the change is on disk (the
// store is kept off the request path), and commits it at the next turn of the event loop.
// `vigil_history_state_pending` on /metrics counts the changes not yet committed: once it reads
// 0 after the answer, the change survives SIGKILL (and power loss: the commit is synchronous=FULL).

const dir = mkdtempSync(join(tmpdir(), "vigil-state-restart-"));
const dataDir = join(dir, "data");
const procs: Running[] = [];
after(async () => {
  for (const p of procs) p.child.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

// Nothing listens on these ports: the targets are down, which does not matter here. An hour's
// interval keeps the checks out of the way.
const node = `node: { name: s1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", profile: local }`;
const withConfigPool = join(dir, "with-cfg.yaml");
writeFileSync(
  withConfigPool,
  `${node}
pools:
  cfg:
    check: { type: tcp }
    interval: 1h
    timeout: 100ms
    targets: ["127.0.0.1:10101"]
`,
);
const withoutPools = join(dir, "no-pools.yaml");
writeFileSync(withoutPools, `${node}\n`);

const poolDoc = (...ports: number[]) => ({
  check: { type: "tcp" },
  interval: "1h",
  timeout: "100ms",
  targets: ports.map((p) => `127.0.0.1:${p}`),
});

async function startAgent(config: string): Promise<{ proc: Running; api: string }> {
  const proc = startVigil(["agent", "--config", config]);
  procs.push(proc);
  const m = await proc.waitFor(/API (http:\/\/\S+) gossip/);
  return { proc, api: m[1]! };
}

async function call(api: string, method: string, path: string, body?: unknown): Promise<number> {
  const r = await fetch(api + path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  await r.body?.cancel();
  return r.status;
}

interface PoolView {
  targets: { target: string; state: string; admin: string; adminReason?: string }[];
}

async function pool(api: string, name: string): Promise<PoolView | undefined> {
  const r = await fetch(`${api}/v1/pools/${name}`);
  if (r.status === 404) {
    await r.body?.cancel();
    return undefined;
  }
  assert.equal(r.status, 200);
  return (await r.json()) as PoolView;
}

async function poolNames(api: string): Promise<string[]> {
  const r = await fetch(`${api}/v1/pools`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { pools: { name: string }[] };
  return body.pools.map((p) => p.name).sort();
}

function admins(p: PoolView | undefined): Record<string, string> {
  assert.ok(p !== undefined, "pool exists");
  const out: Record<string, string> = {};
  for (const t of p.targets)
    out[t.target] = t.adminReason === undefined ? t.admin : `${t.admin} (${t.adminReason})`;
  return out;
}

/** Resolves once every state change this agent answered is committed (see the header). */
async function acknowledged(api: string, minWritten: number): Promise<void> {
  await eventually(async () => {
    const text = await (await fetch(`${api}/metrics`)).text();
    const pending = /^vigil_history_state_pending (\d+)$/m.exec(text)?.[1];
    const written = /^vigil_history_state_written_total (\d+)$/m.exec(text)?.[1];
    return pending === "0" && Number(written) >= minWritten;
  }, "state changes committed");
}

async function stop(proc: Running, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
  proc.child.kill(signal);
  const exit = await proc.exited;
  if (signal === "SIGTERM") assert.equal(exit.code, 0, proc.stderr());
  else assert.equal(exit.signal, "SIGKILL");
}

describe("pool specs and admin states across restarts (SQLite)", () => {
  it("survive SIGTERM and SIGKILL; deletes stick; config pools are re-asserted at start", async () => {
    // 1. A config with pool `cfg`; the API adds `api` (maint on one target), adds and deletes
    //    `gone`, and deletes `cfg`.
    let a = await startAgent(withConfigPool);
    assert.deepEqual(await poolNames(a.api), ["cfg"]);
    assert.equal(await call(a.api, "PUT", "/v1/pools/api", poolDoc(10201, 10202)), 201);
    assert.equal(
      await call(a.api, "PUT", "/v1/pools/api/targets/127.0.0.1:10201/admin", {
        state: "maint",
        reason: "disk",
      }),
      200,
    );
    assert.equal(await call(a.api, "PUT", "/v1/pools/gone", poolDoc(10301)), 201);
    assert.equal(await call(a.api, "DELETE", "/v1/pools/gone"), 204);
    assert.equal(await call(a.api, "DELETE", "/v1/pools/cfg"), 204);
    await stop(a.proc, "SIGTERM");

    // 2. Alone, with a config that has no pools: the API's pools and admin state are back, the
    //    deleted ones stay deleted (cfg too: the file that would re-assert it is not this one).
    a = await startAgent(withoutPools);
    assert.deepEqual(await poolNames(a.api), ["api"]);
    assert.deepEqual(admins(await pool(a.api, "api")), {
      "127.0.0.1:10201": "maint (disk)",
      "127.0.0.1:10202": "none",
    });
    assert.equal(
      (await pool(a.api, "api"))!.targets.find((t) => t.target === "127.0.0.1:10201")!.state,
      "maint",
    );
    assert.equal(await pool(a.api, "gone"), undefined);
    assert.equal(await pool(a.api, "cfg"), undefined);

    // 3. Changes acknowledged, then SIGKILL: nothing of them is lost.
    assert.equal(
      await call(a.api, "PUT", "/v1/pools/api/targets/127.0.0.1:10201/admin", { state: "none" }),
      200,
    );
    assert.equal(
      await call(a.api, "PUT", "/v1/pools/api/targets/127.0.0.1:10202/admin", {
        state: "drain",
        reason: "deploy",
      }),
      200,
    );
    assert.equal(await call(a.api, "PUT", "/v1/pools/late", poolDoc(10401)), 201);
    await acknowledged(a.api, 3);
    await stop(a.proc, "SIGKILL");
    const db = new DatabaseSync(join(dataDir, "vigil.db"));
    try {
      assert.deepEqual(
        (db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[]).map(
          (r) => r.integrity_check,
        ),
        ["ok"],
      );
    } finally {
      db.close();
    }

    a = await startAgent(withoutPools);
    assert.deepEqual(await poolNames(a.api), ["api", "late"]);
    assert.deepEqual(admins(await pool(a.api, "api")), {
      "127.0.0.1:10201": "none",
      "127.0.0.1:10202": "drain (deploy)",
    });
    await stop(a.proc, "SIGTERM");

    // 4. The config file with `cfg` again: its pools are written at start, over the stored
    //    tombstone (the file is applied like a manifest); the API's pools are still there.
    a = await startAgent(withConfigPool);
    assert.deepEqual(await poolNames(a.api), ["api", "cfg", "late"]);
    assert.deepEqual(admins(await pool(a.api, "api")), {
      "127.0.0.1:10201": "none",
      "127.0.0.1:10202": "drain (deploy)",
    });
    await stop(a.proc, "SIGTERM");
  });
});
