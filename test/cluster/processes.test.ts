import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { type Running, runVigil, startVigil } from "../helpers/spawn.ts";

// Real `vigil agent` processes on loopback: membership over real UDP/TCP, shared checking.

const dir = mkdtempSync(join(tmpdir(), "vigil-cluster-"));

interface Agent {
  name: string;
  proc: Running;
  api: string;
  gossip: string;
}

async function startAgent(
  name: string,
  zone: string,
  join: string | undefined,
  pools: string,
  extra = "",
): Promise<Agent> {
  const path = join_(dir, `${name}.yaml`);
  writeFileSync(
    path,
    `node:
  name: ${name}
  zone: ${zone}
  api: 127.0.0.1:0
  gossip: 127.0.0.1:0
  profile: local
  data_dir: ${join_(dir, name)}
${join === undefined ? "" : `  join: [${join}]\n`}${extra}
${pools}`,
  );
  const proc = startVigil(["agent", "--config", path]);
  const m = await proc.waitFor(/API (http:\/\/\S+) gossip (\S+)/);
  return { name, proc, api: m[1]!, gossip: m[2]! };
}
const join_ = join;

async function json<T>(url: string): Promise<T> {
  const r = await fetch(url);
  return (await r.json()) as T;
}

interface Member {
  name: string;
  state: string;
}

describe("real processes: membership", () => {
  const agents: Agent[] = [];
  after(async () => {
    for (const a of agents) a.proc.child.kill("SIGKILL");
    await Promise.all(agents.map((a) => a.proc.exited));
  });

  it("5 agents join; a SIGKILLed one is reported dead by the other four; a graceful leave is reported left", async () => {
    agents.push(await startAgent("p1", "z1", undefined, ""));
    for (let i = 2; i <= 5; i++) agents.push(await startAgent(`p${i}`, `z${i % 3}`, agents[0]!.gossip, ""));
    for (const a of agents) {
      await eventually(
        async () => {
          const ms = (await json<{ members: Member[] }>(`${a.api}/v1/members`)).members;
          return ms.length === 5 && ms.every((m) => m.state === "alive");
        },
        `${a.name} to see 5 alive`,
        30_000,
      );
    }
    const cli = await runVigil(["members", "--server", agents[0]!.api]);
    assert.equal(cli.code, 0);
    assert.match(cli.stdout, /^NAME\s+STATE\s+INCARNATION/m);
    assert.equal(cli.stdout.match(/alive/g)?.length, 5);

    const victim = agents[4]!;
    victim.proc.child.kill("SIGKILL");
    for (const a of agents.slice(0, 4)) {
      await eventually(
        async () => {
          const ms = (await json<{ members: Member[] }>(`${a.api}/v1/members`)).members;
          return ms.find((m) => m.name === victim.name)?.state === "dead";
        },
        `${a.name} to report ${victim.name} dead`,
        30_000,
      );
    }
    // The event log reaches the store in batches: the page catches up shortly.
    await eventually(async () => {
      const ev = await json<{ events: { type: string; node: string }[] }>(
        `${agents[0]!.api}/v1/events?type=member.dead`,
      );
      return ev.events.some((e) => e.node === victim.name);
    }, "a member.dead event for the victim in the event log");

    const leaver = agents[3]!;
    // A leave is reported "left" by members that saw the leaver alive when it left; one that had
    // suspected it dead meanwhile (a loaded machine) waits for its refutation first.
    for (const a of agents.slice(0, 3)) {
      await eventually(
        async () => {
          const ms = (await json<{ members: Member[] }>(`${a.api}/v1/members`)).members;
          return ms.find((m) => m.name === leaver.name)?.state === "alive";
        },
        `${a.name} to see ${leaver.name} alive before it leaves`,
        30_000,
      );
    }
    leaver.proc.child.kill("SIGTERM");
    assert.equal((await leaver.proc.exited).code, 0);
    for (const a of agents.slice(0, 3)) {
      let seen: string | undefined;
      await eventually(
        async () => {
          const ms = (await json<{ members: Member[] }>(`${a.api}/v1/members`)).members;
          seen = ms.find((m) => m.name === leaver.name)?.state;
          return seen === "left";
        },
        `${a.name} to report ${leaver.name} left`,
        15_000,
      ).catch((e: Error) => {
        throw new Error(`${e.message} (last seen: ${seen ?? "absent"})`);
      });
    }
  });
});

