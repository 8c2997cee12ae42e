// Compact JSON-safe array forms of state deltas, for whichever wire codec the gossip layer
// uses (JSON, MessagePack). Decoding is total and bounded: any input, however malformed or
// large, gives a result (never an exception) after work proportional to the bounds.
//
// Forms (version 1):
//   observation delta   [1, group, group, …]
//     group             [observer, targetId, counter, value, targetId, counter, value, …]
//                       (consecutive registers of one observer share a group; order is kept)
//   exchange request    [1, vector, cursor | null]      cursor: [observer, counter]
//   exchange reply      [1, complete 0|1, vector, group, group, …]
//   version vector      [[observer, counter], …]
//   LWW delta           [1, entry, entry, …]
//     entry             [key, wallMs, logical, node, value]   a write
//                       [key, wallMs, logical, node]          a tombstone
//   LWW versions        [1, [key, wallMs, logical, node], …]

import { ErrorCode, VigilError } from "../errors.ts";
import { isCounter } from "./dots.ts";
import type { Hlc } from "./hlc.ts";
import { stateLimits } from "./limits.ts";
import type { LwwDelta, LwwEntry } from "./lww.ts";
import type { ExchangeCursor, ExchangeReply, ObservationDelta, Register } from "./observations.ts";
import type { ReadonlyVersionVector, VersionVector } from "./version-vector.ts";
import { vvFromEntries, vvToEntries } from "./version-vector.ts";

const VERSION = 1;

export type DecodeResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: VigilError };

/** Turns a raw value into the caller's value type, or undefined when it is not one. */
export type ValueDecoder<V> = (raw: unknown) => V | undefined;

export interface DecodeBounds {
  maxRegisters: number;
  maxVectorEntries: number;
  maxIdChars: number;
}

const defaultBounds: DecodeBounds = {
  maxRegisters: stateLimits.maxDecodeRegisters,
  maxVectorEntries: stateLimits.maxVectorEntries,
  maxIdChars: stateLimits.maxIdChars,
};

function fail<T>(message: string, path: string): DecodeResult<T> {
  return { ok: false, error: new VigilError(ErrorCode.decode, message, { path }) };
}

/** Plain decoded JSON cannot throw; a proxy or exotic object can, and still gets a result. */
function total<T>(decode: () => DecodeResult<T>): DecodeResult<T> {
  try {
    return decode();
  } catch {
    return fail("malformed input", "");
  }
}

function isId(x: unknown, maxChars: number): x is string {
  return typeof x === "string" && x.length > 0 && x.length <= maxChars;
}

// ── observation deltas ──

function encodeGroups<V>(registers: readonly Register<V>[], out: unknown[]): void {
  let group: unknown[] | undefined;
  let observer = "";
  for (const r of registers) {
    if (group === undefined || r.observer !== observer) {
      observer = r.observer;
      group = [observer];
      out.push(group);
    }
    group.push(r.targetId, r.counter, r.value);
  }
}

export function encodeDelta<V>(delta: ObservationDelta<V>): unknown[] {
  const out: unknown[] = [VERSION];
  encodeGroups(delta, out);
  return out;
}

function decodeGroups<V>(
  raw: unknown[],
  start: number,
  decodeValue: ValueDecoder<V>,
  bounds: DecodeBounds,
): DecodeResult<Register<V>[]> {
  const out: Register<V>[] = [];
  if (raw.length - start > bounds.maxRegisters) return fail("too many groups", "");
  for (let g = start; g < raw.length; g++) {
    const group = raw[g];
    if (!Array.isArray(group) || group.length < 4 || (group.length - 1) % 3 !== 0) {
      return fail("a group is [observer, (targetId, counter, value)+]", `[${g}]`);
    }
    if (out.length + (group.length - 1) / 3 > bounds.maxRegisters)
      return fail("too many registers", `[${g}]`);
    const observer: unknown = group[0];
    if (!isId(observer, bounds.maxIdChars)) return fail("bad observer name", `[${g}][0]`);
    for (let i = 1; i < group.length; i += 3) {
      const targetId: unknown = group[i];
      const counter: unknown = group[i + 1];
      if (!isId(targetId, bounds.maxIdChars)) return fail("bad target id", `[${g}][${i}]`);
      if (!isCounter(counter)) return fail("counter must be a positive safe integer", `[${g}][${i + 1}]`);
      let value: V | undefined;
      try {
        value = decodeValue(group[i + 2]);
      } catch {
        value = undefined;
      }
      if (value === undefined) return fail("value refused by the value decoder", `[${g}][${i + 2}]`);
      out.push({ targetId, observer, counter, value });
    }
  }
  return { ok: true, value: out };
}

