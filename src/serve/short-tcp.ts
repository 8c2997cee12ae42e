// A TCP listener for short connections that read one request and write one answer: HAProxy's
// agent checks (agent-server.ts), a new connection per lookup, thousands a second.
//
// Two ways to the same sockets:
// - "libuv": the TCP handles Node's own net module is built on (process.binding("tcp_wrap")),
//   driven directly: reads land in one buffer shared by every connection, a reply is one write
//   call, the close is one call. No net.Socket, no stream state, no event emitter, no listener
//   closures per connection.
// - "net": node:net's public API, the same behaviour through net.Socket.
//
// Why both: per agent lookup a net.Socket cost 51–55 µs of server CPU and ~14 KB of
// young-generation garbage; on libuv's handles the same server costs 42–44 µs and ~2.7 KB
// (bench/agent-isolation.ts, docs/haproxy.md "Sockets"). But process.binding() is deprecated
// (DEP0111, documentation-only in Node 24) and the handles' JavaScript surface is Node's
// internal contract, not a public one. So "libuv" is used only when the binding is there and
// has exactly the shape this file relies on (checked once, at load); otherwise, and when asked
// (`transport: "net"`), the listener falls back to node:net. Every agent server test runs over
// both (test/integrations/agent-check-server.test.ts).
//
// Contract for both: `open` is called per accepted connection and returns its state, or
// undefined to refuse it (closed at once). `data` gets the bytes of one read; they are only
// valid during the call (libuv: a buffer shared by every connection). `end` is the peer's FIN;
// `failed` a read error (a reset); `closed` comes exactly once per opened connection, when this
// side has closed it, whatever the reason. Callbacks never throw into the transport: a throwing
// callback is the caller's bug and is left to crash the thread like any other.

import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, type Socket as NetSocket, createServer as netCreateServer } from "node:net";
import { getSystemErrorMap } from "node:util";

/** One accepted connection, as the caller sees it. */
export interface ShortConn {
  /** Writes `text` (UTF-8) and closes once the kernel holds it: a FIN after the text. */
  replyAndClose(text: string): void;
  /** Closes now; unread bytes from the peer turn it into a reset. */
  destroy(): void;
}

export interface ShortConnHooks<S> {
  /** A new connection: its state, or undefined to refuse it (closed at once, no other call). */
  open(conn: ShortConn): S | undefined;
  /** One read's bytes, valid only during the call. */
  data(state: S, bytes: Uint8Array): void;
  /** The peer closed its side (FIN). */
  end(state: S): void;
  /** A read failed (a reset by the peer, mostly); the connection is being closed. */
  failed(state: S): void;
  /** This side closed the connection; the last call for `state`. */
  closed(state: S): void;
  /** An accept failed (EMFILE, ENFILE…): one connection lost. */
  acceptFailed(): void;
}

export type ShortTcpTransport = "libuv" | "net";

export interface ShortTcpListenOptions {
  host: string;
  port: number;
  backlog: number;
  /** SO_REUSEPORT: several listeners (threads) on one port, the kernel spreads connections. */
  reusePort: boolean;
  /** Which way to the sockets; default "libuv" when available, else "net". */
  transport?: ShortTcpTransport;
}

export interface ShortTcpListener {
  readonly port: number;
  /** Which way this listener took. */
  readonly transport: ShortTcpTransport;
  /** Stops accepting. Open connections are the caller's to destroy. */
  close(): Promise<void>;
}

// ── libuv's handles ──────────────────────────────────────────────────────────

