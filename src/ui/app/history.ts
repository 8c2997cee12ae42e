// Target history for the target page: the latency series (from rollups, or else from the
// node's recent results) and the verdict timeline (from verdict.changed events). Pure.

import type { RecentResult, VigilEvent } from "./api.ts";

export interface LatencyPoint {
  /** Start of the bucket (or time of the check), ms since the epoch. */
  t: number;
  /** Mean latency of the successful checks in the bucket. */
  latencyMs: number | null;
  checks: number;
  failures: number;
  /** The bucket's 95th percentile, when the answer has one. */
  p95Ms?: number | null;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/**
 * Reads a history answer (`GET .../history`: `{buckets: [{start, count, failures,
 * latencyMs: {mean, p95, ...}}]}`) into one point per time bucket, merging rows of the same
 * bucket weighted by their check counts. Also accepts a bare array, `points|rollups|history`
 * lists, `startMs|ts|t` times and flat `latencyMsAvg|latencyMsMean` or `latencyMsSum` latencies
 * (the store's own row shape). Undefined when the answer has no list of rows at all.
 */
export function parseHistory(body: unknown): LatencyPoint[] | undefined {
  const o = (body ?? {}) as Record<string, unknown>;
  const rows = Array.isArray(body)
    ? body
    : [o.buckets, o.points, o.rollups, o.history, o.series].find((v) => Array.isArray(v));
  if (!Array.isArray(rows)) return undefined;
  const byT = new Map<
    number,
    { sum: number; weight: number; checks: number; failures: number; p95: number | null }
  >();
  for (const raw of rows as unknown[]) {
    if (typeof raw !== "object" || raw === null) continue;
    const r = raw as Record<string, unknown>;
    const t = num(r.startMs) ?? num(r.ts) ?? num(r.t) ?? num(r.start);
    if (t === undefined) continue;
    const checks = num(r.count) ?? num(r.checks) ?? 0;
    const failures = num(r.failures) ?? num(r.failed) ?? 0;
    const sum = num(r.latencyMsSum);
    const lat =
      typeof r.latencyMs === "object" && r.latencyMs !== null ? (r.latencyMs as Record<string, unknown>) : {};
    const p95 = num(lat.p95) ?? num(r.latencyMsP95);
    const avg =
      num(lat.mean) ??
      num(lat.p50) ??
      num(r.latencyMsAvg) ??
      num(r.latencyMsMean) ??
      num(r.latencyMs) ??
      (sum !== undefined && checks > 0 ? sum / checks : undefined) ??
      num(r.latencyMsP50) ??
      num(r.p50);
    const acc = byT.get(t) ?? { sum: 0, weight: 0, checks: 0, failures: 0, p95: null };
    // Merged percentiles are not averages; the highest one is an honest upper line.
    if (p95 !== undefined) acc.p95 = Math.max(acc.p95 ?? 0, p95);
    if (avg !== undefined) {
      const w = Math.max(1, checks);
      acc.sum += avg * w;
      acc.weight += w;
    }
    acc.checks += checks;
    acc.failures += failures;
    byT.set(t, acc);
  }
  return [...byT.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([t, a]) => {
      const p: LatencyPoint = {
        t,
        latencyMs: a.weight > 0 ? a.sum / a.weight : null,
        checks: a.checks,
        failures: a.failures,
      };
      if (a.p95 !== null) p.p95Ms = a.p95;
      return p;
    });
}

/** The node's own last results as points: failed checks keep their latency but count as failures. */
export function recentToPoints(recent: readonly RecentResult[] | undefined): LatencyPoint[] {
  return (recent ?? [])
    .filter((r) => Number.isFinite(r.ts))
    .map((r) => ({ t: r.ts, latencyMs: r.ok ? r.latencyMs : null, checks: 1, failures: r.ok ? 0 : 1 }))
    .sort((a, b) => a.t - b.t);
}

export interface Segment {
  startMs: number;
  endMs: number;
  state: string;
}

/**
 * The verdict over [windowStartMs, nowMs] as contiguous segments, from verdict.changed events
 * (any order) and the current verdict. Before the first known change the verdict is that
 * change's `from`; with no change at all, it is the current one throughout.
 */
export function timelineSegments(
  events: readonly VigilEvent[],
  current: string,
  windowStartMs: number,
  nowMs: number,
): Segment[] {
  if (nowMs <= windowStartMs) return [];
  const changes = events
    .filter((e) => e.type === "verdict.changed" && typeof e.to === "string")
    .slice()
    .sort((a, b) => a.ts - b.ts || a.seq - b.seq);
  const before = changes.filter((e) => e.ts <= windowStartMs);
  const inside = changes.filter((e) => e.ts > windowStartMs && e.ts < nowMs);
  let state =
    before.at(-1)?.to ??
    inside[0]?.from ??
    (changes.length === 0 ? current : (changes.at(-1)!.to ?? current));
  const out: Segment[] = [];
  let start = windowStartMs;
  for (const e of inside) {
    if (e.ts > start) out.push({ startMs: start, endMs: e.ts, state });
    state = e.to!;
    start = e.ts;
  }
  out.push({ startMs: start, endMs: nowMs, state });
  // Adjacent equal states (a change to the same verdict) read as one.
  const merged: Segment[] = [];
  for (const s of out) {
    const last = merged.at(-1);
    if (last !== undefined && last.state === s.state) last.endMs = s.endMs;
    else merged.push({ ...s });
  }
  return merged;
}
