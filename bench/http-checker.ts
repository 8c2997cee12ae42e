// CPU per HTTP check, new connection per check: the prober alone, no node around it. Origins
// run in their own process (bench/origin-server.ts) so only the checker's CPU is counted. Each
// implementation runs in a fresh child process (same warm-up, no JIT or heap left over from
// another) doing N checks at concurrency C against the origins, round robin:
//
// - raw:        the prober as shipped (http1-client.ts on net.connect), keepalive off;
// - node-http:  the path it replaced, reproduced here: node:http's ClientRequest on a socket
//               from net.connect, Connection: close, verdict from the status, socket destroyed;
// - keepalive:  the prober with keepalive on (node:http's agent; connections reused).
//
// The implementations take turns for `rounds` rounds, so a change in the machine's load (other
// work on it) falls on all of them alike; each figure is the median over the rounds. Reports
// user+system CPU µs per check, latency p50/p99 and checks/s; writes
// bench/results/http-checker.json.
//
//   npx node bench/http-checker.ts [--checks=20000 --concurrency=64 --origins=50 --rounds=3]
//                                  [--origin=raw|node-http]
//   [--before=path/to/http.ts] adds "before": that HttpChecker module (path relative to this
//   file), keepalive off, e.g. the previous version: git show HEAD~1:src/checkers/http.ts >
//   src/checkers/http-before.tmp.ts, then --before=../src/checkers/http-before.tmp.ts.
import { spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { type NetConnectOpts, connect as netConnect } from "node:net";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Attempt } from "../src/checkers/attempt.ts";
import { TlsContexts } from "../src/checkers/tls-context.ts";
import type { CheckResult } from "../src/checkers/types.ts";
import { targetAddr } from "../src/checkers/url.ts";
import type { HttpCheckSpec, TargetAddr } from "../src/config/types.ts";
import { arg, argString, percentile, progress, round, writeResults } from "./lib.ts";

type Impl = "raw" | "node-http" | "keepalive" | "before";
const beforePath = process.argv.find((a) => a.startsWith("--before="))?.split("=")[1];
const impls: Impl[] = [
  "raw",
  "node-http",
  "keepalive",
  ...(beforePath === undefined ? [] : ["before" as const]),
];

interface RunResult {
  impl: Impl;
  checks: number;
  concurrency: number;
  failures: number;
  firstFailure: string | undefined;
  seconds: number;
  checksPerSecond: number;
  cpuMicrosPerCheck: number;
  userMicrosPerCheck: number;
  systemMicrosPerCheck: number;
  latencyMsP50: number;
  latencyMsP99: number;
}

const self = fileURLToPath(import.meta.url);

function spec(keepalive: boolean): HttpCheckSpec {
  return {
    type: "http",
    method: "GET",
    path: "/healthz",
    headers: {},
    expect: { status: [{ lo: 200, hi: 399 }] },
    maxBodyBytes: 64 * 1024,
    tlsVerify: true,
    keepalive,
  };
}

/** The pre-http1-client check path: node:http on its own socket, status decides. */
function nodeHttpCheck(target: TargetAddr, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let done = false;
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, latencyMs: performance.now() - t0, reason });
    };
    const timer = setTimeout(() => finish(false, `timeout after ${timeoutMs}ms`), timeoutMs);
    const req = httpRequest({
      host: target.host,
      port: target.port,
      method: "GET",
      path: "/healthz",
      headers: ["Connection", "close", "Host", target.key],
      createConnection: (opts: object) => netConnect(opts as NetConnectOpts),
    });
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      finish(status >= 200 && status <= 399, `status ${status}`);
    });
    req.on("error", (err) => finish(false, err.message));
    req.end();
  });
}

