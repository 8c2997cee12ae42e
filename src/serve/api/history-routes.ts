// The history routes (docs/api.md):
//
//   GET /v1/events                                    the event log: the store's, else the in-memory ring
//   GET /v1/pools/{pool}/targets/{host:port}/history  rollups of every observer, merged per step
//   GET /v1/uptime?pool=&target=&window=              availability, incidents, MTTR
//
// Rollups stay where they were taken: on SQLite each node holds its own checks' minutes, so the
// node asked gathers them from every live member over the API (`?local=1` asks a node for its
// own rows only) and merges the latency sketches; on PostgreSQL every node's rows are in one
// database and are read directly.

import type { IncomingMessage, ServerResponse } from "node:http";
import { parseHostPort } from "../../config/address.ts";
import { formatDurationMs, parseDurationMs } from "../../config/duration.ts";
import { historyConfigLimits } from "../../config/history.ts";
import { poolNamePattern } from "../../config/names.ts";
import { ErrorCode, isVigilError, VigilError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { NodeCore } from "../../core/node/node-core.ts";
import type { EventLog, EventQuery as RingEventQuery, VigilEvent } from "../../runtime/events.ts";
import type { History } from "../../runtime/history.ts";
import { LatencySketch } from "../../store/sketch.ts";
import { type EventRecord, ROLLUP_STEP_MS, type RollupBucket, storeLimits } from "../../store/types.ts";
import type { NormalEventQuery } from "../../store/validate.ts";
import { sendError, sendJson } from "./http-util.ts";
import { openPeerClient, type PeerClient } from "./peer-client.ts";

const MINUTE_MS = ROLLUP_STEP_MS.minute;
const HOUR_MS = ROLLUP_STEP_MS.hour;
const DAY_MS = 24 * HOUR_MS;

export const historyRouteLimits = {
  /** Buckets in one history answer: a week of minutes. */
  maxBuckets: 10_080,
  /** Steps offered when none is asked for, the finest giving at most this many buckets. */
  autoStepMaxBuckets: 1_440,
  /** Members asked at once for their rollups. */
  maxPeersPerQuery: 64,
  /** A member that does not answer in this long is reported missing. */
  peerTimeoutMs: 5_000,
  /** Bytes read from one member's answer. */
  maxPeerResponseBytes: 16 * 1024 * 1024,
  /** verdict.changed events one uptime answer reads; beyond it the answer says truncated. */
  maxUptimeEvents: 100_000,
  /** Incidents listed per target (the newest); all of them are counted. */
  maxIncidentsListed: 1_000,
  /** Targets in one pool-wide uptime answer. */
  maxUptimeTargets: 1_000,
  windowMsMin: MINUTE_MS,
  windowMsMax: historyConfigLimits.retentionMsMax,
  defaultWindowMs: DAY_MS,
  defaultHistorySpanMs: HOUR_MS,
} as const;

const autoSteps = [MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, DAY_MS];

/** What the routes read from the node. */
export interface HistoryRouteContext {
  self: string;
  history: History | undefined;
  events: EventLog;
  wallMs(): number;
  /** The target's current verdict, or undefined when the node does not know the target. */
  verdict(pool: string, target: string): string | undefined;
  /** The pool's target keys, or undefined for an unknown pool. */
  targetsOf(pool: string): string[] | undefined;
  /** Members as `GET /v1/members` lists them. */
  members(): readonly { name: string; state: string; api: string }[];
  /** Owners and observers of a target, asked first when there are many members. */
  observersOf(pool: string, target: string): readonly string[];
  /** How peers' APIs are called (tokens, TLS: peer-client.ts); plain calls without it. */
  peers?: PeerClient;
}

const bad = (message: string, path: string): VigilError =>
  new VigilError(ErrorCode.badRequest, message, { path });

/**
 * Serves the history routes: a promise of true when the request was one of them, false when it
 * was not (the caller goes on to other routes). /v1/events is served from the store when the
 * node has one, else from its in-memory ring, with the same parameters either way.
 */
export function serveHistoryRoute(
  ctx: HistoryRouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  segments: readonly string[],
  url: URL,
): Promise<boolean> | false {
  const [a, b, c, d, e, f] = segments;
  if (a !== "v1") return false;
  let handler: (() => Promise<unknown>) | undefined;
  if (b === "events" && segments.length === 2) {
    handler = async () => {
      const r = parseEventsRequest(url, ctx.wallMs());
      const history = ctx.history;
      return history === undefined
        ? eventsFromMemory((q) => ctx.events.query(q), r)
        : eventsFromStore(history, r);
    };
  } else if (b === "uptime" && segments.length === 2) {
    handler = () => uptime(ctx, url);
  } else if (
    b === "pools" &&
    c !== undefined &&
    d === "targets" &&
    e !== undefined &&
    f === "history" &&
    segments.length === 6
  ) {
    handler = () => targetHistory(ctx, c, e, url);
  }
  if (handler === undefined) return false;
  if (req.method !== "GET") {
    sendError(res, new VigilError(ErrorCode.methodNotAllowed, "method not allowed; use GET"), {
      allow: "GET",
    });
    return Promise.resolve(true);
  }
  return handler().then((body) => {
    sendJson(res, 200, body);
    return true;
  });
}

// ── parameters ──────────────────────────────────────────────────────────────

function checkParams(url: URL, known: readonly string[]): void {
  for (const k of url.searchParams.keys()) {
    if (!known.includes(k)) {
      throw bad(`unknown query parameter "${k}"; expected ${known.map((x) => `"${x}"`).join(", ")}`, k);
    }
  }
  for (const k of known) {
    if (url.searchParams.getAll(k).length > 1) throw bad(`query parameter "${k}" is given more than once`, k);
  }
}

const timeWhat = `a time: ms since the epoch, an RFC 3339 timestamp like "2026-01-02T15:04:05Z", "now" or "now-1h"`;

/** A point in time from a query parameter. */
export function parseTimeParam(name: string, raw: string, nowMs: number): number {
  if (/^\d{1,16}$/.test(raw)) return Number(raw);
  if (raw === "now") return nowMs;
  if (raw.startsWith("now-")) {
    const ms = durationParam(name, raw.slice(4));
    return nowMs - ms;
  }
  if (/^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/i.test(raw) && raw.length <= 40) {
    const ms = Date.parse(raw);
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  throw bad(`${name} must be ${timeWhat}, got ${JSON.stringify(raw.slice(0, 64))}`, name);
}

function durationParam(name: string, raw: string): number {
  try {
    return parseDurationMs(raw);
  } catch (e) {
    if (isVigilError(e)) throw bad(`${name}: ${e.message}`, name);
    throw e;
  }
}

function nameParam(url: URL, name: string, required: boolean): string | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === "") {
    if (required) throw bad(`${name} is required`, name);
    return undefined;
  }
  if (v.length > storeLimits.maxNameChars || v.includes("\u0000")) {
    throw bad(`${name} must be at most ${storeLimits.maxNameChars} characters, without NUL`, name);
  }
  return v;
}

