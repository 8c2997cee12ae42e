// The lookup servers (see lookup-thread.ts): the agent-check and DNS servers answering from
// tables the node keeps current. Runs as a worker thread of the node, or as a child process
// of it (`node.lookup_isolation: process`); the two differ only in how messages travel and
// where the counters live. Imports nothing of the node but the servers and their codecs, so
// its heap stays small and its collections short.
import { parentPort, workerData } from "node:worker_threads";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { type AgentServer, startAgentServer } from "./agent-server.ts";
import { type DnsServer, type DnsTarget, dnsStatsOver, startDnsServer } from "./dns-server.ts";
import type {
  AgentTableEntry,
  DnsTableEntry,
  LookupThreadCommand,
  LookupThreadInit,
  LookupThreadReport,
} from "./lookup-thread.ts";

/** How often a child process sends its counters to the node (a thread shares them instead). */
const countersEveryMs = 200;

interface Channel {
  send(m: LookupThreadReport): void;
  onMessage(f: (m: LookupThreadCommand) => void): void;
  /** Sends `last`, if any, then ends: a child process exits once it is written. */
  close(last?: LookupThreadReport): void;
}

/** The node's end: the worker port, or the IPC channel of a child process, whose first
 * message is the init (a thread gets it as workerData). */
async function connect(): Promise<{ channel: Channel; init: LookupThreadInit; child: boolean }> {
  const port = parentPort;
  if (port !== null)
    return {
      channel: {
        send: (m) => port.postMessage(m),
        onMessage: (f) => port.on("message", f),
        close: (last) => {
          if (last !== undefined) port.postMessage(last);
          port.close();
        },
      },
      init: workerData as LookupThreadInit,
      child: false,
    };
  const send = process.send?.bind(process);
  if (send === undefined)
    throw new Error("lookup-thread-worker.ts runs as a worker thread or a forked child");
  // The node stops this process by message; a terminal's Ctrl-C or a SIGTERM to the process
  // group must not cut lookups off while the node is still leaving gracefully.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => {});
  // A node that died (even by SIGKILL) closes the IPC channel: go with it, freeing the ports.
  process.on("disconnect", () => process.exit(0));
  const init = await new Promise<LookupThreadInit>((resolve) =>
    process.once("message", (m: { type: "init"; init: LookupThreadInit }) => resolve(m.init)),
  );
  return {
    channel: {
      send: (m) => send(m),
      onMessage: (f) => process.on("message", f),
      close: (last) =>
        last === undefined ? process.exit(0) : send(last, undefined, undefined, () => process.exit(0)),
    },
    init,
    child: true,
  };
}

const { channel, init, child } = await connect();
// In a child process the counters are its own; they reach the node as copies.
const agentCells = child ? Float64Array.from(init.agentCells) : init.agentCells;
const dnsCells = child ? Float64Array.from(init.dnsCells) : init.dnsCells;

/** pool → target → verdict: two lookups, no key string built per request. */
const agentTable = new Map<string, Map<string, AgentVerdict>>();
/** pool → its healthy targets, as the node computed them (fail_open included). */
const dnsTable = new Map<string, { targets: readonly DnsTarget[] }>();

function applyAgent(entries: readonly AgentTableEntry[]): void {
  for (const [pool, target, verdict] of entries) {
    let targets = agentTable.get(pool);
    if (verdict === undefined) {
      targets?.delete(target);
      if (targets?.size === 0) agentTable.delete(pool);
      continue;
    }
    if (targets === undefined) {
      targets = new Map();
      agentTable.set(pool, targets);
    }
    targets.set(target, verdict);
  }
}

function applyDns(entries: readonly DnsTableEntry[]): void {
  for (const [pool, targets] of entries) {
    if (targets === undefined) dnsTable.delete(pool);
    else dnsTable.set(pool, { targets });
  }
}

const report = (m: LookupThreadReport): void => channel.send(m);

applyAgent(init.agentEntries);
applyDns(init.dnsEntries);
let agent: AgentServer | undefined;
let dns: DnsServer | undefined;
try {
  if (init.agent !== undefined) {
    const a = init.agent;
    agent = await startAgentServer({
      host: a.host,
      port: a.port,
      ...(a.maxConnections === undefined ? {} : { maxConnections: a.maxConnections }),
      ...(a.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: a.idleTimeoutMs }),
      ...(a.reusePort === true ? { reusePort: true } : {}),
      statCells: agentCells,
      lookup: (pool, target) => agentTable.get(pool)?.get(target),
    });
  }
  if (init.dns !== undefined) {
    const d = init.dns;
    dns = await startDnsServer({
      host: d.host,
      port: d.port,
      ...(d.ttlSeconds === undefined ? {} : { ttlSeconds: d.ttlSeconds }),
      ...(d.reusePort === true ? { reusePort: true } : {}),
      stats: dnsStatsOver(dnsCells),
      lookup: (pool) => dnsTable.get(pool),
      onInternalError: (err) =>
        report({ type: "internal_error", message: err instanceof Error ? err.message : String(err) }),
    });
  }
  channel.onMessage((m: LookupThreadCommand) => {
    if (m.type === "agent") applyAgent(m.entries);
    else if (m.type === "dns") applyDns(m.entries);
    else if (m.type === "reset") {
      agentTable.clear();
      dnsTable.clear();
      applyAgent(m.agent);
      applyDns(m.dns);
    } else if (m.type === "close") {
      void Promise.all([agent?.close(), dns?.close()]).then(() =>
        channel.close(child ? { type: "counters", agent: agentCells, dns: dnsCells } : undefined),
      );
    }
  });
  report({ type: "ready", agentPort: agent?.port, dnsPort: dns?.port });
  if (child) {
    // Copies of the counters, whenever they moved.
    let sent = "";
    setInterval(() => {
      const now = `${agentCells.join()}|${dnsCells.join()}`;
      if (now === sent) return;
      sent = now;
      report({ type: "counters", agent: agentCells, dns: dnsCells });
    }, countersEveryMs);
  }
} catch (e) {
  await Promise.all([agent?.close(), dns?.close()]);
  const err = e as Error & { code?: unknown };
  channel.close({
    type: "failed",
    message: err.message,
    code: typeof err.code === "string" ? err.code : undefined,
  });
}
