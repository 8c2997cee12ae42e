// The HTTP/1.1 client of a check: the request encoded once into bytes, and a sans-IO parser
// for the one response read back. A check needs the status line, the framing headers and at
// most a bounded prefix of the body, so this is far less than a general client (node:http
// costs more CPU than the whole rest of a check): no header objects, no streams, and the
// caller stops the parser the moment it knows its verdict.
//
// The parser is strict where a mistake would misread the response (the status line, the
// framing headers, chunk sizes) and ignores everything else. Every input is bounded: the
// response heads (interim 1xx ones included) by `http1MaxHeadBytes`, a chunk-size line by
// `http1MaxChunkLineBytes`; the body is the caller's to bound.

/** Bytes of response heads accepted, interim (1xx) heads included; more fail the check. */
export const http1MaxHeadBytes = 16 * 1024;
/** Bytes of one chunk-size line, extensions included. */
export const http1MaxChunkLineBytes = 1024;
/** Hex digits of a chunk size: 13 keep it below 2^53 (no chunk is that large anyway). */
const maxChunkSizeDigits = 13;
/** Characters of a bad status line quoted in the reason. */
const maxQuotedStatusChars = 40;

// RFC 9110 token characters, for methods and header names.
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// What a header value may hold (node:http's rule): no control characters except tab.
const headerValuePattern = /^[\t\x20-\x7e\x80-\xff]*$/;
const requestTargetPattern = /^[\x21-\xff]+$/;

export interface RequestHead {
  method: string;
  path: string;
  /** The Host header value. */
  host: string;
  /** Further headers as a flat [name, value, ...] list, without Host. */
  headers: readonly string[];
  /** The headers say Transfer-Encoding: chunked: end the (empty) body with its last chunk. */
  emptyChunkedBody?: boolean;
}

/**
 * The request bytes: request line, Host first, then the headers in order, latin1 as on the
 * wire. Throws an Error naming the offending part when a method, path, header name or value
 * cannot be sent as given (a newline in a value would inject a header).
 */
