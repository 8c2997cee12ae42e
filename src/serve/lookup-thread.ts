// The load balancers' lookup servers — HAProxy agent-check and DNS — on a thread of their own
// (or, with `node.lookup_isolation: process`, a child process: see processRunner).
// Lookups must not wait on the node's event loop: a node checking thousands of origins a second
// keeps it busy, the garbage collector of a heap holding every target pauses it for milliseconds
// many times a minute, and the history writes a minute of rollups at once (tens of ms), while an
// answer takes ~0.1 ms. So the servers (agent-server.ts and dns-server.ts, unchanged) run in a
// worker thread with a small heap, answering from tables the node pushes whenever an answer may
// have changed (NodeCore.watchLookups): per target its agent verdict, per pool its healthy
// targets. The thread never asks the node anything; an answer is at most one batch behind the
// node's own view (one event-loop turn plus the message's hop, far inside HAProxy's agent-inter
// or a resolver's timeout).
//
// With `http` (node.lookup_api, child processes only) they also listen on the API's port: the
// HTTP fast path (api/fast-path.ts) answers target lookups from a third table, each target's
// rendered JSON body, and every other connection goes to the node with the bytes read from it
// (`onConnection`: a socket sent over the IPC channel), which serves it as if it had accepted it.
//
// Counters live in shared memory (a block per thread, summed for /metrics), so /metrics reads
// them without a message. `threads` > 1 runs several such threads on the same ports with
// SO_REUSEPORT (Linux): the kernel spreads connections and datagrams over them. If the thread dies, the node's side starts a new one on the same addresses with the
// whole tables; clients see refused connections or unanswered queries meanwhile, which change
// nothing on HAProxy's side and make resolvers retry.

import { type ChildProcess, execFile, fork } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { ApiTokenSpec } from "../config/types.ts";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { type AgentServer, type AgentServerStats, agentStatCells, agentStatsSum } from "./agent-server.ts";
import { type DnsServer, type DnsStats, type DnsTarget, dnsStatCells, dnsStatsSum } from "./dns-server.ts";
import { HttpCell, type HttpListen, httpStatCells, type LookupHttpStats } from "./lookup-http.ts";

export type { HttpListen, LookupHttpStats } from "./lookup-http.ts";

/** One row of the agent table: a target's verdict, or undefined when it is gone. */
export type AgentTableEntry = readonly [pool: string, target: string, verdict: AgentVerdict | undefined];
/** One row of the DNS table: a pool's healthy targets, or undefined when the pool is gone. */
export type DnsTableEntry = readonly [pool: string, targets: readonly DnsTarget[] | undefined];
/** One row of the HTTP table: a target's JSON body (`GET /v1/pools/{pool}/targets/{target}`,
 * status 200), or undefined when it is gone (the node answers it, with its 404). */
export type HttpTableEntry = readonly [pool: string, target: string, body: string | undefined];

export interface AgentListen {
  host: string;
  port: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
  /** Set when several threads share the port (SO_REUSEPORT). */
  reusePort?: boolean;
}

export interface DnsListen {
  host: string;
  port: number;
  ttlSeconds?: number;
  reusePort?: boolean;
}

/** Sent to the thread. */
export type LookupThreadCommand =
  | { type: "agent"; entries: readonly AgentTableEntry[] }
  | { type: "dns"; entries: readonly DnsTableEntry[] }
  | { type: "http"; entries: readonly HttpTableEntry[] }
  /** node.api_tokens after a reload (undefined: none, every lookup is answered). */
  | { type: "tokens"; tokens: readonly ApiTokenSpec[] | undefined }
  /** The tables replaced whole (after a restart: rows removed meanwhile must go too). */
  | {
      type: "reset";
      agent: readonly AgentTableEntry[];
      dns: readonly DnsTableEntry[];
      http: readonly HttpTableEntry[];
      tokens: readonly ApiTokenSpec[] | undefined;
    }
  /** Are you there? Any message back says so (liveness: a hung process is replaced). */
  | { type: "ping" }
  /** Tests: the process's event loop spins forever, as a bug could make it. */
  | { type: "hangForTest" }
  | { type: "close" };

