// Bounded byte readers and writers for the hand-written wire codecs.
//
// Reading is total: every read checks the remaining length and, on bad input, throws a
// `DecodeFailure` that the codec's top-level decode turns into a typed result. Nothing else is
// thrown for bad input, so a decode that throws anything but a DecodeFailure is a codec bug.
// Writing asserts: the encoder sized the buffer, so running out of room is a programmer error.

import { assert } from "../assert.ts";

export type DecodeErrorReason = "truncated" | "bad_version" | "unknown_type" | "oversized" | "malformed";

export const DECODE_ERROR_REASONS: readonly DecodeErrorReason[] = [
  "truncated",
  "bad_version",
  "unknown_type",
  "oversized",
  "malformed",
];

export type DecodeResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: DecodeErrorReason; readonly detail: string };

/** Thrown inside a decode only; caught by `decodeWith` and never seen by callers. */
export class DecodeFailure {
  readonly reason: DecodeErrorReason;
  readonly detail: string;
  constructor(reason: DecodeErrorReason, detail: string) {
    this.reason = reason;
    this.detail = detail;
  }
}

export function fail(reason: DecodeErrorReason, detail: string): never {
  throw new DecodeFailure(reason, detail);
}

/** Runs a decode body and turns a DecodeFailure into a typed error; other throws are bugs and escape. */
export function decodeWith<T>(body: () => T): DecodeResult<T> {
  try {
    return { ok: true, value: body() };
  } catch (e) {
    if (e instanceof DecodeFailure) return { ok: false, reason: e.reason, detail: e.detail };
    throw e;
  }
}

/** Shared by every empty field decoded: nothing to copy, nothing to allocate. */
const EMPTY_BYTES = new Uint8Array(0);

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

export class Reader {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    assert(start >= 0 && start <= end && end <= bytes.length, "reader bounds");
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) fail("truncated", `${what}: need ${n} bytes, have ${this.end - this.pos}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A copy, so the caller may keep it after the packet buffer is reused. */
  bytesCopy(n: number, what: string): Uint8Array {
    if (n === 0) return EMPTY_BYTES;
    this.need(n, what);
    const out = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A view into the input, for framing only; valid while the input is. */
  bytesView(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A u8-length-prefixed UTF-8 string of at most `maxBytes` bytes. */
  str8(maxBytes: number, what: string): string {
    const n = this.u8(what);
    if (n > maxBytes) fail("oversized", `${what}: ${n} bytes > ${maxBytes}`);
    this.need(n, what);
    const s = decodeUtf8(this.bytes, this.pos, this.pos + n, what);
    this.pos += n;
    return s;
  }

  /** Everything that is left. */
  rest(): Uint8Array {
    return this.bytesCopy(this.end - this.pos, "rest");
  }

  /** A message body must be consumed exactly: trailing bytes mean the sender and we disagree. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) fail("malformed", `${what}: ${this.end - this.pos} trailing bytes`);
  }
}

function decodeUtf8(bytes: Uint8Array, start: number, end: number, what: string): string {
  // Names and addresses are almost always ASCII; skip the TextDecoder for them.
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch {
    return fail("malformed", `${what}: invalid UTF-8`);
  }
}

/** Bytes needed to encode `s` as UTF-8. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

export class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  get offset(): number {
    return this.pos;
  }

  // Writes are hot (every packet): assertion messages are only built on failure.
  private room(n: number): void {
    if (this.pos + n > this.bytes.length)
      assert(false, `writer overflow: ${this.pos}+${n} > ${this.bytes.length}`);
  }

  u8(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xff)) assert(false, `u8 out of range: ${v}`);
    this.room(1);
    this.bytes[this.pos++] = v;
  }

  u16(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff)) assert(false, `u16 out of range: ${v}`);
    this.room(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  u32(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff)) assert(false, `u32 out of range: ${v}`);
    this.room(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  raw(b: Uint8Array): void {
    this.room(b.length);
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }

  str8(s: string, maxBytes: number): void {
    const n = utf8Length(s);
    if (!(n <= maxBytes && n <= 0xff)) assert(false, `string of ${n} bytes exceeds ${maxBytes}`);
    this.u8(n);
    this.room(n);
    if (n === s.length) {
      for (let i = 0; i < n; i++) this.bytes[this.pos + i] = s.charCodeAt(i);
    } else {
      const r = utf8Encoder.encodeInto(s, this.bytes.subarray(this.pos, this.pos + n));
      assert(r.written === n, "utf8 length mismatch");
    }
    this.pos += n;
  }

  /** The written prefix; asserts the encoder predicted the size exactly. */
  finish(expectedBytes = this.bytes.length): Uint8Array {
    if (this.pos !== expectedBytes) assert(false, `encoded ${this.pos} bytes, sized ${expectedBytes}`);
    return this.pos === this.bytes.length ? this.bytes : this.bytes.subarray(0, this.pos);
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
