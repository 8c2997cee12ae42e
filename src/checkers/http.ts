// HTTP and HTTPS checks. One timer covers connect, response headers and the body read. By
// default each check opens its own connection, so a check says something about accepting
// connections: the request bytes are built once per (spec, target) and the response is read
// by the small client in http1-client.ts, which costs a fraction of node:http's CPU.
// `keepalive` pools connections per checker on node:http's agent instead. The body is read
// only when an expectation needs it, and never more than `maxBodyBytes` of it.

import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import type { HttpCheckSpec, StatusRange, TargetAddr } from "../config/types.ts";
import { Attempt, type CheckerContext, closeWithReset } from "./attempt.ts";
import { encodeRequest, Http1ResponseParser, type ResponseSink } from "./http1-client.ts";
import { NeedleScanner } from "./scan.ts";
import type { TlsTrust } from "./tls-context.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

/** Keep-alive pool bound per target (host:port): more concurrent checks wait in the agent's queue. */
export const httpKeepAliveMaxSocketsPerTarget = 4;
/** Keep-alive pool bound over all targets of one prober; more wait in the agent's queue. */
export const httpKeepAliveMaxSocketsTotal = 1024;
/** Request bytes cached per spec (one per target); past this the cache starts over. */
export const httpMaxCachedRequestsPerSpec = 100_000;

// Methods that carry no request body by convention; others get an explicit empty body
// instead of node's default chunked encoding.
const bodylessMethods = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"]);

/** Where plain-HTTP checks read (onread): one per process, reads are consumed synchronously. */
const sharedReadBuffer = Buffer.allocUnsafe(64 * 1024);

/** What a spec needs per check, computed once per spec object. */
interface Prepared {
  needle: Buffer | undefined;
  regex: RegExp | undefined;
  /** User headers as a flat [name, value, ...] list, without Host. */
  headers: string[];
  /** Host header fixed by the spec (spec.host or a Host in spec.headers). */
  host: string | undefined;
  /** SNI fixed by the spec; "" means none; undefined means derive from the target. */
  sni: string | undefined;
  trust: TlsTrust | undefined;
  /** A HEAD request: the response has no body whatever its headers say. */
  headRequest: boolean;
  /** The spec's headers declare a chunked request body: send its (empty) last chunk. */
  chunked: boolean;
  /** Request bytes for a spec that fixes the Host, built on first use. */
  request: Buffer | undefined;
  /** Request bytes by target key when the Host is the target's. */
  requestByTarget: Map<string, Buffer>;
}

export class HttpChecker {
  private readonly ctx: CheckerContext;
  private readonly pool: { maxSocketsPerTarget: number; maxSocketsTotal: number };
  private readonly prepared = new WeakMap<HttpCheckSpec, Prepared>();
  private httpAgent: HttpAgent | undefined;
  private httpsAgent: HttpsAgent | undefined;

  constructor(ctx: CheckerContext, pool: { maxSocketsPerTarget: number; maxSocketsTotal: number }) {
    this.ctx = ctx;
    this.pool = pool;
  }

  check(spec: HttpCheckSpec, req: CheckRequest): Promise<CheckResult> {
    if (spec.keepalive) return new HttpAttempt(this, spec, req, this.ctx.inflight).run();
    return new RawHttpAttempt(this, spec, req, this.ctx.inflight).run();
  }

  /** The per-spec precomputation; throws (caught by the attempt) for a regex that does not compile. */
  prepare(spec: HttpCheckSpec): Prepared {
    let p = this.prepared.get(spec);
    if (p === undefined) {
      p = prepare(spec);
      this.prepared.set(spec, p);
    }
    if (spec.type === "https" && p.trust === undefined) p.trust = this.ctx.tls.get(spec.tlsCa);
    return p;
  }

  /** The request bytes for one target; throws when a header cannot be sent as given. */
  request(spec: HttpCheckSpec, p: Prepared, target: TargetAddr): Buffer {
    if (p.host !== undefined) {
      p.request ??= encodeFor(spec, p, p.host);
      return p.request;
    }
    let bytes = p.requestByTarget.get(target.key);
    if (bytes === undefined) {
      if (p.requestByTarget.size >= httpMaxCachedRequestsPerSpec) p.requestByTarget.clear();
      bytes = encodeFor(spec, p, defaultHost(target, spec.type === "https"));
      p.requestByTarget.set(target.key, bytes);
    }
    return bytes;
  }

  agent(https: boolean): HttpAgent {
    const opts = {
      keepAlive: true,
      maxSockets: this.pool.maxSocketsPerTarget,
      maxFreeSockets: this.pool.maxSocketsPerTarget,
      maxTotalSockets: this.pool.maxSocketsTotal,
      scheduling: "lifo" as const,
    };
    if (https) {
      this.httpsAgent ??= new HttpsAgent(opts);
      return this.httpsAgent;
    }
    this.httpAgent ??= new HttpAgent(opts);
    return this.httpAgent;
  }

