import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import type { AgentServer } from "../../src/serve/agent-server.ts";
import type { LookupThread } from "../../src/serve/lookup-thread.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// A real HAProxy driven by a real Vigil node through agent-check, observed through HAProxy's
// own runtime API. The servers use the agent only (no `check`), so every state change seen
// here was made by Vigil's answers. CI installs HAProxy (Debian package `haproxy`); when it is
// missing this test fails, because a skipped integration test would hide a broken contract.

/** HAProxy's numeric states, from management.txt "show servers state". */
const opStopped = 0;
const opRunning = 2;
const admFMaint = 0x01;
const admFDrain = 0x08;

function findHaproxy(): string {
  const candidates = [process.env.HAPROXY_BIN, "haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"];
  for (const bin of candidates) {
    if (bin === undefined || bin === "") continue;
    const r = spawnSync(bin, ["-v"], { encoding: "utf8" });
    if (r.status === 0 && /HAProxy version/.test(r.stdout)) return bin;
  }
  throw new Error(
    "haproxy is not installed (tried $HAPROXY_BIN, haproxy on PATH, /usr/sbin/haproxy): " +
      "install it with `apt-get install -y haproxy`; .ci/run does this in CI",
  );
}

/** One command on the runtime API socket; in non-interactive mode HAProxy answers and closes. */
function runtimeApi(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let out = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`runtime API did not answer "${command}" within 2s`));
    }, 2_000);
    s.setEncoding("utf8");
    s.on("connect", () => s.write(`${command}\n`));
    s.on("data", (d: string) => {
      out += d;
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** A running HAProxy on `config` (its lines), in `dir`; its output collected for failure messages. */
interface Haproxy {
  readonly log: () => string;
  /** Resolves once its runtime API at `sock` answers; rejects if it exits first. */
  ready(sock: string): Promise<void>;
  stop(): Promise<void>;
}

function runHaproxy(dir: string, config: string[]): Haproxy {
  const cfgPath = join(dir, "haproxy.cfg");
  writeFileSync(cfgPath, config.join("\n"));
  const child: ChildProcess = spawn(findHaproxy(), ["-f", cfgPath, "-db"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout!.on("data", (d) => {
    log += d;
  });
  child.stderr!.on("data", (d) => {
    log += d;
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`haproxy exited with ${code}:\n${log}`))),
  );
  exited.catch(() => {});
  return {
    log: () => log,
    ready: async (sock) => {
      await Promise.race([
        eventually(() => runtimeApi(sock, "show servers state"), "the HAProxy runtime API", 5_000),
        exited,
      ]);
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2_000);
      await gone;
      clearTimeout(killer);
    },
  };
}

/** Polls HAProxy's view of server `name` in `backend` until `want` holds; the failure shows the
 * last view and HAProxy's output. */
async function waitForServer(
  sock: string,
  backend: string,
  name: string,
  want: (s: ServerState) => boolean,
  what: string,
  haproxy: Haproxy | undefined,
): Promise<ServerState> {
  let last: ServerState | undefined;
  try {
    return await eventually(
      async () => {
        last = parseServersState(await runtimeApi(sock, `show servers state ${backend}`)).get(name);
        return last !== undefined && want(last) ? last : undefined;
      },
      `${name} ${what}`,
      5_000,
    );
  } catch (e) {
    throw new Error(
      `${(e as Error).message}; last seen ${JSON.stringify(last)}\nhaproxy:\n${haproxy?.log()}`,
    );
  }
}

/** Two local origins answering "ok", and a started node checking them (pool "web") every 100 ms
 * for real; `nodeKeys` go into its `node:` mapping. */
async function startNodeWithOrigins(nodeKeys: string): Promise<{ node: VigilNode; origins: TestOrigin[] }> {
  const origins = [await startTestOrigin(200, "ok"), await startTestOrigin(200, "ok")];
  const cfg = parseConfigText(
    `
node: { ${nodeKeys}, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${tmpDataDir()}" }
defaults: { interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz, expect: { body_contains: ok } }
    targets: [${origins.map((o) => o.key).join(", ")}]
`,
    "<haproxy test>",
  );
  const node = new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(1),
    prober: createProber(),
    logger: silentLogger,
  });
  await node.start();
  return { node, origins };
}