async function runOne(impl: Impl, ports: number[], checks: number, concurrency: number): Promise<RunResult> {
  const path = impl === "before" ? beforePath! : "../src/checkers/http.ts";
  const mod = (await import(path)) as typeof import("../src/checkers/http.ts");
  const ctx = { inflight: new Set<Attempt>(), tls: new TlsContexts() };
  const checker = new mod.HttpChecker(ctx, { maxSocketsPerTarget: 4, maxSocketsTotal: 1024 });
  const targets = ports.map((p) => targetAddr("127.0.0.1", p));
  const s = spec(impl === "keepalive");
  const one = (i: number): Promise<CheckResult> => {
    const target = targets[i % targets.length]!;
    if (impl === "node-http") return nodeHttpCheck(target, 2000);
    return checker.check(s, { spec: s, target, timeoutMs: 2000 });
  };
  const pass = async (n: number, lats: number[] | undefined) => {
    let next = 0;
    let failures = 0;
    let firstFailure: string | undefined;
    const worker = async () => {
      while (next < n) {
        const r = await one(next++);
        if (!r.ok) {
          failures++;
          firstFailure ??= r.reason;
        }
        lats?.push(r.latencyMs);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { failures, firstFailure };
  };
  await pass(Math.min(5000, checks / 4), undefined);
  const lats: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { failures, firstFailure } = await pass(checks, lats);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  checker.close();
  return {
    impl,
    checks,
    concurrency,
    failures,
    firstFailure,
    seconds: round(seconds, 2),
    checksPerSecond: round(checks / seconds, 0),
    cpuMicrosPerCheck: round((cpu.user + cpu.system) / checks, 1),
    userMicrosPerCheck: round(cpu.user / checks, 1),
    systemMicrosPerCheck: round(cpu.system / checks, 1),
    latencyMsP50: round(percentile(lats, 50), 3),
    latencyMsP99: round(percentile(lats, 99), 3),
  };
}

function child(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [self, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout!.on("data", (d) => {
      out += d;
    });
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited with ${code}`))));
  });
}

async function main(): Promise<void> {
  const checks = arg("checks", 20_000);
  const rounds = arg("rounds", 3);
  const concurrency = arg("concurrency", 64);
  const originCount = arg("origins", 50);
  const only = process.argv.find((a) => a.startsWith("--impl="))?.split("=")[1];
  if (only !== undefined) {
    const ports = JSON.parse(process.env.BENCH_PORTS ?? "[]") as number[];
    const r = await runOne(only as Impl, ports, checks, concurrency);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const origin = spawn(
    process.execPath,
    [
      fileURLToPath(new URL("./origin-server.ts", import.meta.url)),
      String(originCount),
      argString("origin", "raw"),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: origin.stdout! }).once("line", resolve),
    );
    const ports = (JSON.parse(line) as { ports: number[] }).ports;
    process.env.BENCH_PORTS = JSON.stringify(ports);
    const load = loadavg().map((x) => round(x, 2));
    const runs: RunResult[] = [];
    const rest = process.argv.slice(2).filter((a) => !a.startsWith("--impl="));
    for (let round = 1; round <= rounds; round++) {
      for (const impl of impls) {
        const r = JSON.parse(await child([...rest, `--impl=${impl}`])) as RunResult;
        progress(
          `round ${round} ${impl}: ${r.cpuMicrosPerCheck} µs CPU/check (user ${r.userMicrosPerCheck}, ` +
            `sys ${r.systemMicrosPerCheck}), ${r.checksPerSecond}/s, p50 ${r.latencyMsP50} ms, ` +
            `p99 ${r.latencyMsP99} ms, ${r.failures} failed`,
        );
        runs.push(r);
      }
    }
    const median = (xs: number[]) => percentile(xs, 50);
    const results = impls.map((impl) => {
      const mine = runs.filter((r) => r.impl === impl);
      const m = (f: (r: RunResult) => number) => median(mine.map(f));
      return {
        impl,
        rounds: mine.length,
        failures: mine.reduce((a, r) => a + r.failures, 0),
        cpuMicrosPerCheck: m((r) => r.cpuMicrosPerCheck),
        userMicrosPerCheck: m((r) => r.userMicrosPerCheck),
        systemMicrosPerCheck: m((r) => r.systemMicrosPerCheck),
        checksPerSecond: m((r) => r.checksPerSecond),
        latencyMsP50: m((r) => r.latencyMsP50),
        latencyMsP99: m((r) => r.latencyMsP99),
      };
    });
    const path = writeResults("http-checker", {
      machine: { cores: (await import("node:os")).availableParallelism(), loadavgBefore: load },
      loadavgAfter: loadavg().map((x) => round(x, 2)),
      notes:
        `HTTP GET, new connection per check unless keepalive, origins (${argString("origin", "raw")} server from bench/origin-server.ts, 3-byte body) in a separate ` +
        "process on loopback; CPU is the checking process only (user+system), measured after a warm-up pass. " +
        "raw = shipped prober (http1-client.ts); node-http = node:http ClientRequest baseline (the path it replaced); " +
        "keepalive = prober with keepalive on (node:http agent); before (when present) = the --before module.",
      checksPerRun: checks,
      concurrency,
      results,
      runs,
    });
    console.log(JSON.stringify(results, null, 2));
    progress(`wrote ${path}`);
  } finally {
    origin.kill("SIGKILL");
  }
}

await main();
