// Hashing for weighted rendezvous placement.
//
// Every node must compute bit-identical scores, so the hash is pure 32-bit integer arithmetic
// (Math.imul, shifts) with no BigInt, no platform hash and no randomness. A node name and a
// target id are each hashed once to 64 bits (two 32-bit murmur3-style lanes over the UTF-8
// bytes, then murmur3's fmix64); a pair is `fmix64(nodeHash ^ targetHash)`. Hashing names and
// ids with different seeds keeps the two domains apart, and fmix64 being a strong bijective
// mixer makes the pair values of one target behave as independent uniform draws. The per-pair
// work is one fmix64, which is what lets a join score a million targets in a few milliseconds.

const NODE_SEED = 0x6e6f6465; // "node"
const TARGET_SEED = 0x74677420; // "tgt "

/** A 64-bit hash as two unsigned 32-bit halves. */
export interface Hash64 {
  readonly hi: number;
  readonly lo: number;
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

function utf8(s: string): number {
  // encodeInto writes at most 3 bytes per UTF-16 code unit.
  if (scratch.length < s.length * 3) scratch = new Uint8Array(s.length * 3);
  return encoder.encodeInto(s, scratch).written;
}

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** High 32 bits of the unsigned 64-bit product a × b (Hacker's Delight mulhu). */
function mulHi32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const t = a1 * b0 + ((a0 * b0) >>> 16);
  const w1 = (t & 0xffff) + a0 * b1;
  return (a1 * b1 + (t >>> 16) + (w1 >>> 16)) >>> 0;
}

// fmix64 multipliers, split into 32-bit halves.
const M1_HI = 0xff51afd7;
const M1_LO = 0xed558ccd;
const M2_HI = 0xc4ceb9fe;
const M2_LO = 0x1a85ec53;
const M1_LO_0 = M1_LO & 0xffff;
const M1_LO_1 = M1_LO >>> 16;
const M2_LO_0 = M2_LO & 0xffff;
const M2_LO_1 = M2_LO >>> 16;

let outHi = 0;
let outLo = 0;

/** murmur3 fmix64 on (hi, lo); the result is left in outHi / outLo to avoid allocating. */
function fmix64(hiIn: number, loIn: number): void {
  let hi = hiIn >>> 0;
  let lo = (loIn ^ (hi >>> 1)) >>> 0;
  let nlo = Math.imul(lo, M1_LO) >>> 0;
  let nhi = (mulHi32(lo, M1_LO) + Math.imul(lo, M1_HI) + Math.imul(hi, M1_LO)) >>> 0;
  hi = nhi;
  lo = (nlo ^ (hi >>> 1)) >>> 0;
  nlo = Math.imul(lo, M2_LO) >>> 0;
  nhi = (mulHi32(lo, M2_LO) + Math.imul(lo, M2_HI) + Math.imul(hi, M2_LO)) >>> 0;
  outHi = nhi;
  outLo = (nlo ^ (nhi >>> 1)) >>> 0;
}

function hashBytes64(seed: number, len: number): Hash64 {
  const bytes = scratch;
  let h1 = seed >>> 0;
  let h2 = (seed ^ 0x9e3779b9) >>> 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    let k1 = Math.imul(k, 0xcc9e2d51);
    k1 = Math.imul(rotl32(k1, 15), 0x1b873593);
    h1 ^= k1;
    h1 = (Math.imul(rotl32(h1, 13), 5) + 0xe6546b64) | 0;
    let k2 = Math.imul(k, 0x239b961b);
    k2 = Math.imul(rotl32(k2, 17), 0xab0e9789);
    h2 ^= k2;
    h2 = (rotl32(h2, 19) + h1) | 0;
    h2 = (Math.imul(h2, 5) + 0x561ccd1b) | 0;
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = bytes[blocks]!;
    if (tail > 1) k |= bytes[blocks + 1]! << 8;
    if (tail > 2) k |= bytes[blocks + 2]! << 16;
    h1 ^= Math.imul(rotl32(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
    h2 ^= Math.imul(rotl32(Math.imul(k, 0x239b961b), 17), 0xab0e9789);
  }
  h1 ^= len;
  h2 ^= len;
  h1 = (h1 + h2) | 0;
  h2 = (h2 + h1) | 0;
  fmix64(h2, h1);
  return { hi: outHi, lo: outLo };
}

/** The 64-bit hash of a node name (hashed once per member). */
export function hashNodeName(name: string): Hash64 {
  return hashBytes64(NODE_SEED, utf8(name));
}

/** The 64-bit hash of a target id (hashed once per target). */
export function hashTargetId(id: string): Hash64 {
  return hashBytes64(TARGET_SEED, utf8(id));
}

const TWO_POW_52 = 2 ** 52;
const TWO_POW_20 = 2 ** 20;

/**
 * The pair hash of pre-hashed node and target, mapped into the open interval (0, 1): the top
 * 52 bits k give (k + 0.5) / 2^52, an exact double, never 0 or 1 (so ln(h) is finite and < 0).
 * This is fmix64 written out with locals only: it runs T × N times on a from-scratch placement,
 * and a module-level or boxed intermediate would allocate a heap number per call.
 */
export function pairUnit(nodeHi: number, nodeLo: number, targetHi: number, targetLo: number): number {
  let hi = (nodeHi ^ targetHi) >>> 0;
  let lo = (nodeLo ^ targetLo ^ (hi >>> 1)) >>> 0;
  // (hi, lo) *= M1, low 64 bits; the high word of lo × M1_LO by 16-bit limbs.
  let a0 = lo & 0xffff;
  let a1 = lo >>> 16;
  let t = a1 * M1_LO_0 + ((a0 * M1_LO_0) >>> 16);
  let w1 = (t & 0xffff) + a0 * M1_LO_1;
  let carry = a1 * M1_LO_1 + (t >>> 16) + (w1 >>> 16);
  let nlo = Math.imul(lo, M1_LO);
  hi = (carry + Math.imul(lo, M1_HI) + Math.imul(hi, M1_LO)) >>> 0;
  lo = (nlo ^ (hi >>> 1)) >>> 0;
  // (hi, lo) *= M2
  a0 = lo & 0xffff;
  a1 = lo >>> 16;
  t = a1 * M2_LO_0 + ((a0 * M2_LO_0) >>> 16);
  w1 = (t & 0xffff) + a0 * M2_LO_1;
  carry = a1 * M2_LO_1 + (t >>> 16) + (w1 >>> 16);
  nlo = Math.imul(lo, M2_LO);
  hi = (carry + Math.imul(lo, M2_HI) + Math.imul(hi, M2_LO)) >>> 0;
  lo = (nlo ^ (hi >>> 1)) >>> 0;
  return (hi * TWO_POW_20 + (lo >>> 12) + 0.5) / TWO_POW_52;
}

/** hash64(node, target) in (0, 1): the `h` of `score = -weight / ln(h)`. */
export function hash64(nodeName: string, targetId: string): number {
  const n = hashNodeName(nodeName);
  const t = hashTargetId(targetId);
  return pairUnit(n.hi, n.lo, t.hi, t.lo);
}

/** Weighted rendezvous score; larger wins. `h` in (0, 1), weight > 0. */
export function rendezvousScore(weight: number, h: number): number {
  return -weight / Math.log(h);
}
