import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttp1Server } from "node:http";
import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { decodeHealthCheckResponse, encodeHealthCheckFrame } from "../../src/checkers/grpc.ts";
import { createProber } from "../../src/checkers/index.ts";
import type { CheckResult } from "../../src/checkers/types.ts";
import type { GrpcCheckSpec } from "../../src/config/types.ts";
import { closedPort, listen, loopback, makeCerts, removeCerts, type TestCerts } from "./helpers.ts";

const healthPath = "/grpc.health.v1.Health/Check";

/** The test server's own decoder of a framed HealthCheckRequest (names under 128 bytes). */
function serviceOf(frame: Buffer): string {
  assert.equal(frame[0], 0, "uncompressed");
  const len = frame.readUInt32BE(1);
  assert.equal(frame.length, 5 + len);
  if (len === 0) return "";
  assert.equal(frame[5], 0x0a, "field 1, length-delimited");
  assert.ok(frame[6]! < 0x80);
  return frame.subarray(7, 7 + frame[6]!).toString("utf8");
}

function responseFrame(msg: number[]): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(b, 5);
  return b;
}

const servingStatus: Record<string, number> = { "": 1, app: 1, down: 2, watchonly: 3 };

function handleHealth(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  seen: IncomingHttpHeaders[],
): void {
  seen.push(headers);
  if (headers[":path"] !== healthPath) {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc", "grpc-status": "12" },
      { endStream: true },
    );
    return;
  }
  const chunks: Buffer[] = [];
  stream.on("data", (d: Buffer) => chunks.push(d));
  stream.on("end", () => {
    const service = serviceOf(Buffer.concat(chunks));
    if (service === "broken") {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": "13", "grpc-message": "disk%20on%20fire" }),
      );
      stream.end();
      return;
    }
    if (service === "garbage") {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(responseFrame([0x08])); // a tag with no value
      return;
    }
    const status = servingStatus[service];
    if (status === undefined) {
      // Trailers-only: the error rides in the headers.
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "5",
          "grpc-message": "unknown service",
        },
        { endStream: true },
      );
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(responseFrame([0x08, status]));
  });
}

