import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect, createServer } from "node:net";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { parseConfigText } from "../../src/config/load.ts";
import { formatAgentReply } from "../../src/core/agent-check/codec.ts";
import { isVigilError } from "../../src/core/errors.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { type LookupIsolation, type LookupThread, startLookupThread } from "../../src/serve/lookup-thread.ts";
import { askAgent as ask } from "../helpers/agent.ts";
import { addressesOf, dnsQuery, rcodeOf } from "../helpers/dns.ts";
import { eventually } from "../helpers/origins.ts";
import { scriptedProber } from "../helpers/prober.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// The agent-check and DNS servers on the lookup thread (src/serve/lookup-thread.ts): they answer
// from the tables the node pushes, count into memory the node reads, come back after a crash with
// the latest tables, and, inside a node, follow every kind of change an answer depends on.

/** The agent side of a lookup thread, as the tests below use it. */
interface AgentThread {
  port: number;
  stats: NonNullable<LookupThread["agent"]>["stats"];
  update(entries: Parameters<LookupThread["updateAgent"]>[0]): void;
  killForTest(): Promise<void>;
  readonly restarts: number;
}

function agentSuite(isolation: LookupIsolation): void {
  describe(`lookup ${isolation}: agent-check`, () => {
    let lookups: LookupThread;
    let thread: AgentThread;
    before(async () => {
      lookups = await startLookupThread({
        isolation,
        agent: { host: "127.0.0.1", port: 0 },
        dnsEntries: [],
        agentEntries: [
          ["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }],
          ["web", "10.0.0.2:80", { state: "down", reason: "status 503", health: "down" }],
          ["web", "10.0.0.3:80", undefined],
        ],
      });
      thread = {
        port: lookups.agent!.port,
        stats: lookups.agent!.stats,
        update: (e) => lookups.updateAgent(e),
        killForTest: () => lookups.killForTest(),
        get restarts() {
          return lookups.restarts;
        },
      };
    });
    after(async () => {
      await lookups.close();
    });

    it("answers from the table it started with", async () => {
      assert.equal(await ask(thread.port, "web/10.0.0.1:80\n"), "up ready\n");
      assert.equal(await ask(thread.port, "web/10.0.0.2:80\n"), "down ready #status 503\n");
      assert.equal(await ask(thread.port, "web/10.0.0.3:80\n"), "\n", "a row without a verdict is no row");
      assert.equal(await ask(thread.port, "api/10.0.0.1:80\n"), "\n", "another pool");
    });

    it("counts into memory the caller reads (a thread's without a message)", async () => {
      // A child process's copies trail by up to 200 ms: let the previous test's four lookups
      // arrive before taking the baseline.
      if (isolation === "process")
        await eventually(() => thread.stats.answered + thread.stats.unknownTargets >= 4, "earlier counts");
      const before = { ...thread.stats.requests };
      await ask(thread.port, "web/10.0.0.1:80\n");
      await ask(thread.port, "web/10.0.0.9:80\n");
      await ask(thread.port, "not a request\n");
      // A thread counts before it writes the reply, so the counts are there when it arrives; a
      // child process sends its counts within 200 ms.
      if (isolation === "process")
        await eventually(() => thread.stats.requests.bad_request - before.bad_request === 1, "counts sent");
      assert.equal(thread.stats.requests.up - before.up, 1);
      assert.equal(thread.stats.requests.unknown_target - before.unknown_target, 1);
      assert.equal(thread.stats.requests.bad_request - before.bad_request, 1);
      assert.equal(thread.stats.badRequestKinds.bad_format, 1);
      assert.equal(thread.stats.answered, thread.stats.requests.up + thread.stats.requests.down);
    });

    it("follows updates: a changed verdict, a new row, a removed row", async () => {
      thread.update([
        ["web", "10.0.0.1:80", { state: "maint", reason: "deploy", health: "up" }],
        ["web", "10.0.0.4:80", { state: "drain", reason: "", health: "up" }],
        ["web", "10.0.0.2:80", undefined],
      ]);
      await eventually(async () => (await ask(thread.port, "web/10.0.0.1:80\n")) === "maint\n", "maint");
      assert.equal(await ask(thread.port, "web/10.0.0.4:80\n"), "up drain\n");
      assert.equal(await ask(thread.port, "web/10.0.0.2:80\n"), "\n");
    });

    it("a thread that dies is started again on the same port, with the latest table", async () => {
      const port = thread.port;
      thread.update([
        ["web", "10.0.0.5:80", { state: "down", reason: "timeout after 2000ms", health: "down" }],
      ]);
      await eventually(async () => (await ask(port, "web/10.0.0.5:80\n")).startsWith("down"), "row 5 served");
      const answered = thread.stats.answered;
      await thread.killForTest();
      // A change while no thread listens must reach the next one.
      thread.update([["web", "10.0.0.6:80", { state: "up", reason: "", health: "up" }]]);
      await eventually(() => thread.restarts === 1, "restarted");
      const reply = await eventually(async () => {
        try {
          return await ask(port, "web/10.0.0.5:80\n");
        } catch {
          return undefined; // refused while the new thread starts
        }
      }, "answers again");
      assert.equal(reply, "down ready #timeout after 2000ms\n");
      await eventually(async () => (await ask(port, "web/10.0.0.6:80\n")) === "up ready\n", "row 6 served");
      assert.equal(await ask(port, "web/10.0.0.1:80\n"), "maint\n");
      await eventually(() => thread.stats.answered > answered, "counting goes on from where it was");
    });

    it("a thread that dies with connections open does not leave them counted as open", async () => {
      // Its own thread, told when the replacement listens: a lookup through the new one would
      // set the count itself and hide a stale one.
      let restarted!: () => void;
      const ready = new Promise<void>((r) => {
        restarted = r;
      });
      const t = await startLookupThread({
        isolation,
        agent: { host: "127.0.0.1", port: 0 },
        agentEntries: [],
        dnsEntries: [],
        onRestart: () => restarted(),
      });
      const held = connect({ port: t.agent!.port, host: "127.0.0.1" });
      held.on("error", () => {});
      try {
        await eventually(() => t.agent!.stats.activeConnections === 1, "one connection held open");
        await t.killForTest();
        await ready;
        await eventually(() => t.agent!.stats.activeConnections === 0, "no connection counted open");
      } finally {
        held.destroy();
        await t.close();
      }
    });

    it("a port in use is the listen error, with its code", async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
      const port = (blocker.address() as { port: number }).port;
      try {
        await assert.rejects(
          startLookupThread({
            isolation,
            agent: { host: "127.0.0.1", port },
            agentEntries: [],
            dnsEntries: [],
          }),
          { code: "EADDRINUSE" },
        );
      } finally {
        blocker.close();
      }
    });

    it("close stops the thread and frees the port", async () => {
      const t = await startLookupThread({
        isolation,
        agent: { host: "127.0.0.1", port: 0 },
        agentEntries: [],
        dnsEntries: [],
      });
      await t.close();
      await assert.rejects(ask(t.agent!.port, "web/10.0.0.1:80\n"), { code: "ECONNREFUSED" });
    });
  });
}

