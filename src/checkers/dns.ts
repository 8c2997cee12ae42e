// DNS checks: one query to the resolver at the target, over UDP (retried over TCP when the
// reply is truncated) or TCP. The reply must carry our random id, be a response, have
// rcode NOERROR and, when asked, an answer equal to `expectAnswer`.

import { randomInt } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { isIPv6, connect as netConnect, type Socket } from "node:net";
import { type Answer, decode, encode, RECURSION_DESIRED } from "dns-packet";
import { canonicalIPv6 } from "../config/address.ts";
import type { DnsCheckSpec } from "../config/types.ts";
import { Attempt, type CheckerContext } from "./attempt.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

/** DNS header size: anything shorter cannot be a reply. */
const dnsHeaderBytes = 12;
/** Answers quoted in a mismatch reason; the reason is cut anyway, this keeps the work small. */
const maxAnswersInReason = 3;

const rcodeNames = [
  "NOERROR",
  "FORMERR",
  "SERVFAIL",
  "NXDOMAIN",
  "NOTIMP",
  "REFUSED",
  "YXDOMAIN",
  "YXRRSET",
  "NXRRSET",
  "NOTAUTH",
  "NOTZONE",
];

export function checkDns(spec: DnsCheckSpec, req: CheckRequest, ctx: CheckerContext): Promise<CheckResult> {
  return new DnsAttempt(spec, req, ctx).run();
}

class DnsAttempt extends Attempt {
  private readonly spec: DnsCheckSpec;
  private readonly host: string;
  private readonly port: number;
  private id = 0;
  private query: Buffer | undefined;
  private udp: UdpSocket | undefined;
  private tcp: Socket | undefined;
  private tcpChunks: Buffer[] = [];
  private tcpBytes = 0;
  private retriedOverTcp = false;

  constructor(spec: DnsCheckSpec, req: CheckRequest, ctx: CheckerContext) {
    super(req, ctx.inflight);
    this.spec = spec;
    this.host = req.target.host;
    this.port = req.target.port;
  }

  protected start(): void {
    this.id = randomInt(0x10000);
    this.query = encode({
      type: "query",
      id: this.id,
      flags: RECURSION_DESIRED,
      questions: [{ type: this.spec.recordType, name: this.spec.name }],
    });
    if (this.spec.protocol === "tcp") this.startTcp();
    else this.startUdp();
  }

  private startUdp(): void {
    const udp = createSocket(isIPv6(this.host) ? "udp6" : "udp4");
    this.udp = udp;
    udp.on("error", this.onError);
    udp.on("message", this.onUdpMessage);
    // A connected socket only hears from the resolver, and learns of an ICMP refusal.
    udp.connect(this.port, this.host, this.onUdpConnected);
  }

  // Node passes the failure of a connect (a name that does not resolve) to this callback.
  private readonly onUdpConnected = (err?: Error | null): void => {
    if (this.settled) return;
    if (err) {
      this.fail(err);
      return;
    }
    this.udp!.send(this.query!, this.onSent);
  };

  private readonly onSent = (err: Error | null): void => {
    if (err) this.fail(err);
  };

  private readonly onUdpMessage = (msg: Buffer): void => {
    // A reply for an earlier query (or a forged one) is not ours: keep waiting.
    if (msg.length >= 2 && msg.readUInt16BE(0) !== this.id) return;
    this.judge(msg);
  };

  private startTcp(): void {
    const tcp = netConnect({ host: this.host, port: this.port });
    this.tcp = tcp;
    tcp.on("error", this.onError);
    tcp.on("data", this.onTcpData);
    tcp.on("end", this.onTcpEnd);
    const q = this.query!;
    const framed = Buffer.allocUnsafe(2 + q.length);
    framed.writeUInt16BE(q.length, 0);
    q.copy(framed, 2);
    tcp.write(framed);
  }

  private readonly onTcpData = (chunk: Buffer): void => {
    // The 2-byte length prefix bounds what is kept to 64 KiB + 2.
    this.tcpChunks.push(chunk);
    this.tcpBytes += chunk.length;
    if (this.tcpBytes < 2) return;
    const buf = this.tcpChunks.length === 1 ? chunk : Buffer.concat(this.tcpChunks, this.tcpBytes);
    this.tcpChunks = [buf];
    const len = buf.readUInt16BE(0);
    if (this.tcpBytes < 2 + len) return;
    const msg = buf.subarray(2, 2 + len);
    if (msg.length >= 2 && msg.readUInt16BE(0) !== this.id) {
      this.finish(false, "reply id mismatch");
      return;
    }
    this.judge(msg);
  };

