// The HAProxy agent-check server on its own thread. Lookups must not wait on the node's event
// loop: a history flush holds it for tens of milliseconds once a minute, and the garbage
// collector of a heap holding 10,000 targets pauses it for milliseconds many times a minute,
// while the whole answer takes ~0.1 ms. So the server (agent-server.ts, unchanged) runs in a
// worker thread with a small heap of its own, answering from a table of verdicts that the node
// pushes to it whenever one changes (NodeCore.watchLookups). The thread never asks the node
// anything; a reply is at most one batch behind the node's own view (one event-loop turn plus
// the message's hop, well under HAProxy's `agent-inter`).
//
// Counters live in shared memory (agentStatsView), so /metrics reads them without a message.
// If the thread dies, the node's side starts a new one on the same address with the whole
// table; HAProxy sees refused connections meanwhile, which change nothing on its side.

import { Worker } from "node:worker_threads";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { type AgentServer, type AgentServerStats, agentStatCells, agentStatsView } from "./agent-server.ts";

/** One row of the thread's table: a target's verdict, or undefined when it is gone. */
export type AgentTableEntry = readonly [pool: string, target: string, verdict: AgentVerdict | undefined];

/** Sent to the thread. */
export type AgentThreadCommand = { type: "set"; entries: readonly AgentTableEntry[] } | { type: "close" };

/** Sent by the thread. */
export type AgentThreadReport =
  | { type: "ready"; port: number }
  | { type: "failed"; message: string; code: string | undefined }
  | { type: "closed" };

export interface AgentThreadInit {
  host: string;
  port: number;
  maxConnections: number | undefined;
  idleTimeoutMs: number | undefined;
  cells: SharedArrayBuffer;
  entries: readonly AgentTableEntry[];
}

export interface AgentThreadOptions {
  host: string;
  port: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
  /** The whole table at start (every target's verdict). */
  entries: readonly AgentTableEntry[];
  /** Called when the thread died and a new one was started (or could not be). */
  onRestart?: (error: Error | undefined) => void;
}

export interface AgentThread extends AgentServer {
  /** Changed rows: the thread answers from them once it has read the message. */
  update(entries: readonly AgentTableEntry[]): void;
  /** Threads started after the first because one died. */
  readonly restarts: number;
  /** For tests: stops the thread as if it had crashed. */
  killForTest(): Promise<void>;
}

function sameVerdict(a: AgentVerdict, b: AgentVerdict): boolean {
  return a.state === b.state && a.reason === b.reason && a.health === b.health;
}

const workerUrl = new URL("./agent-thread-worker.ts", import.meta.url);

/** Starts a thread; resolves once it listens, rejects with the listen error (EADDRINUSE…). */
function spawn(init: AgentThreadInit): Promise<{ worker: Worker; port: number }> {
  const worker = new Worker(workerUrl, { workerData: init, name: "vigil-agent" });
  return new Promise((resolve, reject) => {
    const onMessage = (m: AgentThreadReport): void => {
      cleanup();
      if (m.type === "ready") resolve({ worker, port: m.port });
      else if (m.type === "failed") {
        void worker.terminate();
        reject(Object.assign(new Error(m.message), m.code === undefined ? {} : { code: m.code }));
      }
    };
    const onError = (e: Error): void => {
      cleanup();
      void worker.terminate();
      reject(e);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`agent thread exited with code ${code} before it listened`));
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

export async function startAgentThread(opts: AgentThreadOptions): Promise<AgentThread> {
  const cells = new SharedArrayBuffer(agentStatCells * Float64Array.BYTES_PER_ELEMENT);
  const stats: AgentServerStats = agentStatsView(new Float64Array(cells));
  // The node's copy of the table, for a thread started again after a crash.
  const table = new Map<string, AgentTableEntry>();
  for (const e of opts.entries) if (e[2] !== undefined) table.set(`${e[0]}/${e[1]}`, e);
  const first = await spawn({
    host: opts.host,
    port: opts.port,
    maxConnections: opts.maxConnections,
    idleTimeoutMs: opts.idleTimeoutMs,
    cells,
    entries: opts.entries,
  });
  const port = first.port;
  let worker: Worker | undefined = first.worker;
  let closing: Promise<void> | undefined;
  let restarts = 0;

  const watch = (w: Worker): void => {
    w.on("error", () => {}); // the exit that follows restarts it
    w.once("exit", () => {
      if (closing !== undefined || worker !== w) return;
      worker = undefined;
      restarts++;
      // Same address (now known), whole table. One attempt; a node that cannot listen again
      // says so through onRestart and keeps serving everything else.
      spawn({
        host: opts.host,
        port,
        maxConnections: opts.maxConnections,
        idleTimeoutMs: opts.idleTimeoutMs,
        cells,
        entries: [...table.values()],
      }).then(
        (next) => {
          if (closing !== undefined) {
            void next.worker.terminate();
            return;
          }
          worker = next.worker;
          watch(next.worker);
          // Rows that changed while it started went to no thread: send the table again.
          next.worker.postMessage({ type: "set", entries: [...table.values()] } satisfies AgentThreadCommand);
          opts.onRestart?.(undefined);
        },
        (e: unknown) => opts.onRestart?.(e instanceof Error ? e : new Error(String(e))),
      );
    });
  };
  watch(first.worker);

  return {
    host: opts.host,
    port,
    stats,
    get restarts() {
      return restarts;
    },
    update(entries) {
      // Only rows whose answer differs: a down target is reported on every vote that moves.
      const changed: AgentTableEntry[] = [];
      for (const e of entries) {
        const key = `${e[0]}/${e[1]}`;
        const had = table.get(key)?.[2];
        const now = e[2];
        if (now === undefined ? had === undefined : had !== undefined && sameVerdict(had, now)) continue;
        if (now === undefined) table.delete(key);
        else table.set(key, e);
        changed.push(e);
      }
      if (changed.length > 0)
        worker?.postMessage({ type: "set", entries: changed } satisfies AgentThreadCommand);
    },
    async killForTest() {
      await worker?.terminate();
    },
    close() {
      closing ??= (async () => {
        const w = worker;
        worker = undefined;
        if (w === undefined) return;
        const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
        w.postMessage({ type: "close" } satisfies AgentThreadCommand);
        // A thread that does not close its server within a second is stopped outright.
        const timer = setTimeout(() => void w.terminate(), 1_000);
        await exited;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
