// The lookup thread (see lookup-thread.ts): the agent-check and DNS servers answering from
// tables the node's thread keeps current. Imports nothing of the node but the servers and
// their codecs, so its heap stays small and its collections short.
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

const port = parentPort;
if (port === null) throw new Error("lookup-thread-worker.ts runs as a worker thread");
const init = workerData as LookupThreadInit;

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

const report = (m: LookupThreadReport): void => port.postMessage(m);

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
      statCells: init.agentCells,
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
      stats: dnsStatsOver(init.dnsCells),
      lookup: (pool) => dnsTable.get(pool),
      onInternalError: (err) =>
        report({ type: "internal_error", message: err instanceof Error ? err.message : String(err) }),
    });
  }
  port.on("message", (m: LookupThreadCommand) => {
    if (m.type === "agent") applyAgent(m.entries);
    else if (m.type === "dns") applyDns(m.entries);
    else if (m.type === "reset") {
      agentTable.clear();
      dnsTable.clear();
      applyAgent(m.agent);
      applyDns(m.dns);
    } else if (m.type === "close") {
      void Promise.all([agent?.close(), dns?.close()]).then(() => port.close());
    }
  });
  report({ type: "ready", agentPort: agent?.port, dnsPort: dns?.port });
} catch (e) {
  await Promise.all([agent?.close(), dns?.close()]);
  const err = e as Error & { code?: unknown };
  report({ type: "failed", message: err.message, code: typeof err.code === "string" ? err.code : undefined });
  port.close();
}