interface UvHandle {
  close(cb?: () => void): void;
}
interface UvServerHandle extends UvHandle {
  bind(address: string, port: number, flags: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  getsockname(out: { port?: number }): number;
  onconnection: ((status: number, handle: UvStreamHandle | undefined) => void) | null;
}
interface UvStreamHandle extends UvHandle {
  readStart(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeUtf8String(req: UvWriteReq, text: string): number;
  /** Must always be a function: the binding asserts it (a process abort, not an exception). */
  onread: (this: UvStreamHandle) => void;
  /** Ours: the connection this handle carries. */
  vigilConn?: UvConn<unknown>;
}
interface UvWriteReq {
  handle: UvStreamHandle;
  oncomplete: (this: UvWriteReq, status: number) => void;
  async: boolean;
  /** Ours. */
  vigilConn?: UvConn<unknown>;
}

interface UvBinding {
  TCP: new (kind: number) => UvServerHandle;
  server: number;
  reusePortFlag: number;
  WriteWrap: new () => UvWriteReq;
  state: Int32Array;
  readBytesOrError: number;
  lastWriteWasAsync: number;
}

/** libuv's end-of-file, the only negative read result that is not an error. */
const UV_EOF = -4095;

/** The binding with the shape used here, or undefined (then every listener uses node:net). */
function loadUvBinding(): UvBinding | undefined {
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
    if (typeof binding !== "function") return undefined;
    const tcp = binding("tcp_wrap") as {
      TCP?: unknown;
      constants?: { SERVER?: unknown; UV_TCP_REUSEPORT?: unknown };
    };
    const stream = binding("stream_wrap") as {
      WriteWrap?: unknown;
      streamBaseState?: unknown;
      kReadBytesOrError?: unknown;
      kLastWriteWasAsync?: unknown;
    };
    const TCP = tcp.TCP as { prototype?: Record<string, unknown> } | undefined;
    const proto = TCP?.prototype;
    if (
      typeof TCP !== "function" ||
      proto === undefined ||
      typeof tcp.constants?.SERVER !== "number" ||
      typeof tcp.constants.UV_TCP_REUSEPORT !== "number" ||
      typeof stream.WriteWrap !== "function" ||
      !(stream.streamBaseState instanceof Int32Array) ||
      typeof stream.kReadBytesOrError !== "number" ||
      typeof stream.kLastWriteWasAsync !== "number"
    )
      return undefined;
    for (const m of [
      "bind",
      "bind6",
      "listen",
      "getsockname",
      "readStart",
      "useUserBuffer",
      "writeUtf8String",
      "close",
    ])
      if (typeof proto[m] !== "function") return undefined;
    return {
      TCP: TCP as unknown as UvBinding["TCP"],
      server: tcp.constants.SERVER,
      reusePortFlag: tcp.constants.UV_TCP_REUSEPORT,
      WriteWrap: stream.WriteWrap as UvBinding["WriteWrap"],
      state: stream.streamBaseState,
      readBytesOrError: stream.kReadBytesOrError,
      lastWriteWasAsync: stream.kLastWriteWasAsync,
    };
  } catch {
    return undefined;
  }
}

const uv = loadUvBinding();

/** Whether this Node gives the libuv way (otherwise every listener is node:net). */
export const libuvTransportAvailable = uv !== undefined;

/** The error node:net would give for the same failure: `listen EADDRINUSE: address already in
 * use 127.0.0.1:9000`, with code, errno, syscall, address and port. */
function uvError(errno: number, syscall: string, address: string, port: number): Error {
  const [code, text] = getSystemErrorMap().get(errno) ?? [`Unknown system error ${errno}`, "unknown error"];
  return Object.assign(new Error(`${syscall} ${code}: ${text} ${address}:${port}`), {
    code,
    errno,
    syscall,
    address,
    port,
  });
}

/** Reads of every libuv connection in this thread land here; `data` sees a view of it.
 * Allocated by the first listener. */
let readBuffer: Uint8Array | undefined;

class UvConn<S> implements ShortConn {
  state: S | undefined = undefined;
  private closed = false;
  readonly handle: UvStreamHandle;
  readonly hooks: ShortConnHooks<S>;

  constructor(handle: UvStreamHandle, hooks: ShortConnHooks<S>) {
    this.handle = handle;
    this.hooks = hooks;
  }