export function decodeDelta<V>(
  raw: unknown,
  decodeValue: ValueDecoder<V>,
  bounds: DecodeBounds = defaultBounds,
): DecodeResult<Register<V>[]> {
  return total(() => {
    if (!Array.isArray(raw) || raw.length < 1) return fail("a delta is [version, group…]", "");
    if (raw[0] !== VERSION) return fail("unknown delta version", "[0]");
    return decodeGroups(raw, 1, decodeValue, bounds);
  });
}

// ── anti-entropy ──

export function encodeVector(vv: ReadonlyVersionVector): [string, number][] {
  return vvToEntries(vv);
}

export function decodeVector(
  raw: unknown,
  bounds: DecodeBounds = defaultBounds,
): DecodeResult<VersionVector> {
  return total(() => {
    const vv = vvFromEntries(raw, bounds.maxVectorEntries, bounds.maxIdChars);
    return vv === undefined
      ? fail("a vector is [[observer, counter], …] with distinct observers", "")
      : { ok: true, value: vv };
  });
}

/** An anti-entropy request: our vector, and where to resume when paging. */
export interface ExchangeRequest {
  readonly vector: ReadonlyVersionVector;
  readonly after?: ExchangeCursor | undefined;
}

export function encodeExchangeRequest(req: ExchangeRequest): unknown[] {
  return [
    VERSION,
    vvToEntries(req.vector),
    req.after === undefined ? null : [req.after.observer, req.after.counter],
  ];
}

export function decodeExchangeRequest(
  raw: unknown,
  bounds: DecodeBounds = defaultBounds,
): DecodeResult<ExchangeRequest> {
  return total(() => {
    if (!Array.isArray(raw) || raw.length !== 3) return fail("a request is [version, vector, cursor]", "");
    if (raw[0] !== VERSION) return fail("unknown request version", "[0]");
    const vector = vvFromEntries(raw[1], bounds.maxVectorEntries, bounds.maxIdChars);
    if (vector === undefined) return fail("bad vector", "[1]");
    const c: unknown = raw[2];
    if (c === null) return { ok: true, value: { vector } };
    if (!Array.isArray(c) || c.length !== 2 || !isId(c[0], bounds.maxIdChars) || !isCounter(c[1])) {
      return fail("a cursor is [observer, counter] or null", "[2]");
    }
    return { ok: true, value: { vector, after: { observer: c[0], counter: c[1] } } };
  });
}

export function encodeExchangeReply<V>(reply: ExchangeReply<V>): unknown[] {
  const out: unknown[] = [VERSION, reply.complete ? 1 : 0, reply.vector.map(([o, c]) => [o, c])];
  encodeGroups(reply.registers, out);
  return out;
}

export function decodeExchangeReply<V>(
  raw: unknown,
  decodeValue: ValueDecoder<V>,
  bounds: DecodeBounds = defaultBounds,
): DecodeResult<ExchangeReply<V>> {
  return total(() => {
    if (!Array.isArray(raw) || raw.length < 3)
      return fail("a reply is [version, complete, vector, group…]", "");
    if (raw[0] !== VERSION) return fail("unknown reply version", "[0]");
    if (raw[1] !== 0 && raw[1] !== 1) return fail("complete must be 0 or 1", "[1]");
    const vv = vvFromEntries(raw[2], bounds.maxVectorEntries, bounds.maxIdChars);
    if (vv === undefined) return fail("bad vector", "[2]");
    const regs = decodeGroups(raw, 3, decodeValue, bounds);
    if (!regs.ok) return regs;
    return { ok: true, value: { registers: regs.value, vector: vvToEntries(vv), complete: raw[1] === 1 } };
  });
}