  close(): void {
    this.httpAgent?.destroy();
    this.httpsAgent?.destroy();
    this.httpAgent = undefined;
    this.httpsAgent = undefined;
  }
}

function prepare(spec: HttpCheckSpec): Prepared {
  const headers: string[] = [];
  let host = spec.host;
  let hasBodyFraming = false;
  let chunked = false;
  let hasConnection = false;
  for (const name in spec.headers) {
    const value = spec.headers[name]!;
    const lower = name.toLowerCase();
    if (lower === "host") {
      host ??= value;
      continue;
    }
    if (lower === "content-length" || lower === "transfer-encoding") hasBodyFraming = true;
    if (lower === "transfer-encoding" && /chunked/i.test(value)) chunked = true;
    if (lower === "connection") hasConnection = true;
    headers.push(name, value);
  }
  if (!hasBodyFraming && !bodylessMethods.has(spec.method.toUpperCase())) headers.push("Content-Length", "0");
  // One connection per check: say so (node:http would otherwise offer keep-alive).
  if (!spec.keepalive && !hasConnection) headers.push("Connection", "close");
  const { bodyContains, bodyRegex } = spec.expect;
  let sni = spec.sni;
  if (sni === undefined && host !== undefined) sni = hostName(host) ?? "";
  return {
    needle: bodyContains === undefined ? undefined : Buffer.from(bodyContains, "utf8"),
    regex: bodyRegex === undefined ? undefined : new RegExp(bodyRegex),
    headers,
    host,
    sni,
    trust: undefined,
    headRequest: spec.method.toUpperCase() === "HEAD",
    chunked,
    request: undefined,
    requestByTarget: new Map(),
  };
}

function encodeFor(spec: HttpCheckSpec, p: Prepared, host: string): Buffer {
  const { method, path } = spec;
  return encodeRequest({ method, path, host, headers: p.headers, emptyChunkedBody: p.chunked });
}

/** The target key is host:port with IPv6 in brackets: the Host form minus a default port. */
function defaultHost(target: TargetAddr, https: boolean): string {
  return target.port === (https ? 443 : 80) ? target.key.slice(0, target.key.lastIndexOf(":")) : target.key;
}

/** The verdict on a body read (whole, or its first maxBodyBytes when `truncated`). */
function judgeBody(
  spec: HttpCheckSpec,
  prep: Prepared,
  status: number,
  scanner: NeedleScanner | undefined,
  chunks: Buffer[] | undefined,
  bodyBytes: number,
  truncated: boolean,
): { ok: boolean; reason: string } {
  if (scanner !== undefined && !scanner.found) {
    const cut = truncated ? ` in the first ${spec.maxBodyBytes} bytes` : "";
    return { ok: false, reason: `body does not contain ${JSON.stringify(spec.expect.bodyContains)}${cut}` };
  }
  if (chunks !== undefined && !prep.regex!.test(Buffer.concat(chunks, bodyBytes).toString("utf8"))) {
    return { ok: false, reason: `body does not match /${prep.regex!.source}/` };
  }
  return { ok: true, reason: `status ${status}` };
}

/** The DNS name in a Host value ("example.com:8080" → "example.com"), undefined for an IP. */
function hostName(host: string): string | undefined {
  if (host.startsWith("[")) return undefined;
  const colon = host.indexOf(":");
  const name = colon === -1 ? host : host.slice(0, colon);
  return name === "" || isIP(name) !== 0 ? undefined : name;
}

function statusOk(status: number, ranges: StatusRange[]): boolean {
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (status >= r.lo && status <= r.hi) return true;
  }
  return false;
}

// Module-level so a request without an agent allocates no closure for its socket.
function connectTcp(opts: RequestOptions): Socket {
  return netConnect(opts as Parameters<typeof netConnect>[0]);
}
function connectTls(opts: RequestOptions): Socket {
  return tlsConnect(opts as ConnectionOptions);
}

function ignore(): void {}

class HttpAttempt extends Attempt {
  private readonly checker: HttpChecker;
  private readonly spec: HttpCheckSpec;
  private readonly target: TargetAddr;
  private prep!: Prepared;
  private req: ClientRequest | undefined;
  private res: IncomingMessage | undefined;
  private status = 0;
  private bodyBytes = 0;
  private scanner: NeedleScanner | undefined;
  private chunks: Buffer[] | undefined;
  /** Known outcome while a kept-alive response is drained so its socket can be reused. */
  private verdict: { ok: boolean; reason: string } | undefined;
  private retried = false;

