// The membership wire format: UDP packets (one message, or a compound of several) and TCP
// stream frames (push-pull state sync, fallback ping). Layout in docs/protocol.md.
//
// Every packet and frame starts with the protocol version byte, then a message type byte.
// Integers are big-endian. Strings are a u8 length and UTF-8 bytes. Decoding is total: bad
// input yields a typed error, never a throw.

import { assert } from "../assert.ts";
import { limits } from "../limits.ts";
import { type DecodeResult, decodeWith, fail, Reader, utf8Length, Writer } from "./bytes.ts";

export const PROTOCOL_VERSION = 1;

/** Node names longer than this are refused: they travel in nearly every message. */
export const MAX_NODE_NAME_BYTES = 128;
/** "host:port"; a DNS name is at most 253 bytes, plus the port. */
export const MAX_ADDR_BYTES = 255;
/** A packet with more parts than this is malformed; 1400 bytes cannot hold more real parts. */
export const MAX_COMPOUND_PARTS = 512;
/** Member entries in one push-pull frame; a larger cluster view is refused as oversized. */
export const MAX_PUSH_PULL_MEMBERS = 10_000;

/** Bytes in front of the parts of a compound packet: version, type, u16 count. */
export const COMPOUND_HEADER_BYTES = 4;
/** Bytes each part adds inside a compound packet: its u16 length. */
export const COMPOUND_PART_OVERHEAD_BYTES = 2;

export const MessageCode = {
  ping: 1,
  ping_req: 2,
  ack: 3,
  nack: 4,
  suspect: 5,
  alive: 6,
  dead: 7,
  app: 8,
  compound: 9,
  push_pull: 16,
} as const;
export type MessageTypeName = Exclude<keyof typeof MessageCode, "compound">;
export const MESSAGE_TYPE_NAMES: readonly MessageTypeName[] = [
  "ping",
  "ping_req",
  "ack",
  "nack",
  "suspect",
  "alive",
  "dead",
  "app",
  "push_pull",
];

const nameByCode = new Map<number, MessageTypeName | "compound">(
  Object.entries(MessageCode).map(([k, v]) => [v, k as MessageTypeName | "compound"]),
);

export interface PingMsg {
  readonly type: "ping";
  readonly seq: number;
  /** The name the sender means to reach; a node answers only pings for its own name. */
  readonly target: string;
  readonly source: string;
}
export interface PingReqMsg {
  readonly type: "ping_req";
  readonly seq: number;
  readonly target: string;
  readonly targetAddr: string;
  /** Lifeguard: the helper answers with a nack when the target does not ack in time. */
  readonly nack: boolean;
}
export interface AckMsg {
  readonly type: "ack";
  readonly seq: number;
}
export interface NackMsg {
  readonly type: "nack";
  readonly seq: number;
}
export interface SuspectMsg {
  readonly type: "suspect";
  readonly incarnation: number;
  readonly node: string;
  readonly from: string;
}
export interface AliveMsg {
  readonly type: "alive";
  readonly incarnation: number;
  readonly node: string;
  readonly addr: string;
  readonly meta: Uint8Array;
}
export interface DeadMsg {
  readonly type: "dead";
  readonly incarnation: number;
  readonly node: string;
  /** Equal to `node` when the node announces its own graceful leave. */
  readonly from: string;
}
export interface AppMsg {
  readonly type: "app";
  readonly payload: Uint8Array;
}

export type WireMemberState = "alive" | "suspect" | "dead" | "left";
const STATE_CODES: readonly WireMemberState[] = ["alive", "suspect", "dead", "left"];

export interface PushPullMember {
  readonly name: string;
  readonly addr: string;
  readonly incarnation: number;
  readonly state: WireMemberState;
  readonly meta: Uint8Array;
}
export interface PushPullMsg {
  readonly type: "push_pull";
  readonly join: boolean;
  readonly members: readonly PushPullMember[];
  /** The application delegate's whole state, opaque here. */
  readonly appState: Uint8Array;
}

