// A mergeable latency sketch: DDSketch's log-bucketed histogram (Masson, Rim and Lee, VLDB 2019).
//
// A value x > 0 falls in bucket i = ceil(log_γ x) with γ = (1+α)/(1−α); reading bucket i back as
// 2γ^i/(γ+1) is within relative error α of every value in it. So any quantile read from the
// sketch is within α of the exact quantile of the values added, and merging two sketches is
// adding their bucket counts: exact, commutative and associative. That is what lets per-minute
// rollups roll up into hours, and the observers' hours into one answer, without keeping samples.
//
// Buckets are bounded by construction: values are clamped to [minTrackedMs, maxTrackedMs], so at
// α = 1% there are at most ~1,100 distinct buckets, and the encoding is sparse (a minute of a
// 10 s check has about 6).

import { assert } from "../core/assert.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";

/** Relative accuracy of every quantile read from a sketch. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;
/** Values below this (1 µs) count as 0: latencies that small are timer noise. */
export const SKETCH_MIN_TRACKED_MS = 0.001;
/** Values above this (1 h, far beyond limits.timeoutMsMax) are clamped to it. */
export const SKETCH_MAX_TRACKED_MS = 3_600_000;
const SKETCH_VERSION = 1;

const GAMMA = (1 + SKETCH_RELATIVE_ACCURACY) / (1 - SKETCH_RELATIVE_ACCURACY);
const LN_GAMMA = Math.log(GAMMA);
const VALUE_FACTOR = 2 / (GAMMA + 1);

function bucketIndex(ms: number): number {
  return Math.ceil(Math.log(ms) / LN_GAMMA);
}

const MIN_INDEX = bucketIndex(SKETCH_MIN_TRACKED_MS);
const MAX_INDEX = bucketIndex(SKETCH_MAX_TRACKED_MS);
/** The most buckets a sketch can hold. */
export const SKETCH_MAX_BUCKETS = MAX_INDEX - MIN_INDEX + 1;
/** Largest valid encoding: header, then per bucket an index delta and a count (≤ 8 bytes each). */
export const SKETCH_MAX_ENCODED_BYTES = 1 + 8 + 2 + SKETCH_MAX_BUCKETS * (2 + 8);

function bucketValue(index: number): number {
  return Math.exp(index * LN_GAMMA) * VALUE_FACTOR;
}

export type SketchDecodeResult = { ok: true; value: LatencySketch } | { ok: false; error: VigilError };

export class LatencySketch {
  private readonly buckets = new Map<number, number>();
  private zeroCount = 0;
  private total = 0;

  /** How many values were added (including merged ones). */
  get count(): number {
    return this.total;
  }

  /** Distinct buckets in use. */
  get bucketCount(): number {
    return this.buckets.size;
  }

  /** Adds `n` observations of `ms`. A latency is never negative or NaN: that is a caller bug. */
  add(ms: number, n = 1): this {
    assert(Number.isFinite(ms) && ms >= 0, `sketch value must be a finite ms >= 0, got ${ms}`);
    assert(Number.isSafeInteger(n) && n >= 1, `sketch weight must be a positive integer, got ${n}`);
    assert(this.total + n <= Number.MAX_SAFE_INTEGER, "sketch count overflow");
    this.total += n;
    if (ms < SKETCH_MIN_TRACKED_MS) {
      this.zeroCount += n;
      return this;
    }
    const i = Math.min(bucketIndex(Math.min(ms, SKETCH_MAX_TRACKED_MS)), MAX_INDEX);
    this.buckets.set(i, (this.buckets.get(i) ?? 0) + n);
    return this;
  }

  /** Adds every count of `other` into this sketch; `other` is unchanged. */
  merge(other: LatencySketch): this {
    assert(this.total + other.total <= Number.MAX_SAFE_INTEGER, "sketch count overflow");
    this.total += other.total;
    this.zeroCount += other.zeroCount;
    for (const [i, c] of other.buckets) this.buckets.set(i, (this.buckets.get(i) ?? 0) + c);
    return this;
  }

  clone(): LatencySketch {
    return new LatencySketch().merge(this);
  }

  /**
   * The value at rank ⌊q·(count−1)⌋ of the values added, within the relative accuracy; undefined
   * when the sketch is empty.
   */
  quantile(q: number): number | undefined {
    assert(q >= 0 && q <= 1, `quantile must be in [0, 1], got ${q}`);
    if (this.total === 0) return undefined;
    const rank = Math.floor(q * (this.total - 1));
    if (rank < this.zeroCount) return 0;
    let seen = this.zeroCount;
    for (const i of this.sortedIndexes()) {
      seen += this.buckets.get(i)!;
      if (seen > rank) return bucketValue(i);
    }
    return unreachableRank(rank, this.total);
  }

