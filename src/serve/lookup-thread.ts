// The load balancers' lookup servers — HAProxy agent-check and DNS — on a thread of their own.
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
// Counters live in shared memory (agentStatsView, dnsStatsOver), so /metrics reads them without
// a message. If the thread dies, the node's side starts a new one on the same addresses with the
// whole tables; clients see refused connections or unanswered queries meanwhile, which change
// nothing on HAProxy's side and make resolvers retry.

import { Worker } from "node:worker_threads";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { type AgentServer, type AgentServerStats, agentStatCells, agentStatsView } from "./agent-server.ts";
import { type DnsServer, type DnsStats, type DnsTarget, dnsStatCells, dnsStatsOver } from "./dns-server.ts";

/** One row of the agent table: a target's verdict, or undefined when it is gone. */
export type AgentTableEntry = readonly [pool: string, target: string, verdict: AgentVerdict | undefined];
/** One row of the DNS table: a pool's healthy targets, or undefined when the pool is gone. */
export type DnsTableEntry = readonly [pool: string, targets: readonly DnsTarget[] | undefined];

export interface AgentListen {
  host: string;
  port: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
}

export interface DnsListen {
  host: string;
  port: number;
  ttlSeconds?: number;
}

/** Sent to the thread. */
export type LookupThreadCommand =
  | { type: "agent"; entries: readonly AgentTableEntry[] }
  | { type: "dns"; entries: readonly DnsTableEntry[] }
  /** Both tables replaced whole (after a restart: rows removed meanwhile must go too). */
  | { type: "reset"; agent: readonly AgentTableEntry[]; dns: readonly DnsTableEntry[] }
  | { type: "close" };

/** Sent by the thread. */
export type LookupThreadReport =
  | { type: "ready"; agentPort: number | undefined; dnsPort: number | undefined }
  | { type: "failed"; message: string; code: string | undefined }
  | { type: "internal_error"; message: string };

export interface LookupThreadInit {
  agent: AgentListen | undefined;
  dns: DnsListen | undefined;
  agentCells: SharedArrayBuffer;
  dnsCells: SharedArrayBuffer;
  agentEntries: readonly AgentTableEntry[];
  dnsEntries: readonly DnsTableEntry[];
}

export interface LookupThreadOptions {
  agent?: AgentListen;
  dns?: DnsListen;
  /** The whole tables at start. */
  agentEntries: readonly AgentTableEntry[];
  dnsEntries: readonly DnsTableEntry[];
  /** Called when the thread died and a new one was started (or could not be). */
  onRestart?: (error: Error | undefined) => void;
  /** A bug caught while answering DNS (the query got SERVFAIL). */
  onDnsInternalError?: (message: string) => void;
}

export interface LookupThread {
  /** The agent server as the node sees it (port, shared counters, close closes the thread). */
  readonly agent: AgentServer | undefined;
  /** The DNS server as the node sees it (close closes the thread). */
  readonly dns: DnsServer | undefined;
  /** Changed rows; only those whose answer differs are sent. */
  updateAgent(entries: readonly AgentTableEntry[]): void;
  updateDns(entries: readonly DnsTableEntry[]): void;
  /** Threads started after the first because one died. */
  readonly restarts: number;
  close(): Promise<void>;
  /** For tests: stops the thread as if it had crashed. */
  killForTest(): Promise<void>;
}

function sameVerdict(a: AgentVerdict, b: AgentVerdict): boolean {
  return a.state === b.state && a.reason === b.reason && a.health === b.health;
}

function sameTargets(a: readonly DnsTarget[], b: readonly DnsTarget[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.host !== b[i]!.host || a[i]!.port !== b[i]!.port) return false;
  return true;
}

const workerUrl = new URL("./lookup-thread-worker.ts", import.meta.url);

