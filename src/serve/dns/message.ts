// The query side of the wire format: the header and the one question are read by hand, so
// the question is echoed byte for byte (0x20 case randomisation, odd bytes in labels) and a
// malformed one is told apart from an unsupported one. dns-packet decodes the rest, where
// the EDNS0 OPT record lives.

import { decode } from "dns-packet";

export const dnsHeaderBytes = 12;
/**
 * Longest query read, over UDP or TCP. A real query is one question (at most 259 bytes) and
 * an OPT record with a few options; anything near this is not a query we could answer.
 */
export const maxDnsQueryBytes = 4096;
/** RFC 1035 §2.3.4: labels of 1–63 bytes, names of at most 255 bytes on the wire. */
export const maxDnsLabelBytes = 63;
export const maxDnsNameBytes = 255;

export const Rcode = {
  noError: 0,
  formErr: 1,
  servFail: 2,
  nxDomain: 3,
  notImp: 4,
  refused: 5,
  /** RFC 6891: an EDNS version we do not speak; 12 bits, carried half in the OPT record. */
  badVers: 16,
} as const;
export type Rcode = (typeof Rcode)[keyof typeof Rcode];

export const rcodeNames = {
  0: "NOERROR",
  1: "FORMERR",
  2: "SERVFAIL",
  3: "NXDOMAIN",
  4: "NOTIMP",
  5: "REFUSED",
  16: "BADVERS",
} as const satisfies Record<Rcode, string>;
export type RcodeName = (typeof rcodeNames)[Rcode];

export const QType = {
  a: 1,
  ns: 2,
  soa: 6,
  aaaa: 28,
  srv: 33,
  opt: 41,
  ixfr: 251,
  axfr: 252,
  mailb: 253,
  maila: 254,
  any: 255,
} as const;

export const QClass = { in: 1, any: 255 } as const;

export const opcodeQuery = 0;

export interface Edns {
  /** The requestor's UDP payload size as sent; the caller applies floor and cap. */
  udpPayloadBytes: number;
  version: number;
}

export interface Question {
  /** Labels as sent (one char per byte, case kept), without the root label. */
  labels: string[];
  /** The same labels with ASCII letters lowered: what names are matched on. */
  lowerLabels: string[];
  qtype: number;
  qclass: number;
  /** The question's wire bytes, echoed into the response unchanged. */
  wire: Buffer;
}

/** What the header says about how to answer, even when the rest is unusable. */
export interface QueryHeader {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
}

export type DropReason = "short" | "response" | "too_large";

export type ParsedQuery =
  | { kind: "drop"; reason: DropReason }
  /** A query we answer with an error rcode and no records. */
  | { kind: "reject"; header: QueryHeader; rcode: Rcode; question?: Question; edns?: Edns }
  | { kind: "query"; header: QueryHeader; question: Question; edns?: Edns };

const flagQr = 0x8000;
const flagRd = 0x0100;
const flagCd = 0x0010;

export function parseQuery(msg: Buffer): ParsedQuery {
  if (msg.length < dnsHeaderBytes) return { kind: "drop", reason: "short" };
  if (msg.length > maxDnsQueryBytes) return { kind: "drop", reason: "too_large" };
  const flags = msg.readUInt16BE(2);
  // Answering a response could start an endless FORMERR exchange between two servers (one
  // spoofed packet is enough), so responses are dropped, as BIND, Unbound and Knot do.
  if ((flags & flagQr) !== 0) return { kind: "drop", reason: "response" };
  const header: QueryHeader = {
    id: msg.readUInt16BE(0),
    opcode: (flags >> 11) & 0xf,
    rd: (flags & flagRd) !== 0,
    cd: (flags & flagCd) !== 0,
  };
  const qdCount = msg.readUInt16BE(4);
  const question = qdCount === 1 ? readQuestion(msg, dnsHeaderBytes) : undefined;
  if (header.opcode !== opcodeQuery) {
    return question === undefined
      ? { kind: "reject", header, rcode: Rcode.notImp }
      : { kind: "reject", header, rcode: Rcode.notImp, question };
  }
  if (question === undefined) return { kind: "reject", header, rcode: Rcode.formErr };
  if (question.qtype === QType.opt) return { kind: "reject", header, rcode: Rcode.formErr, question };
  const edns = readEdns(msg);
  if (edns === "malformed") return { kind: "reject", header, rcode: Rcode.formErr, question };
  if (edns === undefined) return { kind: "query", header, question };
  // RFC 6891 §6.1.3: answer BADVERS for versions we do not implement, with our OPT (version 0).
  if (edns.version !== 0) return { kind: "reject", header, rcode: Rcode.badVers, question, edns };
  return { kind: "query", header, question, edns };
}

/** The question at `offset`, or undefined when it is cut short or its name is malformed. */
function readQuestion(msg: Buffer, offset: number): Question | undefined {
  const labels: string[] = [];
  let at = offset;
  let nameBytes = 0;
  for (;;) {
    if (at >= msg.length) return undefined;
    const len = msg[at]!;
    nameBytes += len + 1;
    if (nameBytes > maxDnsNameBytes) return undefined;
    if (len === 0) {
      at += 1;
      break;
    }
    // Compression pointers (0xC0) and the reserved label types (0x40, 0x80) have nothing
    // earlier to point at in the first question, so either is malformed here.
    if (len > maxDnsLabelBytes) return undefined;
    if (at + 1 + len > msg.length) return undefined;
    labels.push(msg.toString("latin1", at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at + 4 > msg.length) return undefined;
  return {
    labels,
    lowerLabels: labels.map(lowerAscii),
    qtype: msg.readUInt16BE(at),
    qclass: msg.readUInt16BE(at + 2),
    wire: Buffer.from(msg.subarray(offset, at + 4)),
  };
}

/** DNS names compare case-insensitively in ASCII only (RFC 4343); other bytes stay as they are. */
export function lowerAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function readEdns(msg: Buffer): Edns | undefined | "malformed" {
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  if (records === 0) return undefined;
  let packet: ReturnType<typeof decode>;
  try {
    packet = decode(msg);
  } catch {
    return "malformed";
  }
  // RFC 6891 §6.1.1: one OPT at most, only in the additional section, owned by the root.
  const misplaced = [...(packet.answers ?? []), ...(packet.authorities ?? [])].some((r) => r.type === "OPT");
  const opts = (packet.additionals ?? []).filter((r) => r.type === "OPT");
  if (misplaced || opts.length > 1) return "malformed";
  const opt = opts[0];
  if (opt === undefined) return undefined;
  if (opt.name !== ".") return "malformed";
  return { udpPayloadBytes: opt.udpPayloadSize, version: opt.ednsVersion };
}
