// Lookup latency and throughput of one node (issue 5): HAProxy's agent-check (a connection per
// lookup: connect, send `pool/host:port\n`, read the line, close) and the HTTP API's
// `GET /v1/pools/{pool}/targets/{host:port}` over keep-alive connections.
//
// The node runs in this process with 10,000 targets whose checks answer at once (a stub prober:
// 1 in 20 targets fails) and, once every target has a verdict, a 1 h interval, so checks
// barely run while lookups are measured. Load comes from separate child processes, open loop:
// request i is due at i / rate whether or not earlier ones have been answered. Per offered
// rate: latency p50/p99 from send to answer, how late the generator sent (its own lag), the
// rate achieved, and the node process's CPU. Then closed loop at fixed concurrency for the
// most the node serves. Writes bench/results/lookup.json.
//
//   npx node bench/lookup.ts [--rates=1000,5000,10000,20000 --seconds=5 --http-conns=32]
//                            [--generators=1 --max-seconds=5]
//
// Targets (issue 5): p99 under 1 ms at 5,000 lookups/s on loopback; a maximum rate aiming at
// 50,000/s on a 2-core machine.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Http1ResponseParser, type ResponseSink } from "../src/checkers/http1-client.ts";
import type { CheckResult, Prober } from "../src/checkers/types.ts";
import type { VigilNode } from "../src/runtime/node.ts";
import { arg, percentile, progress, round, writeResults } from "./lib.ts";

const POOLS = 10;
const PER_POOL = 1_000;

function targetKey(i: number): string {
  return `127.1.${(i >> 8) & 255}.${i & 255}:9`;
}
function poolOf(i: number): string {
  return `p${i % POOLS}`;
}

type Mode = "agent" | "http";

interface GenResult {
  mode: Mode;
  offeredPerSecond: number;
  seconds: number;
  sent: number;
  answered: number;
  errors: number;
  wrong: number;
  achievedPerSecond: number;
  latencyMsP50: number;
  latencyMsP99: number;
  latencyMsMax: number;
  /** How late the generator sent, against the open-loop schedule: its own limit, not the node's. */
  sendLagMsP99: number;
  generatorCpuPercent: number;
}

// ── the load generator (a child process) ────────────────────────────────────

function flag(name: string): string | undefined {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
}

/** One outstanding lookup: where in the schedule it belongs and when it went out. */
interface Pending {
  index: number;
  sentMs: number;
}

class Generator {
  readonly mode: Mode;
  readonly port: number;
  readonly lats: number[] = [];
  readonly lags: number[] = [];
  sent = 0;
  answered = 0;
  errors = 0;
  wrong = 0;
  private readonly requests: Buffer[] = [];
  private readonly expected: Buffer[] = [];
  private readonly idle: HttpConn[] = [];
  private readonly backlog: number[] = [];
  private inflight = 0;
  private readonly maxInflight: number;