function poolParam(url: URL, required: boolean): string | undefined {
  const pool = nameParam(url, "pool", required);
  if (pool !== undefined && !poolNamePattern.test(pool)) {
    throw bad(
      `pool must be a pool name (lowercase letters, digits, "-" and "_"), got ${JSON.stringify(pool)}`,
      "pool",
    );
  }
  return pool;
}

function targetParam(raw: string | undefined, path: string): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseHostPort(raw).key;
  } catch {
    throw bad(`${path} must be a target "host:port", got ${JSON.stringify(raw.slice(0, 300))}`, path);
  }
}

/** The [from, to) range of a query: `to` defaults to now, `from` to `to - defaultSpanMs`. */
function rangeParams(url: URL, nowMs: number, defaultSpanMs: number): { fromMs: number; toMs: number } {
  const toRaw = url.searchParams.get("to");
  const fromRaw = url.searchParams.get("from");
  const toMs = toRaw === null || toRaw === "" ? nowMs : parseTimeParam("to", toRaw, nowMs);
  const fromMs =
    fromRaw === null || fromRaw === "" ? toMs - defaultSpanMs : parseTimeParam("from", fromRaw, nowMs);
  if (fromMs >= toMs) {
    throw bad(`from must be before to, got from ${iso(fromMs)} and to ${iso(toMs)}`, "from");
  }
  return { fromMs: Math.max(0, fromMs), toMs };
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString() : String(ms);
}

// ── GET /v1/events ──────────────────────────────────────────────────────────

const eventParams = ["since", "before", "order", "limit", "pool", "target", "type", "from", "to"] as const;

/** Events per page when `limit` is not given. */
export const EVENTS_PAGE_DEFAULT = 100;

function cursorParam(url: URL, name: "since" | "before"): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw bad(`${name} must be a non-negative integer cursor, got ${JSON.stringify(raw.slice(0, 64))}`, name);
  }
  return Number(raw);
}

/**
 * Checks the query of `GET /v1/events`, for the store and the in-memory ring alike (the API
 * server's fallback for a backend without these routes parses with it too); a bad or conflicting
 * parameter is a 400 naming it. Without `order`: "asc" when `since` is given, else "desc" (a bare
 * request answers with the newest events); `since` becomes `after`.
 */