interface ServerState {
  srv_name: string;
  srv_op_state: number;
  srv_admin_state: number;
}

/** `show servers state <backend>`: a version line ("1"), a "# " header naming the columns,
 * then one space-separated line per server. Read by column name, not position. */
function parseServersState(text: string): Map<string, ServerState> {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines[0]?.trim(), "1", `expected format version 1, got:\n${text}`);
  const header = lines[1] ?? "";
  assert.ok(header.startsWith("# "), `expected a "# " column header, got:\n${text}`);
  const columns = header.slice(2).trim().split(/\s+/);
  const servers = new Map<string, ServerState>();
  for (const line of lines.slice(2)) {
    if (line.startsWith("#")) continue;
    const fields = line.trim().split(/\s+/);
    assert.equal(
      fields.length,
      columns.length,
      `a row with ${fields.length} fields for ${columns.length} columns`,
    );
    const row = Object.fromEntries(columns.map((c, i) => [c, fields[i]!]));
    servers.set(row.srv_name!, {
      srv_name: row.srv_name!,
      srv_op_state: Number(row.srv_op_state),
      srv_admin_state: Number(row.srv_admin_state),
    });
  }
  return servers;
}

/** `show stat`: CSV with a "# " header; the agent's own columns live only here. */
function parseStat(text: string, proxy: string): Map<string, Record<string, string>> {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = lines[0] ?? "";
  assert.ok(header.startsWith("# "), `expected a "# " CSV header, got:\n${text}`);
  const columns = header.slice(2).split(",");
  const rows = new Map<string, Record<string, string>>();
  for (const line of lines.slice(1)) {
    // No field HAProxy writes for these servers holds a comma (descriptions here are ours).
    const fields = line.split(",");
    const row = Object.fromEntries(columns.map((c, i) => [c, fields[i] ?? ""]));
    if (row.pxname === proxy) rows.set(row.svname!, row);
  }
  return rows;
}

