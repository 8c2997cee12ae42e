// A lean HTTP/1.1 path for the route load balancers and scripts poll at high rates:
// `GET /v1/pools/{pool}/targets/{host:port}`. node:http costs 22-25 µs of CPU per request before
// any Vigil code runs (parser callbacks, IncomingMessage, ServerResponse, header bookkeeping),
// against 10-14 µs for a bare socket answer (bench/lookup.ts, "floor"), on this project's 2-core
// test machine; at the tens of thousands of lookups a second a node should serve, that
// difference is most of the budget.
//
// Every connection starts here. A read (one chunk) is answered here when every request in it is
// a complete, plain `GET` of that route: a path of plain characters (nothing URL parsing or
// percent-decoding could change), HTTP/1.1 with one Host header or HTTP/1.0 with at most one, no
// body, no Expect or Upgrade, no Connection header but `keep-alive` or `close`. A request that
// ends its connection (`Connection: close`, or HTTP/1.0 without `keep-alive`: what health
// checkers such as HAProxy's httpchk send) must be the last in its read: answered, then the
// connection ends, as node:http does. A read holding anything else goes to node:http whole, with
// the connection, for good: it gets every other route, every error (400 for a bad request, 413
// for a large body), HEAD, split requests, timeouts, exactly as if it had had the connection from
// the start. Whole, because node:http carries state from one request of a read to the next that
// it would not have for a read taken over midway. Answers written here are written before
// node:http sees the connection, so pipelined answers stay in order.
//
// The answer itself comes from the function the router uses too (server.ts, targetAnswer), so
// both paths send the same status and body; tests compare them byte for byte.

import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { ConnList, type Linked } from "../conn-list.ts";

/** A request head (request line and headers) longer than this goes to node:http, whose own
 * bound (16 KiB by default) then applies. A load balancer's GET is a few hundred bytes. */
export const fastPathMaxHeadBytes = 4096;

/** The credential headers of a request, raw (auth.ts judges them), as node:http would give them. */
export interface FastCredentials {
  authorization?: string;
  cookie?: string;
}

/** The answer for one target: the HTTP status, the JSON body, and the route name for metrics. */
export interface FastAnswer {
  status: number;
  body: string;
  route: string;
}

export interface FastPathOptions {
  /** Answers `GET /v1/pools/{pool}/targets/{target}`; a throw sends the request to node:http
   * (which also answers a request whose credentials do not pass, with its 401 or 403). */
  answer(pool: string, target: string, credentials: FastCredentials): FastAnswer;
  /** Gives the connection to node:http, with the bytes not consumed here put back first. */
  handOver(socket: Socket, rest: Buffer | undefined): void;
  onRequest?: (route: string, status: number) => void;
  /** An idle keep-alive connection is closed after this, as node:http's keepAliveTimeout. */
  keepAliveTimeoutMs: number;
  /** A new connection that has not sent a whole request by then gets node:http's 408 and is
   * closed, as node:http's headersTimeout would. */
  headersTimeoutMs: number;
}

/** What one request at `from` in `text` is, for the fast path. */
export type FastRequest =
  | ({
      kind: "target";
      pool: string;
      target: string;
      /** Where the next request starts. */
      next: number;
      /** `Connection: close`: the last request of the connection. */
      close: boolean;
    } & FastCredentials)
  | { kind: "slow" };

const SLOW: FastRequest = { kind: "slow" };

/** A connection the fast path holds, and when it last sent anything. */
interface FastConn extends Linked<FastConn> {
  readonly socket: Socket;
  readonly openedMs: number;
  lastActiveMs: number;
  /** Requests answered here: none yet means the head timeout applies. */
  answered: number;
}

/** What node:http sends a connection whose request head is overdue, before closing it. */
const requestTimeoutReply = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";

// A segment of characters that neither URL parsing nor decodeURIComponent changes (no "%",
// "\\", "?", "#", no dot segments: checked below), so the router would see the same string.
const TARGET_PATH =
  /^GET \/v1\/pools\/([A-Za-z0-9_.:[\]-]+)\/targets\/([A-Za-z0-9_.:[\]-]+) HTTP\/1\.([01])$/;