export function parseEventsRequest(url: URL, nowMs: number): NormalEventQuery {
  checkParams(url, eventParams);
  const since = cursorParam(url, "since");
  const before = cursorParam(url, "before");
  const orderRaw = url.searchParams.get("order");
  if (orderRaw !== null && orderRaw !== "asc" && orderRaw !== "desc") {
    throw bad(`order must be "asc" or "desc", got ${JSON.stringify(orderRaw.slice(0, 64))}`, "order");
  }
  if (since !== undefined && before !== undefined) {
    throw bad(
      "before cannot be combined with since: since pages oldest first (order=asc), before newest first (order=desc)",
      "before",
    );
  }
  const order = orderRaw ?? (since !== undefined ? "asc" : "desc");
  if (order === "asc" && before !== undefined) {
    throw bad("before pages newest first: use it with order=desc, or page oldest first with since", "before");
  }
  if (order === "desc" && since !== undefined) {
    throw bad("since pages oldest first: use it with order=asc, or page newest first with before", "since");
  }
  const limitRaw = url.searchParams.get("limit");
  let limit = EVENTS_PAGE_DEFAULT;
  if (limitRaw !== null) {
    if (!/^\d{1,4}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > limits.maxEventsPerPage) {
      throw bad(
        `limit must be an integer between 1 and ${limits.maxEventsPerPage}, got ${JSON.stringify(limitRaw.slice(0, 64))}`,
        "limit",
      );
    }
    limit = Number(limitRaw);
  }
  const typeRaw = url.searchParams.get("type");
  let types: string[] | undefined;
  if (typeRaw !== null && typeRaw !== "") {
    types = typeRaw.split(",").filter((t) => t !== "");
    if (
      types.length > storeLimits.maxTypesPerQuery ||
      types.some((t) => t.length > storeLimits.maxEventFieldChars)
    ) {
      throw bad(`type must list at most ${storeLimits.maxTypesPerQuery} event types`, "type");
    }
  }
  const fromRaw = url.searchParams.get("from");
  const toRaw = url.searchParams.get("to");
  const fromMs = fromRaw === null || fromRaw === "" ? undefined : parseTimeParam("from", fromRaw, nowMs);
  const toMs = toRaw === null || toRaw === "" ? undefined : parseTimeParam("to", toRaw, nowMs);
  if (fromMs !== undefined && toMs !== undefined && fromMs >= toMs) {
    throw bad(`from must be before to, got from ${iso(fromMs)} and to ${iso(toMs)}`, "from");
  }
  return {
    order,
    after: since ?? 0,
    before,
    limit,
    pool: nameParam(url, "pool", false),
    target: nameParam(url, "target", false),
    types,
    fromMs,
    toMs,
  };
}

async function eventsFromStore(history: History, r: NormalEventQuery): Promise<unknown> {
  const page = await history.queryEvents({
    order: r.order,
    limit: r.limit,
    ...(r.order === "asc" ? { afterCursor: String(r.after) } : {}),
    ...(r.before === undefined ? {} : { beforeCursor: String(r.before) }),
    ...(r.pool === undefined ? {} : { pool: r.pool }),
    ...(r.target === undefined ? {} : { target: r.target }),
    ...(r.types === undefined ? {} : { types: r.types }),
    ...(r.fromMs === undefined ? {} : { fromMs: r.fromMs }),
    ...(r.toMs === undefined ? {} : { toMs: r.toMs }),
  });
  return {
    events: page.events.map(apiEvent),
    next: Number(page.nextCursor),
    order: r.order,
    source: history.store.kind,
  };
}

/**
 * Without a store: an in-memory ring (`EventLog.query`, or an API backend's `queryEvents`), with
 * the same parameters and paging, answered in the same shape.
 */
export function eventsFromMemory(
  query: (q: RingEventQuery) => { events: VigilEvent[]; next: number },
  r: NormalEventQuery,
): { events: VigilEvent[]; next: number; order: "asc" | "desc"; source: "memory" } {
  const page = query({
    order: r.order,
    since: r.after,
    limit: r.limit,
    ...(r.before === undefined ? {} : { before: r.before }),
    ...(r.pool === undefined ? {} : { pool: r.pool }),
    ...(r.target === undefined ? {} : { target: r.target }),
    ...(r.types === undefined ? {} : { types: new Set(r.types) }),
    ...(r.fromMs === undefined ? {} : { fromMs: r.fromMs }),
    ...(r.toMs === undefined ? {} : { toMs: r.toMs }),
  });
  return { events: page.events, next: page.next, order: r.order, source: "memory" };
}