export type PacketMessage =
  | PingMsg
  | PingReqMsg
  | AckMsg
  | NackMsg
  | SuspectMsg
  | AliveMsg
  | DeadMsg
  | AppMsg;
export type StreamMessage = PingMsg | AckMsg | PushPullMsg;

export interface DecodedPacket {
  readonly messages: PacketMessage[];
  /** Encoded size of each message (type byte and body), for per-type byte counters. */
  readonly sizes: number[];
}

// ── sizes ──

function memberEntrySize(m: PushPullMember): number {
  return 1 + utf8Length(m.name) + 1 + utf8Length(m.addr) + 4 + 1 + 2 + m.meta.length;
}

/** Size of the encoded message: its type byte and body. */
export function messageSize(m: PacketMessage | StreamMessage): number {
  switch (m.type) {
    case "ping":
      return 1 + 4 + 1 + utf8Length(m.target) + 1 + utf8Length(m.source);
    case "ping_req":
      return 1 + 4 + 1 + utf8Length(m.target) + 1 + utf8Length(m.targetAddr) + 1;
    case "ack":
    case "nack":
      return 1 + 4;
    case "suspect":
    case "dead":
      return 1 + 4 + 1 + utf8Length(m.node) + 1 + utf8Length(m.from);
    case "alive":
      return 1 + 4 + 1 + utf8Length(m.node) + 1 + utf8Length(m.addr) + 2 + m.meta.length;
    case "app":
      return 1 + m.payload.length;
    case "push_pull": {
      let n = 1 + 1 + 4;
      for (const e of m.members) n += memberEntrySize(e);
      return n + 4 + m.appState.length;
    }
  }
}

// ── encode ──

function writeBody(w: Writer, m: PacketMessage | StreamMessage): void {
  w.u8(MessageCode[m.type]);
  switch (m.type) {
    case "ping":
      w.u32(m.seq);
      w.str8(m.target, MAX_NODE_NAME_BYTES);
      w.str8(m.source, MAX_NODE_NAME_BYTES);
      return;
    case "ping_req":
      w.u32(m.seq);
      w.str8(m.target, MAX_NODE_NAME_BYTES);
      w.str8(m.targetAddr, MAX_ADDR_BYTES);
      w.u8(m.nack ? 1 : 0);
      return;
    case "ack":
    case "nack":
      w.u32(m.seq);
      return;
    case "suspect":
    case "dead":
      w.u32(m.incarnation);
      w.str8(m.node, MAX_NODE_NAME_BYTES);
      w.str8(m.from, MAX_NODE_NAME_BYTES);
      return;
    case "alive":
      w.u32(m.incarnation);
      w.str8(m.node, MAX_NODE_NAME_BYTES);
      w.str8(m.addr, MAX_ADDR_BYTES);
      assert(m.meta.length <= limits.maxMetaBytes, `meta of ${m.meta.length} bytes`);
      w.u16(m.meta.length);
      w.raw(m.meta);
      return;
    case "app":
      w.raw(m.payload);
      return;
    case "push_pull": {
      assert(m.members.length <= MAX_PUSH_PULL_MEMBERS, `push-pull of ${m.members.length} members`);
      w.u8(m.join ? 1 : 0);
      w.u32(m.members.length);
      for (const e of m.members) {
        w.str8(e.name, MAX_NODE_NAME_BYTES);
        w.str8(e.addr, MAX_ADDR_BYTES);
        w.u32(e.incarnation);
        w.u8(STATE_CODES.indexOf(e.state));
        assert(e.meta.length <= limits.maxMetaBytes, `meta of ${e.meta.length} bytes`);
        w.u16(e.meta.length);
        w.raw(e.meta);
      }
      w.u32(m.appState.length);
      w.raw(m.appState);
      return;
    }
  }
}