describe("grpc checker", () => {
  const seen: IncomingHttpHeaders[] = [];
  const h2c: Http2Server = createServer();
  const notGrpc: Http2Server = createServer((_req, res) => {
    res.statusCode = 404;
    res.end("not found");
  });
  let secure: Http2SecureServer | undefined;
  let certs: TestCerts | undefined;
  let port = 0;
  let notGrpcPort = 0;
  let securePort = 0;
  const prober = createProber();

  before(async () => {
    h2c.on("stream", (stream, headers) => handleHealth(stream, headers, seen));
    certs = makeCerts();
    secure = createSecureServer({ key: readFileSync(certs.key), cert: readFileSync(certs.cert) });
    secure.on("stream", (stream, headers) => handleHealth(stream, headers, seen));
    [port, notGrpcPort, securePort] = await Promise.all([listen(h2c), listen(notGrpc), listen(secure)]);
  });

  after(async () => {
    await prober.close();
    const servers = [h2c, notGrpc, secure].filter((s) => s !== undefined);
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    removeCerts(certs);
  });

  function check(over: Partial<GrpcCheckSpec>, at = port): Promise<CheckResult> {
    const spec: GrpcCheckSpec = { type: "grpc", service: "", tls: false, tlsVerify: true, ...over };
    return prober.check({ spec, target: loopback(at), timeoutMs: 2000 });
  }

  it("is up when the service is SERVING, sending a well-formed gRPC request", async () => {
    seen.length = 0;
    const r = await check({ service: "app" });
    assert.deepEqual([r.ok, r.reason], [true, "SERVING"]);
    const whole = await check({ service: "", authority: "health.example:443" });
    assert.deepEqual([whole.ok, whole.reason], [true, "SERVING"]);
    const h = seen[0]!;
    assert.equal(h[":method"], "POST");
    assert.equal(h[":path"], healthPath);
    assert.equal(h["content-type"], "application/grpc");
    assert.equal(h.te, "trailers");
    assert.equal(h[":authority"], `127.0.0.1:${port}`);
    assert.equal(seen[1]![":authority"], "health.example:443");
  });

  it("is down on NOT_SERVING and SERVICE_UNKNOWN", async () => {
    assert.deepEqual(await check({ service: "down" }).then((r) => [r.ok, r.reason]), [false, "NOT_SERVING"]);
    assert.deepEqual(await check({ service: "watchonly" }).then((r) => [r.ok, r.reason]), [
      false,
      "SERVICE_UNKNOWN",
    ]);
  });

  it("reports a non-zero grpc-status with its name and message", async () => {
    const unknown = await check({ service: "nope" });
    assert.deepEqual([unknown.ok, unknown.reason], [false, "grpc-status 5 NOT_FOUND: unknown service"]);
    const broken = await check({ service: "broken" });
    assert.deepEqual([broken.ok, broken.reason], [false, "grpc-status 13 INTERNAL: disk on fire"]);
  });

  it("fails on a malformed HealthCheckResponse", async () => {
    const r = await check({ service: "garbage" });
    assert.deepEqual([r.ok, r.reason], [false, "malformed HealthCheckResponse"]);
  });

  it("fails on an HTTP/2 server that is not gRPC", async () => {
    const r = await check({}, notGrpcPort);
    assert.deepEqual([r.ok, r.reason], [false, "status 404 (not a gRPC response)"]);
  });

  it("fails on an HTTP/1 server", async () => {
    const h1 = createHttp1Server((_req, res) => res.end("hello"));
    try {
      const r = await check({}, await listen(h1));
      assert.deepEqual([r.ok, r.reason], [false, "http2 protocol error (not an HTTP/2 server?)"]);
    } finally {
      h1.closeAllConnections();
      await new Promise((resolve) => h1.close(resolve));
    }
  });

  it("reports a refused connection", async () => {
    const r = await check({}, await closedPort());
    assert.deepEqual([r.ok, r.reason], [false, "connect ECONNREFUSED"]);
  });

  it("speaks TLS when asked, verifying the certificate", async () => {
    const untrusted = await check({ tls: true, service: "app" }, securePort);
    assert.equal(untrusted.ok, false);
    assert.match(untrusted.reason, /self-signed certificate/);
    const trusted = await check({ tls: true, tlsCa: certs!.cert, service: "app" }, securePort);
    assert.deepEqual([trusted.ok, trusted.reason], [true, "SERVING"]);
    const unverified = await check({ tls: true, tlsVerify: false, service: "down" }, securePort);
    assert.deepEqual([unverified.ok, unverified.reason], [false, "NOT_SERVING"]);
  });

  describe("codec", () => {
    it("frames a HealthCheckRequest that a decoder reads back", () => {
      assert.deepEqual([...encodeHealthCheckFrame("")], [0, 0, 0, 0, 0]);
      assert.deepEqual([...encodeHealthCheckFrame("ab")], [0, 0, 0, 0, 4, 0x0a, 2, 0x61, 0x62]);
      fc.assert(
        fc.property(fc.string({ maxLength: 127 }), (s) => {
          fc.pre(Buffer.byteLength(s) < 128);
          assert.equal(serviceOf(encodeHealthCheckFrame(s)), s);
        }),
      );
      // A 300-byte name needs a two-byte length varint: 300 = 0xac 0x02.
      const long = encodeHealthCheckFrame("x".repeat(300));
      assert.deepEqual([...long.subarray(0, 8)], [0, 0, 0, 1, 47, 0x0a, 0xac, 0x02]);
      assert.equal(long.length, 5 + 303);
    });

    it("decodes the status, skipping unknown fields", () => {
      assert.equal(decodeHealthCheckResponse(Buffer.from([])), 0);
      assert.equal(decodeHealthCheckResponse(Buffer.from([0x08, 0x02])), 2);
      // field 2 varint 300, field 3 bytes "hi", field 4 fixed32, field 5 fixed64, then status 1
      const mixed = [
        0x10, 0xac, 0x02, 0x1a, 2, 0x68, 0x69, 0x25, 1, 2, 3, 4, 0x29, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 1,
      ];
      assert.equal(decodeHealthCheckResponse(Buffer.from(mixed)), 1);
    });

    it("rejects bytes that are not a message", () => {
      for (const bad of [[0x08], [0x08, 0x80], [0x0b], [0x1a, 5, 1], [0x25, 1, 2], [0x80, 0x80, 0x80]]) {
        assert.equal(decodeHealthCheckResponse(Buffer.from(bad)), undefined, JSON.stringify(bad));
      }
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
          const status = decodeHealthCheckResponse(bytes);
          assert.ok(status === undefined || (Number.isInteger(status) && status >= 0));
        }),
      );
    });

    it("reads any status after any unknown varint fields", () => {
      const varint = (n: number) => {
        const out: number[] = [];
        while (n >= 0x80) {
          out.push((n % 0x80) | 0x80);
          n = Math.floor(n / 0x80);
        }
        out.push(n);
        return out;
      };
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.integer({ min: 2, max: 1000 }), fc.nat()), { maxLength: 5 }),
          fc.nat(),
          (others, status) => {
            const bytes = others.flatMap(([field, v]) => [...varint(field * 8), ...varint(v)]);
            bytes.push(0x08, ...varint(status));
            assert.equal(decodeHealthCheckResponse(Buffer.from(bytes)), status);
          },
        ),
      );
    });
  });
});