/** An event as the API shows it: the in-memory shape (`seq` = the store's cursor), plus `id`. */
function apiEvent(e: EventRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { ...e.data, seq: Number(e.cursor), id: e.id, ts: e.ts, type: e.type };
  if (e.pool !== undefined) out.pool = e.pool;
  if (e.target !== undefined) out.target = e.target;
  if (e.node !== undefined) out.node = e.node;
  if (e.from !== undefined) out.from = e.from;
  if (e.to !== undefined) out.to = e.to;
  if (e.cause !== undefined) out.cause = e.cause;
  return out;
}

// ── GET /v1/pools/{pool}/targets/{host:port}/history ────────────────────────

const historyParams = ["from", "to", "step", "local"] as const;

/** One step of merged rollups. */
interface Agg {
  count: number;
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  sketch: LatencySketch;
  nodes: Set<string>;
}

function stepParam(url: URL, fromMs: number, toMs: number): number {
  const raw = url.searchParams.get("step");
  if (raw === null || raw === "") {
    const span = toMs - fromMs;
    return autoSteps.find((s) => span / s <= historyRouteLimits.autoStepMaxBuckets) ?? DAY_MS;
  }
  const stepMs = durationParam("step", raw);
  if (stepMs < MINUTE_MS || stepMs % MINUTE_MS !== 0) {
    throw bad(`step must be a whole number of minutes, at least 1m, got ${JSON.stringify(raw)}`, "step");
  }
  return stepMs;
}

/** Adds a rollup (a store row or a peer's bucket) into the step holding its start. */
function addTo(
  aggs: Map<number, Agg>,
  stepMs: number,
  node: string,
  r: Pick<RollupBucket, "startMs" | "count" | "failures" | "latencyMsMin" | "latencyMsMax" | "latencyMsSum">,
  sketch: LatencySketch | undefined,
): void {
  const start = r.startMs - (r.startMs % stepMs);
  let a = aggs.get(start);
  if (a === undefined) {
    a = {
      count: 0,
      failures: 0,
      latencyMsMin: Number.POSITIVE_INFINITY,
      latencyMsMax: 0,
      latencyMsSum: 0,
      sketch: new LatencySketch(),
      nodes: new Set(),
    };
    aggs.set(start, a);
  }
  a.count += r.count;
  a.failures += r.failures;
  a.latencyMsMin = Math.min(a.latencyMsMin, r.latencyMsMin);
  a.latencyMsMax = Math.max(a.latencyMsMax, r.latencyMsMax);
  a.latencyMsSum += r.latencyMsSum;
  if (sketch !== undefined) a.sketch.merge(sketch);
  a.nodes.add(node);
}