  constructor(mode: Mode, port: number, conns: number, targets: number) {
    this.mode = mode;
    this.port = port;
    this.maxInflight = mode === "agent" ? conns * 16 : conns;
    for (let i = 0; i < targets; i++) {
      const key = targetKey(i);
      const pool = poolOf(i);
      this.requests.push(
        Buffer.from(
          mode === "agent"
            ? `${pool}/${key}\n`
            : `GET /v1/pools/${pool}/targets/${key} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
          "latin1",
        ),
      );
      this.expected.push(Buffer.from(mode === "agent" ? "ready" : `"target":"${key}"`, "latin1"));
    }
  }

  async open(conns: number): Promise<void> {
    if (this.mode !== "http") return;
    const all = await Promise.all(Array.from({ length: conns }, () => HttpConn.open(this)));
    this.idle.push(...all);
  }

  close(): void {
    for (const c of this.idle) c.socket.destroy();
  }

  /** Sends lookup `index` now, or queues it behind the connections in use. */
  issue(index: number): void {
    if (this.mode === "agent") {
      if (this.inflight >= this.maxInflight) this.backlog.push(index);
      else this.agent(index, performance.now());
      return;
    }
    const c = this.idle.pop();
    if (c === undefined) this.backlog.push(index);
    else c.send(index, performance.now());
  }

  private agent(index: number, sentMs: number): void {
    this.inflight++;
    this.sent++;
    const which = index % this.requests.length;
    const s = connect(this.port, "127.0.0.1");
    s.setNoDelay(true);
    let got: Buffer | undefined;
    let done = false;
    const finish = (ok: boolean, reply: Buffer | undefined): void => {
      if (done) return;
      done = true;
      this.inflight--;
      if (!ok) this.errors++;
      else {
        this.answered++;
        this.lats.push(performance.now() - sentMs);
        // Every 20th target fails its checks ("down ready #…"); all others are "up ready".
        if (reply === undefined || reply.indexOf(this.expected[which]!) < 0) this.wrong++;
      }
      s.destroy();
      this.drain();
    };
    s.on("data", (d: Buffer) => {
      got = got === undefined ? d : Buffer.concat([got, d]);
      if (got.indexOf(0x0a) >= 0) finish(true, got);
    });
    s.on("end", () => finish(got !== undefined, got));
    s.on("error", () => finish(false, undefined));
    s.write(this.requests[which]!);
  }

  /** A connection became free (or an agent lookup ended): send what waits. */
  drain(conn?: HttpConn): void {
    const next = this.backlog.shift();
    if (next === undefined) {
      if (conn !== undefined) this.idle.push(conn);
      return;
    }
    if (conn !== undefined) conn.send(next, performance.now());
    else this.agent(next, performance.now());
  }

  request(index: number): Buffer {
    return this.requests[index % this.requests.length]!;
  }

  expect(index: number): Buffer {
    return this.expected[index % this.expected.length]!;
  }
}

/** One keep-alive connection, one request at a time, the reply read by the checker's parser. */
class HttpConn implements ResponseSink {
  readonly socket: Socket;
  private readonly gen: Generator;
  private parser = new Http1ResponseParser({ headRequest: false });
  private current: Pending | undefined;
  private status = 0;
  private body: Buffer[] = [];

  private constructor(gen: Generator, socket: Socket) {
    this.gen = gen;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => {
      const err = this.parser.feed(d, this);
      if (err !== undefined) this.fail();
    });
    socket.on("error", () => this.fail());
    socket.on("close", () => this.fail());
  }

  static open(gen: Generator): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = connect(gen.port, "127.0.0.1", () => resolve(new HttpConn(gen, s)));
      s.once("error", reject);
    });
  }

  send(index: number, sentMs: number): void {
    this.current = { index, sentMs };
    this.parser = new Http1ResponseParser({ headRequest: false });
    this.body = [];
    this.gen.sent++;
    this.socket.write(this.gen.request(index));
  }

  onHead(status: number): boolean {
    this.status = status;
    return true;
  }
  onBody(bytes: Buffer): boolean {
    this.body.push(bytes);
    return true;
  }
  onEnd(): void {
    const p = this.current!;
    this.current = undefined;
    const g = this.gen;
    g.answered++;
    g.lats.push(performance.now() - p.sentMs);
    const body = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body);
    if (this.status !== 200 || body.indexOf(g.expect(p.index)) < 0) g.wrong++;
    g.drain(this);
  }

  private fail(): void {
    if (this.current === undefined) return;
    this.current = undefined;
    this.gen.errors++;
  }
}

async function runGenerator(): Promise<void> {
  const mode = flag("gen") as Mode;
  const port = Number(flag("port"));
  const rate = Number(flag("rate"));
  const seconds = Number(flag("seconds"));
  const conns = Number(flag("conns"));
  const offset = Number(flag("offset") ?? "0");
  const closedLoop = rate === 0;
  const gen = new Generator(mode, port, conns, POOLS * PER_POOL);
  await gen.open(conns);
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const endMs = t0 + seconds * 1000;
  let issued = 0;
  if (closedLoop) {
    // Closed loop: every connection (or `conns` agent lookups) always busy.
    for (let i = 0; i < conns; i++) gen.issue(offset + issued++);
    const refill = (): void => {
      if (performance.now() >= endMs) return;
      while (gen.sent - gen.answered - gen.errors < conns) gen.issue(offset + issued++);
      setImmediate(refill);
    };
    setImmediate(refill);
  } else {
    const intervalMs = 1000 / rate;
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(
        Math.floor((Math.min(now, endMs) - t0) / intervalMs) + 1,
        Math.round(seconds * rate),
      );
      for (; issued < due; issued++) {
        gen.lags.push(now - (t0 + issued * intervalMs));
        gen.issue(offset + issued);
      }
      if (now < endMs) setTimeout(tick, 1);
    };
    tick();
  }
  await new Promise((r) => setTimeout(r, seconds * 1000));
  // Answers still in flight at the end get a short grace; later ones count as not achieved.
  const graceEnd = performance.now() + 200;
  while (gen.answered + gen.errors < gen.sent && performance.now() < graceEnd)
    await new Promise((r) => setTimeout(r, 5));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  gen.close();
  const result: GenResult = {
    mode,
    offeredPerSecond: rate,
    seconds: round(elapsedS, 2),
    sent: gen.sent,
    answered: gen.answered,
    errors: gen.errors,
    wrong: gen.wrong,
    achievedPerSecond: round(gen.answered / seconds, 0),
    latencyMsP50: round(percentile(gen.lats, 50), 3),
    latencyMsP99: round(percentile(gen.lats, 99), 3),
    latencyMsMax: round(percentile(gen.lats, 100), 3),
    sendLagMsP99: closedLoop ? 0 : round(percentile(gen.lags, 99), 3),
    generatorCpuPercent: round(((cpu.user + cpu.system) / 1e6 / elapsedS) * 100, 1),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

// ── the node and the orchestration (this process) ───────────────────────────

/** Checks answer at once: every 20th target fails with 503, the rest are up. */
const stubProber: Prober = {
  check(req): Promise<CheckResult> {
    const last = Number(req.target.host.split(".")[3]);
    const ok = last % 20 !== 0;
    return Promise.resolve({ ok, latencyMs: 0.4, reason: ok ? "status 200" : "status 503" });
  },
  close: () => Promise.resolve(),
};

function config(): string {
  const pools: string[] = [];
  for (let p = 0; p < POOLS; p++) {
    const keys: string[] = [];
    for (let i = p; i < POOLS * PER_POOL; i += POOLS) keys.push(targetKey(i));
    pools.push(`  p${p}:\n    check: { type: http, path: /healthz }\n    targets: [${keys.join(", ")}]`);
  }
  return `node: { name: bench, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${mkdtempSync(join(tmpdir(), "vigil-bench-"))}", agent: "127.0.0.1:0", max_concurrent_checks: 2048 }
defaults: { interval: 2s, timeout: 1s, rise: 1, fall: 1, jitter: 0.1 }
pools:
${pools.join("\n")}
`;
}

async function startNode(): Promise<{ node: VigilNode; apiPort: number; agentPort: number }> {
  // Imported here, not at the top: the generator processes need none of the node.
  const { parseConfigText } = await import("../src/config/load.ts");
  const { systemClock } = await import("../src/runtime/clock.ts");
  const { SeededRandom } = await import("../src/core/random.ts");
  const { silentLogger } = await import("../src/runtime/log.ts");
  const { VigilNode } = await import("../src/runtime/node.ts");
  const cfg = parseConfigText(config(), "<bench>");
  const node = new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(5),
    prober: stubProber,
    logger: silentLogger,
  });
  await node.start();
  // Every target checked once or twice (first checks spread over one 2 s interval)...
  const deadline = performance.now() + 15_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const counts = (node.listPools() as { counts: Record<string, number> }[]).reduce(
      (acc, p) => {
        for (const [k, v] of Object.entries(p.counts)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      },
      {} as Record<string, number>,
    );
    if ((counts.unknown ?? 0) === 0) {
      progress(`all targets judged: ${JSON.stringify(counts)}`);
      break;
    }
    if (performance.now() > deadline) throw new Error(`targets still unknown: ${JSON.stringify(counts)}`);
  }
  // ...then a 1 h interval, so checks barely run while lookups are measured.
  for (const name of node.core.poolNames()) {
    const raw = node.config.rawPools.get(name) as Record<string, unknown>;
    node.putPool(name, { ...raw, interval: "1h" });
  }
  const apiPort = Number(new URL(node.apiUrl).port);
  return { node, apiPort, agentPort: node.agentPort! };
}

interface StepResult extends GenResult {
  generators: number;
  nodeCpuPercent: number;
  nodeCpuMicrosPerLookup: number;
  /** Answered ≥ 98% of the offered rate with p99 under 10 ms and the generators on time. */
  sustained: boolean;
}

async function step(
  mode: Mode,
  port: number,
  rate: number,
  seconds: number,
  conns: number,
  generators: number,
): Promise<StepResult> {
  const kids: { child: ChildProcess; out: Promise<string> }[] = [];
  for (let g = 0; g < generators; g++) {
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(import.meta.url),
        `--gen=${mode}`,
        `--port=${port}`,
        `--rate=${rate / generators}`,
        `--seconds=${seconds}`,
        `--conns=${conns}`,
        `--offset=${g * 7919}`,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: child.stdout! });
    const it = lines[Symbol.asyncIterator]();
    const ready = await it.next();
    if (ready.value !== "ready") throw new Error(`generator said ${String(ready.value)}`);
    kids.push({ child, out: it.next().then((r) => String(r.value)) });
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const k of kids) k.child.stdin!.write("go\n");
  const results = (await Promise.all(kids.map((k) => k.out))).map((l) => JSON.parse(l) as GenResult);
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sum = (f: (r: GenResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const max = (f: (r: GenResult) => number) => Math.max(...results.map(f));
  const answered = sum((r) => r.answered);
  const merged: GenResult = {
    mode,
    offeredPerSecond: rate,
    seconds: round(elapsedS, 2),
    sent: sum((r) => r.sent),
    answered,
    errors: sum((r) => r.errors),
    wrong: sum((r) => r.wrong),
    achievedPerSecond: round(answered / seconds, 0),
    // Per-generator percentiles; with more than one generator the worst is reported.
    latencyMsP50: max((r) => r.latencyMsP50),
    latencyMsP99: max((r) => r.latencyMsP99),
    latencyMsMax: max((r) => r.latencyMsMax),
    sendLagMsP99: max((r) => r.sendLagMsP99),
    generatorCpuPercent: sum((r) => r.generatorCpuPercent),
  };
  const cpuUs = cpu.user + cpu.system;
  return {
    ...merged,
    generators,
    nodeCpuPercent: round((cpuUs / 1e6 / elapsedS) * 100, 1),
    nodeCpuMicrosPerLookup: round(cpuUs / Math.max(1, answered), 1),
    sustained:
      rate > 0 &&
      answered >= 0.98 * rate * seconds &&
      merged.errors === 0 &&
      merged.latencyMsP99 < 10 &&
      merged.sendLagMsP99 < 10,
  };
}

/**
 * What the node's own lookup functions cost, in process, without sockets: the agent-check
 * lookup, and the HTTP route's backend call plus its JSON encoding.
 */
function inProcess(node: VigilNode): {
  agentLookupMicros: number;
  httpTargetMicros: number;
  httpBodyBytes: number;
} {
  const n = 50_000;
  const targets = POOLS * PER_POOL;
  const time = (f: (i: number) => void): number => {
    for (let i = 0; i < 5_000; i++) f(i % targets);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) f(i % targets);
    return round(((performance.now() - t0) * 1000) / n, 2);
  };
  let bytes = 0;
  const agentLookupMicros = time((i) => {
    if (node.lookupTarget(poolOf(i), targetKey(i)) === undefined) throw new Error("lookup missed");
  });
  const httpTargetMicros = time((i) => {
    bytes = JSON.stringify(node.getTarget(poolOf(i), targetKey(i))).length;
  });
  return { agentLookupMicros, httpTargetMicros, httpBodyBytes: bytes };
}

function show(r: StepResult): string {
  const offered = r.offeredPerSecond === 0 ? "closed loop" : `${r.offeredPerSecond}/s offered`;
  return (
    `${r.mode} ${offered}: ${r.achievedPerSecond}/s, p50 ${r.latencyMsP50} ms, p99 ${r.latencyMsP99} ms, ` +
    `send lag p99 ${r.sendLagMsP99} ms, node CPU ${r.nodeCpuPercent}% (${r.nodeCpuMicrosPerLookup} µs/lookup), ` +
    `generator CPU ${r.generatorCpuPercent}%, errors ${r.errors}, wrong ${r.wrong}${r.sustained ? "" : " — not sustained"}`
  );
}

async function main(): Promise<void> {
  const rates = (flag("rates") ?? "1000,5000,10000,20000").split(",").map(Number);
  const seconds = arg("seconds", 5);
  const maxSeconds = arg("max-seconds", 5);
  const httpConns = arg("http-conns", 32);
  const generators = arg("generators", 1);
  const modes = (flag("modes") ?? "agent,http").split(",") as Mode[];
  const loadBefore = loadavg().map((x) => round(x, 2));
  const { node, apiPort, agentPort } = await startNode();
  const cost = inProcess(node);
  progress(
    `in process: agent lookup ${cost.agentLookupMicros} µs, target view + JSON ${cost.httpTargetMicros} µs`,
  );
  const out: Record<Mode, { fixed: StepResult[]; beyond: StepResult[]; closedLoop: StepResult[] }> = {
    agent: { fixed: [], beyond: [], closedLoop: [] },
    http: { fixed: [], beyond: [], closedLoop: [] },
  };
  try {
    for (const mode of modes) {
      const port = mode === "agent" ? agentPort : apiPort;
      // Warm-up: JIT, connection pools, the node's first lookups.
      await step(mode, port, 2000, 2, httpConns, 1);
      for (const rate of rates) {
        const r = await step(mode, port, rate, seconds, httpConns, generators);
        progress(show(r));
        out[mode].fixed.push(r);
      }
      // Past the fixed rates: step up until the node (or the generator) no longer keeps up.
      let rate = rates[rates.length - 1]!;
      for (let i = 0; i < 8 && out[mode].fixed.concat(out[mode].beyond).at(-1)!.sustained; i++) {
        rate += 10_000;
        const r = await step(mode, port, rate, maxSeconds, httpConns, generators);
        progress(show(r));
        out[mode].beyond.push(r);
      }
      for (const conc of mode === "agent" ? [16, 64] : [httpConns, 4 * httpConns]) {
        const r = await step(mode, port, 0, maxSeconds, conc, generators);
        progress(`${show(r)} (concurrency ${conc})`);
        out[mode].closedLoop.push({ ...r, offeredPerSecond: 0 });
      }
    }
  } finally {
    await node.stop();
  }
  const maxSustained = (m: Mode) =>
    Math.max(
      0,
      ...[...out[m].fixed, ...out[m].beyond].filter((r) => r.sustained).map((r) => r.offeredPerSecond),
    );
  const maxClosed = (m: Mode) => Math.max(0, ...out[m].closedLoop.map((r) => r.achievedPerSecond));
  const summary = {
    agent: { maxSustainedPerSecond: maxSustained("agent"), maxClosedLoopPerSecond: maxClosed("agent") },
    http: { maxSustainedPerSecond: maxSustained("http"), maxClosedLoopPerSecond: maxClosed("http") },
  };
  const path = writeResults("lookup", {
    machine: {
      cores: availableParallelism(),
      loadavgBefore: loadBefore,
      loadavgAfter: loadavg().map((x) => round(x, 2)),
    },
    notes:
      `One node, ${POOLS * PER_POOL} targets (stub prober, 1 in 20 down, 1 h interval during lookups); load generators ` +
      "in separate processes on loopback, open loop, latency from send to the full answer. agent: a connection per " +
      `lookup; http: GET /v1/pools/{pool}/targets/{key} on ${httpConns} keep-alive connections. sustained = ≥98% of ` +
      "the offered rate answered, no errors, p99 < 10 ms and the generator on schedule. CPU is the node's process.",
    summary,
    inProcess: cost,
    ...out,
  });
  console.log(JSON.stringify(summary, null, 2));
  progress(`wrote ${path}`);
}

if (flag("gen") !== undefined) await runGenerator();
else await main();