export function encodeRequest(req: RequestHead): Buffer {
  if (!tokenPattern.test(req.method)) throw new Error(`invalid HTTP method ${JSON.stringify(req.method)}`);
  if (!requestTargetPattern.test(req.path))
    throw new Error(`request path ${JSON.stringify(req.path)} contains unescaped characters`);
  checkHeader("Host", req.host);
  let text = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${req.host}\r\n`;
  for (let i = 0; i + 1 < req.headers.length; i += 2) {
    const name = req.headers[i]!;
    const value = req.headers[i + 1]!;
    checkHeader(name, value);
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(req.emptyChunkedBody ? `${text}\r\n0\r\n\r\n` : `${text}\r\n`, "latin1");
}

function checkHeader(name: string, value: string): void {
  if (!tokenPattern.test(name)) throw new Error(`invalid header name ${JSON.stringify(name)}`);
  if (!headerValuePattern.test(value)) throw new Error(`invalid character in header ${JSON.stringify(name)}`);
}

/** What the parser reports, in order: one head, body bytes, the end. */
export interface ResponseSink {
  /** The final (non-1xx) status. Return false to stop: nothing more is reported. */
  onHead(status: number): boolean;
  /** The next body bytes, de-chunked. Return false to stop. */
  onBody(bytes: Buffer): boolean;
  /** The body is complete. */
  onEnd(): void;
}

// Parser states.
const S_HEAD = 0;
const S_BODY_LENGTH = 1;
const S_BODY_UNTIL_CLOSE = 2;
const S_CHUNK_SIZE = 3;
const S_CHUNK_EXT = 4;
const S_CHUNK_SIZE_LF = 5;
const S_CHUNK_DATA = 6;
const S_CHUNK_DATA_CR = 7;
const S_CHUNK_DATA_LF = 8;
const S_DONE = 9;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SEMICOLON = 0x3b;

/**
 * Parses one HTTP/1.x response fed in arbitrary pieces. Interim 1xx responses (100 Continue,
 * 103 Early Hints) are skipped. The body is framed by Transfer-Encoding: chunked, by
 * Content-Length, or by the connection's end; responses to HEAD and 204/304 have none.
 * Errors are returned as short reasons, never thrown.
 */
export class Http1ResponseParser {
  /** The final status once the head is parsed; 0 before. */
  status = 0;
  private state = S_HEAD;
  private readonly headRequest: boolean;
  /** Head bytes carried over from earlier pieces (the head spans reads). */
  private pending: Buffer | undefined;
  private pendingLength = 0;
  /** Where the next line to scan starts in the pending head bytes. */
  private pendingScan = 0;
  /** Head bytes seen so far, interim heads included. */
  private headBytes = 0;
  /** Body bytes left to read: of the Content-Length, or of the current chunk. */
  private remaining = 0;
  private chunkLineBytes = 0;
  private chunkDigits = 0;
  private sawBytes = false;
  /** The current head's status line was seen and is well formed. */
  private statusLineSeen = false;

  constructor(opts: { headRequest: boolean }) {
    this.headRequest = opts.headRequest;
  }

  /** Whether the response is complete or the sink stopped it. */
  get done(): boolean {
    return this.state === S_DONE;
  }

  /** Feeds bytes read from the connection. Returns the reason when the response is malformed. */
  feed(chunk: Buffer, sink: ResponseSink): string | undefined {
    if (chunk.length > 0) this.sawBytes = true;
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case S_HEAD: {
          const next = this.feedHead(chunk, pos, sink);
          if (typeof next === "string") return this.fail(next);
          pos = next;
          break;
        }
        case S_BODY_LENGTH: {
          const n = Math.min(this.remaining, chunk.length - pos);
          this.remaining -= n;
          const part = chunk.subarray(pos, pos + n);
          pos += n;
          if (!sink.onBody(part)) return this.stop();
          if (this.remaining === 0) return this.end(sink);
          break;
        }
        case S_BODY_UNTIL_CLOSE:
          if (!sink.onBody(pos === 0 ? chunk : chunk.subarray(pos))) return this.stop();
          return undefined;
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, chunk.length - pos);
          this.remaining -= n;
          const part = chunk.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
          if (!sink.onBody(part)) return this.stop();
          break;
        }
        case S_DONE:
          // Whatever follows a complete response (or a stopped one) is not ours to read.
          return undefined;
        default: {
          const next = this.feedChunkFraming(chunk, pos);
          if (typeof next === "string") return this.fail(next);
          pos = next;
          if (this.state === S_DONE) {
            sink.onEnd();
            return undefined;
          }
        }
      }
    }
    return undefined;
  }

  /**
   * The peer closed the connection. Ends a body that runs until the close; otherwise returns
   * why the response is incomplete ("socket hang up" when nothing came back at all).
   */
  close(sink: ResponseSink): string | undefined {
    switch (this.state) {
      case S_DONE:
        return undefined;
      case S_BODY_UNTIL_CLOSE:
        return this.end(sink);
      case S_HEAD:
        return this.fail(this.sawBytes ? "connection closed in the response headers" : "socket hang up");
      default:
        // node:http's word for a body cut short; kept so reasons read the same either way.
        return this.fail("read ECONNRESET");
    }
  }

  private stop(): undefined {
    this.state = S_DONE;
    this.pending = undefined;
    return undefined;
  }

  private end(sink: ResponseSink): undefined {
    this.state = S_DONE;
    sink.onEnd();
    return undefined;
  }

  private fail(reason: string): string {
    this.state = S_DONE;
    this.pending = undefined;
    return reason;
  }

  // ── the head ──

  /** Consumes head bytes from `chunk` at `pos`; returns where the body starts, or a reason. */
  private feedHead(chunk: Buffer, pos: number, sink: ResponseSink): number | string {
    let buf: Buffer;
    let start: number;
    let scan: number;
    const carried = this.pendingLength;
    if (carried === 0) {
      buf = chunk;
      start = pos;
      scan = pos;
    } else {
      buf = this.append(chunk, pos);
      start = 0;
      scan = this.pendingScan;
    }
    if (!this.statusLineSeen) {
      // Judge the status line as soon as it is there (its prefix even sooner): a peer that
      // does not speak HTTP fails now, not at the timeout.
      const err = this.checkStatusLine(buf, start);
      if (err !== undefined) return err;
    }
    const end = headEnd(buf, scan);
    if (end < 0) {
      if (this.headBytes + (buf.length - start) > http1MaxHeadBytes) return "response headers too large";
      if (carried === 0) this.append(chunk, pos);
      this.pendingScan = -end - 1 - start;
      return chunk.length;
    }
    this.headBytes += end - start;
    if (this.headBytes > http1MaxHeadBytes) return "response headers too large";
    const consumedFromChunk = carried === 0 ? end : pos + (end - carried);
    this.pendingLength = 0;
    this.pendingScan = 0;
    this.statusLineSeen = false;
    const err = this.parseHead(buf, start, end);
    if (err !== undefined) return err;
    const status = this.status;
    if (status >= 100 && status < 200 && status !== 101) {
      // An interim response: the final one follows.
      this.status = 0;
      this.state = S_HEAD;
      return consumedFromChunk;
    }
    if (!sink.onHead(status)) {
      this.stop();
      return chunk.length;
    }
    if (this.state === S_BODY_LENGTH && this.remaining === 0) this.end(sink);
    return consumedFromChunk;
  }

  private checkStatusLine(buf: Buffer, start: number): string | undefined {
    const lf = buf.indexOf(LF, start);
    const stop = lf < 0 ? buf.length : trimCr(buf, start, lf);
    if (lf >= 0 ? parseStatusLine(buf, start, stop) < 0 : !startsLikeStatusLine(buf, start, stop)) {
      return `malformed status line ${quoteLine(buf, start, stop)}`;
    }
    if (lf >= 0) this.statusLineSeen = true;
    return undefined;
  }

  /** Copies chunk[pos..] after the pending head bytes, growing the buffer by doubling. */
  private append(chunk: Buffer, pos: number): Buffer {
    const add = chunk.length - pos;
    const need = this.pendingLength + add;
    let buf = this.pending;
    if (buf === undefined || buf.length < need) {
      const grown = Buffer.allocUnsafe(
        Math.max(need, Math.min(2 * (buf?.length ?? 512), http1MaxHeadBytes + 1)),
      );
      if (buf !== undefined) buf.copy(grown, 0, 0, this.pendingLength);
      buf = grown;
      this.pending = buf;
    }
    chunk.copy(buf, this.pendingLength, pos);
    this.pendingLength = need;
    return buf.subarray(0, need);
  }

  /** Reads the status line and the framing headers of the head in buf[start, end). */
  private parseHead(buf: Buffer, start: number, end: number): string | undefined {
    let lineEnd = buf.indexOf(LF, start);
    const status = parseStatusLine(buf, start, trimCr(buf, start, lineEnd));
    if (status < 0) return `malformed status line ${quoteLine(buf, start, trimCr(buf, start, lineEnd))}`;
    this.status = status;
    let contentLength: string | undefined;
    let transferEncoding: string | undefined;
    /** Which framing header a folded continuation line belongs to: 1 length, 2 encoding. */
    let last = 0;
    for (let line = lineEnd + 1; line < end; line = lineEnd + 1) {
      lineEnd = buf.indexOf(LF, line);
      const stop = trimCr(buf, line, lineEnd);
      if (stop === line) break; // the empty line that ends the head
      const first = buf[line]!;
      if (first === SP || first === HTAB) {
        // obs-fold: the line continues the previous header's value.
        const more = buf.toString("latin1", line, stop).trim();
        if (last === 1) contentLength += ` ${more}`;
        else if (last === 2) transferEncoding += ` ${more}`;
        continue;
      }
      const colon = buf.indexOf(0x3a, line);
      if (colon < 0 || colon >= stop || colon === line) return "malformed header line";
      const before = buf[colon - 1]!;
      if (before === SP || before === HTAB) return "malformed header line";
      last = 0;
      const nameLength = colon - line;
      if (nameLength === 14 && nameIs(buf, line, "content-length")) {
        const v = buf.toString("latin1", colon + 1, stop).trim();
        contentLength = contentLength === undefined ? v : `${contentLength},${v}`;
        last = 1;
      } else if (nameLength === 17 && nameIs(buf, line, "transfer-encoding")) {
        const v = buf.toString("latin1", colon + 1, stop).trim();
        transferEncoding = transferEncoding === undefined ? v : `${transferEncoding},${v}`;
        last = 2;
      }
    }
    return this.frame(status, contentLength, transferEncoding);
  }

  /** Chooses how the body ends (RFC 9112 §6.3). */
  private frame(
    status: number,
    contentLength: string | undefined,
    transferEncoding: string | undefined,
  ): string | undefined {
    if (this.headRequest || status < 200 || status === 204 || status === 304) {
      this.state = S_BODY_LENGTH;
      this.remaining = 0;
      return undefined;
    }
    if (transferEncoding !== undefined) {
      // Chunked only when it is the last coding; any other coding runs until the close.
      const codings = transferEncoding.split(",");
      if (codings[codings.length - 1]!.trim().toLowerCase() === "chunked") {
        this.state = S_CHUNK_SIZE;
        this.chunkLineBytes = 0;
        this.chunkDigits = 0;
        this.remaining = 0;
      } else {
        this.state = S_BODY_UNTIL_CLOSE;
      }
      return undefined;
    }
    if (contentLength !== undefined) {
      // Repeated values (a list, or the header twice) must all agree.
      let length = -1;
      for (const part of contentLength.split(",")) {
        const v = part.trim();
        if (!/^\d{1,15}$/.test(v) || (length >= 0 && Number(v) !== length)) return "bad content-length";
        length = Number(v);
      }
      this.state = S_BODY_LENGTH;
      this.remaining = length;
      return undefined;
    }
    this.state = S_BODY_UNTIL_CLOSE;
    return undefined;
  }

  // ── chunked framing ──

  /** Consumes chunk-size lines and the CRLF after chunk data; returns the new position or a reason. */
  private feedChunkFraming(chunk: Buffer, pos: number): number | string {
    const malformed = "malformed chunked body";
    while (pos < chunk.length) {
      const b = chunk[pos]!;
      switch (this.state) {
        case S_CHUNK_SIZE: {
          if (++this.chunkLineBytes > http1MaxChunkLineBytes) return malformed;
          const d = hexValue(b);
          if (d >= 0) {
            if (++this.chunkDigits > maxChunkSizeDigits) return malformed;
            this.remaining = this.remaining * 16 + d;
            pos++;
            continue;
          }
          if (this.chunkDigits === 0) return malformed;
          if (b === CR) this.state = S_CHUNK_SIZE_LF;
          else if (b === LF) return this.chunkSizeDone(pos + 1);
          else if (b === SEMICOLON || b === SP || b === HTAB) this.state = S_CHUNK_EXT;
          else return malformed;
          pos++;
          continue;
        }
        case S_CHUNK_EXT:
          if (++this.chunkLineBytes > http1MaxChunkLineBytes) return malformed;
          if (b === LF) return this.chunkSizeDone(pos + 1);
          pos++;
          continue;
        case S_CHUNK_SIZE_LF:
          if (b !== LF) return malformed;
          return this.chunkSizeDone(pos + 1);
        case S_CHUNK_DATA_CR:
          if (b === CR) {
            this.state = S_CHUNK_DATA_LF;
            pos++;
            continue;
          }
          if (b !== LF) return malformed;
          this.nextChunk();
          return pos + 1;
        case S_CHUNK_DATA_LF:
          if (b !== LF) return malformed;
          this.nextChunk();
          return pos + 1;
        default:
          return pos;
      }
    }
    return pos;
  }

  private chunkSizeDone(pos: number): number {
    // The last chunk ends the body; its trailers are not needed.
    this.state = this.remaining === 0 ? S_DONE : S_CHUNK_DATA;
    return pos;
  }

  private nextChunk(): void {
    this.state = S_CHUNK_SIZE;
    this.chunkLineBytes = 0;
    this.chunkDigits = 0;
    this.remaining = 0;
  }
}

/**
 * Where the head ends (just past its empty line) when buf[scan..] completes it; otherwise
 * -(start of the last incomplete line) - 1, where the next scan resumes.
 */
function headEnd(buf: Buffer, scan: number): number {
  let line = scan;
  for (;;) {
    const lf = buf.indexOf(LF, line);
    if (lf < 0) return -line - 1;
    if (lf === line || (lf === line + 1 && buf[line] === CR)) return lf + 1;
    line = lf + 1;
  }
}

function trimCr(buf: Buffer, start: number, lf: number): number {
  return lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
}

/** "HTTP/1.x DDD[ reason]" → DDD, or -1. */
function parseStatusLine(buf: Buffer, start: number, stop: number): number {
  if (stop - start < 12) return -1;
  // "HTTP/1."
  if (
    buf[start] !== 0x48 ||
    buf[start + 1] !== 0x54 ||
    buf[start + 2] !== 0x54 ||
    buf[start + 3] !== 0x50 ||
    buf[start + 4] !== 0x2f ||
    buf[start + 5] !== 0x31 ||
    buf[start + 6] !== 0x2e
  )
    return -1;
  if (!isDigit(buf[start + 7]!) || buf[start + 8] !== SP) return -1;
  const d0 = buf[start + 9]!;
  const d1 = buf[start + 10]!;
  const d2 = buf[start + 11]!;
  if (!isDigit(d0) || !isDigit(d1) || !isDigit(d2) || d0 === 0x30) return -1;
  if (stop > start + 12 && buf[start + 12] !== SP) return -1;
  return (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
}

const statusPrefix = Buffer.from("HTTP/1.", "latin1");

/** Whether buf[start, stop), an incomplete first line, can still become a status line. */
function startsLikeStatusLine(buf: Buffer, start: number, stop: number): boolean {
  const n = Math.min(stop - start, statusPrefix.length);
  for (let i = 0; i < n; i++) if (buf[start + i] !== statusPrefix[i]) return false;
  return true;
}

function quoteLine(buf: Buffer, start: number, stop: number): string {
  const text = buf.toString("latin1", start, Math.min(stop, start + maxQuotedStatusChars));
  return JSON.stringify(stop - start > maxQuotedStatusChars ? `${text}…` : text);
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const lower = b | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** ASCII case-insensitive comparison of buf[at..] with a lower-case name. */
function nameIs(buf: Buffer, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const want = lower.charCodeAt(i);
    const b = buf[at + i]!;
    if (b !== want && !(want >= 0x61 && want <= 0x7a && (b | 0x20) === want)) return false;
  }
  return true;
}