function dnsSuite(isolation: LookupIsolation): void {
  describe(`lookup ${isolation}: DNS`, () => {
    const a = async (port: number, name: string): Promise<{ rcode: string; ips: string[] }> => {
      const p = await dnsQuery(port, name, "A");
      return { rcode: rcodeOf(p), ips: addressesOf(p) };
    };

    it("answers from the pools it was given, follows updates, and comes back after a crash", async () => {
      const t = await startLookupThread({
        isolation,
        dns: { host: "127.0.0.1", port: 0 },
        agent: { host: "127.0.0.1", port: 0 },
        agentEntries: [["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }]],
        dnsEntries: [
          ["web", [{ host: "10.0.0.1", port: 80 }]],
          ["gone", undefined],
        ],
      });
      try {
        const port = t.dns!.port;
        assert.deepEqual(await a(port, "web.service.vigil."), { rcode: "NOERROR", ips: ["10.0.0.1"] });
        assert.equal((await a(port, "gone.service.vigil.")).rcode, "NXDOMAIN");
        t.updateDns([
          [
            "web",
            [
              { host: "10.0.0.1", port: 80 },
              { host: "10.0.0.2", port: 80 },
            ],
          ],
          ["api", []],
        ]);
        await eventually(async () => (await a(port, "web.service.vigil.")).ips.length === 2, "second target");
        assert.deepEqual(await a(port, "api.service.vigil."), { rcode: "NOERROR", ips: [] });
        await eventually(() => t.dns!.stats.responses.udp.NOERROR >= 3, "NOERROR counted");
        const noerror = t.dns!.stats.responses.udp.NOERROR;
        await t.killForTest();
        t.updateDns([["web", undefined]]); // while no thread listens
        await eventually(() => t.restarts === 1, "restarted");
        await eventually(async () => {
          try {
            return (await a(port, "web.service.vigil.")).rcode === "NXDOMAIN";
          } catch {
            return false;
          }
        }, "the new thread has the latest table");
        assert.deepEqual(await a(port, "api.service.vigil."), { rcode: "NOERROR", ips: [] });
        assert.equal(await ask(t.agent!.port, "web/10.0.0.1:80\n"), "up ready\n", "the agent came back too");
        await eventually(
          () => t.dns!.stats.responses.udp.NOERROR > noerror,
          "counting goes on from where it was",
        );
      } finally {
        await t.close();
      }
    });

    it("one that dies with TCP connections open does not leave them counted as open", async () => {
      const t = await startLookupThread({
        isolation,
        dns: { host: "127.0.0.1", port: 0 },
        agentEntries: [],
        dnsEntries: [["web", [{ host: "10.0.0.1", port: 80 }]]],
      });
      const held = connect({ port: t.dns!.port, host: "127.0.0.1" });
      held.on("error", () => {});
      try {
        await eventually(() => t.dns!.stats.tcp.open === 1, "one TCP connection held open");
        await t.killForTest();
        await eventually(() => t.restarts === 1, "restarted");
        await eventually(async () => {
          try {
            return (await a(t.dns!.port, "web.service.vigil.")).ips.length === 1;
          } catch {
            return false; // unanswered while the new one starts
          }
        }, "answers again");
        await eventually(() => t.dns!.stats.tcp.open === 0, "no TCP connection counted open");
      } finally {
        held.destroy();
        await t.close();
      }
    });

    it("a DNS port it cannot bind is the node's listen error", async () => {
      const blocker = createSocket("udp4");
      await new Promise<void>((r) => blocker.bind(0, "127.0.0.1", r));
      try {
        await assert.rejects(
          startLookupThread({
            isolation,
            dns: { host: "127.0.0.1", port: blocker.address().port },
            agentEntries: [],
            dnsEntries: [],
          }),
          (e: unknown) =>
            isVigilError(e) && e.code === "VIGIL_ERR_UNAVAILABLE" && /cannot listen/.test(e.message),
        );
      } finally {
        blocker.close();
      }
    });
  });
}

for (const isolation of ["thread", "process"] as const) {
  agentSuite(isolation);
  dnsSuite(isolation);
}

describe("two lookup threads on the same ports (SO_REUSEPORT)", () => {
  it("both answer, counts add up, and one dying leaves the other answering", async () => {
    const t = await startLookupThread({
      isolation: "thread",
      threads: 2,
      agent: { host: "127.0.0.1", port: 0 },
      dns: { host: "127.0.0.1", port: 0 },
      agentEntries: [["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }]],
      dnsEntries: [["web", [{ host: "10.0.0.1", port: 80 }]]],
    });
    try {
      assert.equal(t.threads, 2);
      const port = t.agent!.port;
      const before = t.agent!.stats.answered;
      for (let i = 0; i < 40; i++) assert.equal(await ask(port, "web/10.0.0.1:80\n"), "up ready\n");
      assert.equal(
        t.agent!.stats.answered - before,
        40,
        "every answer counted once, whichever thread gave it",
      );
      // An update reaches both threads: every connection sees it, whichever thread takes it.
      t.updateAgent([["web", "10.0.0.1:80", { state: "down", reason: "status 500", health: "down" }]]);
      await eventually(async () => {
        for (let i = 0; i < 20; i++)
          if ((await ask(port, "web/10.0.0.1:80\n")) !== "down ready #status 500\n") return false;
        return true;
      }, "both threads have the update");
      // Thread 0 dies: thread 1 holds the port, so nothing is refused meanwhile.
      await t.killForTest(0);
      for (let i = 0; i < 40; i++)
        assert.equal(await ask(port, "web/10.0.0.1:80\n"), "down ready #status 500\n");
      await eventually(() => t.restarts === 1, "thread 0 restarted");
      for (let i = 0; i < 20; i++)
        assert.equal(await ask(port, "web/10.0.0.1:80\n"), "down ready #status 500\n");
      const dnsPort = t.dns!.port;
      for (let i = 0; i < 10; i++)
        assert.deepEqual(addressesOf(await dnsQuery(dnsPort, "web.service.vigil.", "A")), ["10.0.0.1"]);
      assert.ok(t.dns!.stats.responses.udp.NOERROR >= 10);
    } finally {
      await t.close();
    }
  });
});

for (const isolation of ["thread", "process"] as const)
  describe(`lookup ${isolation} (two) inside a node: agent-check`, () => {
    /** What each target's checks return now, by host: the test flips them. */
    const { prober, results } = scriptedProber();
    let node: VigilNode;
    before(async () => {
      const cfg = parseConfigText(
        `
node: { name: a1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", agent: "127.0.0.1:0", lookup_threads: 2, lookup_isolation: ${isolation}, data_dir: "${tmpDataDir()}" }
defaults: { interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [10.1.0.1:80, 10.1.0.2:80]
`,
        "<test>",
      );
      node = new VigilNode(cfg, {
        clock: systemClock,
        random: new SeededRandom(3),
        prober,
        logger: silentLogger,
      });
      await node.start();
    });
    after(async () => {
      await node.stop();
    });
    const agent = (line: string) => ask(node.agentPort!, line);
    const until = (line: string, want: string) =>
      eventually(async () => (await agent(line)) === want, `${line.trim()} answers ${JSON.stringify(want)}`);

    it("follows verdicts, a down target's reason, admin states, pools added and deleted", async () => {
      await until("web/10.1.0.1:80\n", "up ready\n");
      results.set("10.1.0.2", { ok: false, latencyMs: 0.1, reason: "status 503" });
      await until("web/10.1.0.2:80\n", "down ready #status 503\n");
      // Still down, for another reason: no flip, but the reply changes.
      results.set("10.1.0.2", { ok: false, latencyMs: 80, reason: "timeout after 80ms" });
      await until("web/10.1.0.2:80\n", "down ready #timeout after 80ms\n");
      results.delete("10.1.0.2");
      await until("web/10.1.0.2:80\n", "up ready\n");
      node.setAdmin("web", "10.1.0.1:80", { state: "maint", reason: "kernel upgrade" });
      await until("web/10.1.0.1:80\n", "maint\n");
      node.setAdmin("web", "10.1.0.1:80", { state: "none" });
      await until("web/10.1.0.1:80\n", "up ready\n");
      node.putPool("api", {
        check: { type: "tcp" },
        interval: "100ms",
        timeout: "80ms",
        rise: 1,
        fall: 1,
        targets: ["10.1.0.9:81"],
      });
      await until("api/10.1.0.9:81\n", "up ready\n");
      node.deletePool("api");
      await until("api/10.1.0.9:81\n", "\n");
    });

    it("its counts reach the node's /metrics", async () => {
      const before = node.agentStats?.requests.up ?? 0;
      await agent("web/10.1.0.1:80\n");
      // A child process's counts arrive within 200 ms; a thread's are there at once.
      await eventually(() => (node.agentStats?.requests.up ?? 0) > before, "the lookup counted");
      // A child process's copy may land while /metrics is read (earlier tests' lookups too):
      // the count shown is the node's count from some moment of the read.
      const low = node.agentStats?.requests.up ?? 0;
      const text = await (await fetch(`${node.apiUrl}/metrics`)).text();
      const high = node.agentStats?.requests.up ?? 0;
      const up = Number(/vigil_agent_requests_total\{result="up"\} (\d+)/.exec(text)?.[1]);
      assert.ok(up >= 1, `up count ${up}`);
      assert.ok(up >= low && up <= high, `/metrics says ${up}, the node counted ${low}..${high}`);
      assert.match(text, /^vigil_lookup_threads 2$/m);
      assert.match(text, /^vigil_lookup_thread_restarts_total 0$/m);
    });
  });

describe("lookup thread: the agent table follows any sequence of updates", () => {
  it("answers as a plain map given the same updates would (random sequences)", async () => {
    const keys = ["10.9.0.1:80", "10.9.0.2:80", "10.9.0.3:80"];
    const verdicts = [
      { state: "up", reason: "", health: "up" },
      { state: "down", reason: "status 503", health: "down" },
      { state: "down", reason: "timeout after 2000ms", health: "down" },
      { state: "maint", reason: "ops", health: "up" },
      undefined,
    ] as const;
    const t = await startLookupThread({
      isolation: "thread",
      agent: { host: "127.0.0.1", port: 0 },
      agentEntries: [],
      dnsEntries: [],
    });
    let runs = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.array(fc.tuple(fc.nat(keys.length - 1), fc.nat(verdicts.length - 1)), {
              minLength: 1,
              maxLength: 4,
            }),
            { minLength: 1, maxLength: 6 },
          ),
          async (batches) => {
            const model = new Map<string, (typeof verdicts)[number]>();
            // Start each run from an empty table.
            t.updateAgent(keys.map((k) => ["pr", k, undefined]));
            for (const batch of batches) {
              t.updateAgent(batch.map(([k, v]) => ["pr", keys[k]!, verdicts[v]] as const));
              for (const [k, v] of batch) model.set(keys[k]!, verdicts[v]);
            }
            // One more message after the batches, a row no earlier run had: once it answers, the
            // thread has read everything before it (one port, messages in order).
            const fence = `fence${++runs}`;
            t.updateAgent([[fence, "10.9.9.9:80", { state: "up", reason: "", health: "up" }]]);
            await eventually(
              async () => (await ask(t.agent!.port, `${fence}/10.9.9.9:80\n`)) === "up ready\n",
              "fence",
            );
            for (const k of keys) {
              const v = model.get(k);
              const want = v === undefined ? "\n" : formatAgentReply(v);
              assert.equal(
                await ask(t.agent!.port, `pr/${k}\n`),
                want,
                `${k} after ${JSON.stringify(batches)}`,
              );
            }
          },
        ),
        { numRuns: 25 },
      );
    } finally {
      await t.close();
    }
  });
});

