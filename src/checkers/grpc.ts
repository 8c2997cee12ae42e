// gRPC checks: one unary grpc.health.v1.Health/Check call over a fresh HTTP/2 session (h2c,
// or TLS with ALPN h2). The two messages are tiny, so they are encoded and decoded here
// rather than through a protobuf library.

import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as h2Connect,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from "node:http2";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { GrpcCheckSpec, TargetAddr } from "../config/types.ts";
import { Attempt, type CheckerContext } from "./attempt.ts";
import type { TlsContexts } from "./tls-context.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

/** Bytes of response data accepted; a HealthCheckResponse is 7 bytes framed. More is a failure. */
export const grpcMaxResponseBytes = 4096;

const healthCheckPath = "/grpc.health.v1.Health/Check";

/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const servingStatusNames = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
const servingStatusServing = 1;

const grpcStatusNames = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** A HealthCheckRequest{service} in a gRPC length-prefixed frame (uncompressed). */
export function encodeHealthCheckFrame(service: string): Buffer {
  const name = Buffer.from(service, "utf8");
  // proto3 leaves a default (empty) string off the wire.
  const msgBytes = name.length === 0 ? 0 : 1 + varintBytes(name.length) + name.length;
  const frame = Buffer.alloc(5 + msgBytes);
  frame.writeUInt32BE(msgBytes, 1);
  if (name.length > 0) {
    let o = 5;
    frame[o++] = 0x0a; // field 1, wire type 2 (length-delimited)
    for (let n = name.length; ; ) {
      if (n < 0x80) {
        frame[o++] = n;
        break;
      }
      frame[o++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    name.copy(frame, o);
  }
  return frame;
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n >>>= 7;
    bytes++;
  }
  return bytes;
}

/**
 * The `status` of a HealthCheckResponse message (without the frame prefix); 0 when absent,
 * as proto3 defines. Unknown fields are skipped. Undefined when the bytes are not a message.
 */
export function decodeHealthCheckResponse(msg: Uint8Array): number | undefined {
  let status = 0;
  let o = 0;
  while (o < msg.length) {
    const tag = readVarint(msg, o);
    if (tag === undefined) return undefined;
    o = tag.next;
    const field = Math.floor(tag.value / 8);
    switch (tag.value % 8) {
      case 0: {
        const v = readVarint(msg, o);
        if (v === undefined) return undefined;
        o = v.next;
        if (field === 1) status = v.value;
        break;
      }
      case 1:
        o += 8;
        break;
      case 2: {
        const len = readVarint(msg, o);
        if (len === undefined) return undefined;
        o = len.next + len.value;
        break;
      }
      case 5:
        o += 4;
        break;
      default:
        return undefined;
    }
    if (o > msg.length) return undefined;
  }
  return status;
}

/** A protobuf varint (at most 10 bytes); undefined when it runs past the end or is too long. */
function readVarint(buf: Uint8Array, start: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let o = start; o < buf.length && o < start + 10; o++) {
    const b = buf[o]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, next: o + 1 };
    scale *= 128;
  }
  return undefined;
}

function grpcStatusReason(code: string, message: string | undefined): string {
  const name = grpcStatusNames[Number(code)];
  let text = `grpc-status ${code}${name === undefined ? "" : ` ${name}`}`;
  if (message !== undefined && message !== "") {
    let decoded = message;
    try {
      decoded = decodeURIComponent(message);
    } catch {
      // grpc-message is percent-encoded by the spec; show a malformed one as sent.
    }
    text += `: ${decoded}`;
  }
  return text;
}

