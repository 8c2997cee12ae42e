import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { type LookupThread, setRealtimePriority, startLookupThread } from "../../src/serve/lookup-thread.ts";
import { askAgent as ask } from "../helpers/agent.ts";
import { eventually } from "../helpers/origins.ts";
import { scriptedProber } from "../helpers/prober.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// node.lookup_rt_priority (src/serve/lookup-thread.ts, setRealtimePriority): the lookup
// process's event loop under SCHED_FIFO, set with util-linux's chrt, again after a restart;
// when it cannot be set, said why, and lookups go on at normal priority.

/** Scheduling policy and real-time priority of one thread, from /proc (fields 41 and 40). */
function schedOf(pid: number, tid = pid): { policy: number; rtPriority: number } {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state): field n is rest[n - 3].
  return { policy: Number(rest[41 - 3]), rtPriority: Number(rest[40 - 3]) };
}
const SCHED_OTHER = 0;
const SCHED_FIFO = 1;

/** Whether this process may set SCHED_FIFO `priority` on its children: root (CAP_SYS_NICE), or
 * a soft RLIMIT_RTPRIO at least that high. The tests below expect success or refusal by it. */
function mayUseRealtime(priority: number): boolean {
  if (process.getuid?.() === 0) return true;
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max realtime priority"));
  const soft = line?.trim().split(/\s+/)[3];
  return soft === "unlimited" || Number(soft) >= priority;
}