describe("lookup process: tied to the node's life", () => {
  it("exits when its node is killed (SIGKILL), freeing the port", async () => {
    // A node process that starts a lookup process, says its port, and is then killed outright.
    const script = `
      import { startLookupThread } from ${JSON.stringify(new URL("../../src/serve/lookup-thread.ts", import.meta.url).href)};
      const t = await startLookupThread({ isolation: "process", agent: { host: "127.0.0.1", port: 0 },
        agentEntries: [["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }]], dnsEntries: [] });
      process.stdout.write(t.agent.port + "\\n");
      setInterval(() => {}, 1000);
    `;
    const node = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const port = Number(
        await new Promise<string>((resolve, reject) => {
          createInterface({ input: node.stdout! }).once("line", resolve);
          node.once("exit", (code) =>
            reject(new Error(`the node exited with code ${code} before it listened`)),
          );
        }),
      );
      assert.equal(await ask(port, "web/10.0.0.1:80\n"), "up ready\n");
      node.kill("SIGKILL");
      await eventually(async () => {
        try {
          await ask(port, "web/10.0.0.1:80\n");
          return false;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === "ECONNREFUSED";
        }
      }, "the orphaned lookup process gone and its port free");
    } finally {
      node.kill("SIGKILL");
    }
  });

  it("a SIGINT or SIGTERM to the lookup process (a terminal's Ctrl-C reaches the whole group) does not stop it; the node does", async () => {
    const t = await startLookupThread({
      isolation: "process",
      agent: { host: "127.0.0.1", port: 0 },
      agentEntries: [["web", "10.0.0.1:80", { state: "up", reason: "", health: "up" }]],
      dnsEntries: [],
    });
    try {
      const pids = t.pidsForTest();
      assert.equal(pids.length, 1);
      process.kill(pids[0]!, "SIGINT");
      process.kill(pids[0]!, "SIGTERM");
      // The signals are pending before it can take the next connection: answering it means it
      // ran with them delivered and lived.
      assert.equal(await ask(t.agent!.port, "web/10.0.0.1:80\n"), "up ready\n");
      process.kill(pids[0]!, 0); // throws if gone
      assert.equal(t.restarts, 0);
    } finally {
      await t.close();
    }
    await assert.rejects(ask(t.agent!.port, "web/10.0.0.1:80\n"), { code: "ECONNREFUSED" });
  });
});