/** One message without the version byte: a part to put in a packet with `encodePacket`. */
export function encodeMessage(m: PacketMessage): Uint8Array {
  const size = messageSize(m);
  const w = new Writer(size);
  writeBody(w, m);
  return w.finish(size);
}

/** Bytes a packet made of these parts takes on the wire. */
export function packetSize(parts: readonly Uint8Array[]): number {
  if (parts.length === 1) return 1 + parts[0]!.length;
  let n = COMPOUND_HEADER_BYTES;
  for (const p of parts) n += COMPOUND_PART_OVERHEAD_BYTES + p.length;
  return n;
}

/** A packet from encoded parts: a single message, or a compound of several. */
export function encodePacket(parts: readonly Uint8Array[]): Uint8Array {
  assert(parts.length >= 1 && parts.length <= MAX_COMPOUND_PARTS, `packet of ${parts.length} parts`);
  const size = packetSize(parts);
  assert(size <= limits.maxUdpPacketBytes, `packet of ${size} bytes > ${limits.maxUdpPacketBytes}`);
  const w = new Writer(size);
  w.u8(PROTOCOL_VERSION);
  if (parts.length === 1) {
    w.raw(parts[0]!);
  } else {
    w.u8(MessageCode.compound);
    w.u16(parts.length);
    for (const p of parts) {
      assert(p.length >= 1 && p[0] !== MessageCode.compound, "compound parts are single messages");
      w.u16(p.length);
      w.raw(p);
    }
  }
  return w.finish(size);
}

export function encodeStream(m: StreamMessage): Uint8Array {
  const size = 1 + messageSize(m);
  assert(size <= limits.maxStreamBytes, `stream frame of ${size} bytes > ${limits.maxStreamBytes}`);
  const w = new Writer(size);
  w.u8(PROTOCOL_VERSION);
  writeBody(w, m);
  return w.finish(size);
}

// ── decode ──

function readType(r: Reader): MessageTypeName | "compound" {
  const code = r.u8("message type");
  const name = nameByCode.get(code);
  if (name === undefined) fail("unknown_type", `message type ${code}`);
  return name;
}

function readMeta(r: Reader, what: string): Uint8Array {
  const n = r.u16(`${what} meta length`);
  if (n > limits.maxMetaBytes) fail("oversized", `${what} meta of ${n} bytes > ${limits.maxMetaBytes}`);
  return r.bytesCopy(n, `${what} meta`);
}

function readFlag(r: Reader, what: string): boolean {
  const v = r.u8(what);
  if (v > 1) fail("malformed", `${what}: ${v}`);
  return v === 1;
}

/** Reads the body of a packet message whose type byte was already read; consumes the reader. */
function readPacketBody(r: Reader, type: MessageTypeName): PacketMessage {
  let m: PacketMessage;
  switch (type) {
    case "ping":
      m = {
        type,
        seq: r.u32("ping seq"),
        target: r.str8(MAX_NODE_NAME_BYTES, "ping target"),
        source: r.str8(MAX_NODE_NAME_BYTES, "ping source"),
      };
      break;
    case "ping_req":
      m = {
        type,
        seq: r.u32("ping_req seq"),
        target: r.str8(MAX_NODE_NAME_BYTES, "ping_req target"),
        targetAddr: r.str8(MAX_ADDR_BYTES, "ping_req addr"),
        nack: readFlag(r, "ping_req nack"),
      };
      break;
    case "ack":
    case "nack":
      m = { type, seq: r.u32(`${type} seq`) };
      break;
    case "suspect":
    case "dead":
      m = {
        type,
        incarnation: r.u32(`${type} incarnation`),
        node: r.str8(MAX_NODE_NAME_BYTES, `${type} node`),
        from: r.str8(MAX_NODE_NAME_BYTES, `${type} from`),
      };
      break;
    case "alive":
      m = {
        type,
        incarnation: r.u32("alive incarnation"),
        node: r.str8(MAX_NODE_NAME_BYTES, "alive node"),
        addr: r.str8(MAX_ADDR_BYTES, "alive addr"),
        meta: readMeta(r, "alive"),
      };
      break;
    case "app":
      m = { type, payload: r.rest() };
      break;
    case "push_pull":
      return fail("malformed", "push_pull is a stream message, not a packet message");
  }
  r.expectEnd(type);
  return m;
}