// ── LWW ──

function decodeStamp(e: unknown[], at: number, maxIdChars: number): Hlc | undefined {
  const wallMs = e[at];
  const logical = e[at + 1];
  const node = e[at + 2];
  if (!Number.isSafeInteger(wallMs) || (wallMs as number) < 0) return undefined;
  if (
    !Number.isSafeInteger(logical) ||
    (logical as number) < 0 ||
    (logical as number) > stateLimits.maxHlcLogical
  ) {
    return undefined;
  }
  if (!isId(node, maxIdChars)) return undefined;
  return { wallMs: wallMs as number, logical: logical as number, node };
}

export function encodeLwwDelta<V>(delta: LwwDelta<V>): unknown[] {
  const out: unknown[] = [VERSION];
  for (const e of delta) {
    const head = [e.key, e.ts.wallMs, e.ts.logical, e.ts.node];
    out.push(e.deleted ? head : [...head, e.value]);
  }
  return out;
}

export function decodeLwwDelta<V>(
  raw: unknown,
  decodeValue: ValueDecoder<V>,
  maxEntries: number = stateLimits.maxDecodeLwwEntries,
  maxIdChars: number = stateLimits.maxIdChars,
): DecodeResult<LwwEntry<V>[]> {
  return total(() => {
    if (!Array.isArray(raw) || raw.length < 1) return fail("an LWW delta is [version, entry…]", "");
    if (raw[0] !== VERSION) return fail("unknown LWW delta version", "[0]");
    if (raw.length - 1 > maxEntries) return fail("too many entries", "");
    const out: LwwEntry<V>[] = [];
    for (let i = 1; i < raw.length; i++) {
      const e = raw[i];
      if (!Array.isArray(e) || (e.length !== 4 && e.length !== 5)) {
        return fail("an entry is [key, wallMs, logical, node, value?]", `[${i}]`);
      }
      const key: unknown = e[0];
      if (!isId(key, maxIdChars)) return fail("bad key", `[${i}][0]`);
      const ts = decodeStamp(e, 1, maxIdChars);
      if (ts === undefined) return fail("bad timestamp", `[${i}]`);
      if (e.length === 4) {
        out.push({ key, ts, value: undefined, deleted: true });
        continue;
      }
      let value: V | undefined;
      try {
        value = decodeValue(e[4]);
      } catch {
        value = undefined;
      }
      if (value === undefined) return fail("value refused by the value decoder", `[${i}][4]`);
      out.push({ key, ts, value, deleted: false });
    }
    return { ok: true, value: out };
  });
}

export function encodeLwwVersions(versions: readonly (readonly [string, Hlc])[]): unknown[] {
  return [VERSION, ...versions.map(([k, ts]) => [k, ts.wallMs, ts.logical, ts.node])];
}

export function decodeLwwVersions(
  raw: unknown,
  maxEntries: number = stateLimits.maxDecodeLwwEntries,
  maxIdChars: number = stateLimits.maxIdChars,
): DecodeResult<[string, Hlc][]> {
  return total(() => {
    if (!Array.isArray(raw) || raw.length < 1)
      return fail("LWW versions are [version, [key, wallMs, logical, node]…]", "");
    if (raw[0] !== VERSION) return fail("unknown LWW versions version", "[0]");
    if (raw.length - 1 > maxEntries) return fail("too many entries", "");
    const out: [string, Hlc][] = [];
    for (let i = 1; i < raw.length; i++) {
      const e = raw[i];
      if (!Array.isArray(e) || e.length !== 4 || !isId(e[0], maxIdChars))
        return fail("bad version entry", `[${i}]`);
      const ts = decodeStamp(e, 1, maxIdChars);
      if (ts === undefined) return fail("bad timestamp", `[${i}]`);
      out.push([e[0], ts]);
    }
    return { ok: true, value: out };
  });
}