async function targetHistory(
  ctx: HistoryRouteContext,
  poolRaw: string,
  targetRaw: string,
  url: URL,
): Promise<unknown> {
  checkParams(url, historyParams);
  const local = url.searchParams.get("local");
  if (local !== null && local !== "1")
    throw bad(`local must be 1 when given, got ${JSON.stringify(local.slice(0, 20))}`, "local");
  if (!poolNamePattern.test(poolRaw)) throw new VigilError(ErrorCode.notFound, `no pool named "${poolRaw}"`);
  const target = targetParam(targetRaw, "target") ?? targetRaw;
  const nowMs = ctx.wallMs();
  const { fromMs, toMs } = rangeParams(url, nowMs, historyRouteLimits.defaultHistorySpanMs);
  const stepMs = stepParam(url, fromMs, toMs);
  const fromA = fromMs - (fromMs % stepMs);
  const toA = Math.ceil(toMs / stepMs) * stepMs;
  if ((toA - fromA) / stepMs > historyRouteLimits.maxBuckets) {
    throw bad(
      `from..to at step ${formatDurationMs(stepMs)} is ${Math.round((toA - fromA) / stepMs)} steps, more than ${historyRouteLimits.maxBuckets}: use a larger step`,
      "step",
    );
  }
  const hourly = stepMs % HOUR_MS === 0;

  if (local === "1") {
    // A peer asks for this node's own rows: answered from what the store holds, whatever the
    // node currently thinks of the pool (its view may lag the asker's).
    const h = ctx.history;
    if (h === undefined) return { node: ctx.self, history: false, buckets: [], truncated: false };
    const { rows, truncated } = await h.rollups({
      pool: poolRaw,
      target,
      fromMs: fromA,
      toMs: toA,
      hourly,
      node: ctx.self,
    });
    const aggs = new Map<number, Agg>();
    for (const r of rows) addTo(aggs, stepMs, r.node, r, decodeSketch(r.sketch));
    return {
      node: ctx.self,
      history: true,
      buckets: [...aggs.entries()]
        .sort((x, y) => x[0] - y[0])
        .map(([start, a]) => ({
          start,
          count: a.count,
          failures: a.failures,
          min: a.latencyMsMin,
          max: a.latencyMsMax,
          sum: a.latencyMsSum,
          sketch: Buffer.from(a.sketch.encode()).toString("base64"),
        })),
      truncated,
    };
  }

  if (ctx.verdict(poolRaw, target) === undefined) {
    throw new VigilError(
      ErrorCode.notFound,
      ctx.targetsOf(poolRaw) === undefined
        ? `no pool named "${poolRaw}"`
        : `pool "${poolRaw}" has no target "${target}"`,
    );
  }
  const aggs = new Map<number, Agg>();
  const missing: { node: string; error: string }[] = [];
  let truncated = false;
  let badSketches = 0;
  let source: string;
  const h = ctx.history;
  if (h?.shared) {
    source = "postgres";
    const r = await h.rollups({ pool: poolRaw, target, fromMs: fromA, toMs: toA, hourly });
    truncated = r.truncated;
    for (const row of r.rows) {
      const s = decodeSketch(row.sketch);
      if (s === undefined) badSketches++;
      addTo(aggs, stepMs, row.node, row, s);
    }
  } else {
    source = "members";
    if (h !== undefined) {
      const r = await h.rollups({ pool: poolRaw, target, fromMs: fromA, toMs: toA, hourly, node: ctx.self });
      truncated = r.truncated;
      for (const row of r.rows) addTo(aggs, stepMs, row.node, row, decodeSketch(row.sketch));
    }
    const { peers, skipped } = peersToAsk(ctx, poolRaw, target);
    for (const name of skipped)
      missing.push({
        node: name,
        error: `not asked: more than ${historyRouteLimits.maxPeersPerQuery} members`,
      });
    const query = `from=${fromA}&to=${toA}&step=${formatDurationMs(stepMs)}&local=1`;
    const path = `/v1/pools/${encodeURIComponent(poolRaw)}/targets/${encodeURIComponent(target)}/history?${query}`;
    const client = ctx.peers ?? openPeerClient;
    const answers = await Promise.all(peers.map((p) => askPeer(client, p, path, fromA, toA, stepMs)));
    for (const ans of answers) {
      if (!ans.ok) {
        missing.push({ node: ans.node, error: ans.error });
        continue;
      }
      truncated ||= ans.truncated;
      badSketches += ans.badSketches;
      for (const b of ans.buckets) addTo(aggs, stepMs, ans.node, b, b.sketch);
    }
  }
  const buckets = [...aggs.entries()].sort((x, y) => x[0] - y[0]).map(([start, a]) => bucketView(start, a));
  const observers = new Set<string>();
  for (const a of aggs.values()) for (const n of a.nodes) observers.add(n);
  return {
    pool: poolRaw,
    target,
    from: fromA,
    to: toA,
    step: formatDurationMs(stepMs),
    stepMs,
    resolution: hourly ? "hour" : "minute",
    source,
    observers: [...observers].sort(),
    buckets,
    partial: missing.length > 0 || truncated,
    ...(missing.length > 0 ? { missing } : {}),
    ...(truncated ? { truncated } : {}),
    ...(badSketches > 0 ? { badSketches } : {}),
  };
}