/** Decodes a UDP packet into its messages (a compound is flattened). Never throws on bad input. */
export function decodePacket(bytes: Uint8Array): DecodeResult<DecodedPacket> {
  return decodeWith(() => {
    if (bytes.length > limits.maxUdpPacketBytes)
      fail("oversized", `packet of ${bytes.length} bytes > ${limits.maxUdpPacketBytes}`);
    const r = new Reader(bytes);
    const version = r.u8("version");
    if (version !== PROTOCOL_VERSION) fail("bad_version", `version ${version}`);
    const type = readType(r);
    if (type !== "compound") {
      const size = r.remaining + 1;
      return { messages: [readPacketBody(r, type)], sizes: [size] };
    }
    const count = r.u16("compound count");
    if (count < 1 || count > MAX_COMPOUND_PARTS) fail("malformed", `compound of ${count} parts`);
    const messages: PacketMessage[] = [];
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      const len = r.u16("part length");
      const part = r.bytesView(len, "part");
      const pr = new Reader(part);
      const partType = readType(pr);
      if (partType === "compound") fail("malformed", "nested compound");
      messages.push(readPacketBody(pr, partType));
      sizes.push(len);
    }
    r.expectEnd("compound");
    return { messages, sizes };
  });
}

function readPushPull(r: Reader): PushPullMsg {
  const join = readFlag(r, "push_pull flags");
  const count = r.u32("push_pull count");
  if (count > MAX_PUSH_PULL_MEMBERS) fail("oversized", `push_pull of ${count} members`);
  // Each entry takes at least 10 bytes: refuse a count the frame cannot hold before allocating.
  if (count * 10 > r.remaining) fail("truncated", `push_pull of ${count} members in ${r.remaining} bytes`);
  const members: PushPullMember[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.str8(MAX_NODE_NAME_BYTES, "member name");
    const addr = r.str8(MAX_ADDR_BYTES, "member addr");
    const incarnation = r.u32("member incarnation");
    const code = r.u8("member state");
    const state = STATE_CODES[code];
    if (state === undefined) fail("malformed", `member state ${code}`);
    members.push({ name, addr, incarnation, state, meta: readMeta(r, "member") });
  }
  const appLen = r.u32("app state length");
  if (appLen > limits.maxStreamBytes) fail("oversized", `app state of ${appLen} bytes`);
  const appState = r.bytesCopy(appLen, "app state");
  r.expectEnd("push_pull");
  return { type: "push_pull", join, members, appState };
}

/** Decodes one stream frame (a request or a reply). Never throws on bad input. */
export function decodeStream(bytes: Uint8Array): DecodeResult<StreamMessage> {
  return decodeWith(() => {
    if (bytes.length > limits.maxStreamBytes)
      fail("oversized", `stream frame of ${bytes.length} bytes > ${limits.maxStreamBytes}`);
    const r = new Reader(bytes);
    const version = r.u8("version");
    if (version !== PROTOCOL_VERSION) fail("bad_version", `version ${version}`);
    const type = readType(r);
    switch (type) {
      case "push_pull":
        return readPushPull(r);
      case "ping":
      case "ack":
        return readPacketBody(r, type) as PingMsg | AckMsg;
      default:
        return fail("malformed", `${type} is not a stream message`);
    }
  });
}

/** The type of an encoded message (a part made by `encodeMessage`). */
export function typeOfEncoded(part: Uint8Array): MessageTypeName {
  const name = nameByCode.get(part[0] ?? -1);
  assert(name !== undefined && name !== "compound", "not an encoded message");
  return name;
}