  constructor(checker: HttpChecker, spec: HttpCheckSpec, req: CheckRequest, inflight: Set<Attempt>) {
    super(req, inflight);
    this.checker = checker;
    this.spec = spec;
    this.target = req.target;
  }

  protected start(): void {
    this.prep = this.checker.prepare(this.spec);
    this.send();
  }

  private send(): void {
    const { spec, target, prep } = this;
    const https = spec.type === "https";
    const host = prep.host ?? defaultHost(target, https);
    const headers = prep.headers.length === 0 ? ["Host", host] : [...prep.headers, "Host", host];
    const opts: RequestOptions & ConnectionOptions = {
      host: target.host,
      port: target.port,
      method: spec.method,
      path: spec.path,
      headers,
    };
    if (https) {
      const sni = prep.sni ?? (isIP(target.host) === 0 ? target.host : "");
      opts.servername = sni;
      opts.secureContext = prep.trust!.context;
      opts.rejectUnauthorized = spec.tlsVerify;
    }
    if (spec.keepalive) {
      opts.agent = this.checker.agent(https);
      // The pool keys sockets by ca (not by context): two CA files must not share a socket.
      if (https && prep.trust!.ca !== undefined) opts.ca = prep.trust!.ca;
    } else {
      opts.createConnection = https ? connectTls : connectTcp;
    }
    const req = (https ? httpsRequest : httpRequest)(opts);
    this.req = req;
    req.on("response", this.onResponse);
    req.on("error", this.onError);
    req.end();
  }

  private readonly onResponse = (res: IncomingMessage): void => {
    this.res = res;
    const status = res.statusCode ?? 0;
    this.status = status;
    if (!statusOk(status, this.spec.expect.status)) {
      this.conclude(false, `status ${status}`);
      return;
    }
    const { needle, regex } = this.prep;
    if (needle === undefined && regex === undefined) {
      this.conclude(true, `status ${status}`);
      return;
    }
    if (needle !== undefined) this.scanner = new NeedleScanner(needle);
    if (regex !== undefined) this.chunks = [];
    this.listen(res);
  };

  private listen(res: IncomingMessage): void {
    res.on("data", this.onData);
    res.on("end", this.onEnd);
    res.on("error", this.onError);
    res.on("close", this.onClose);
  }

  /** The verdict is known: finish now, or first drain a kept-alive response for reuse. */
  private conclude(ok: boolean, reason: string): void {
    const res = this.res!;
    if (!this.spec.keepalive || res.complete || this.bodyBytes >= this.spec.maxBodyBytes) {
      this.finish(ok, reason);
      return;
    }
    const reading = this.verdict !== undefined || this.scanner !== undefined || this.chunks !== undefined;
    this.verdict = { ok, reason };
    this.scanner = undefined;
    this.chunks = undefined;
    if (!reading) this.listen(res);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.settled) return;
    const max = this.spec.maxBodyBytes;
    const room = max - this.bodyBytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.bodyBytes += part.length;
    if (this.verdict !== undefined) {
      if (this.bodyBytes >= max) this.finish(this.verdict.ok, this.verdict.reason);
      return;
    }
    this.scanner?.push(part);
    this.chunks?.push(part);
    if (this.bodyBytes >= max) {
      this.judgeBody(true);
      return;
    }
    // Found the needle and no regex to run: the rest of the body cannot change the verdict.
    if (this.chunks === undefined && this.scanner!.found) this.judgeBody(false);
  };

  private readonly onEnd = (): void => {
    if (this.verdict !== undefined) {
      this.finish(this.verdict.ok, this.verdict.reason);
      return;
    }
    this.judgeBody(false);
  };

  private judgeBody(truncated: boolean): void {
    const v = judgeBody(
      this.spec,
      this.prep,
      this.status,
      this.scanner,
      this.chunks,
      this.bodyBytes,
      truncated,
    );
    this.conclude(v.ok, v.reason);
  }

  private readonly onError = (err: Error): void => {
    if (this.settled) return;
    if (this.verdict !== undefined) {
      this.finish(this.verdict.ok, this.verdict.reason);
      return;
    }
    // A kept-alive socket the server closed while idle fails on first use; that says
    // nothing about the target, so retry once (same deadline) on another socket.
    if (this.res === undefined && this.req?.reusedSocket && !this.retried) {
      this.retried = true;
      const stale = this.req;
      stale.off("response", this.onResponse);
      stale.off("error", this.onError);
      stale.on("error", ignore);
      stale.destroy();
      this.send();
      return;
    }
    this.fail(err);
  };

  private readonly onClose = (): void => {
    if (this.settled) return;
    if (this.verdict !== undefined) {
      this.finish(this.verdict.ok, this.verdict.reason);
      return;
    }
    this.finish(false, "read ECONNRESET");
  };

  override timedOut(): void {
    if (this.verdict !== undefined) {
      this.finish(this.verdict.ok, this.verdict.reason);
      return;
    }
    super.timedOut();
  }

  protected release(): void {
    // A fully received kept-alive response gives its socket back to the agent once the
    // stream ends: let the buffered rest flow out instead of destroying the socket.
    if (this.spec.keepalive && this.res?.complete === true) {
      this.res.resume();
      return;
    }
    this.req?.destroy();
  }
}