  /** Canonical bytes: equal sketches encode to equal bytes. */
  encode(): Uint8Array {
    const indexes = this.sortedIndexes();
    const out: number[] = [SKETCH_VERSION];
    pushVarint(out, this.zeroCount);
    pushVarint(out, indexes.length);
    let prev = 0;
    for (let k = 0; k < indexes.length; k++) {
      const i = indexes[k]!;
      if (k === 0) pushVarint(out, zigzag(i));
      else pushVarint(out, i - prev);
      prev = i;
      pushVarint(out, this.buckets.get(i)!);
    }
    assert(out.length <= SKETCH_MAX_ENCODED_BYTES, "sketch encoding exceeds its bound");
    return Uint8Array.from(out);
  }

  /** Total and bounded: any bytes give a sketch or an error, never a throw. */
  static decode(bytes: Uint8Array): SketchDecodeResult {
    if (bytes.length > SKETCH_MAX_ENCODED_BYTES) {
      return decodeError(`${bytes.length} bytes exceeds ${SKETCH_MAX_ENCODED_BYTES}`);
    }
    const r = { pos: 0 };
    const sketch = new LatencySketch();
    const version = bytes[0];
    if (version === undefined) return decodeError("empty");
    if (version !== SKETCH_VERSION) return decodeError(`unknown version ${version}`);
    r.pos = 1;
    const zero = readVarint(bytes, r);
    if (typeof zero === "string") return decodeError(`zero count: ${zero}`);
    const n = readVarint(bytes, r);
    if (typeof n === "string") return decodeError(`bucket count: ${n}`);
    if (n > SKETCH_MAX_BUCKETS) return decodeError(`${n} buckets exceeds ${SKETCH_MAX_BUCKETS}`);
    let total = zero;
    let index = 0;
    for (let k = 0; k < n; k++) {
      const raw = readVarint(bytes, r);
      if (typeof raw === "string") return decodeError(`bucket ${k} index: ${raw}`);
      if (k === 0) {
        index = unzigzag(raw);
      } else {
        if (raw === 0) return decodeError(`bucket ${k} index does not increase`);
        index += raw;
      }
      if (index < MIN_INDEX || index > MAX_INDEX)
        return decodeError(`bucket ${k} index ${index} out of range`);
      const c = readVarint(bytes, r);
      if (typeof c === "string") return decodeError(`bucket ${k} count: ${c}`);
      if (c === 0) return decodeError(`bucket ${k} count is 0`);
      total += c;
      if (total > Number.MAX_SAFE_INTEGER) return decodeError("total count overflows");
      sketch.buckets.set(index, c);
    }
    if (r.pos !== bytes.length) return decodeError(`${bytes.length - r.pos} trailing bytes`);
    sketch.zeroCount = zero;
    sketch.total = total;
    return { ok: true, value: sketch };
  }

  /** A sketch of the given values, for tests and benchmarks. */
  static of(values: Iterable<number>): LatencySketch {
    const s = new LatencySketch();
    for (const v of values) s.add(v);
    return s;
  }

  private sortedIndexes(): number[] {
    return [...this.buckets.keys()].sort((a, b) => a - b);
  }
}

function unreachableRank(rank: number, total: number): never {
  throw new Error(`invariant: sketch rank ${rank} beyond total ${total}`);
}

function decodeError(detail: string): { ok: false; error: VigilError } {
  return { ok: false, error: new VigilError(ErrorCode.decode, `bad latency sketch: ${detail}`) };
}

function zigzag(i: number): number {
  return i < 0 ? -2 * i - 1 : 2 * i;
}

function unzigzag(z: number): number {
  return z % 2 === 1 ? -(z + 1) / 2 : z / 2;
}

// LEB128 with arithmetic instead of bit operators: counts go up to 2^53, beyond 32-bit ops.
function pushVarint(out: number[], v: number): void {
  assert(Number.isSafeInteger(v) && v >= 0, `varint out of range: ${v}`);
  let x = v;
  while (x >= 0x80) {
    out.push((x % 0x80) + 0x80);
    x = Math.floor(x / 0x80);
  }
  out.push(x);
}

const VARINT_MAX_BYTES = 8; // 56 bits ≥ 2^53

/** A number, or why the bytes are not a canonical varint. */
function readVarint(bytes: Uint8Array, r: { pos: number }): number | string {
  let v = 0;
  let scale = 1;
  for (let k = 0; k < VARINT_MAX_BYTES; k++) {
    const b = bytes[r.pos];
    if (b === undefined) return "truncated";
    r.pos++;
    v += (b % 0x80) * scale;
    if (b < 0x80) {
      // A final zero byte after others is an overlong encoding; refusing it keeps bytes canonical.
      if (b === 0 && k > 0) return "overlong varint";
      if (v > Number.MAX_SAFE_INTEGER) return "varint exceeds 2^53";
      return v;
    }
    scale *= 0x80;
  }
  return "varint longer than 8 bytes";
}
