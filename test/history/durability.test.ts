import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { type Running, startVigil } from "../helpers/spawn.ts";

// SIGKILL a `vigil agent` while it writes events as fast as the admin API makes them, restart
// it on the same data_dir, and find every event it had acknowledged — acknowledged meaning
// served by GET /v1/events, which reads the store, so only committed rows — and a database
// that passes PRAGMA integrity_check.

const dir = mkdtempSync(join(tmpdir(), "vigil-durability-"));
const dataDir = join(dir, "data");
const procs: Running[] = [];
after(async () => {
  for (const p of procs) p.child.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

const TARGETS = Array.from({ length: 8 }, (_, i) => `127.0.0.1:${10_001 + i}`);
const WRITERS = 16;
/** Events acknowledged before the kill: enough that the kill lands mid-stream. */
const ACKED_BEFORE_KILL = 1_500;

const configPath = join(dir, "vigil.yaml");
writeFileSync(
  configPath,
  `node:
  name: d1
  api: 127.0.0.1:0
  gossip: 127.0.0.1:0
  data_dir: ${dataDir}
  profile: local
pools:
  web:
    check: { type: tcp }
    interval: 1h
    timeout: 100ms
    targets: [${TARGETS.join(", ")}]
`,
);

async function startAgent(): Promise<{ proc: Running; api: string }> {
  const proc = startVigil(["agent", "--config", configPath]);
  procs.push(proc);
  const m = await proc.waitFor(/API (http:\/\/\S+) gossip/);
  return { proc, api: m[1]! };
}

interface Page {
  events: { id: string; type: string }[];
  next: number;
  source: string;
}

async function page(api: string, since: number): Promise<Page> {
  const r = await fetch(`${api}/v1/events?since=${since}&limit=1000`);
  assert.equal(r.status, 200);
  return (await r.json()) as Page;
}

describe("durability: SIGKILL in the middle of heavy writing", () => {
  it("keeps every acknowledged event and a consistent database", async () => {
    const first = await startAgent();
    let stop = false;
    let writes = 0;
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      const target = TARGETS[w % TARGETS.length]!;
      for (let i = 0; !stop; i++) {
        try {
          const r = await fetch(`${first.api}/v1/pools/web/targets/${target}/admin`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ state: i % 2 === 0 ? "maint" : "none", reason: `w${w} #${i}` }),
          });
          await r.body?.cancel();
          writes++;
        } catch {
          return; // the kill cuts requests off
        }
      }
    });

    // Read the log as it grows: every event seen here was committed before the kill.
    const acked = new Set<string>();
    let since = 0;
    let reads = 0;
    while (acked.size < ACKED_BEFORE_KILL) {
      const p = await page(first.api, since);
      assert.equal(p.source, "sqlite");
      for (const e of p.events) acked.add(e.id);
      since = p.next;
      reads++;
      assert.ok(reads < 10_000, "the log keeps growing");
    }
    // Still writing: kill now.
    const writesAtKill = writes;
    first.proc.child.kill("SIGKILL");
    const exit = await first.proc.exited;
    stop = true;
    await Promise.all(writers);
    assert.equal(exit.signal, "SIGKILL");
    assert.ok(writesAtKill >= ACKED_BEFORE_KILL / 2, `writes were under way: ${writesAtKill}`);

    // The database as the kill left it (WAL and all) is consistent.
    const db = new DatabaseSync(join(dataDir, "vigil.db"));
    try {
      const check = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
      assert.deepEqual(
        check.map((r) => r.integrity_check),
        ["ok"],
      );
      const rows = (db.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n;
      assert.ok(rows >= acked.size, `${rows} rows >= ${acked.size} acknowledged`);
    } finally {
      db.close();
    }

    // Restarted on the same data_dir, it serves every acknowledged event.
    const second = await startAgent();
    const found = new Set<string>();
    since = 0;
    for (;;) {
      const p = await page(second.api, since);
      for (const e of p.events) found.add(e.id);
      if (p.events.length === 0) break;
      since = p.next;
    }
    const lost = [...acked].filter((id) => !found.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acked.size} acknowledged events lost`);
    assert.ok(found.size >= acked.size);
    second.proc.child.kill("SIGTERM");
    const stopped = await second.proc.exited;
    assert.equal(stopped.code, 0, "a clean stop after the restart");
  });
});