/**
 * A check on its own connection: one net/tls.connect, the cached request bytes written at
 * once (the socket sends them when connected), the response parsed as it arrives, and the
 * socket destroyed as soon as the verdict is known.
 */
class RawHttpAttempt extends Attempt implements ResponseSink {
  private readonly checker: HttpChecker;
  private readonly spec: HttpCheckSpec;
  private readonly target: TargetAddr;
  private prep!: Prepared;
  private socket: Socket | undefined;
  private parser!: Http1ResponseParser;
  private status = 0;
  private bodyBytes = 0;
  private scanner: NeedleScanner | undefined;
  private chunks: Buffer[] | undefined;

  constructor(checker: HttpChecker, spec: HttpCheckSpec, req: CheckRequest, inflight: Set<Attempt>) {
    super(req, inflight);
    this.checker = checker;
    this.spec = spec;
    this.target = req.target;
  }

  protected start(): void {
    const { spec, target } = this;
    const prep = this.checker.prepare(spec);
    this.prep = prep;
    const request = this.checker.request(spec, prep, target);
    this.parser = new Http1ResponseParser({ headRequest: prep.headRequest });
    let socket: Socket;
    if (spec.type === "https") {
      socket = tlsConnect({
        host: target.host,
        port: target.port,
        servername: prep.sni ?? (isIP(target.host) === 0 ? target.host : ""),
        secureContext: prep.trust!.context,
        rejectUnauthorized: spec.tlsVerify,
      });
    } else {
      // Plain TCP reads into one buffer shared by every check (read synchronously, copied
      // where kept): no Buffer and no stream 'data' event per read.
      socket = netConnect({
        host: target.host,
        port: target.port,
        onread: { buffer: sharedReadBuffer, callback: this.onRead },
      });
    }
    this.socket = socket;
    if (spec.type === "https") socket.on("data", this.onSocketData);
    socket.on("end", this.onSocketEnd);
    socket.on("error", this.onSocketError);
    socket.write(request);
  }

  private readonly onSocketData = (chunk: Buffer): void => {
    if (this.settled) return;
    const err = this.parser.feed(chunk, this);
    if (err !== undefined) this.finish(false, err);
  };

  private readonly onRead = (n: number, buf: Uint8Array): boolean => {
    if (this.settled) return false;
    const err = this.parser.feed((buf as Buffer).subarray(0, n), this);
    if (err !== undefined) this.finish(false, err);
    return !this.settled;
  };

  private readonly onSocketEnd = (): void => {
    if (this.settled) return;
    const err = this.parser.close(this);
    if (err !== undefined) this.finish(false, err);
  };

  private readonly onSocketError = (err: Error): void => {
    this.fail(err);
  };

  onHead(status: number): boolean {
    this.status = status;
    if (!statusOk(status, this.spec.expect.status)) {
      this.finish(false, `status ${status}`);
      return false;
    }
    const { needle, regex } = this.prep;
    if (needle === undefined && regex === undefined) {
      this.finish(true, `status ${status}`);
      return false;
    }
    if (needle !== undefined) this.scanner = new NeedleScanner(needle);
    if (regex !== undefined) this.chunks = [];
    return true;
  }

  onBody(bytes: Buffer): boolean {
    const max = this.spec.maxBodyBytes;
    const room = max - this.bodyBytes;
    const part = bytes.length > room ? bytes.subarray(0, room) : bytes;
    this.bodyBytes += part.length;
    this.scanner?.push(part);
    // The bytes may sit in the shared read buffer, which the next read overwrites.
    this.chunks?.push(Buffer.from(part));
    if (this.bodyBytes >= max) {
      this.judge(true);
      return false;
    }
    // Found the needle and no regex to run: the rest of the body cannot change the verdict.
    if (this.chunks === undefined && this.scanner!.found) {
      this.judge(false);
      return false;
    }
    return true;
  }

  onEnd(): void {
    this.judge(false);
  }

  private judge(truncated: boolean): void {
    const v = judgeBody(
      this.spec,
      this.prep,
      this.status,
      this.scanner,
      this.chunks,
      this.bodyBytes,
      truncated,
    );
    this.finish(v.ok, v.reason);
  }

  protected release(): void {
    if (this.socket === undefined) return;
    // TLS sockets wrap their handle and cannot be reset; they close normally.
    if (this.spec.type === "http") closeWithReset(this.socket);
    else this.socket.destroy();
  }
}