  private readonly onTcpEnd = (): void => {
    this.finish(false, `connection closed after ${this.tcpBytes} bytes, before a full reply`);
  };

  private readonly onError = (err: Error): void => {
    this.fail(err);
  };

  private judge(msg: Buffer): void {
    if (msg.length < dnsHeaderBytes) {
      this.finish(false, "malformed reply");
      return;
    }
    let reply: ReturnType<typeof decode>;
    try {
      reply = decode(msg);
    } catch {
      this.finish(false, "malformed reply");
      return;
    }
    if (!reply.flag_qr) {
      this.finish(false, "malformed reply (not a response)");
      return;
    }
    if (reply.flag_tc && this.tcp === undefined) {
      this.retriedOverTcp = true;
      closeQuietly(this.udp!);
      this.udp = undefined;
      this.startTcp();
      return;
    }
    const rcode = (reply.flags ?? 0) & 0xf;
    if (rcode !== 0) {
      this.finish(false, rcodeNames[rcode] ?? `rcode ${rcode}`);
      return;
    }
    const answers = reply.answers ?? [];
    const via = this.retriedOverTcp ? " (tcp after truncation)" : "";
    const want = this.spec.expectAnswer;
    if (want !== undefined && !answers.some((a) => answerMatches(a, want))) {
      const got = answers.slice(0, maxAnswersInReason).map(answerText).join(", ");
      this.finish(false, `no answer equals ${JSON.stringify(want)} (got ${got === "" ? "none" : got})`);
      return;
    }
    this.finish(true, `${answers.length} answer${answers.length === 1 ? "" : "s"}${via}`);
  }

  protected release(): void {
    if (this.udp !== undefined) closeQuietly(this.udp);
    this.tcp?.destroy();
  }
}

function closeQuietly(udp: UdpSocket): void {
  try {
    udp.close();
  } catch {
    // Already closed by a failed bind or connect: nothing left to release.
  }
}

/** Names compare case-insensitively and without the root dot. */
function normName(s: string): string {
  const lower = s.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** "2001:DB8:0:0::1" and "2001:db8::1" are the same address; anything else compares as is. */
function comparableIpv6(s: string): string {
  return isIPv6(s) ? canonicalIPv6(s) : s;
}

function txtText(data: unknown): string {
  const parts = Array.isArray(data) ? data : [data];
  return parts.map((p) => (Buffer.isBuffer(p) ? p.toString("utf8") : String(p))).join("");
}

/**
 * Whether one answer's data equals `want`. For MX, SRV and SOA `want` may be the name alone
 * ("mail.example.com") or the presentation form ("10 mail.example.com").
 */
export function answerMatches(a: Answer, want: string): boolean {
  switch (a.type) {
    case "A":
      return a.data === want.trim();
    case "AAAA":
      return comparableIpv6(a.data) === comparableIpv6(want.trim());
    case "CNAME":
    case "DNAME":
    case "NS":
    case "PTR":
      return normName(a.data) === normName(want);
    case "MX":
      return normName(a.data.exchange) === normName(want) || normName(answerText(a)) === normName(want);
    case "SRV":
      return normName(a.data.target) === normName(want) || normName(answerText(a)) === normName(want);
    case "SOA":
      return normName(a.data.mname) === normName(want);
    case "TXT":
      return txtText(a.data) === want;
    default:
      return false;
  }
}

/** An answer's data in presentation form, for reasons. */
export function answerText(a: Answer): string {
  switch (a.type) {
    case "A":
    case "AAAA":
    case "CNAME":
    case "DNAME":
    case "NS":
    case "PTR":
      return a.data;
    case "MX":
      return `${a.data.preference} ${a.data.exchange}`;
    case "SRV":
      return `${a.data.priority} ${a.data.weight} ${a.data.port} ${a.data.target}`;
    case "SOA":
      return a.data.mname;
    case "TXT":
      return JSON.stringify(txtText(a.data));
    default:
      return a.type;
  }
}
