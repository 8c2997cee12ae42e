// The lookup servers (see lookup-thread.ts): the agent-check and DNS servers answering from
// tables the node keeps current. Runs as a worker thread of the node, or as a child process
// of it (`node.lookup_isolation: process`); the two differ only in how messages travel and
// where the counters live. With `node.lookup_api` a child process also takes the API's
// connections: it answers target lookups from the HTTP table on the fast path (fast-path.ts)
// and sends every connection it does not keep, with the bytes it read, to the node. Imports
// nothing of the node but the servers and their codecs, so its heap stays small and its
// collections short.
import type { Socket } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import type { AgentVerdict } from "../core/agent-check/codec.ts";
import { type AgentServer, startAgentServer } from "./agent-server.ts";
import { type DnsServer, type DnsTarget, dnsStatsOver, startDnsServer } from "./dns-server.ts";
import type { LookupHttpServer } from "./lookup-http.ts";
import type {
  AgentTableEntry,
  DnsTableEntry,
  HttpTableEntry,
  LookupThreadCommand,
  LookupThreadInit,
  LookupThreadReport,
} from "./lookup-thread.ts";

/** How often a child process sends its counters to the node (a thread shares them instead). */
const countersEveryMs = 200;

interface Channel {
  send(m: LookupThreadReport): void;
  /** Sends a socket to the node with `m` (a child process only); `done` once it has gone, or
   * with the error that kept it. */
  sendSocket?(m: LookupThreadReport, socket: Socket, done: (err: Error | null) => void): void;
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
      sendSocket: (m, socket, done) => send(m, socket, undefined, done),
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
const httpCells = child ? Float64Array.from(init.httpCells) : init.httpCells;

/** pool → target → verdict: two lookups, no key string built per request. */
const agentTable = new Map<string, Map<string, AgentVerdict>>();
/** pool → its healthy targets, as the node computed them (fail_open included). */
const dnsTable = new Map<string, { targets: readonly DnsTarget[] }>();

/** Applies rows of a pool → target → value table; an undefined value removes the row. */
function applyRows<V>(
  table: Map<string, Map<string, V>>,
  entries: readonly (readonly [pool: string, target: string, value: V | undefined])[],
): void {
  for (const [pool, target, value] of entries) {
    let targets = table.get(pool);
    if (value === undefined) {
      targets?.delete(target);
      if (targets?.size === 0) table.delete(pool);
      continue;
    }
    if (targets === undefined) {
      targets = new Map();
      table.set(pool, targets);
    }
    targets.set(target, value);
  }
}

function applyAgent(entries: readonly AgentTableEntry[]): void {
  applyRows(agentTable, entries);
}

function applyDns(entries: readonly DnsTableEntry[]): void {
  for (const [pool, targets] of entries) {
    if (targets === undefined) dnsTable.delete(pool);
    else dnsTable.set(pool, { targets });
  }
}

/** pool → target → its JSON body, for `GET /v1/pools/{pool}/targets/{target}` (status 200). */
const httpTable = new Map<string, Map<string, string>>();

function applyHttp(entries: readonly HttpTableEntry[]): void {
  applyRows(httpTable, entries);
}

const report = (m: LookupThreadReport): void => channel.send(m);

applyAgent(init.agentEntries);
applyDns(init.dnsEntries);
applyHttp(init.httpEntries);
let agent: AgentServer | undefined;
let dns: DnsServer | undefined;
let http: LookupHttpServer | undefined;
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
  if (init.http !== undefined) {
    if (channel.sendSocket === undefined)
      throw new Error("the API's port needs a lookup process, not a thread");
    const sendSocket = channel.sendSocket;
    // Loaded only here: it brings the token check, and with it prom-client.
    const { startLookupHttp } = await import("./lookup-http.ts");
    http = await startLookupHttp({
      listen: init.http,
      cells: httpCells,
      body: (pool, target) => httpTable.get(pool)?.get(target),
      sendToNode: (socket, rest, done) => sendSocket({ type: "connection", rest }, socket, done),
    });
  }
  channel.onMessage((m: LookupThreadCommand) => {
    if (m.type === "agent") applyAgent(m.entries);
    else if (m.type === "dns") applyDns(m.entries);
    else if (m.type === "http") applyHttp(m.entries);
    else if (m.type === "tokens") http?.setTokens(m.tokens);
    else if (m.type === "reset") {
      agentTable.clear();
      dnsTable.clear();
      httpTable.clear();
      applyAgent(m.agent);
      applyDns(m.dns);
      applyHttp(m.http);
      http?.setTokens(m.tokens);
    } else if (m.type === "ping") report({ type: "pong" });
    else if (m.type === "hangForTest") {
      for (;;) {
        // A stuck event loop: the node's pings go unanswered.
      }
    } else if (m.type === "close") {
      http?.close();
      void Promise.all([agent?.close(), dns?.close()]).then(() =>
        channel.close(
          child ? { type: "counters", agent: agentCells, dns: dnsCells, http: httpCells } : undefined,
        ),
      );
    }
  });
  report({ type: "ready", agentPort: agent?.port, dnsPort: dns?.port, httpPort: http?.port });
  if (child) {
    // Copies of the counters, whenever they moved.
    let sent = "";
    setInterval(() => {
      const now = `${agentCells.join()}|${dnsCells.join()}|${httpCells.join()}`;
      if (now === sent) return;
      sent = now;
      report({ type: "counters", agent: agentCells, dns: dnsCells, http: httpCells });
    }, countersEveryMs);
  }
} catch (e) {
  http?.close();
  await Promise.all([agent?.close(), dns?.close()]);
  const err = e as Error & { code?: unknown };
  channel.close({
    type: "failed",
    message: err.message,
    code: typeof err.code === "string" ? err.code : undefined,
  });
}