for (const isolation of ["thread", "process"] as const)
  describe(`lookup ${isolation}: liveness`, () => {
    const verdict = { state: "up", reason: "", health: "up" } as const;
    const open = (onHung: (pid: number | undefined) => void) =>
      startLookupThread({
        isolation,
        agent: { host: "127.0.0.1", port: 0 },
        dnsEntries: [],
        agentEntries: [["web", "10.0.0.1:80", verdict]],
        // Pinged every 60 ms; silent for 300 ms means hung.
        livenessTimeoutMs: 300,
        onHung,
      });

    it("stops one whose event loop is stuck and starts another with the tables", async () => {
      const hung: (number | undefined)[] = [];
      const lookups = await open((pid) => hung.push(pid));
      try {
        const port = lookups.agent!.port;
        assert.equal(await ask(port, "web/10.0.0.1:80\n"), "up ready\n");
        const pids = lookups.pidsForTest();
        lookups.hangForTest();
        await eventually(() => lookups.hangs === 1 && lookups.restarts === 1, "taken for hung and replaced");
        await eventually(
          async () => (await ask(port, "web/10.0.0.1:80\n").catch(() => "")) === "up ready\n",
          "answers again",
        );
        assert.equal(hung.length, 1);
        assert.deepEqual(hung, isolation === "process" ? pids : [undefined]);
        if (isolation === "process") assert.notDeepEqual(lookups.pidsForTest(), pids);
      } finally {
        await lookups.close();
      }
    });

    it("does not take one for hung because the node's own loop was held", async () => {
      const lookups = await open(() => {});
      try {
        assert.equal(await ask(lookups.agent!.port, "web/10.0.0.1:80\n"), "up ready\n");
        // The node's loop held three times the timeout: no pings went out, none came back.
        const until = performance.now() + 900;
        while (performance.now() < until) {
          // held
        }
        // Two rounds after it: the first, late, judges nobody; a node that judged the silence
        // would have stopped the lookup thread in it.
        const rounds = lookups.livenessRounds;
        await eventually(() => lookups.livenessRounds >= rounds + 2, "two liveness rounds");
        assert.equal(lookups.hangs, 0);
        assert.equal(lookups.restarts, 0);
      } finally {
        await lookups.close();
      }
    });
  });

describe("lookup worker's modules", () => {
  // The worker runs in every node (a thread, or a process of its own); what it imports it holds
  // for the node's lifetime. The config schema and its validation library are the node's
  // business, not the lookup servers': dns/zone.ts once imported the pool-name rule from
  // config/schema.ts and so loaded zod and the whole schema into the worker (the bundle went from
  // 119 KB to 934 KB, the child process from 90 to 111 MB RSS).
  it("loads neither the config schema nor zod", async () => {
    const { build } = await import("esbuild");
    const r = await build({
      entryPoints: [new URL("../../src/serve/lookup-thread-worker.ts", import.meta.url).pathname],
      bundle: true,
      platform: "node",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(r.metafile.inputs);
    assert.ok(
      inputs.some((p) => p.endsWith("src/serve/agent-server.ts")),
      "the bundle holds the agent server",
    );
    const unwanted = inputs.filter((p) => p.includes("/zod/") || p.endsWith("config/schema.ts"));
    assert.equal(unwanted.length, 0, `the worker loads ${unwanted.slice(0, 3).join(", ")}…`);
  });
});