/** Sent by the thread. */
export type LookupThreadReport =
  | {
      type: "ready";
      agentPort: number | undefined;
      dnsPort: number | undefined;
      httpPort: number | undefined;
    }
  /** A child process's counters (a thread shares its cells instead). */
  | { type: "counters"; agent: Float64Array; dns: Float64Array; http: Float64Array }
  /** An API connection for the node (sent with the socket), with the bytes already read from
   * it and not answered: the node serves it from here on. */
  | { type: "connection"; rest: Uint8Array }
  | { type: "failed"; message: string; code: string | undefined }
  | { type: "internal_error"; message: string }
  | { type: "pong" };

export interface LookupThreadInit {
  agent: AgentListen | undefined;
  dns: DnsListen | undefined;
  http: HttpListen | undefined;
  /** This thread's block of the shared counters (views onto SharedArrayBuffers); for a child
   * process, the counts so far, which it goes on from. */
  agentCells: Float64Array;
  dnsCells: Float64Array;
  httpCells: Float64Array;
  agentEntries: readonly AgentTableEntry[];
  dnsEntries: readonly DnsTableEntry[];
  httpEntries: readonly HttpTableEntry[];
}

/** Where the lookup servers run: a worker thread of the node, or a child process of it. */
export type LookupIsolation = "thread" | "process";

export interface LookupThreadOptions {
  /** Default "process" (node.lookup_isolation). A child process does not share the node's
   * memory: on a machine where the kernel's memory housekeeping stalls every thread of a large
   * process (see docs/haproxy.md), its lookups do not stall with the node. Its counters reach
   * the node as copies every 200 ms; a thread's live in shared memory. */
  isolation?: LookupIsolation;
  agent?: AgentListen;
  dns?: DnsListen;
  /** The API's port (node.lookup_api; process isolation only: a socket cannot be handed from a
   * thread to the node). Every connection the lookup processes do not keep reaches `onConnection`. */
  http?: HttpListen;
  /** An API connection for the node, with the bytes read from it and not answered (put them
   * back first). */
  onConnection?: (socket: Socket, rest: Buffer) => void;
  /** Threads answering on the same ports (SO_REUSEPORT, Linux), default 1: the kernel spreads
   * connections and datagrams over them, so lookups use more than one core. */
  threads?: number;
  /** The whole tables at start. */
  agentEntries: readonly AgentTableEntry[];
  dnsEntries: readonly DnsTableEntry[];
  httpEntries?: readonly HttpTableEntry[];
  /** Called when the thread died and a new one was started (or could not be). */
  onRestart?: (error: Error | undefined) => void;
  /** A thread or process that has not answered the node's pings for this long is taken for hung
   * (its event loop stuck: it would keep its ports and answer nothing), stopped, and replaced as
   * if it had died. Default 5 s; pinged five times as often. */
  livenessTimeoutMs?: number;
  /** Called when one was taken for hung, before it is stopped. */
  onHung?: (pid: number | undefined, silentMs: number) => void;
  /** A bug caught while answering DNS (the query got SERVFAIL). */
  onDnsInternalError?: (message: string) => void;
  /** node.lookup_rt_priority: each lookup process's main thread runs under SCHED_FIFO at this
   * priority (1-99), set with util-linux's `chrt` once it listens (and again after a restart).
   * Process isolation only. Why: docs/haproxy.md, "Real-time priority". */
  rtPriority?: number;
  /** How each lookup process's priority went: undefined when set, else why not (the process
   * answers at normal priority meanwhile). */
  onRtPriority?: (pid: number, error: string | undefined) => void;
  /** The chrt to run (tests point it at one that is not there); default "chrt" on the PATH. */
  chrtPath?: string;
}

export interface LookupThread {
  /** The agent server as the node sees it (port, shared counters, close closes the thread). */
  readonly agent: AgentServer | undefined;
  /** The DNS server as the node sees it (close closes the thread). */
  readonly dns: DnsServer | undefined;
  /** The API's port in the lookup processes, and their counters summed. */
  readonly http: { host: string; port: number; stats: LookupHttpStats } | undefined;
  /** Changed rows; only those whose answer differs are sent. */
  updateAgent(entries: readonly AgentTableEntry[]): void;
  updateDns(entries: readonly DnsTableEntry[]): void;
  updateHttp(entries: readonly HttpTableEntry[]): void;
  /** node.api_tokens changed (a reload). */
  setTokens(tokens: readonly ApiTokenSpec[] | undefined): void;
  /** Threads started again because one died (hung ones included). */
  readonly restarts: number;
  /** Threads stopped because they stopped answering the node's pings. */
  readonly hangs: number;
  /** Liveness rounds run (each pings every thread, or judges one silent too long). */
  readonly livenessRounds: number;
  /** Threads answering (options.threads). */
  readonly threads: number;
  /** Lookup processes running at options.rtPriority now. */
  readonly realtime: number;
  close(): Promise<void>;
  /** For tests: stops thread `slot` (default 0) as if it had crashed. */
  killForTest(slot?: number): Promise<void>;
  /** For tests: makes thread `slot` (default 0) spin forever, as a bug could. */
  hangForTest(slot?: number): void;
  /** For tests: the child processes' pids (none for threads). */
  pidsForTest(): number[];
}