function failure(message: string, code: string | undefined): Error {
  if (code !== undefined && (Object.values(ErrorCode) as string[]).includes(code))
    return new VigilError(code as ErrorCode, message);
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

/** Starts a thread; resolves once it listens, rejects with the listen error (EADDRINUSE…). */
function spawn(
  init: LookupThreadInit,
  onInternalError: ((message: string) => void) | undefined,
): Promise<{ worker: Worker; agentPort: number | undefined; dnsPort: number | undefined }> {
  const worker = new Worker(workerUrl, { workerData: init, name: "vigil-lookups" });
  worker.on("message", (m: LookupThreadReport) => {
    if (m.type === "internal_error") onInternalError?.(m.message);
  });
  return new Promise((resolve, reject) => {
    const onMessage = (m: LookupThreadReport): void => {
      if (m.type === "internal_error") return;
      cleanup();
      if (m.type === "ready") resolve({ worker, agentPort: m.agentPort, dnsPort: m.dnsPort });
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
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`lookup thread exited with code ${code} before it listened`));
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
  const agentCells = new SharedArrayBuffer(agentStatCells * Float64Array.BYTES_PER_ELEMENT);
  const dnsCells = new SharedArrayBuffer(dnsStatCells * Float64Array.BYTES_PER_ELEMENT);
  const agentStats: AgentServerStats = agentStatsView(new Float64Array(agentCells));
  const dnsStats: DnsStats = dnsStatsOver(new Float64Array(dnsCells));
  // The node's copies of the tables: for diffs, and for a thread started again after a crash.
  const agentTable = new Map<string, AgentTableEntry>();
  for (const e of opts.agentEntries) if (e[2] !== undefined) agentTable.set(`${e[0]}/${e[1]}`, e);
  const dnsTable = new Map<string, DnsTableEntry>();
  for (const e of opts.dnsEntries) if (e[1] !== undefined) dnsTable.set(e[0], e);
  const init = (agent: AgentListen | undefined, dns: DnsListen | undefined): LookupThreadInit => ({
    agent,
    dns,
    agentCells,
    dnsCells,
    agentEntries: [...agentTable.values()],
    dnsEntries: [...dnsTable.values()],
  });
  const first = await spawn(init(opts.agent, opts.dns), opts.onDnsInternalError);
  // Port 0 resolved: a replacement thread binds the same ports.
  const agentAt = opts.agent === undefined ? undefined : { ...opts.agent, port: first.agentPort! };
  const dnsAt = opts.dns === undefined ? undefined : { ...opts.dns, port: first.dnsPort! };
  let worker: Worker | undefined = first.worker;
  let closing: Promise<void> | undefined;
  let restarts = 0;

  const send = (m: LookupThreadCommand): void => worker?.postMessage(m);

  const watch = (w: Worker): void => {
    w.on("error", () => {}); // the exit that follows restarts it
    w.once("exit", () => {
      if (closing !== undefined || worker !== w) return;
      worker = undefined;
      restarts++;
      // Same addresses, whole tables. One attempt; a node that cannot listen again says so
      // through onRestart and keeps serving everything else.
      spawn(init(agentAt, dnsAt), opts.onDnsInternalError).then(
        (next) => {
          if (closing !== undefined) {
            void next.worker.terminate();
            return;
          }
          worker = next.worker;
          watch(next.worker);
          // Rows that changed or went while it started reached no thread: replace its tables.
          send({ type: "reset", agent: [...agentTable.values()], dns: [...dnsTable.values()] });
          opts.onRestart?.(undefined);
        },
        (e: unknown) => opts.onRestart?.(e instanceof Error ? e : new Error(String(e))),
      );
    });
  };
  watch(first.worker);

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const w = worker;
      worker = undefined;
      if (w === undefined) return;
      const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
      w.postMessage({ type: "close" } satisfies LookupThreadCommand);
      // A thread that does not close its servers within a second is stopped outright.
      const timer = setTimeout(() => void w.terminate(), 1_000);
      await exited;
      clearTimeout(timer);
    })();
    return closing;
  };

  return {
    agent:
      agentAt === undefined
        ? undefined
        : { host: agentAt.host, port: agentAt.port, stats: agentStats, close },
    dns: dnsAt === undefined ? undefined : { host: dnsAt.host, port: dnsAt.port, stats: dnsStats, close },
    get restarts() {
      return restarts;
    },
    updateAgent(entries) {
      const changed: AgentTableEntry[] = [];
      for (const e of entries) {
        const key = `${e[0]}/${e[1]}`;
        const had = agentTable.get(key)?.[2];
        const now = e[2];
        if (now === undefined ? had === undefined : had !== undefined && sameVerdict(had, now)) continue;
        if (now === undefined) agentTable.delete(key);
        else agentTable.set(key, e);
        changed.push(e);
      }
      if (changed.length > 0) send({ type: "agent", entries: changed });
    },
    updateDns(entries) {
      const changed: DnsTableEntry[] = [];
      for (const e of entries) {
        const had = dnsTable.get(e[0])?.[1];
        const now = e[1];
        if (now === undefined ? had === undefined : had !== undefined && sameTargets(had, now)) continue;
        if (now === undefined) dnsTable.delete(e[0]);
        else dnsTable.set(e[0], e);
        changed.push(e);
      }
      if (changed.length > 0) send({ type: "dns", entries: changed });
    },
    close,
    async killForTest() {
      await worker?.terminate();
    },
  };
}
