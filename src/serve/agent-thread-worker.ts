// The agent-check thread (see agent-thread.ts): the agent server answering from a table the
// node's thread keeps current. Imports nothing of the node but the server and its codec, so
// its heap stays small and its collections short.
import { parentPort, workerData } from "node:worker_threads";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { startAgentServer } from "./agent-server.ts";
import type {
  AgentTableEntry,
  AgentThreadCommand,
  AgentThreadInit,
  AgentThreadReport,
} from "./agent-thread.ts";

const port = parentPort;
if (port === null) throw new Error("agent-thread-worker.ts runs as a worker thread");
const init = workerData as AgentThreadInit;

/** pool → target → verdict: two lookups, no key string built per request. */
const table = new Map<string, Map<string, AgentVerdict>>();

function apply(entries: readonly AgentTableEntry[]): void {
  for (const [pool, target, verdict] of entries) {
    let targets = table.get(pool);
    if (verdict === undefined) {
      targets?.delete(target);
      if (targets?.size === 0) table.delete(pool);
      continue;
    }
    if (targets === undefined) {
      targets = new Map();
      table.set(pool, targets);
    }
    targets.set(target, verdict);
  }
}

const report = (m: AgentThreadReport): void => port.postMessage(m);

apply(init.entries);
try {
  const server = await startAgentServer({
    host: init.host,
    port: init.port,
    ...(init.maxConnections === undefined ? {} : { maxConnections: init.maxConnections }),
    ...(init.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: init.idleTimeoutMs }),
    statCells: new Float64Array(init.cells),
    lookup: (pool, target) => table.get(pool)?.get(target),
  });
  port.on("message", (m: AgentThreadCommand) => {
    if (m.type === "set") apply(m.entries);
    else if (m.type === "close") {
      void server.close().then(() => {
        report({ type: "closed" });
        port.close();
      });
    }
  });
  report({ type: "ready", port: server.port });
} catch (e) {
  const err = e as NodeJS.ErrnoException;
  report({ type: "failed", message: err.message, code: err.code });
  port.close();
}
