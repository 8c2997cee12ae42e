// The HAProxy agent-check server: the TCP shell around src/core/agent-check/codec.ts. HAProxy
// connects every `agent-inter`, sends its `agent-send` line, reads one line and expects the
// connection to close. One connection, one answer; nothing is kept between connections. The
// sockets come from short-tcp.ts (libuv's handles directly where Node allows, node:net
// otherwise); this file decides what each connection gets and counts how it ended.
//
// Everything that is not a clear answer about a known target is an empty line, which HAProxy
// reads as "No status change": an unknown target, a bad line, an `unknown` verdict, a lookup that
// failed. Silence would also change nothing (HAProxy ignores agent timeouts and empty responses),
// but an explicit empty line ends HAProxy's check at once instead of at its timeout.

import {
  type AgentDecodeStep,
  AgentRequestDecoder,
  type AgentRequestErrorKind,
  type AgentVerdict,
  formatAgentReply,
  maxAgentRequestBytes,
  noChangeReply,
  parseAgentRequestBytes,
} from "../core/agent-check/codec.ts";
import { assert } from "../core/assert.ts";
import { ConnList, type Linked } from "./conn-list.ts";
import { listenShortTcp, type ShortConn, type ShortConnHooks, type ShortTcpTransport } from "./short-tcp.ts";

const LF = 0x0a;

/**
 * The decision for a connection's first chunk when it holds the whole request line (HAProxy's
 * single write), parsed where it lies: the same decision AgentRequestDecoder would reach, without
 * copying the line into a decoder's buffer. Undefined when a decoder must gather more bytes (or
 * judge a line too long).
 */
export function firstChunkStep(chunk: Uint8Array): AgentDecodeStep | undefined {
  const lf = chunk.indexOf(LF);
  if (lf < 0 || lf >= maxAgentRequestBytes) return undefined;
  return { type: "done", result: parseAgentRequestBytes(chunk.subarray(0, lf)) };
}

/** Connections served at once. HAProxy opens one per server per `agent-inter`, each lives a few
 * milliseconds; 1024 covers thousands of servers at 2 s. More are closed at once and counted. */
export const agentMaxConnectionsDefault = 1024;

/** Connections the kernel may hold accepted-but-not-yet-taken while the event loop is busy (a
 * GC pause, a burst of HAProxy checks falling due together). Past it, new connections' SYNs are
 * dropped and HAProxy's check waits a 1 s retransmit: at 5,000 lookups/s Node's default of 511
 * covers a 100 ms stall, this one most of a second. The kernel caps it at net.core.somaxconn. */
export const agentListenBacklog = 4096;

/** How long a connection may take to deliver its request line, from accept. HAProxy sends its
 * line right after connecting; a client that has not within 2 s is stuck or hostile. */
export const agentIdleTimeoutMsDefault = 2_000;

/** The node's view of one target; undefined when the node knows no such pool or target. */
export type AgentLookup = (pool: string, target: string) => AgentVerdict | undefined;

export interface AgentServerOptions {
  host: string;
  port: number;
  lookup: AgentLookup;
  maxConnections?: number;
  /** Deadline for the whole request line, counted from accept, so a client trickling one byte
   * at a time is cut off as surely as a silent one. */
  idleTimeoutMs?: number;
  /** Where to count (agentStatCells cells, shared memory allowed); a fresh array if absent. */
  statCells?: Float64Array;
  /** SO_REUSEPORT: several servers (lookup threads) listen on one port, the kernel spreads
   * connections over them. Linux. */
  reusePort?: boolean;
  /** How to reach the sockets (short-tcp.ts): libuv's handles when Node has them (default), or
   * node:net. */
  transport?: ShortTcpTransport;
}

/** How one connection ended: its verdict's state when answered, or why it got no answer. */
export type AgentRequestOutcome =
  | "up"
  | "down"
  | "unknown"
  | "maint"
  | "drain"
  | "unknown_target"
  | "bad_request"
  | "idle_timeout"
  | "rejected"
  | "error";

export const agentRequestOutcomes: readonly AgentRequestOutcome[] = [
  "up",
  "down",
  "unknown",
  "maint",
  "drain",
  "unknown_target",
  "bad_request",
  "idle_timeout",
  "rejected",
  "error",
];

/**
 * Counters for `vigil_agent_requests_total{result}`: `requests` by outcome (every accepted or
 * rejected connection ends in exactly one), the named totals derived from it, and the gauge of
 * open connections. Read live; never reset.
 */