describe("HAProxy agent-check against a Vigil node", { timeout: 30_000 }, () => {
  let dir: string;
  let haproxy: Haproxy | undefined;
  let node: VigilNode;
  let agent: Pick<AgentServer, "port" | "stats">;
  let origins: TestOrigin[] = [];
  let sock: string;

  const servers = async (): Promise<Map<string, ServerState>> =>
    parseServersState(await runtimeApi(sock, "show servers state web"));
  const stat = async (): Promise<Map<string, Record<string, string>>> =>
    parseStat(await runtimeApi(sock, "show stat"), "web");
  /** Polls HAProxy's view of one server until `want` holds; the failure shows the last view. */
  const waitFor = (name: string, want: (s: ServerState) => boolean, what: string): Promise<ServerState> =>
    waitForServer(sock, "web", name, want, what, haproxy);
  const setAdmin = async (target: TestOrigin, state: "maint" | "drain" | "none"): Promise<void> => {
    const r = await fetch(`${node.apiUrl}/v1/pools/web/targets/${target.key}/admin`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ state, reason: `test ${state}` }),
    });
    assert.equal(r.status, 200, await r.text());
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-haproxy-"));
    sock = join(dir, "haproxy.sock");
    ({ node, origins } = await startNodeWithOrigins(`name: h1, agent: "127.0.0.1:0"`));
    const [o1, o2] = origins as [TestOrigin, TestOrigin];
    // The node's own agent-check server, on its lookup thread: what HAProxy talks to in production.
    agent = { port: node.agentPort!, stats: node.agentStats! };

    // s3 asks about a target Vigil does not know: it must be left exactly as HAProxy has it.
    const agentOpts = (send: string): string =>
      `agent-check agent-addr 127.0.0.1 agent-port ${agent.port} agent-inter 100ms agent-send "${send}\\n"`;
    const config = [
      "global",
      `  stats socket ${sock} level admin`,
      "defaults",
      "  mode http",
      "  timeout connect 500ms",
      "  timeout client 5s",
      "  timeout server 5s",
      "backend web",
      `  server s1 ${o1.key} ${agentOpts(`web/${o1.key}`)}`,
      `  server s2 ${o2.key} ${agentOpts(`web/${o2.key}`)}`,
      `  server s3 127.0.0.1:1 ${agentOpts("web/127.0.0.1:1")}`,
      "",
    ];
    haproxy = runHaproxy(dir, config);
    await haproxy.ready(sock);
  });

  after(async () => {
    await haproxy?.stop();
    await node?.stop();
    for (const o of origins) await o.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("HAProxy marks both servers UP from Vigil's `up ready`", async () => {
    for (const name of ["s1", "s2"]) {
      await waitFor(name, (s) => s.srv_op_state === opRunning && s.srv_admin_state === 0, "UP and READY");
    }
    await eventually(async () => (await stat()).get("s1")?.last_agt === "via agent : up", "s1 agent says up");
  });

  it("an unknown target gets an answer that changes nothing, and Vigil counts it", async () => {
    await eventually(() => agent.stats.unknownTargets >= 3, "three unknown-target requests", 5_000);
    const s3 = await eventually(async () => {
      const row = (await stat()).get("s3");
      return row?.agent_status === "CHECKED" ? row : undefined;
    }, "s3 agent status CHECKED");
    assert.equal(s3.agent_desc, "No status change");
    const state = (await servers()).get("s3");
    assert.equal(state?.srv_op_state, opRunning, "HAProxy's initial UP is kept");
    assert.equal(state?.srv_admin_state, 0);
  });

  it("an origin failing its check goes DOWN in HAProxy, with Vigil's reason", async () => {
    origins[0]!.status = 503;
    await waitFor("s1", (s) => s.srv_op_state === opStopped, "DOWN");
    // The reason is the latest check's; on a loaded machine one of them may be a timeout.
    await eventually(
      async () => /^via agent : down \(.*503.*\)$/.test((await stat()).get("s1")?.last_agt ?? ""),
      "s1 agent says down with the 503",
      5_000,
    );
    assert.equal((await servers()).get("s2")?.srv_op_state, opRunning, "the other server is untouched");
  });

  it("maint set and lifted in Vigil while the origin is down: MAINT, then DOWN and READY again", async () => {
    await setAdmin(origins[0]!, "maint");
    await waitFor("s1", (s) => (s.srv_admin_state & admFMaint) !== 0, "in MAINT");
    await setAdmin(origins[0]!, "none");
    const s1 = await waitFor("s1", (s) => s.srv_admin_state === 0, "out of MAINT");
    assert.equal(s1.srv_op_state, opStopped, "still DOWN: the origin still fails");
  });

  it("the origin recovers: HAProxy brings it back UP", async () => {
    origins[0]!.status = 200;
    await waitFor("s1", (s) => s.srv_op_state === opRunning && s.srv_admin_state === 0, "UP and READY");
  });

  it("maint and drain set through Vigil's admin API reach HAProxy's admin state", async () => {
    await setAdmin(origins[0]!, "maint");
    await setAdmin(origins[1]!, "drain");
    await waitFor("s1", (s) => (s.srv_admin_state & admFMaint) !== 0, "in MAINT");
    const s2 = await waitFor("s2", (s) => (s.srv_admin_state & admFDrain) !== 0, "in DRAIN");
    assert.equal(s2.srv_op_state, opRunning, "a drained server stays UP for its persistent sessions");
  });

  it("with Vigil unreachable, HAProxy keeps every server as it was (fail static)", async () => {
    const before = await servers();
    await node.stop(); // the whole node goes away, its agent port with it
    await eventually(async () => {
      const rows = await stat();
      return ["s1", "s2", "s3"].every((n) => /L4CON/.test(rows.get(n)?.agent_status ?? ""));
    }, "every agent check failing to connect");
    // A few more agent intervals must not change anything either.
    await new Promise((r) => setTimeout(r, 300));
    const afterClose = await servers();
    for (const name of ["s1", "s2", "s3"]) {
      assert.deepEqual(afterClose.get(name), before.get(name), `${name} unchanged`);
    }
  });

  it("Vigil's counters saw the answers", () => {
    const r = agent.stats.requests;
    assert.ok(r.up > 0 && r.down > 0 && r.maint > 0 && r.drain > 0, JSON.stringify(r));
    assert.equal(agent.stats.badRequests, 0);
  });
});