function headerString(h: IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

export function checkGrpc(spec: GrpcCheckSpec, req: CheckRequest, ctx: CheckerContext): Promise<CheckResult> {
  return new GrpcAttempt(spec, req, ctx).run();
}

class GrpcAttempt extends Attempt {
  private readonly tls: TlsContexts;
  private readonly spec: GrpcCheckSpec;
  private readonly target: TargetAddr;
  private session: ClientHttp2Session | undefined;
  private headers: (IncomingHttpHeaders & IncomingHttpStatusHeader) | undefined;
  private trailers: IncomingHttpHeaders | undefined;
  private chunks: Buffer[] = [];
  private dataBytes = 0;

  constructor(spec: GrpcCheckSpec, req: CheckRequest, ctx: CheckerContext) {
    super(req, ctx.inflight);
    this.tls = ctx.tls;
    this.spec = spec;
    this.target = req.target;
  }

  protected start(): void {
    const spec = this.spec;
    const target = this.target;
    const authority = spec.authority ?? target.key;
    const createConnection = spec.tls
      ? this.tlsSocket(authority)
      : () => netConnect(target.port, target.host);
    const session = h2Connect(`${spec.tls ? "https" : "http"}://${target.key}`, { createConnection });
    this.session = session;
    session.on("error", this.onError);
    const stream = session.request(
      {
        ":method": "POST",
        ":path": healthCheckPath,
        ":authority": authority,
        "content-type": "application/grpc",
        te: "trailers",
      },
      { endStream: false },
    );
    stream.on("response", this.onResponse);
    stream.on("data", this.onData);
    stream.on("trailers", this.onTrailers);
    stream.on("end", this.onEnd);
    stream.on("error", this.onError);
    stream.on("close", () => this.onClose(stream));
    stream.end(encodeHealthCheckFrame(spec.service));
  }

  private tlsSocket(authority: string): () => Socket {
    const spec = this.spec;
    const target = this.target;
    const trust = this.tls.get(spec.tlsCa);
    const authorityHost = authority.startsWith("[") ? "" : authority.replace(/:\d+$/, "");
    let servername = "";
    if (authorityHost !== "" && isIP(authorityHost) === 0) servername = authorityHost;
    else if (isIP(target.host) === 0) servername = target.host;
    return () =>
      tlsConnect({
        host: target.host,
        port: target.port,
        servername,
        secureContext: trust.context,
        rejectUnauthorized: spec.tlsVerify,
        ALPNProtocols: ["h2"],
      });
  }

  private readonly onResponse = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void => {
    this.headers = headers;
    const status = headers[":status"];
    if (status !== 200) {
      this.finish(false, `status ${status} (not a gRPC response)`);
      return;
    }
    const type = headerString(headers, "content-type") ?? "";
    if (!type.startsWith("application/grpc")) {
      this.finish(false, `not a gRPC response (content-type ${type === "" ? "missing" : type})`);
    }
  };

  private readonly onData = (chunk: Buffer): void => {
    this.dataBytes += chunk.length;
    if (this.dataBytes > grpcMaxResponseBytes) {
      this.finish(false, `response larger than ${grpcMaxResponseBytes} bytes`);
      return;
    }
    this.chunks.push(chunk);
  };

  private readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.trailers = trailers;
  };

  private readonly onEnd = (): void => {
    // A trailers-only response (the usual form of an error) carries grpc-status in its headers.
    const source = this.trailers ?? this.headers;
    const code = headerString(source, "grpc-status");
    if (code === undefined) {
      this.finish(false, "no grpc-status in the response");
      return;
    }
    if (code !== "0") {
      this.finish(false, grpcStatusReason(code, headerString(source, "grpc-message")));
      return;
    }
    const body = Buffer.concat(this.chunks, this.dataBytes);
    if (body.length < 5) {
      this.finish(false, "no HealthCheckResponse in the response");
      return;
    }
    if (body[0] !== 0) {
      this.finish(false, "compressed response (none was offered)");
      return;
    }
    const msgBytes = body.readUInt32BE(1);
    if (body.length !== 5 + msgBytes) {
      this.finish(false, "malformed response frame");
      return;
    }
    const status = decodeHealthCheckResponse(body.subarray(5));
    if (status === undefined) {
      this.finish(false, "malformed HealthCheckResponse");
      return;
    }
    const name = servingStatusNames[status] ?? `status ${status}`;
    this.finish(status === servingStatusServing, name);
  };

  private onClose(stream: ClientHttp2Stream): void {
    if (this.settled) return;
    this.finish(false, `stream closed without a response (code ${stream.rstCode ?? 0})`);
  }

  private readonly onError = (err: Error): void => {
    // nghttp2 says only "Protocol error" when the peer answers the preface with HTTP/1.
    if ((err as NodeJS.ErrnoException).code === "ERR_HTTP2_ERROR") {
      this.finish(false, `http2 ${err.message.toLowerCase()} (not an HTTP/2 server?)`);
      return;
    }
    this.fail(err);
  };

  protected release(): void {
    this.session?.destroy();
  }
}