function bucketView(start: number, a: Agg): Record<string, unknown> {
  const q = (p: number): number | null => {
    const v = a.sketch.quantile(p);
    return v === undefined ? null : round3(v);
  };
  return {
    start,
    count: a.count,
    failures: a.failures,
    availabilityPercent: round3((100 * (a.count - a.failures)) / a.count),
    latencyMs: {
      min: round3(a.latencyMsMin),
      mean: round3(a.latencyMsSum / a.count),
      max: round3(a.latencyMsMax),
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
    },
    observers: [...a.nodes].sort(),
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function decodeSketch(bytes: Uint8Array): LatencySketch | undefined {
  const d = LatencySketch.decode(bytes);
  return d.ok ? d.value : undefined;
}

interface Peer {
  name: string;
  api: string;
}

/** Live members other than this one with an API; owners and observers first when there are many. */
function peersToAsk(
  ctx: HistoryRouteContext,
  pool: string,
  target: string,
): { peers: Peer[]; skipped: string[] } {
  const live = ctx
    .members()
    .filter(
      (m) =>
        m.name !== ctx.self && (m.state === "alive" || m.state === "suspect") && /^https?:\/\//.test(m.api),
    );
  if (live.length <= historyRouteLimits.maxPeersPerQuery) return { peers: live, skipped: [] };
  const first = new Set(ctx.observersOf(pool, target));
  live.sort((x, y) => Number(first.has(y.name)) - Number(first.has(x.name)) || (x.name < y.name ? -1 : 1));
  return {
    peers: live.slice(0, historyRouteLimits.maxPeersPerQuery),
    skipped: live.slice(historyRouteLimits.maxPeersPerQuery).map((m) => m.name),
  };
}

interface PeerBucket {
  startMs: number;
  count: number;
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  sketch: LatencySketch | undefined;
}

type PeerAnswer =
  | { ok: true; node: string; buckets: PeerBucket[]; truncated: boolean; badSketches: number }
  | { ok: false; node: string; error: string };

async function askPeer(
  client: PeerClient,
  peer: Peer,
  path: string,
  fromMs: number,
  toMs: number,
  stepMs: number,
): Promise<PeerAnswer> {
  let body: unknown;
  try {
    // With api_tokens the client sends this node's token; with api_tls it speaks https only.
    const res = await client.get(peer.api + path, {
      timeoutMs: historyRouteLimits.peerTimeoutMs,
      maxBytes: historyRouteLimits.maxPeerResponseBytes,
    });
    if (res.status !== 200) return { ok: false, node: peer.name, error: `status ${res.status}` };
    body = JSON.parse(res.text);
  } catch (e) {
    return { ok: false, node: peer.name, error: (e as Error).message || String(e) };
  }
  const parsed = parsePeerAnswer(body, fromMs, toMs, stepMs);
  if (typeof parsed === "string") return { ok: false, node: peer.name, error: `bad answer: ${parsed}` };
  return { ok: true, node: peer.name, ...parsed };
}

/** A peer's `?local=1` answer, checked field by field: it is input from the network. */
export function parsePeerAnswer(
  body: unknown,
  fromMs: number,
  toMs: number,
  stepMs: number,
): { buckets: PeerBucket[]; truncated: boolean; badSketches: number } | string {
  if (typeof body !== "object" || body === null) return "not an object";
  const o = body as Record<string, unknown>;
  if (!Array.isArray(o.buckets)) return "no buckets";
  if (o.buckets.length > historyRouteLimits.maxBuckets) return "too many buckets";
  const out: PeerBucket[] = [];
  let badSketches = 0;
  for (const [i, raw] of o.buckets.entries()) {
    if (typeof raw !== "object" || raw === null) return `bucket ${i}: not an object`;
    const b = raw as Record<string, unknown>;
    const { start, count, failures, min, max, sum, sketch } = b;
    if (
      !Number.isSafeInteger(start) ||
      (start as number) < fromMs ||
      (start as number) >= toMs ||
      (start as number) % stepMs !== 0
    ) {
      return `bucket ${i}: start out of range`;
    }
    if (!Number.isSafeInteger(count) || (count as number) < 1) return `bucket ${i}: bad count`;
    if (
      !Number.isSafeInteger(failures) ||
      (failures as number) < 0 ||
      (failures as number) > (count as number)
    ) {
      return `bucket ${i}: bad failures`;
    }
    for (const [k, v] of [
      ["min", min],
      ["max", max],
      ["sum", sum],
    ] as const) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return `bucket ${i}: bad ${k}`;
    }
    if ((min as number) > (max as number)) return `bucket ${i}: min above max`;
    let s: LatencySketch | undefined;
    if (typeof sketch === "string" && sketch.length <= 4 * 1024 * 1024) {
      const d = LatencySketch.decode(new Uint8Array(Buffer.from(sketch, "base64")));
      if (d.ok) s = d.value;
    }
    if (s === undefined) badSketches++;
    out.push({
      startMs: start as number,
      count: count as number,
      failures: failures as number,
      latencyMsMin: min as number,
      latencyMsMax: max as number,
      latencyMsSum: sum as number,
      sketch: s,
    });
  }
  return { buckets: out, truncated: o.truncated === true, badSketches };
}

// ── GET /v1/uptime ──────────────────────────────────────────────────────────

const uptimeParams = ["pool", "target", "window"] as const;

/** A verdict transition as uptime reads it. */
export interface VerdictChange {
  ts: number;
  from?: string | undefined;
  to?: string | undefined;
  cause?: string | undefined;
}

export interface Incident {
  start: number;
  end: number | null;
  durationMs: number;
  cause: string | null;
  ongoing: boolean;
  /** It began before the window: `start` is the window's start. */
  beforeWindow?: true;
}

export interface UptimeReport {
  availabilityPercent: number | null;
  upMs: number;
  downMs: number;
  unknownMs: number;
  incidentCount: number;
  incidents: Incident[];
  mttrMs: number | null;
  lastIncident: Incident | null;
  sinceLastIncidentMs: number | null;
}

/**
 * Availability over [fromMs, toMs) from a target's verdict changes (sorted by time, all of them
 * at or after fromMs): up time over up plus down time (unknown counts for neither), incidents as
 * the spans spent down. The state before the first change is that change's `from`; with no
 * change at all, `current` held throughout.
 */
export function computeUptime(
  changes: readonly VerdictChange[],
  fromMs: number,
  toMs: number,
  current: string,
): UptimeReport {
  const spent = { up: 0, down: 0, unknown: 0 };
  const norm = (s: string | undefined): "up" | "down" | "unknown" =>
    s === "up" || s === "down" ? s : "unknown";
  let state = norm(changes.length > 0 ? changes[0]!.from : current);
  let t = fromMs;
  const incidents: Incident[] = [];
  let open: { start: number; cause: string | null; beforeWindow: boolean } | undefined;
  if (state === "down") open = { start: fromMs, cause: null, beforeWindow: true };
  for (const c of changes) {
    const at = Math.min(Math.max(c.ts, fromMs), toMs);
    spent[state] += at - t;
    t = at;
    const next = norm(c.to);
    if (next === "down" && state !== "down")
      open = { start: at, cause: c.cause ?? null, beforeWindow: false };
    if (state === "down" && next !== "down" && open !== undefined) {
      incidents.push({
        start: open.start,
        end: at,
        durationMs: at - open.start,
        cause: open.cause,
        ongoing: false,
        ...(open.beforeWindow ? { beforeWindow: true as const } : {}),
      });
      open = undefined;
    }
    state = next;
  }
  spent[state] += toMs - t;
  if (open !== undefined) {
    incidents.push({
      start: open.start,
      end: null,
      durationMs: toMs - open.start,
      cause: open.cause,
      ongoing: true,
      ...(open.beforeWindow ? { beforeWindow: true as const } : {}),
    });
  }
  const ended = incidents.filter((i) => !i.ongoing);
  const last = incidents[incidents.length - 1] ?? null;
  const judged = spent.up + spent.down;
  return {
    availabilityPercent: judged === 0 ? null : Math.round((1e6 * spent.up) / judged) / 1e4,
    upMs: spent.up,
    downMs: spent.down,
    unknownMs: spent.unknown,
    incidentCount: incidents.length,
    incidents: incidents.slice(-historyRouteLimits.maxIncidentsListed),
    mttrMs:
      ended.length === 0 ? null : Math.round(ended.reduce((s, i) => s + i.durationMs, 0) / ended.length),
    lastIncident: last,
    sinceLastIncidentMs: last === null ? null : last.ongoing ? 0 : toMs - (last.end ?? toMs),
  };
}

async function uptime(ctx: HistoryRouteContext, url: URL): Promise<unknown> {
  checkParams(url, uptimeParams);
  const pool = poolParam(url, true)!;
  const target = targetParam(nameParam(url, "target", false), "target");
  const windowRaw = url.searchParams.get("window");
  let windowMs: number = historyRouteLimits.defaultWindowMs;
  if (windowRaw !== null && windowRaw !== "") {
    windowMs = durationParam("window", windowRaw);
    if (windowMs < historyRouteLimits.windowMsMin || windowMs > historyRouteLimits.windowMsMax) {
      throw bad(
        `window must be from ${formatDurationMs(historyRouteLimits.windowMsMin)} to ${formatDurationMs(historyRouteLimits.windowMsMax)}, got ${JSON.stringify(windowRaw)}`,
        "window",
      );
    }
  }
  const keys = ctx.targetsOf(pool);
  if (keys === undefined) throw new VigilError(ErrorCode.notFound, `no pool named "${pool}"`);
  if (target !== undefined && !keys.includes(target)) {
    throw new VigilError(ErrorCode.notFound, `pool "${pool}" has no target "${target}"`);
  }
  const toMs = ctx.wallMs();
  const fromMs = Math.max(0, toMs - windowMs);
  const wanted = target === undefined ? keys.slice(0, historyRouteLimits.maxUptimeTargets) : [target];
  const { byTarget, truncated, source } = await verdictChanges(ctx, pool, target, fromMs, toMs);
  const reports = wanted.map((t) => {
    const changes = (byTarget.get(t) ?? []).sort((x, y) => x.ts - y.ts);
    return {
      target: t,
      state: ctx.verdict(pool, t) ?? "unknown",
      ...computeUptime(changes, fromMs, toMs, ctx.verdict(pool, t) ?? "unknown"),
    };
  });
  const head = {
    pool,
    window: formatDurationMs(windowMs),
    windowMs,
    from: fromMs,
    to: toMs,
    source,
    ...(truncated ? { truncated: true } : {}),
  };
  if (target !== undefined) return { ...head, ...reports[0] };
  let up = 0;
  let down = 0;
  for (const r of reports) {
    up += r.upMs;
    down += r.downMs;
  }
  return {
    ...head,
    availabilityPercent: up + down === 0 ? null : Math.round((1e6 * up) / (up + down)) / 1e4,
    incidentCount: reports.reduce((s, r) => s + r.incidentCount, 0),
    ...(keys.length > wanted.length ? { targetsListed: wanted.length, targetsInPool: keys.length } : {}),
    targets: reports,
  };
}

/** verdict.changed events of a pool (or one target) since fromMs: from the store, or the in-memory log. */
async function verdictChanges(
  ctx: HistoryRouteContext,
  pool: string,
  target: string | undefined,
  fromMs: number,
  toMs: number,
): Promise<{ byTarget: Map<string, VerdictChange[]>; truncated: boolean; source: string }> {
  const byTarget = new Map<string, VerdictChange[]>();
  const add = (e: {
    ts: number;
    target?: string | undefined;
    from?: string | undefined;
    to?: string | undefined;
    cause?: string | undefined;
  }): void => {
    if (e.target === undefined || e.ts < fromMs || e.ts >= toMs) return;
    let list = byTarget.get(e.target);
    if (list === undefined) {
      list = [];
      byTarget.set(e.target, list);
    }
    list.push({ ts: e.ts, from: e.from, to: e.to, cause: e.cause });
  };
  let read = 0;
  const h = ctx.history;
  if (h !== undefined) {
    let cursor: string | undefined;
    for (;;) {
      const page = await h.queryEvents({
        limit: storeLimits.maxEventsPerQuery,
        pool,
        ...(target === undefined ? {} : { target }),
        types: ["verdict.changed"],
        fromMs,
        toMs,
        ...(cursor === undefined ? {} : { afterCursor: cursor }),
      });
      for (const e of page.events) add(e);
      read += page.events.length;
      if (page.events.length < storeLimits.maxEventsPerQuery)
        return { byTarget, truncated: false, source: h.store.kind };
      if (read >= historyRouteLimits.maxUptimeEvents)
        return { byTarget, truncated: true, source: h.store.kind };
      cursor = page.nextCursor;
    }
  }
  // No store: what this process still holds in memory.
  let since = 0;
  const types = new Set(["verdict.changed"]);
  for (;;) {
    const page = ctx.events.query({
      since,
      limit: limits.maxEventsPerPage,
      pool,
      ...(target === undefined ? {} : { target }),
      types,
    });
    for (const e of page.events as VigilEvent[]) add(e);
    read += page.events.length;
    if (page.next === since) return { byTarget, truncated: false, source: "memory" };
    if (read >= historyRouteLimits.maxUptimeEvents) return { byTarget, truncated: true, source: "memory" };
    since = page.next;
  }
}

// ── wiring ──────────────────────────────────────────────────────────────────

/** What the routes need of a running node; VigilNode has it. */
export interface RouteNode {
  readonly name: string;
  readonly events: EventLog;
  readonly core: Pick<NodeCore, "target" | "targetsOf" | "owners" | "observations">;
  members(): unknown[];
}

/** The routes' view of a node. Reads `node.core` at each call (start() may replace it). */
export function nodeRouteContext(
  node: RouteNode,
  history: () => History | undefined,
  wallMs: () => number,
  peers?: PeerClient,
): HistoryRouteContext {
  return {
    ...(peers === undefined ? {} : { peers }),
    self: node.name,
    get history() {
      return history();
    },
    events: node.events,
    wallMs,
    verdict: (pool, target) => node.core.target(pool, target)?.verdict,
    targetsOf: (pool) => node.core.targetsOf(pool)?.map((t) => t.addr.key),
    members: () =>
      node.members().flatMap((m) => {
        const o = m as { name?: unknown; state?: unknown; api?: unknown };
        return typeof o.name === "string" && typeof o.state === "string" && typeof o.api === "string"
          ? [{ name: o.name, state: o.state, api: o.api }]
          : [];
      }),
    observersOf: (pool, target) => {
      const id = `${pool}/${target}`;
      return [...node.core.owners(id), ...node.core.observations.observationsOf(id).map((r) => r.observer)];
    },
  };
}