  replyAndClose(text: string): void {
    if (this.closed) return;
    const b = uv!;
    const req = new b.WriteWrap();
    req.handle = this.handle;
    req.oncomplete = afterAsyncWrite;
    req.async = false;
    const err = this.handle.writeUtf8String(req, text);
    if (err !== 0) this.destroy();
    // Written whole at once (a fresh connection's few bytes always are): close now. Otherwise
    // libuv finishes the write and then says so through oncomplete.
    else if (b.state[b.lastWriteWasAsync] === 0) this.destroy();
    else req.vigilConn = this as UvConn<unknown>;
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    // (onread stays: the binding aborts the process on a non-function there.)
    this.handle.vigilConn = undefined;
    this.handle.close();
    if (this.state !== undefined) this.hooks.closed(this.state);
  }
}

function afterAsyncWrite(this: UvWriteReq): void {
  const conn = this.vigilConn;
  this.vigilConn = undefined;
  conn?.destroy();
}

function onUvRead(this: UvStreamHandle): void {
  const conn = this.vigilConn;
  if (conn === undefined || conn.state === undefined) return;
  const b = uv!;
  const n = b.state[b.readBytesOrError]!;
  if (n > 0) conn.hooks.data(conn.state, readBuffer!.subarray(0, n));
  else if (n === UV_EOF) conn.hooks.end(conn.state);
  else if (n < 0) {
    conn.hooks.failed(conn.state);
    conn.destroy();
  }
}

async function listenUv<S>(opts: ShortTcpListenOptions, hooks: ShortConnHooks<S>): Promise<ShortTcpListener> {
  const b = uv!;
  readBuffer ??= new Uint8Array(64 * 1024);
  const buffer = readBuffer;
  const family = isIP(opts.host);
  // node:net resolves a name the same way (the first address dns.lookup gives).
  const resolved = family !== 0 ? { address: opts.host, family } : await dnsLookup(opts.host);
  const server = new b.TCP(b.server);
  const flags = opts.reusePort ? b.reusePortFlag : 0;
  let err =
    resolved.family === 6
      ? server.bind6(resolved.address, opts.port, flags)
      : server.bind(resolved.address, opts.port, flags);
  if (err === 0) err = server.listen(opts.backlog);
  if (err !== 0) {
    server.close();
    throw uvError(err, "listen", resolved.address, opts.port);
  }
  const name: { port?: number } = {};
  err = server.getsockname(name);
  if (err !== 0 || typeof name.port !== "number") {
    server.close();
    throw uvError(err, "getsockname", resolved.address, opts.port);
  }
  server.onconnection = (status, handle) => {
    if (status !== 0 || handle === undefined) {
      hooks.acceptFailed();
      return;
    }
    const conn = new UvConn(handle, hooks);
    const state = hooks.open(conn);
    if (state === undefined) {
      handle.close();
      return;
    }
    conn.state = state;
    handle.vigilConn = conn as UvConn<unknown>;
    handle.useUserBuffer(buffer);
    handle.onread = onUvRead;
    if (handle.readStart() !== 0) {
      hooks.failed(state);
      conn.destroy();
    }
  };
  let closing: Promise<void> | undefined;
  return {
    port: name.port,
    transport: "libuv",
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.onconnection = null;
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

// ── node:net ─────────────────────────────────────────────────────────────────

class NetConn implements ShortConn {
  readonly socket: NetSocket;
  constructor(socket: NetSocket) {
    this.socket = socket;
  }
  replyAndClose(text: string): void {
    const s = this.socket;
    if (s.destroyed) return;
    s.write(text);
    // Taken by the kernel at once: close now (FIN after the text). Otherwise end gracefully.
    if (s.writableLength === 0) s.destroy();
    else s.end(() => s.destroy());
  }
  destroy(): void {
    this.socket.destroy();
  }
}

async function listenNet<S>(
  opts: ShortTcpListenOptions,
  hooks: ShortConnHooks<S>,
): Promise<ShortTcpListener> {
  // allowHalfOpen: a client that sends its line and shuts its side at once still gets the answer.
  const server = netCreateServer({ allowHalfOpen: true }, (socket) => {
    const state = hooks.open(new NetConn(socket));
    if (state === undefined) {
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    socket.on("data", (chunk: Buffer) => hooks.data(state, chunk));
    socket.on("end", () => hooks.end(state));
    socket.on("error", () => {
      hooks.failed(state);
      socket.destroy();
    });
    socket.on("close", () => hooks.closed(state));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      { port: opts.port, host: opts.host, backlog: opts.backlog, reusePort: opts.reusePort },
      () => {
        server.off("error", reject);
        resolve();
      },
    );
  });
  // After listening, an accept that fails (EMFILE) is one connection lost, not a reason to crash.
  server.on("error", () => hooks.acceptFailed());
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("listener has no TCP address");
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    transport: "net",
    close: () => {
      closing ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return closing;
    },
  };
}

/** Listens on `host:port`; rejects with the listen error (EADDRINUSE…) as node:net gives it. */
export function listenShortTcp<S>(
  opts: ShortTcpListenOptions,
  hooks: ShortConnHooks<S>,
): Promise<ShortTcpListener> {
  const want = opts.transport ?? (libuvTransportAvailable ? "libuv" : "net");
  return want === "libuv" && libuvTransportAvailable ? listenUv(opts, hooks) : listenNet(opts, hooks);
}