describe(
  "HAProxy httpchk against a Vigil node's API in its lookup process (node.lookup_api)",
  { timeout: 30_000 },
  () => {
    // The other way to follow Vigil: HAProxy's own HTTP check pointed at Vigil's API for each
    // server (`check addr … port …`), with `option httpchk`'s default request (HTTP/1.0, a new
    // connection each time). The server is up when the target's effective state is "up";
    // anything else (down, unknown, maint, drain) fails the check. One backend per server: the
    // check's path names the target.
    let dir: string;
    let haproxy: Haproxy | undefined;
    let node: VigilNode;
    let origins: TestOrigin[] = [];
    let sock: string;
    const server = async (backend: string): Promise<ServerState | undefined> =>
      parseServersState(await runtimeApi(sock, `show servers state ${backend}`)).get("s");
    const waitFor = (backend: string, up: boolean): Promise<ServerState> =>
      waitForServer(
        sock,
        backend,
        "s",
        (s) => (s.srv_op_state === opRunning) === up,
        up ? "UP" : "DOWN",
        haproxy,
      );
    const lookups = () => (node as unknown as { lookups: LookupThread }).lookups;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "vigil-haproxy-httpchk-"));
      sock = join(dir, "haproxy.sock");
      ({ node, origins } = await startNodeWithOrigins("name: h2, lookup_api: true"));
      const [o1, o2] = origins as [TestOrigin, TestOrigin];
      const api = new URL(node.apiUrl);
      // The body starts {"target":"<key>","state":"<effective state>": that state only, not the
      // observers' own "state" fields after it. Dots stand for the quotes.
      const backend = (name: string, o: TestOrigin): string[] => [
        `backend ${name}`,
        `  option httpchk GET /v1/pools/web/targets/${o.key}`,
        "  http-check expect rstring ^{.target.:.[^,]*,.state.:.up.",
        `  server s ${o.key} check addr ${api.hostname} port ${api.port} inter 100ms fall 1 rise 1`,
      ];
      haproxy = runHaproxy(dir, [
        "global",
        `  stats socket ${sock} level admin`,
        "defaults",
        "  mode http",
        "  timeout connect 500ms",
        "  timeout check 500ms",
        "  timeout client 5s",
        "  timeout server 5s",
        ...backend("b1", o1),
        ...backend("b2", o2),
        "",
      ]);
      await haproxy.ready(sock);
    });

    after(async () => {
      await haproxy?.stop();
      await node?.stop();
      for (const o of origins) await o.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it("HAProxy marks both servers UP from Vigil's answer", async () => {
      await waitFor("b1", true);
      await waitFor("b2", true);
    });

    it("an origin failing Vigil's check goes DOWN in HAProxy, and comes back UP", async () => {
      origins[0]!.status = 503;
      await waitFor("b1", false);
      assert.equal((await server("b2"))?.srv_op_state, opRunning, "the other server is untouched");
      origins[0]!.status = 200;
      await waitFor("b1", true);
    });

    it("maint set through Vigil's admin API takes the server out", async () => {
      const put = await fetch(`${node.apiUrl}/v1/pools/web/targets/${origins[1]!.key}/admin`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ state: "maint", reason: "test" }),
      });
      assert.equal(put.status, 200, await put.text());
      await waitFor("b2", false);
    });

    it("the lookup process answered HAProxy's checks itself, none handed to the node", async () => {
      const http = lookups().http!;
      await eventually(() => http.stats.answered >= 10, "checks answered in the lookup process");
      // The admin PUT above was the only connection the node took (the lookup process's counts
      // arrive every 200 ms: wait for its hand-over to be counted, then no more).
      await eventually(() => http.stats.handedOver >= 1, "the PUT's hand-over counted");
      assert.equal(http.stats.handedOver, 1);
    });
  },
);