// Field names are tokens; values are visible ASCII, spaces, tabs or obs-text (RFC 9110 5.5).
// Anything else is node:http's to refuse with a 400.
const HEADER_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/;
const OWS = /^[ \t]+|[ \t]+$/g;

/**
 * Decides whether the request starting at `from` in `text` (a chunk read as latin1) is one the
 * fast path answers. Pure; never throws.
 */
export function parseFastRequest(text: string, from: number): FastRequest {
  const headEnd = text.indexOf("\r\n\r\n", from);
  if (headEnd < 0 || headEnd - from > fastPathMaxHeadBytes) return SLOW;
  const lineEnd = text.indexOf("\r\n", from);
  const m = TARGET_PATH.exec(text.slice(from, lineEnd));
  if (m === null) return SLOW;
  const pool = m[1]!;
  const target = m[2]!;
  const http10 = m[3] === "0";
  if (pool === "." || pool === ".." || target === "." || target === "..") return SLOW;
  let hosts = 0;
  // HTTP/1.0 closes unless asked to keep the connection; HTTP/1.1 keeps it unless asked to close.
  let keepAlive = false;
  let close = false;
  let authorization: string | undefined;
  let cookie: string | undefined;
  let at = lineEnd + 2;
  while (at < headEnd + 2) {
    const end = text.indexOf("\r\n", at);
    const line = text.slice(at, end);
    at = end + 2;
    // A bare CR or LF inside a line, or anything but a plain field line, is not ours to judge.
    if (!HEADER_LINE.test(line)) return SLOW;
    const colon = line.indexOf(":");
    switch (line.slice(0, colon).toLowerCase()) {
      case "host":
        hosts++;
        break;
      case "connection": {
        const value = line
          .slice(colon + 1)
          .trim()
          .toLowerCase();
        if (value === "close") close = true;
        else if (value === "keep-alive") keepAlive = true;
        else return SLOW;
        break;
      }
      // Kept as node:http keeps them (value without surrounding spaces and tabs); a repeated
      // one is node:http's to combine or drop.
      case "authorization":
        if (authorization !== undefined) return SLOW;
        authorization = line.slice(colon + 1).replace(OWS, "");
        break;
      case "cookie":
        if (cookie !== undefined) return SLOW;
        cookie = line.slice(colon + 1).replace(OWS, "");
        break;
      case "content-length":
      case "transfer-encoding":
      case "expect":
      case "upgrade":
        return SLOW;
    }
  }
  // node:http refuses an HTTP/1.1 request without a Host (400), not an HTTP/1.0 one; what it
  // makes of several is its own business, and so are both Connection values at once.
  if (hosts > 1 || (hosts === 0 && !http10) || (close && keepAlive)) return SLOW;
  const r: FastRequest = {
    kind: "target",
    pool,
    target,
    next: headEnd + 4,
    close: close || (http10 && !keepAlive),
  };
  if (authorization !== undefined) r.authorization = authorization;
  if (cookie !== undefined) r.cookie = cookie;
  return r;
}

/**
 * The connection listener of the fast path. Returns `serve` (for each accepted connection) and
 * `close` (destroys the connections still here, stops the idle sweep).
 */
