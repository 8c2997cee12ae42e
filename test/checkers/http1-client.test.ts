import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  encodeRequest,
  Http1ResponseParser,
  http1MaxChunkLineBytes,
  http1MaxHeadBytes,
  type ResponseSink,
} from "../../src/checkers/http1-client.ts";

/** Records what the parser reports; `stopAt` makes the sink refuse more after a point. */
class Recorder implements ResponseSink {
  statuses: number[] = [];
  body: Buffer[] = [];
  ends = 0;
  private readonly stopAt: "head" | "body" | undefined;
  constructor(stopAt?: "head" | "body") {
    this.stopAt = stopAt;
  }
  onHead(status: number): boolean {
    this.statuses.push(status);
    return this.stopAt !== "head";
  }
  onBody(bytes: Buffer): boolean {
    this.body.push(Buffer.from(bytes));
    return this.stopAt !== "body";
  }
  onEnd(): void {
    this.ends++;
  }
  get text(): string {
    return Buffer.concat(this.body).toString("latin1");
  }
}

interface Outcome {
  statuses: number[];
  body: string;
  ends: number;
  error: string | undefined;
}

/** Feeds `wire` cut at `cuts`, then (optionally) the peer's close. */
function parse(
  wire: string | Buffer,
  cuts: number[] = [],
  opts: { close?: boolean; head?: boolean } = {},
): Outcome {
  const bytes = typeof wire === "string" ? Buffer.from(wire, "latin1") : wire;
  const p = new Http1ResponseParser({ headRequest: opts.head ?? false });
  const sink = new Recorder();
  let error: string | undefined;
  let at = 0;
  // Every read lands in one reused buffer, as the checker's do (onread): the parser must copy
  // what it keeps of a read (a head that spans reads) before the next read overwrites it.
  const reused = Buffer.alloc(bytes.length + 1);
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    if (error !== undefined) break;
    reused.fill(0x3f);
    bytes.copy(reused, 0, at, cut);
    error = p.feed(reused.subarray(0, cut - at), sink);
    at = cut;
  }
  if (error === undefined && opts.close) error = p.close(sink);
  return { statuses: sink.statuses, body: sink.text, ends: sink.ends, error };
}

const ok = (body: string, status = 200): Outcome => ({ statuses: [status], body, ends: 1, error: undefined });

const chunked =
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n" +
  "5;name=value\r\nhello\r\n" +
  "1\r\n \r\n" +
  "A\r\nNEEDLE-wor\r\n" +
  "0\r\nX-Trailer: 1\r\n\r\n";