export interface AgentServerStats {
  readonly requests: Readonly<Record<AgentRequestOutcome, number>>;
  /** Requests answered with a verdict (up, down, unknown, maint, drain). */
  readonly answered: number;
  readonly unknownTargets: number;
  readonly badRequests: number;
  /** Bad requests by what was wrong with them. */
  readonly badRequestKinds: Readonly<Record<AgentRequestErrorKind, number>>;
  readonly idleTimeouts: number;
  /** Connections closed on accept because `maxConnections` were already open. */
  readonly rejectedConnections: number;
  /** Socket errors, and lookups that threw. */
  readonly errors: number;
  readonly activeConnections: number;
}

export interface AgentServer {
  readonly port: number;
  readonly host: string;
  readonly stats: AgentServerStats;
  /** Which way to the sockets the server took (short-tcp.ts). */
  readonly transport?: ShortTcpTransport;
  close(): Promise<void>;
}

const badRequestKindList: readonly AgentRequestErrorKind[] = [
  "line_too_long",
  "empty",
  "bad_bytes",
  "bad_format",
  "bad_pool",
  "bad_target",
  "incomplete",
];

/** Counter cells: one per outcome, one per bad-request kind, then the open connections. */
export const agentStatCells = agentRequestOutcomes.length + badRequestKindList.length + 1;
const outcomeCell = Object.fromEntries(agentRequestOutcomes.map((o, i) => [o, i])) as Record<
  AgentRequestOutcome,
  number
>;
const kindCell = Object.fromEntries(
  badRequestKindList.map((k, i) => [k, agentRequestOutcomes.length + i]),
) as Record<AgentRequestErrorKind, number>;
const activeCell = agentStatCells - 1;

/**
 * The counters of one or more servers, each counting in its own block of agentStatCells cells,
 * summed. The cells may live in shared memory: lookup threads (lookup-thread.ts) count, the
 * node's thread reads for /metrics. One writer per block; a reader may see a count a moment
 * old, never a torn one (aligned 8-byte stores).
 */
export function agentStatsSum(blocks: readonly Float64Array[]): AgentServerStats {
  for (const b of blocks) assert(b.length === agentStatCells, `agent stats need ${agentStatCells} cells`);
  return statsFrom((i) => {
    let n = 0;
    for (const b of blocks) n += b[i]!;
    return n;
  });
}

function statsFrom(cell: (i: number) => number): AgentServerStats {
  const requests = {} as Record<AgentRequestOutcome, number>;
  for (const o of agentRequestOutcomes)
    Object.defineProperty(requests, o, { enumerable: true, get: () => cell(outcomeCell[o]) });
  const badRequestKinds = {} as Record<AgentRequestErrorKind, number>;
  for (const k of badRequestKindList)
    Object.defineProperty(badRequestKinds, k, { enumerable: true, get: () => cell(kindCell[k]) });
  const at = (o: AgentRequestOutcome): number => cell(outcomeCell[o]);
  return {
    requests,
    badRequestKinds,
    get answered() {
      return at("up") + at("down") + at("unknown") + at("maint") + at("drain");
    },
    get unknownTargets() {
      return at("unknown_target");
    },
    get badRequests() {
      return at("bad_request");
    },
    get idleTimeouts() {
      return at("idle_timeout");
    },
    get rejectedConnections() {
      return at("rejected");
    },
    get errors() {
      return at("error");
    },
    get activeConnections() {
      return cell(activeCell);
    },
  };
}

const verdictStates = new Set<AgentRequestOutcome>(["up", "down", "unknown", "maint", "drain"]);