interface TargetView {
  target: string;
  verdict: string;
  observers: { node: string; state: string; voting: boolean; owner: boolean }[];
}

describe("real processes: shared checking", () => {
  const agents: Agent[] = [];
  const origins: TestOrigin[] = [];
  after(async () => {
    for (const a of agents) a.proc.child.kill("SIGKILL");
    await Promise.all(agents.map((a) => a.proc.exited));
    await Promise.all(origins.map((o) => o.close()));
  });

  it("3 agents split 30 origins about evenly, agree when one goes down, and replicate a PUT pool", async () => {
    for (let i = 0; i < 30; i++) origins.push(await startTestOrigin(200, "ok"));
    const pools = `defaults: { interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [${origins.map((o) => o.key).join(", ")}]
`;
    agents.push(await startAgent("c1", "z1", undefined, pools));
    agents.push(await startAgent("c2", "z2", agents[0]!.gossip, pools));
    agents.push(await startAgent("c3", "z3", agents[0]!.gossip, pools));
    // every target has 2 voting owners on every node and is up
    for (const a of agents) {
      await eventually(
        async () => {
          const p = await json<{ targets: TargetView[] }>(`${a.api}/v1/pools/web`);
          return p.targets.every(
            (t) => t.verdict === "up" && t.observers.filter((o) => o.voting).length === 2,
          );
        },
        `${a.name}: 30 targets up with 2 voting observers`,
        20_000,
      );
    }
    // the check load splits: each node owns about 2/3 of 30 = 20 targets (checks since the split)
    // once every node has the same view, each target is owned exactly twice
    // On a loaded machine a node may suspect another for a moment (its view then differs):
    // allow as long as the wait above, and say what the nodes last reported.
    let lastOwned: number[] = [];
    const owned = await eventually(
      async () => {
        const o = await Promise.all(
          agents.map(async (a) => (await json<{ owned: number }>(`${a.api}/v1/health`)).owned),
        );
        lastOwned = o;
        return o.reduce((x, y) => x + y, 0) === 60 ? o : undefined;
      },
      () => `each target to be owned by exactly 2 nodes (last owned per node: ${lastOwned.join(", ")})`,
      20_000,
    );
    for (const n of owned) assert.ok(n >= 12 && n <= 28, `owned ${owned}`);
    // A node's first checks of the targets it just took spread over one interval.
    let counts: number[] = [];
    await eventually(
      async () => {
        counts = await Promise.all(
          agents.map(async (a) => {
            const text = await (await fetch(`${a.api}/metrics`)).text();
            return Number(/vigil_checks_total\{pool="web",result="ok"\} (\d+)/.exec(text)?.[1] ?? 0);
          }),
        );
        return counts.every((c) => c > 0);
      },
      () => `every node to check (checks per node: ${counts})`,
    );
    for (const c of counts) assert.ok(c > 0, `every node checks: ${counts}`);

    // an origin going down is down on all 3 nodes
    const victim = origins[7]!;
    victim.status = 503;
    for (const a of agents) {
      await eventually(async () => {
        const t = await json<TargetView>(`${a.api}/v1/pools/web/targets/${victim.key}`);
        return t.verdict === "down";
      }, `${a.name} to see ${victim.key} down`);
    }

    // PUT a pool on node 1, read it from node 3
    const put = await fetch(`${agents[0]!.api}/v1/pools/cache`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        check: { type: "tcp" },
        targets: [origins[0]!.key, origins[1]!.key],
        interval: "1s",
      }),
    });
    assert.equal(put.status, 201);
    await eventually(
      async () => (await fetch(`${agents[2]!.api}/v1/pools/cache`)).status === 200,
      "node 3 to have the pool",
    );
    // and a delete on node 3 reaches node 1
    assert.equal((await fetch(`${agents[2]!.api}/v1/pools/cache`, { method: "DELETE" })).status, 204);
    await eventually(
      async () => (await fetch(`${agents[0]!.api}/v1/pools/cache`)).status === 404,
      "node 1 to drop the pool",
    );
  });
});