const verdicts = [["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }]] as const;

describe("lookup process at real-time priority", () => {
  let lookups: LookupThread;
  const said: { pid: number; error: string | undefined }[] = [];
  before(async () => {
    lookups = await startLookupThread({
      isolation: "process",
      agent: { host: "127.0.0.1", port: 0 },
      agentEntries: verdicts,
      dnsEntries: [],
      rtPriority: 3,
      onRtPriority: (pid, error) => said.push({ pid, error }),
    });
  });
  after(async () => {
    await lookups.close();
  });

  it("runs its event loop under SCHED_FIFO at the priority asked (only that thread), and answers", async () => {
    const [pid] = lookups.pidsForTest();
    assert.ok(pid !== undefined);
    assert.equal(said.length, 1);
    assert.equal(said[0]!.pid, pid);
    if (mayUseRealtime(3)) {
      assert.equal(said[0]!.error, undefined);
      assert.equal(lookups.realtime, 1);
      assert.deepEqual(schedOf(pid), { policy: SCHED_FIFO, rtPriority: 3 });
      // V8's helper threads were started before: they stay at normal priority.
      const others = readdirSync(`/proc/${pid}/task`)
        .map(Number)
        .filter((tid) => tid !== pid);
      assert.ok(others.length > 0);
      for (const tid of others) assert.equal(schedOf(pid, tid).policy, SCHED_OTHER, `thread ${tid}`);
    } else {
      assert.match(said[0]!.error ?? "", /not permitted/i);
      assert.equal(lookups.realtime, 0);
      assert.equal(schedOf(pid).policy, SCHED_OTHER);
    }
    assert.equal(await ask(lookups.agent!.port, "web/10.0.0.1:80\n"), "up ready\n");
  });

  it("gives the priority again to the process that replaces a dead one", async () => {
    const [before] = lookups.pidsForTest();
    await lookups.killForTest();
    await eventually(async () => lookups.restarts === 1 && said.length === 2, "a new lookup process");
    const [pid] = lookups.pidsForTest();
    assert.ok(pid !== undefined && pid !== before);
    assert.equal(said[1]!.pid, pid);
    if (mayUseRealtime(3)) {
      assert.equal(said[1]!.error, undefined);
      assert.equal(lookups.realtime, 1);
      assert.deepEqual(schedOf(pid), { policy: SCHED_FIFO, rtPriority: 3 });
    } else assert.equal(lookups.realtime, 0);
    assert.equal(await ask(lookups.agent!.port, "web/10.0.0.1:80\n"), "up ready\n");
  });
});

describe("lookup process whose priority cannot be set", () => {
  it("says why, counts none at real-time priority, and answers at normal priority", async () => {
    const said: { pid: number; error: string | undefined }[] = [];
    const lookups = await startLookupThread({
      isolation: "process",
      agent: { host: "127.0.0.1", port: 0 },
      agentEntries: verdicts,
      dnsEntries: [],
      rtPriority: 1,
      chrtPath: "/nonexistent/chrt",
      onRtPriority: (pid, error) => said.push({ pid, error }),
    });
    try {
      const [pid] = lookups.pidsForTest();
      assert.deepEqual(said, [
        {
          pid,
          error: "/nonexistent/chrt not found (util-linux's chrt sets the priority; install util-linux)",
        },
      ]);
      assert.equal(lookups.realtime, 0);
      assert.equal(schedOf(pid!).policy, SCHED_OTHER);
      assert.equal(await ask(lookups.agent!.port, "web/10.0.0.1:80\n"), "up ready\n");
    } finally {
      await lookups.close();
    }
  });

  it("passes on what chrt said when it refuses", async () => {
    // No such process: chrt runs and fails, as it does without the permission.
    const error = await setRealtimePriority(2 ** 22 + 1, 1);
    assert.match(error ?? "", /^chrt: failed to set pid \d+'s policy: No such process$/);
  });

  it("refuses a priority outside 1-99, and a thread", async () => {
    const base = { agent: { host: "127.0.0.1", port: 0 }, agentEntries: [], dnsEntries: [] };
    await assert.rejects(
      startLookupThread({ ...base, rtPriority: 0 }),
      /rtPriority must be an integer from 1 to 99, got 0/,
    );
    await assert.rejects(
      startLookupThread({ ...base, rtPriority: 100 }),
      /rtPriority must be an integer from 1 to 99, got 100/,
    );
    await assert.rejects(
      startLookupThread({ ...base, isolation: "thread", rtPriority: 1 }),
      /rtPriority needs process isolation/,
    );
  });
});

describe("node.lookup_rt_priority inside a node", () => {
  const run = async (chrtPath: string | undefined, cores?: number, nodeKeys = "") => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const { prober } = scriptedProber();
    const cfg = parseConfigText(
      `
node: { name: a1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", agent: "127.0.0.1:0", lookup_rt_priority: 2, data_dir: "${tmpDataDir()}"${nodeKeys} }
defaults: { interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [10.1.0.1:80]
`,
      "<test>",
    );
    const node = new VigilNode(cfg, {
      clock: systemClock,
      random: new SeededRandom(5),
      prober,
      logger,
      ...(chrtPath === undefined ? {} : { chrtPath }),
      ...(cores === undefined ? {} : { cores }),
    });
    await node.start();
    try {
      await eventually(
        async () => (await ask(node.agentPort!, "web/10.1.0.1:80\n")) === "up ready\n",
        "the target up through the lookup process",
      );
      const metrics = await (await fetch(`${node.apiUrl}/metrics`)).text();
      const gauge = /^vigil_lookup_realtime_processes (\d+)$/m.exec(metrics)?.[1];
      return { lines, gauge };
    } finally {
      await node.stop();
    }
  };

  it("logs the priority it set, and /metrics counts the process", async () => {
    const { lines, gauge } = await run(undefined);
    if (mayUseRealtime(2)) {
      assert.equal(gauge, "1");
      const line = lines.find((l) => l.msg === "lookup process runs at real-time priority (SCHED_FIFO)");
      assert.equal(line?.priority, 2);
      assert.equal(typeof line?.pid, "number");
    } else assert.equal(gauge, "0");
  });

  const floodWarning =
    "node.lookup_rt_priority with as many lookup processes as cores: a flood of lookups can starve the node's checks and gossip; keep lookup_threads below the core count";

  it("warns when there are as many real-time lookup processes as cores, not when fewer", async () => {
    // One lookup process (the default) on a machine counted as one core, then as two.
    const one = await run(undefined, 1);
    const line = one.lines.find((l) => l.msg === floodWarning);
    assert.equal(line?.level, 40);
    assert.equal(line?.lookupThreads, 1);
    assert.equal(line?.cores, 1);
    const two = await run(undefined, 2);
    assert.equal(
      two.lines.some((l) => l.msg === floodWarning),
      false,
    );
  });

  it("warns that the API's target lookups run at real-time priority too with node.lookup_api", async () => {
    const apiWarning =
      "node.lookup_rt_priority with node.lookup_api: the API's target lookups are answered at real-time priority too, and anyone who can reach the API's port can send them; a flood can starve the node's checks and gossip";
    const withApi = await run(undefined, 8, ", lookup_api: true");
    assert.equal(withApi.lines.find((l) => l.msg === apiWarning)?.level, 40);
    const without = await run(undefined, 8);
    assert.equal(
      without.lines.some((l) => l.msg === apiWarning),
      false,
    );
  });

  it("warns when it cannot, and /metrics counts none", async () => {
    const { lines, gauge } = await run("/nonexistent/chrt");
    assert.equal(gauge, "0");
    const line = lines.find(
      (l) => l.msg === "lookup process could not be given real-time priority; it runs at normal priority",
    );
    assert.equal(line?.level, 40);
    assert.match(String(line?.err), /not found/);
  });
});