/** One accepted connection: when it must have delivered its line, and how it ended. */
interface AgentConn extends Linked<AgentConn> {
  readonly conn: ShortConn;
  readonly deadlineMs: number;
  outcome: AgentRequestOutcome | undefined;
  /** Created only when the line does not arrive whole in the first read; HAProxy's does. */
  decoder: AgentRequestDecoder | undefined;
}

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const maxConnections = opts.maxConnections ?? agentMaxConnectionsDefault;
  const idleTimeoutMs = opts.idleTimeoutMs ?? agentIdleTimeoutMsDefault;
  assert(Number.isInteger(maxConnections) && maxConnections >= 1, "maxConnections must be an integer ≥ 1");
  assert(Number.isFinite(idleTimeoutMs) && idleTimeoutMs > 0, "idleTimeoutMs must be positive");
  const cells = opts.statCells ?? new Float64Array(agentStatCells);
  assert(cells.length === agentStatCells, `statCells must have ${agentStatCells} cells`);
  const stats = agentStatsSum([cells]);
  // Counts go on from what the cells hold (a restarted lookup thread or process keeps its
  // predecessor's); open connections are this server's own.
  cells[activeCell] = 0;
  // In accept order, which is deadline order: every connection gets the same bound.
  const open = new ConnList<AgentConn>();

  // Exactly one outcome per connection; the first one to happen wins.
  const settle = (c: AgentConn, o: AgentRequestOutcome): void => {
    if (c.outcome !== undefined) return;
    c.outcome = o;
    cells[outcomeCell[o]]!++;
  };

  // One timer for every connection's idle bound, not one per connection: at thousands of
  // lookups a second a timer each costs more than the lookup. It fires at the oldest deadline
  // (connections live milliseconds, so usually long gone by then) and re-arms for the next.
  let sweepTimer: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    sweepTimer = undefined;
    const now = performance.now();
    for (const c of open) {
      if (c.deadlineMs > now) break;
      settle(c, "idle_timeout");
      open.remove(c); // the close may come later (node:net); do not visit it again
      c.conn.destroy();
    }
    armSweep(now);
  };
  const armSweep = (now: number): void => {
    if (sweepTimer !== undefined || open.head === undefined) return;
    sweepTimer = setTimeout(sweep, Math.max(1, Math.ceil(open.head.deadlineMs - now)));
    sweepTimer.unref();
  };

  // The reply is the connection's last word: once the kernel holds it, the connection closes
  // (the FIN follows the line). Ending gracefully instead costs a shutdown, another wake-up for
  // the peer's close, and — HAProxy closes with a reset — an error per connection. The request
  // was read whole, so nothing unread turns the close into a reset. No TCP_NODELAY: the reply
  // is the connection's only write, and Nagle never holds back the first segment.
  const answer = (c: AgentConn, step: AgentDecodeStep): void => {
    if (step.type !== "done" || c.outcome !== undefined) return;
    const { result } = step;
    if (!result.ok) {
      settle(c, "bad_request");
      cells[kindCell[result.error.kind]]!++;
      c.conn.replyAndClose(noChangeReply);
      return;
    }
    let verdict: AgentVerdict | undefined;
    try {
      verdict = opts.lookup(result.request.pool, result.request.target);
    } catch {
      // A node that is stopping or a broken lookup must not take HAProxy's servers down.
      settle(c, "error");
      c.conn.replyAndClose(noChangeReply);
      return;
    }
    if (verdict === undefined) settle(c, "unknown_target");
    else settle(c, verdictStates.has(verdict.state) ? verdict.state : "unknown");
    c.conn.replyAndClose(formatAgentReply(verdict));
  };

  const hooks: ShortConnHooks<AgentConn> = {
    open(conn) {
      if (open.size >= maxConnections) {
        cells[outcomeCell.rejected]!++;
        return undefined;
      }
      const now = performance.now();
      const c: AgentConn = {
        conn,
        deadlineMs: now + idleTimeoutMs,
        outcome: undefined,
        decoder: undefined,
        prev: undefined,
        next: undefined,
        listed: false,
      };
      open.push(c);
      cells[activeCell] = open.size;
      armSweep(now);
      return c;
    },
    data(c, bytes) {
      if (c.outcome !== undefined) return; // answered, cut off or failed: the rest is ignored
      if (c.decoder === undefined) {
        const step = firstChunkStep(bytes);
        if (step !== undefined) {
          answer(c, step);
          return;
        }
        c.decoder = new AgentRequestDecoder(maxAgentRequestBytes);
      }
      answer(c, c.decoder.push(bytes));
    },
    end(c) {
      // allowHalfOpen: a client that sends its line and shuts its side at once (`printf … |
      // nc -N`) still gets the answer; one that shut it before a whole line gets an empty one.
      if (c.outcome === undefined)
        answer(c, (c.decoder ?? new AgentRequestDecoder(maxAgentRequestBytes)).end());
      else c.conn.destroy();
    },
    failed(c) {
      settle(c, "error");
    },
    closed(c) {
      // A peer that reset or closed the connection before anything was decided.
      settle(c, "error");
      open.remove(c);
      cells[activeCell] = open.size;
    },
    acceptFailed() {
      cells[outcomeCell.error]!++;
    },
  };

  const listener = await listenShortTcp(
    {
      host: opts.host,
      port: opts.port,
      backlog: agentListenBacklog,
      reusePort: opts.reusePort === true,
      ...(opts.transport === undefined ? {} : { transport: opts.transport }),
    },
    hooks,
  );
  let closing: Promise<void> | undefined;
  return {
    port: listener.port,
    host: opts.host,
    transport: listener.transport,
    stats,
    close: () => {
      closing ??= (async () => {
        if (sweepTimer !== undefined) clearTimeout(sweepTimer);
        const stopped = listener.close();
        for (const c of open) c.conn.destroy();
        await stopped;
      })();
      return closing;
    },
  };
}
