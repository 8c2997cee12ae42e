// The replication wire: what nodes tell each other about pools, admin states and
// observations, on top of membership gossip (piggybacked deltas) and on request/response
// streams (anti-entropy). JSON in UTF-8: the messages are small, rare (state changes only)
// and this keeps them readable in a capture. Every decode is bounded and total.

import type { Observation } from "../observation/observation.ts";
import { parseObservation } from "../observation/observation.ts";
import {
  decodeDelta,
  decodeExchangeReply,
  decodeLwwDelta,
  decodeLwwVersions,
  decodeVector,
  encodeDelta,
  encodeExchangeReply,
  encodeLwwDelta,
  encodeLwwVersions,
} from "../state/codec.ts";
import type { Hlc } from "../state/hlc.ts";
import type { LwwEntry } from "../state/lww.ts";
import type { ExchangeReply, Register } from "../state/observations.ts";
import type { VersionVector } from "../state/version-vector.ts";

/** An admin state register value. */
export interface AdminValue {
  state: "maint" | "drain";
  reason?: string;
}

export type WireMessage =
  /** Gossip: changed observation registers. */
  | { t: "obs"; registers: Register<Observation>[] }
  /** Gossip: changed pool documents (LWW entries). */
  | { t: "pools"; entries: LwwEntry<unknown>[] }
  /** Gossip: changed admin states. */
  | { t: "admin"; entries: LwwEntry<AdminValue>[] }
  /** Anti-entropy request: what I hold. */
  | { t: "pull"; vector: VersionVector; pools: [string, Hlc][]; admin: [string, Hlc][] }
  /** Anti-entropy reply: what you lack, and what I hold (so you can push back what I lack). */
  | {
      t: "pulled";
      reply: ExchangeReply<Observation>;
      pools: LwwEntry<unknown>[];
      admin: LwwEntry<AdminValue>[];
      poolVersions: [string, Hlc][];
      adminVersions: [string, Hlc][];
    }
  /** Anti-entropy push: what the replier lacked. */
  | {
      t: "push";
      reply: ExchangeReply<Observation>;
      pools: LwwEntry<unknown>[];
      admin: LwwEntry<AdminValue>[];
    }
  | { t: "ack" };

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodeWire(m: WireMessage): Uint8Array {
  let body: unknown[];
  switch (m.t) {
    case "obs":
      body = ["o", encodeDelta(m.registers)];
      break;
    case "pools":
      body = ["p", encodeLwwDelta(m.entries)];
      break;
    case "admin":
      body = ["a", encodeLwwDelta(m.entries)];
      break;
    case "pull":
      body = ["q", [...m.vector], encodeLwwVersions(m.pools), encodeLwwVersions(m.admin)];
      break;
    case "pulled":
      body = [
        "r",
        encodeExchangeReply(m.reply),
        encodeLwwDelta(m.pools),
        encodeLwwDelta(m.admin),
        encodeLwwVersions(m.poolVersions),
        encodeLwwVersions(m.adminVersions),
      ];
      break;
    case "push":
      body = ["u", encodeExchangeReply(m.reply), encodeLwwDelta(m.pools), encodeLwwDelta(m.admin)];
      break;
    case "ack":
      body = ["k"];
      break;
  }
  return enc.encode(JSON.stringify(body));
}

const decodeObservation = (raw: unknown): Observation | undefined => {
  try {
    return parseObservation(raw);
  } catch {
    return undefined;
  }
};

/** An admin state value as the wire (and a restore) accepts it, or undefined. */
export const decodeAdmin = (raw: unknown): AdminValue | undefined => {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (o.state !== "maint" && o.state !== "drain") return undefined;
  if (o.reason !== undefined && (typeof o.reason !== "string" || o.reason.length > 200)) return undefined;
  const keys = Object.keys(o);
  if (keys.some((k) => k !== "state" && k !== "reason")) return undefined;
  return o.reason === undefined ? { state: o.state } : { state: o.state, reason: o.reason };
};

/** Pool documents are validated by the pool parser when applied; here only "a JSON object". */
export const decodePoolDoc = (raw: unknown): unknown | undefined =>
  typeof raw === "object" && raw !== null && !Array.isArray(raw) ? raw : undefined;

export type WireDecode = { ok: true; msg: WireMessage } | { ok: false; reason: string };

/** Decodes one message; never throws. `maxBytes` bounds the input before parsing. */
export function decodeWire(bytes: Uint8Array, maxBytes: number): WireDecode {
  if (bytes.length > maxBytes) return { ok: false, reason: "oversized" };
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(bytes));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (!Array.isArray(raw) || typeof raw[0] !== "string") return { ok: false, reason: "malformed" };
  const bad = (why: string): WireDecode => ({ ok: false, reason: why });
  switch (raw[0]) {
    case "o": {
      const d = decodeDelta(raw[1], decodeObservation);
      return d.ok ? { ok: true, msg: { t: "obs", registers: [...d.value] } } : bad("bad_delta");
    }
    case "p": {
      const d = decodeLwwDelta(raw[1], decodePoolDoc);
      return d.ok ? { ok: true, msg: { t: "pools", entries: [...d.value] } } : bad("bad_delta");
    }
    case "a": {
      const d = decodeLwwDelta(raw[1], decodeAdmin);
      return d.ok ? { ok: true, msg: { t: "admin", entries: [...d.value] } } : bad("bad_delta");
    }
    case "q": {
      const v = decodeVector(raw[1]);
      const p = decodeLwwVersions(raw[2]);
      const a = decodeLwwVersions(raw[3]);
      if (!v.ok || !p.ok || !a.ok) return bad("bad_pull");
      return { ok: true, msg: { t: "pull", vector: v.value, pools: [...p.value], admin: [...a.value] } };
    }
    case "r": {
      const r = decodeExchangeReply(raw[1], decodeObservation);
      const p = decodeLwwDelta(raw[2], decodePoolDoc);
      const a = decodeLwwDelta(raw[3], decodeAdmin);
      const pv = decodeLwwVersions(raw[4]);
      const av = decodeLwwVersions(raw[5]);
      if (!r.ok || !p.ok || !a.ok || !pv.ok || !av.ok) return bad("bad_pulled");
      return {
        ok: true,
        msg: {
          t: "pulled",
          reply: r.value,
          pools: [...p.value],
          admin: [...a.value],
          poolVersions: [...pv.value],
          adminVersions: [...av.value],
        },
      };
    }
    case "u": {
      const r = decodeExchangeReply(raw[1], decodeObservation);
      const p = decodeLwwDelta(raw[2], decodePoolDoc);
      const a = decodeLwwDelta(raw[3], decodeAdmin);
      if (!r.ok || !p.ok || !a.ok) return bad("bad_push");
      return { ok: true, msg: { t: "push", reply: r.value, pools: [...p.value], admin: [...a.value] } };
    }
    case "k":
      return { ok: true, msg: { t: "ack" } };
    default:
      return bad("unknown_type");
  }
}