describe("encodeRequest", () => {
  it("writes the request line, Host first, then the headers in order", () => {
    const bytes = encodeRequest({
      method: "POST",
      path: "/health?x=1",
      host: "app.example:8080",
      headers: ["X-Probe", "vigil", "Content-Length", "0"],
    });
    assert.equal(
      bytes.toString("latin1"),
      "POST /health?x=1 HTTP/1.1\r\nHost: app.example:8080\r\nX-Probe: vigil\r\nContent-Length: 0\r\n\r\n",
    );
  });

  it("ends an announced chunked body with its last chunk", () => {
    const bytes = encodeRequest({
      method: "POST",
      path: "/",
      host: "h",
      headers: ["Transfer-Encoding", "chunked"],
      emptyChunkedBody: true,
    });
    assert.equal(
      bytes.toString("latin1"),
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
  });

  it("refuses what would corrupt the request, naming the part", () => {
    const base = { method: "GET", path: "/", host: "h", headers: [] as string[] };
    assert.throws(() => encodeRequest({ ...base, headers: ["X-Bad", "a\r\nInjected: 1"] }), /"X-Bad"/);
    assert.throws(() => encodeRequest({ ...base, headers: ["Bad Name", "v"] }), /header name "Bad Name"/);
    assert.throws(() => encodeRequest({ ...base, headers: ["", "v"] }), /header name ""/);
    assert.throws(() => encodeRequest({ ...base, host: "h\nx" }), /"Host"/);
    assert.throws(() => encodeRequest({ ...base, method: "GE T" }), /method "GE T"/);
    assert.throws(() => encodeRequest({ ...base, path: "/a b" }), /path "\/a b"/);
    assert.throws(() => encodeRequest({ ...base, path: "" }), /path/);
  });
});

describe("Http1ResponseParser", () => {
  it("reads a Content-Length body and ends at its length, ignoring what follows", () => {
    assert.deepEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more"), ok("hello"));
    assert.deepEqual(parse("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"), ok("", 503));
  });

  it("reads a chunked body the same however the bytes are cut", () => {
    const whole = parse(chunked);
    assert.deepEqual(whole, ok("hello NEEDLE-wor"));
    // Every single cut and every pair of cuts: sizes, extensions, CRLFs and data all split.
    for (let i = 1; i < chunked.length; i++) {
      assert.deepEqual(parse(chunked, [i]), whole, `cut at ${i}`);
      for (let j = i + 1; j < chunked.length; j++) assert.deepEqual(parse(chunked, [i, j]), whole);
    }
    const bytewise = [...Array(chunked.length).keys()];
    assert.deepEqual(parse(chunked, bytewise), whole);
  });

  it("reads a head split anywhere across reads", () => {
    const wire = "HTTP/1.1 204 No Content\r\nServer: x\r\nX-Long: " + "y".repeat(3000) + "\r\n\r\n";
    for (let i = 1; i < wire.length; i += 7) assert.deepEqual(parse(wire, [i, i + 1, i + 2]), ok("", 204));
    assert.deepEqual(parse(wire, [...Array(wire.length).keys()]), ok("", 204));
  });

  it("accepts bare LF line endings and a status line without a reason phrase", () => {
    assert.deepEqual(parse("HTTP/1.1 200\nContent-Length: 2\n\nok"), ok("ok"));
    assert.deepEqual(parse("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"), ok("", 404));
    assert.deepEqual(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n"), ok("ok"));
  });

  it("quotes a malformed status line", () => {
    const bad = [
      ["SSH-2.0-OpenSSH_9.6\r\n\r\n", 'malformed status line "SSH-2.0-OpenSSH_9.6"'],
      ["HTTP/1.1 20 OK\r\n\r\n", 'malformed status line "HTTP/1.1 20 OK"'],
      ["HTTP/2 200\r\n\r\n", 'malformed status line "HTTP/2 200"'],
      ["HTTP/1.1 200OK\r\n\r\n", 'malformed status line "HTTP/1.1 200OK"'],
      ["HTTP/1.1 099 Low\r\n\r\n", 'malformed status line "HTTP/1.1 099 Low"'],
      ["\r\nHTTP/1.1 200 OK\r\n\r\n", 'malformed status line ""'],
      [`HTTP/1.1 2${"0".repeat(60)}\r\n\r\n`, `malformed status line "HTTP/1.1 2${"0".repeat(30)}…"`],
    ] as const;
    for (const [wire, reason] of bad) {
      const r = parse(wire);
      assert.deepEqual([r.error, r.statuses], [reason, []], wire);
    }
    // A banner fails as soon as its first line (or its first bytes) cannot be a status line.
    assert.equal(parse("SSH-2.0-OpenSSH_9.6\r\n").error, 'malformed status line "SSH-2.0-OpenSSH_9.6"');
    assert.equal(parse("+OK POP3").error, 'malformed status line "+OK POP3"');
    assert.equal(parse("HTTP/1.1 2").error, undefined);
  });

  it("refuses a malformed header line", () => {
    for (const line of ["NoColon", ": empty-name", "Content-Length : 5"]) {
      const r = parse(`HTTP/1.1 200 OK\r\n${line}\r\n\r\n`);
      assert.deepEqual([r.error, r.statuses], ["malformed header line", []], line);
    }
  });

  it("fails a head over the bound, whole or trickled, and takes one exactly at it", () => {
    const head = (size: number) => {
      const start = "HTTP/1.1 200 OK\r\nX-Fill: ";
      return `${start}${"f".repeat(size - start.length - 4)}\r\n\r\n`;
    };
    assert.equal(head(http1MaxHeadBytes).length, http1MaxHeadBytes);
    assert.deepEqual(parse(head(http1MaxHeadBytes), [], { close: true }), ok(""));
    const over = head(http1MaxHeadBytes + 1);
    assert.equal(parse(over).error, "response headers too large");
    assert.equal(parse(over, [100, 5000, 9000]).error, "response headers too large");
    // A head that never ends is cut off at the bound, not buffered without end.
    const endless = `HTTP/1.1 200 OK\r\n${"X: y\r\n".repeat(4000)}`;
    assert.equal(parse(endless, [10, 20, 16000]).error, "response headers too large");
  });

  it("skips interim 1xx responses, counting them against the head bound", () => {
    const interim =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n";
    const wire = `${interim}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`;
    assert.deepEqual(parse(wire), ok("ok"));
    for (let i = 1; i < wire.length; i++) assert.deepEqual(parse(wire, [i]), ok("ok"), `cut at ${i}`);
    // 101 is final: nothing else would follow on this protocol.
    assert.deepEqual(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), ok("", 101));
    const flood = "HTTP/1.1 100 Continue\r\n\r\n".repeat(http1MaxHeadBytes / 25 + 1);
    assert.equal(parse(flood).error, "response headers too large");
  });

  it("reads an HTTP/1.0 body until the close, or by its length", () => {
    const closeDelimited = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold school";
    const open = parse(closeDelimited);
    assert.deepEqual([open.body, open.ends, open.error], ["old school", 0, undefined]);
    assert.deepEqual(parse(closeDelimited, [30, 50], { close: true }), ok("old school"));
    assert.deepEqual(parse("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"), ok("abc"));
  });

  it("has no body for HEAD, 204 and 304, whatever the headers say", () => {
    assert.deepEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", [], { head: true }), ok(""));
    assert.deepEqual(parse("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"), ok("", 204));
    assert.deepEqual(parse("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"), ok("", 304));
  });

  it("frames by Transfer-Encoding over Content-Length, chunked only when it is the last coding", () => {
    const both =
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert.deepEqual(parse(both), ok("abc"));
    const listed = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert.deepEqual(parse(listed), ok("abc"));
    const twice =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n";
    assert.deepEqual(parse(twice), ok("z"));
    const folded = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n";
    assert.deepEqual(parse(folded), ok("z"));
    const notLast = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc";
    assert.deepEqual(parse(notLast, [], { close: true }), ok("3\r\nabc"));
  });

  it("refuses a Content-Length that is not one number", () => {
    for (const v of ["abc", "-1", "5, 6", "", "1e3", "0x10"]) {
      const r = parse(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\n`);
      assert.deepEqual([r.error, r.statuses], ["bad content-length", []], v);
    }
    assert.deepEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"), ok("ok"));
    const dup = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok");
    assert.equal(dup.error, "bad content-length");
  });

  it("refuses malformed chunk framing", () => {
    const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const bad = [
      "zz\r\n",
      "\r\n",
      "3\r\nabcX\r\n",
      "3\r\nabc\rX",
      "3 x\r\nabc\r\n0\r\n\r\n".replace(" x", "\u0000"),
      `${"f".repeat(14)}\r\n`,
      `1;${"e".repeat(http1MaxChunkLineBytes)}\r\n`,
    ];
    for (const body of bad) {
      const r = parse(head + body);
      assert.deepEqual([r.error, r.statuses], ["malformed chunked body", [200]], JSON.stringify(body));
    }
    // Chunk extensions within the bound are skipped.
    assert.deepEqual(parse(`${head}1;a=b ; c\r\nx\r\n0\r\n\r\n`), ok("x"));
  });

  it("names a response cut short by the close", () => {
    assert.equal(parse("", [], { close: true }).error, "socket hang up");
    assert.equal(
      parse("HTTP/1.1 200 OK\r\nConte", [], { close: true }).error,
      "connection closed in the response headers",
    );
    assert.equal(
      parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", [], { close: true }).error,
      "read ECONNRESET",
    );
    const midChunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
    assert.equal(parse(midChunk, [], { close: true }).error, "read ECONNRESET");
    // A complete response is not harmed by the close after it.
    assert.deepEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [], { close: true }), ok(""));
  });

  it("stops at once when the sink says so", () => {
    const p = new Http1ResponseParser({ headRequest: false });
    const atHead = new Recorder("head");
    assert.equal(p.feed(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"), atHead), undefined);
    assert.deepEqual([atHead.statuses, atHead.body.length, atHead.ends, p.done], [[200], 0, 0, true]);
    assert.equal(p.feed(Buffer.from("garbage"), atHead), undefined);
    assert.equal(p.close(atHead), undefined);

    const q = new Http1ResponseParser({ headRequest: false });
    const atBody = new Recorder("body");
    q.feed(
      Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
      atBody,
    );
    assert.deepEqual([atBody.text, atBody.ends, q.done], ["ab", 0, true]);
  });

  it("reports the same response however a random one is cut into reads", () => {
    const responseArb = fc.record({
      // Not 204 or 304: those have no body whatever the framing says (tested above).
      status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304),
      headers: fc.array(
        fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/), fc.stringMatching(/^[ -~]{0,40}$/)),
        { maxLength: 6 },
      ),
      body: fc.uint8Array({ maxLength: 300 }),
      framing: fc.constantFrom("length", "chunked", "close"),
      chunkSizes: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
      interim: fc.boolean(),
      lf: fc.boolean(),
    });
    fc.assert(
      fc.property(responseArb, fc.array(fc.nat(), { maxLength: 12 }), (r, cutSeeds) => {
        const eol = r.lf ? "\n" : "\r\n";
        const headers = r.headers.filter(
          ([n]) => !["content-length", "transfer-encoding"].includes(n.toLowerCase()),
        );
        let head = `HTTP/1.1 ${r.status} X${eol}`;
        for (const [n, v] of headers) head += `${n}: ${v}${eol}`;
        const body = Buffer.from(r.body);
        let payload = body;
        if (r.framing === "length") head += `Content-Length: ${body.length}${eol}`;
        if (r.framing === "chunked") {
          head += `Transfer-Encoding: chunked${eol}`;
          const parts: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < body.length; i++) {
            const n = Math.min(r.chunkSizes[i % r.chunkSizes.length]!, body.length - at);
            parts.push(Buffer.from(`${n.toString(16)}${eol}`), body.subarray(at, at + n), Buffer.from(eol));
            at += n;
          }
          parts.push(Buffer.from(`0${eol}${eol}`));
          payload = Buffer.concat(parts);
        }
        const interim = r.interim ? `HTTP/1.1 100 Continue${eol}${eol}` : "";
        const wire = Buffer.concat([Buffer.from(interim + head + eol, "latin1"), payload]);
        const cuts = cutSeeds.map((c) => c % (wire.length + 1));
        const out = parse(wire, cuts, { close: r.framing === "close" });
        assert.deepEqual(out, {
          statuses: [r.status],
          body: body.toString("latin1"),
          ends: 1,
          error: undefined,
        });
      }),
      { numRuns: 500 },
    );
  });
});
