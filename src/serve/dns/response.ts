// Encodes a response within a size limit. dns-packet does not compress names, so each
// record's size is known on its own and records are added whole until the next would not
// fit. Answers or authority records left out set TC (the client must retry over TCP);
// additional records left out do not (RFC 2181 §9): they are a courtesy the client can ask
// for itself.

import {
  type Answer,
  AUTHORITATIVE_ANSWER,
  encode,
  encodingLength,
  type OptAnswer,
  TRUNCATED_RESPONSE,
} from "dns-packet";
import { assert } from "../../core/assert.ts";
import { dnsHeaderBytes, type QueryHeader, type Question, type Rcode } from "./message.ts";

/** RFC 1035 §4.2.1: a UDP message without EDNS0. */
export const udpPayloadBytesMin = 512;
/** The EDNS0 buffer size we accept and advertise: DNS Flag Day 2020's value, below any IP fragmentation. */
export const udpPayloadBytesMax = 1232;
/** A TCP message carries a 16-bit length. */
export const tcpMessageBytesMax = 65_535;

const flagRd = 0x0100;
const flagCd = 0x0010;

export interface ResponseParts {
  header: QueryHeader;
  rcode: Rcode;
  authoritative: boolean;
  /** Echoed when the query's question could be read. */
  question?: Question | undefined;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  /** The query carried OPT, so the response must too (RFC 6891 §7), even when truncated. */
  edns: boolean;
}

export interface EncodedResponse {
  bytes: Buffer;
  truncated: boolean;
}

export function encodeResponse(parts: ResponseParts, maxBytes: number): EncodedResponse {
  const opt: OptAnswer[] = parts.edns
    ? [
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: udpPayloadBytesMax,
          // The rcode's upper 8 bits live in the OPT record (BADVERS is 16).
          extendedRcode: parts.rcode >> 4,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ]
    : [];
  const questionBytes = parts.question?.wire.length ?? 0;
  let size = dnsHeaderBytes + questionBytes + opt.reduce((n, r) => n + recordBytes(r), 0);
  // The largest question (259 bytes) and an OPT always fit in the smallest message.
  assert(size <= maxBytes, `fixed part of a response (${size} bytes) exceeds ${maxBytes}`);

  let truncated = false;
  const take = (records: Answer[], setsTc: boolean): Answer[] => {
    const kept: Answer[] = [];
    for (const r of records) {
      if (truncated) break;
      const n = recordBytes(r);
      if (size + n > maxBytes) {
        if (setsTc) truncated = true;
        break;
      }
      size += n;
      kept.push(r);
    }
    return kept;
  };
  const answers = take(parts.answers, true);
  const authorities = take(parts.authorities, true);
  const additionals = take(parts.additionals, false);

  const h = parts.header;
  const flags =
    ((h.opcode & 0xf) << 11) |
    (parts.authoritative ? AUTHORITATIVE_ANSWER : 0) |
    (truncated ? TRUNCATED_RESPONSE : 0) |
    (h.rd ? flagRd : 0) |
    (h.cd ? flagCd : 0) |
    (parts.rcode & 0xf);
  const body = encode({
    type: "response",
    id: h.id,
    flags,
    questions: [],
    answers,
    authorities,
    additionals: [...additionals, ...opt],
  });
  // The question goes in as it came: dns-packet would re-encode the name from a string.
  const bytes =
    parts.question === undefined
      ? body
      : Buffer.concat([body.subarray(0, dnsHeaderBytes), parts.question.wire, body.subarray(dnsHeaderBytes)]);
  if (parts.question !== undefined) bytes.writeUInt16BE(1, 4);
  assert(bytes.length === size, `encoded ${bytes.length} bytes, counted ${size}`);
  assert(bytes.length <= maxBytes, `response of ${bytes.length} bytes exceeds ${maxBytes}`);
  return { bytes, truncated };
}

function recordBytes(r: Answer): number {
  return encodingLength({ answers: [r] }) - dnsHeaderBytes;
}
