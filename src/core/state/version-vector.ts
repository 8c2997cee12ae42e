// Version vectors: observer → the counter up to which a replica holds every register of that
// observer that still matters. A missing entry means 0 (nothing claimed). The plain form is a
// sorted array of [observer, counter] pairs, ready for any codec.

import type { Dot } from "./dots.ts";
import { isCounter } from "./dots.ts";

export type VersionVector = Map<string, number>;
export type ReadonlyVersionVector = ReadonlyMap<string, number>;
export type VectorEntries = readonly (readonly [observer: string, counter: number])[];

export type VectorOrder = "equal" | "before" | "after" | "concurrent";

export function vvGet(vv: ReadonlyVersionVector, observer: string): number {
  return vv.get(observer) ?? 0;
}

/** Raises one entry to at least `counter`; returns whether it changed. */
export function vvRaise(vv: VersionVector, observer: string, counter: number): boolean {
  if (counter <= (vv.get(observer) ?? 0)) return false;
  vv.set(observer, counter);
  return true;
}

/** Pointwise max into `into`; returns whether anything changed. */
export function vvMerge(into: VersionVector, other: ReadonlyVersionVector): boolean {
  let changed = false;
  for (const [o, c] of other) if (vvRaise(into, o, c)) changed = true;
  return changed;
}

/** a ≥ b pointwise: a has seen everything b has. */
export function vvDominates(a: ReadonlyVersionVector, b: ReadonlyVersionVector): boolean {
  for (const [o, c] of b) if ((a.get(o) ?? 0) < c) return false;
  return true;
}

export function vvCompare(a: ReadonlyVersionVector, b: ReadonlyVersionVector): VectorOrder {
  const aGeB = vvDominates(a, b);
  const bGeA = vvDominates(b, a);
  if (aGeB && bGeA) return "equal";
  if (aGeB) return "after";
  if (bGeA) return "before";
  return "concurrent";
}

/** Whether the vector claims this dot. */
export function vvCovers(vv: ReadonlyVersionVector, d: Dot): boolean {
  return d.counter <= (vv.get(d.observer) ?? 0);
}

/** Plain form, sorted by observer; zero entries are left out. */
export function vvToEntries(vv: ReadonlyVersionVector): [string, number][] {
  const out: [string, number][] = [];
  for (const [o, c] of vv) if (c > 0) out.push([o, c]);
  out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return out;
}

/**
 * From the plain form. Total: anything that is not an array of [non-empty string, positive
 * safe integer] with distinct observers, within `maxEntries`, gives undefined.
 */
export function vvFromEntries(
  raw: unknown,
  maxEntries: number,
  maxObserverChars: number,
): VersionVector | undefined {
  if (!Array.isArray(raw) || raw.length > maxEntries) return undefined;
  const vv: VersionVector = new Map();
  for (const e of raw) {
    if (!Array.isArray(e) || e.length !== 2) return undefined;
    const [o, c] = e as unknown[];
    if (typeof o !== "string" || o.length === 0 || o.length > maxObserverChars) return undefined;
    if (!isCounter(c) || vv.has(o)) return undefined;
    vv.set(o, c);
  }
  return vv;
}
