// Bounded checks for opaque JSON values arriving from peers: the state layer does not know
// what an observation or a pool spec looks like, only that it must be plain, finite JSON of
// bounded size, so that storing it, re-encoding it and comparing it cannot blow up.

import { stateLimits } from "./limits.ts";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface JsonBounds {
  maxDepth: number;
  maxNodes: number;
  maxStringChars: number;
}

export const defaultJsonBounds: JsonBounds = {
  maxDepth: stateLimits.maxValueDepth,
  maxNodes: stateLimits.maxValueNodes,
  maxStringChars: stateLimits.maxValueStringChars,
};

/**
 * Whether `x` is plain JSON within the bounds: null, booleans, finite numbers, strings, arrays
 * and plain objects. Iterative, so a deep value cannot overflow the stack; never throws.
 */
export function isBoundedJson(x: unknown, bounds: JsonBounds = defaultJsonBounds): x is JsonValue {
  try {
    return checkJson(x, bounds);
  } catch {
    // Only exotic objects (proxies, throwing getters) get here; they are not plain JSON.
    return false;
  }
}

function checkJson(x: unknown, bounds: JsonBounds): boolean {
  const stack: [unknown, number][] = [[x, 0]];
  let nodes = 0;
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (++nodes > bounds.maxNodes || depth > bounds.maxDepth) return false;
    if (v === null || typeof v === "boolean") continue;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return false;
      continue;
    }
    if (typeof v === "string") {
      if (v.length > bounds.maxStringChars) return false;
      continue;
    }
    if (Array.isArray(v)) {
      if (v.length > bounds.maxNodes) return false;
      for (const e of v) stack.push([e, depth + 1]);
      continue;
    }
    if (typeof v !== "object") return false;
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    const keys = Object.keys(v);
    if (keys.length > bounds.maxNodes) return false;
    for (const k of keys) {
      if (k.length > bounds.maxStringChars) return false;
      stack.push([(v as Record<string, unknown>)[k], depth + 1]);
    }
  }
  return true;
}

/** A value decoder for callers that keep the value opaque: bounded JSON, else undefined. */
export function anyJsonValue(x: unknown): JsonValue | undefined {
  return isBoundedJson(x) ? x : undefined;
}