function sameVerdict(a: AgentVerdict, b: AgentVerdict): boolean {
  return a.state === b.state && a.reason === b.reason && a.health === b.health;
}

/** A per-target row's key (agent and HTTP tables): `pool/target`. */
function rowKey(e: readonly [pool: string, target: string, ...rest: unknown[]]): string {
  return `${e[0]}/${e[1]}`;
}

function sameBody(a: string, b: string): boolean {
  return a === b;
}

/** Where each server of a lookup thread listens (undefined: not served). */
interface Addresses {
  agent: AgentListen | undefined;
  dns: DnsListen | undefined;
  http: HttpListen | undefined;
}

function sameTargets(a: readonly DnsTarget[], b: readonly DnsTarget[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.host !== b[i]!.host || a[i]!.port !== b[i]!.port) return false;
  return true;
}

/**
 * Applies `entries` to `table` (an entry whose value is undefined removes its row) and returns
 * those that changed it: what a thread holding the same table needs to hear.
 */
function keepChanged<E, V>(
  table: Map<string, E>,
  entries: readonly E[],
  keyOf: (e: E) => string,
  answerOf: (e: E) => V | undefined,
  same: (a: V, b: V) => boolean,
): E[] {
  const changed: E[] = [];
  for (const e of entries) {
    const key = keyOf(e);
    const had = table.get(key);
    const was = had === undefined ? undefined : answerOf(had);
    const now = answerOf(e);
    if (now === undefined ? was === undefined : was !== undefined && same(was, now)) continue;
    if (now === undefined) table.delete(key);
    else table.set(key, e);
    changed.push(e);
  }
  return changed;
}

const workerUrl = new URL("./lookup-thread-worker.ts", import.meta.url);

function failure(message: string, code: string | undefined): Error {
  if (code !== undefined && (Object.values(ErrorCode) as string[]).includes(code))
    return new VigilError(code as ErrorCode, message);
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

/** The most chrt may take: it is one system call. */
const chrtTimeoutMs = 5_000;

/**
 * Puts process `pid`'s main thread (the event loop answering lookups) under SCHED_FIFO at
 * `priority`, with util-linux's chrt: Node has no call for it, and a native addon is not
 * allowed here. Its other threads (V8's collector helpers, started before) stay as they are.
 * Resolves undefined when done, else with why not, as chrt or the system said it.
 */
export function setRealtimePriority(
  pid: number,
  priority: number,
  chrtPath = "chrt",
): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      chrtPath,
      ["--fifo", "--pid", String(priority), String(pid)],
      { timeout: chrtTimeoutMs, encoding: "utf8" },
      (err, _stdout, stderr) => {
        if (err === null) return resolve(undefined);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT")
          return resolve(`${chrtPath} not found (util-linux's chrt sets the priority; install util-linux)`);
        const said = stderr.trim().split("\n").at(-1);
        resolve(said !== undefined && said !== "" ? said : err.message);
      },
    );
  });
}

/** A running thread or child process, as the node drives it. */
interface Runner {
  postMessage(m: LookupThreadCommand): void;
  /** `handle`: a socket sent with the message (a child process's "connection"). */
  on(event: "message", f: (m: LookupThreadReport, handle?: unknown) => void): void;
  on(event: "error", f: (e: Error) => void): void;
  on(event: "exit", f: (code: number | null) => void): void;
  off(event: "message", f: (m: LookupThreadReport) => void): void;
  off(event: "error", f: (e: Error) => void): void;
  off(event: "exit", f: (code: number | null) => void): void;
  once(event: "exit", f: (code: number | null) => void): void;
  /** Stops it outright. */
  terminate(): Promise<unknown>;
  /** A child process's pid. */
  readonly pid?: number | undefined;
}