export function createFastPath(opts: FastPathOptions): {
  serve(socket: Socket): void;
  close(): void;
  /** Connections the fast path holds (not handed over). */
  readonly connections: number;
} {
  // Last activity per connection, for the keep-alive and head bounds: one sweep timer for all.
  const open = new ConnList<FastConn>();
  const keepAliveSeconds = Math.floor(opts.keepAliveTimeoutMs / 1000);
  let sweepTimer: NodeJS.Timeout | undefined;
  const sweepEveryMs = Math.max(
    50,
    Math.min(5_000, Math.floor(opts.keepAliveTimeoutMs / 4), Math.floor(opts.headersTimeoutMs / 4)),
  );
  const sweep = (): void => {
    const now = Date.now();
    for (const c of open) {
      if (c.answered === 0 && now - c.openedMs >= opts.headersTimeoutMs) {
        open.remove(c);
        c.socket.end(requestTimeoutReply);
        c.socket.destroySoon();
      } else if (now - c.lastActiveMs >= opts.keepAliveTimeoutMs) {
        open.remove(c);
        c.socket.destroy();
      }
    }
    if (open.size === 0 && sweepTimer !== undefined) {
      clearInterval(sweepTimer);
      sweepTimer = undefined;
    }
  };

  // The headers after content-length, node:http's own (Date, Connection, Keep-Alive), rebuilt
  // once a second, as node:http does.
  let tailSecond = -1;
  let tail = "";
  let closeTail = "";
  const tailFor = (nowMs: number, close: boolean): string => {
    const second = Math.floor(nowMs / 1000);
    if (second !== tailSecond) {
      tailSecond = second;
      const head = `\r\ncache-control: no-store\r\nDate: ${new Date(second * 1000).toUTCString()}`;
      tail = `${head}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${keepAliveSeconds}\r\n\r\n`;
      closeTail = `${head}\r\nConnection: close\r\n\r\n`;
    }
    return close ? closeTail : tail;
  };

  const serve = (socket: Socket): void => {
    const nowMs = Date.now();
    const conn: FastConn = {
      socket,
      openedMs: nowMs,
      lastActiveMs: nowMs,
      answered: 0,
      prev: undefined,
      next: undefined,
      listed: false,
    };
    open.push(conn);
    sweepTimer ??= setInterval(sweep, sweepEveryMs).unref();
    const onData = (chunk: Buffer): void => {
      if (!conn.listed) return; // cut off by the sweep: nothing more is read
      const now = Date.now();
      conn.lastActiveMs = now;
      const text = chunk.toString("latin1");
      // A read is answered here whole or not at all: node:http keeps state across the requests
      // of one read (a pipelined request that fails to parse right after an answered one gets
      // no 400, for one), which it would not have for the rest of a read taken over midway.
      const answers: FastAnswer[] = [];
      let at = 0;
      let last = false;
      while (at < text.length) {
        const r = parseFastRequest(text, at);
        if (r.kind === "slow") break;
        // What node:http makes of requests after a `close` one is its business.
        if (r.close && r.next !== text.length) break;
        try {
          answers.push(opts.answer(r.pool, r.target, r));
        } catch {
          break; // the router asks again and answers the error its way
        }
        at = r.next;
        last = r.close;
      }
      if (at < text.length) {
        // Only this path's own listeners go: net.Socket keeps internal ones ("end", for one).
        open.remove(conn);
        socket.off("data", onData);
        socket.off("end", onEnd);
        socket.off("error", onError);
        socket.off("close", onClose);
        socket.off("drain", resume);
        opts.handOver(socket, chunk);
        return;
      }
      let out = "";
      for (let i = 0; i < answers.length; i++) {
        const a = answers[i]!;
        // Only the last can end the connection: a `close` one anywhere else went to node:http.
        const close = last && i === answers.length - 1;
        out +=
          `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? "unknown"}\r\ncontent-type: application/json; charset=utf-8` +
          `\r\ncontent-length: ${Buffer.byteLength(a.body)}${tailFor(now, close)}${a.body}`;
        opts.onRequest?.(a.route, a.status);
        conn.answered++;
      }
      if (last) {
        // Answered, and the connection ends there (its FIN after the answer), as node:http's.
        open.remove(conn);
        socket.end(out);
        return;
      }
      // Pipelined answers leave in one write, in order. A client that sends faster than it
      // reads is read no further until its answers have drained.
      if (out !== "" && !socket.write(out)) {
        socket.pause();
        socket.once("drain", resume);
      }
    };
    const resume = (): void => {
      if (conn.listed) socket.resume();
    };
    // Every answer is written as its request arrives: a peer that is done can be closed.
    const onEnd = (): void => {
      socket.end();
    };
    const onError = (): void => {
      socket.destroy();
    };
    const onClose = (): void => {
      open.remove(conn);
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.on("close", onClose);
  };

  return {
    serve,
    close: () => {
      if (sweepTimer !== undefined) clearInterval(sweepTimer);
      sweepTimer = undefined;
      for (const c of open) {
        open.remove(c);
        c.socket.destroy();
      }
    },
    get connections() {
      return open.size;
    },
  };
}