function threadRunner(init: LookupThreadInit): Runner {
  const worker = new Worker(workerUrl, { workerData: init, name: "vigil-lookups" });
  return worker as unknown as Runner;
}

function processRunner(init: LookupThreadInit): Runner {
  // No flags from the node's command line: none is needed (Node 24 strips types by default),
  // and some would break it (--inspect's port is the node's; --input-type or --eval are not
  // for a file).
  const child: ChildProcess = fork(fileURLToPath(workerUrl), [], {
    execArgv: [],
    serialization: "advanced", // typed arrays cross as such
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  child.send({ type: "init", init });
  return {
    pid: child.pid,
    postMessage: (m) => {
      if (child.connected) child.send(m);
    },
    on: (event: string, f: (...a: unknown[]) => void) => child.on(event, f),
    off: (event: string, f: (...a: unknown[]) => void) => child.off(event, f),
    once: (event: string, f: (...a: unknown[]) => void) => child.once(event, f),
    terminate: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  } as Runner;
}

/** Starts a thread or process; resolves once it listens, rejects with the listen error
 * (EADDRINUSE…). `onCounters` gets a child process's counter copies. */
function spawn(
  isolation: LookupIsolation,
  init: LookupThreadInit,
  onInternalError: ((message: string) => void) | undefined,
  onCounters: (agent: Float64Array, dns: Float64Array, http: Float64Array) => void,
  onConnection: ((socket: Socket, rest: Buffer) => void) | undefined,
): Promise<{
  worker: Runner;
  agentPort: number | undefined;
  dnsPort: number | undefined;
  httpPort: number | undefined;
}> {
  const worker = isolation === "process" ? processRunner(init) : threadRunner(init);
  worker.on("message", (m: LookupThreadReport, handle?: unknown) => {
    if (m.type === "internal_error") onInternalError?.(m.message);
    else if (m.type === "counters") onCounters(m.agent, m.dns, m.http);
    else if (m.type === "connection") {
      // Undefined when the client closed while the socket was on its way: nothing to serve.
      const socket = handle as Socket | undefined;
      if (socket === undefined) return;
      if (onConnection === undefined) socket.destroy();
      else onConnection(socket, Buffer.from(m.rest.buffer, m.rest.byteOffset, m.rest.byteLength));
    }
  });
  return new Promise((resolve, reject) => {
    const onMessage = (m: LookupThreadReport): void => {
      // Only how the start went settles it; anything else is the running thread's.
      if (m.type !== "ready" && m.type !== "failed") return;
      cleanup();
      if (m.type === "ready")
        resolve({ worker, agentPort: m.agentPort, dnsPort: m.dnsPort, httpPort: m.httpPort });
      else {
        void worker.terminate();
        reject(failure(m.message, m.code));
      }
    };
    const onError = (e: Error): void => {
      cleanup();
      void worker.terminate();
      reject(e);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`lookup ${isolation} exited with code ${code} before it listened`));
    };
    const cleanup = (): void => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

export async function startLookupThread(opts: LookupThreadOptions): Promise<LookupThread> {
  const threads = opts.threads ?? 1;
  const isolation = opts.isolation ?? "process";
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`threads must be an integer ≥ 1, got ${threads}`);
  if (opts.http !== undefined && isolation !== "process")
    throw new Error("http needs process isolation: a thread cannot hand a socket to the node");
  const shared = threads > 1;
  // A block of counters per thread: each counts in its own, /metrics reads the sums. Shared
  // memory for threads; for child processes, the copies they send.
  const blocks = (n: number): Float64Array[] =>
    Array.from({ length: threads }, () =>
      isolation === "thread"
        ? new Float64Array(new SharedArrayBuffer(n * Float64Array.BYTES_PER_ELEMENT))
        : new Float64Array(n),
    );
  const agentCells = blocks(agentStatCells);
  const dnsCells = blocks(dnsStatCells);
  const httpCells = blocks(httpStatCells);
  const httpStats: LookupHttpStats = {
    get answered() {
      return httpCells.reduce((n, c) => n + c[HttpCell.answered]!, 0);
    },
    get handedOver() {
      return httpCells.reduce((n, c) => n + c[HttpCell.handedOver]!, 0);
    },
    get cutOff() {
      return httpCells.reduce((n, c) => n + c[HttpCell.cutOff]!, 0);
    },
  };
  const agentStats: AgentServerStats = agentStatsSum(agentCells);
  const dnsStats: DnsStats = dnsStatsSum(dnsCells);
  // The node's copies of the tables: for diffs, and for a thread started again after a crash.

  const agentTable = new Map<string, AgentTableEntry>();
  keepChanged(agentTable, opts.agentEntries, rowKey, (e) => e[2], sameVerdict);
  const dnsTable = new Map<string, DnsTableEntry>();
  keepChanged(
    dnsTable,
    opts.dnsEntries,
    (e) => e[0],
    (e) => e[1],
    sameTargets,
  );
  const httpTable = new Map<string, HttpTableEntry>();
  keepChanged(httpTable, opts.httpEntries ?? [], rowKey, (e) => e[2], sameBody);
  let tokens = opts.http?.tokens;
  const init = (slot: number, at: Addresses): LookupThreadInit => ({
    agent: at.agent,
    dns: at.dns,
    http: at.http === undefined ? undefined : { ...at.http, ...(tokens === undefined ? {} : { tokens }) },
    agentCells: agentCells[slot]!,
    dnsCells: dnsCells[slot]!,
    httpCells: httpCells[slot]!,
    agentEntries: [...agentTable.values()],
    dnsEntries: [...dnsTable.values()],
    httpEntries: [...httpTable.values()],
  });
  const asked: Addresses = {
    agent: opts.agent === undefined ? undefined : { ...opts.agent, reusePort: shared },
    dns: opts.dns === undefined ? undefined : { ...opts.dns, reusePort: shared },
    http: opts.http === undefined ? undefined : { ...opts.http, reusePort: shared },
  };
  const workers: (Runner | undefined)[] = new Array(threads).fill(undefined);
  if (opts.rtPriority !== undefined) {
    const p = opts.rtPriority;
    if (!Number.isInteger(p) || p < 1 || p > 99)
      throw new Error(`rtPriority must be an integer from 1 to 99, got ${p}`);
    if (isolation !== "process")
      throw new Error("rtPriority needs process isolation: a thread shares the node's process");
  }
  /** Slots whose process runs at rtPriority. */
  const realtime = new Set<number>();
  const start = async (slot: number, at: Addresses) => {
    realtime.delete(slot);
    const started = await spawn(
      isolation,
      init(slot, at),
      opts.onDnsInternalError,
      (a, d, h) => {
        agentCells[slot]!.set(a);
        dnsCells[slot]!.set(d);
        httpCells[slot]!.set(h);
      },
      opts.onConnection,
    );
    const pid = started.worker.pid;
    if (opts.rtPriority !== undefined && pid !== undefined) {
      const error = await setRealtimePriority(pid, opts.rtPriority, opts.chrtPath);
      if (error === undefined) realtime.add(slot);
      opts.onRtPriority?.(pid, error);
    }
    return started;
  };
  let closing: Promise<void> | undefined;
  let restarts = 0;
  const terminateAll = async (): Promise<void> => {
    await Promise.all(workers.map((w) => w?.terminate()));
  };

  // The first thread binds (port 0 resolved); the others join its ports.
  const first = await start(0, asked);
  workers[0] = first.worker;
  const at: Addresses = {
    agent: asked.agent === undefined ? undefined : { ...asked.agent, port: first.agentPort! },
    dns: asked.dns === undefined ? undefined : { ...asked.dns, port: first.dnsPort! },
    http: asked.http === undefined ? undefined : { ...asked.http, port: first.httpPort! },
  };
  const agentAt = at.agent;
  const dnsAt = at.dns;
  try {
    for (let slot = 1; slot < threads; slot++) workers[slot] = (await start(slot, at)).worker;
  } catch (e) {
    await terminateAll();
    throw e;
  }

  const sendAll = (m: LookupThreadCommand): void => {
    for (const w of workers) w?.postMessage(m);
  };

  // Liveness: any message from a thread counts as a sign of life; the node pings every fifth of
  // the timeout. A node whose own loop was held (its timer late by more than an interval) has
  // not been listening either: that round judges nobody.
  const livenessMs = opts.livenessTimeoutMs ?? 5_000;
  const pingEveryMs = Math.max(10, Math.floor(livenessMs / 5));
  const heardAt: number[] = new Array(threads).fill(performance.now());
  let hangs = 0;
  let livenessRounds = 0;
  let checkedAt = performance.now();
  const liveness = setInterval(() => {
    livenessRounds++;
    const now = performance.now();
    const stalled = now - checkedAt > 2 * pingEveryMs;
    checkedAt = now;
    for (let slot = 0; slot < threads; slot++) {
      const w = workers[slot];
      if (w === undefined) continue;
      const silentMs = now - heardAt[slot]!;
      if (stalled) heardAt[slot] = now;
      else if (silentMs > livenessMs) {
        hangs++;
        heardAt[slot] = now;
        opts.onHung?.(w.pid, Math.round(silentMs));
        void w.terminate(); // its exit starts the replacement (watch)
        continue;
      }
      w.postMessage({ type: "ping" } satisfies LookupThreadCommand);
    }
  }, pingEveryMs).unref();

  const watch = (slot: number, w: Runner): void => {
    heardAt[slot] = performance.now();
    w.on("message", () => {
      heardAt[slot] = performance.now();
    });
    w.on("error", () => {}); // the exit that follows restarts it
    w.once("exit", () => {
      if (closing !== undefined || workers[slot] !== w) return;
      workers[slot] = undefined;
      restarts++;
      // Same addresses, whole tables. One attempt; a node that cannot listen again says so
      // through onRestart and keeps serving everything else (other threads included).
      start(slot, at).then(
        (next) => {
          if (closing !== undefined) {
            void next.worker.terminate();
            return;
          }
          workers[slot] = next.worker;
          watch(slot, next.worker);
          // Rows that changed or went while it started reached no thread: replace its tables.
          next.worker.postMessage({
            type: "reset",
            agent: [...agentTable.values()],
            dns: [...dnsTable.values()],
            http: [...httpTable.values()],
            tokens,
          } satisfies LookupThreadCommand);
          opts.onRestart?.(undefined);
        },
        (e: unknown) => opts.onRestart?.(e instanceof Error ? e : new Error(String(e))),
      );
    });
  };
  for (let slot = 0; slot < threads; slot++) watch(slot, workers[slot]!);

  const close = (): Promise<void> => {
    clearInterval(liveness);
    closing ??= (async () => {
      const running = workers.filter((w): w is Runner => w !== undefined);
      workers.fill(undefined);
      await Promise.all(
        running.map(async (w) => {
          const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
          w.postMessage({ type: "close" } satisfies LookupThreadCommand);
          // A thread that does not close its servers within a second is stopped outright.
          const timer = setTimeout(() => void w.terminate(), 1_000);
          await exited;
          clearTimeout(timer);
        }),
      );
    })();
    return closing;
  };

  return {
    agent:
      agentAt === undefined
        ? undefined
        : { host: agentAt.host, port: agentAt.port, stats: agentStats, close },
    dns: dnsAt === undefined ? undefined : { host: dnsAt.host, port: dnsAt.port, stats: dnsStats, close },
    http: at.http === undefined ? undefined : { host: at.http.host, port: at.http.port, stats: httpStats },
    threads,
    get restarts() {
      return restarts;
    },
    get hangs() {
      return hangs;
    },
    get livenessRounds() {
      return livenessRounds;
    },
    get realtime() {
      return realtime.size;
    },
    updateAgent(entries) {
      const changed = keepChanged(agentTable, entries, rowKey, (e) => e[2], sameVerdict);
      if (changed.length > 0) sendAll({ type: "agent", entries: changed });
    },
    updateDns(entries) {
      const changed = keepChanged(
        dnsTable,
        entries,
        (e) => e[0],
        (e) => e[1],
        sameTargets,
      );
      if (changed.length > 0) sendAll({ type: "dns", entries: changed });
    },
    updateHttp(entries) {
      const changed = keepChanged(httpTable, entries, rowKey, (e) => e[2], sameBody);
      if (changed.length > 0) sendAll({ type: "http", entries: changed });
    },
    setTokens(next) {
      tokens = next;
      sendAll({ type: "tokens", tokens: next });
    },
    close,
    async killForTest(slot = 0) {
      await workers[slot]?.terminate();
    },
    hangForTest(slot = 0) {
      workers[slot]?.postMessage({ type: "hangForTest" });
    },
    pidsForTest: () => workers.flatMap((w) => (w?.pid === undefined ? [] : [w.pid])),
  };
}
