// Checks shared by both stores, so they refuse the same input with the same message. A refused
// call writes nothing. Queries may carry user input from the API (cursors, filters), hence
// VIGIL_ERR_BAD_REQUEST rather than assertions.

import { ErrorCode, VigilError } from "../core/errors.ts";
import { LatencySketch } from "./sketch.ts";
import {
  type Cursor,
  defaultRetention,
  type EventOrder,
  type EventQuery,
  type EventRecord,
  LWW_KINDS,
  type LwwKind,
  type LwwRecord,
  type Retention,
  ROLLUP_STEP_MS,
  type RollupQuery,
  type RollupResolution,
  type RollupRow,
  type StoredEvent,
  storeLimits,
} from "./types.ts";

function bad(message: string): VigilError {
  return new VigilError(ErrorCode.badRequest, message);
}

function checkString(v: unknown, what: string, maxChars: number, optional: boolean): string | undefined {
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string") return `${what} must be a string`;
  if (v.length === 0) return `${what} must not be empty`;
  if (v.length > maxChars) return `${what} is ${v.length} chars, more than ${maxChars}`;
  // PostgreSQL text cannot hold NUL; refusing it everywhere keeps both stores alike.
  if (v.includes("\u0000")) return `${what} must not contain NUL characters`;
  return undefined;
}

function checkEvent(e: StoredEvent): string | undefined {
  if (typeof e !== "object" || e === null) return "not an object";
  const problem =
    checkString(e.id, "id", storeLimits.maxEventIdChars, false) ??
    checkString(e.type, "type", storeLimits.maxEventFieldChars, false) ??
    checkString(e.pool, "pool", storeLimits.maxNameChars, true) ??
    checkString(e.target, "target", storeLimits.maxNameChars, true) ??
    checkString(e.node, "node", storeLimits.maxEventFieldChars, true) ??
    checkString(e.from, "from", storeLimits.maxEventFieldChars, true) ??
    checkString(e.to, "to", storeLimits.maxEventFieldChars, true);
  if (problem !== undefined) return problem;
  if (e.cause !== undefined) {
    const cause = checkString(e.cause, "cause", storeLimits.maxCauseChars, true);
    if (cause !== undefined && e.cause !== "") return cause;
  }
  if (!Number.isSafeInteger(e.ts) || e.ts < 0) return `ts must be an integer ms >= 0, got ${e.ts}`;
  if (e.data !== undefined) {
    if (typeof e.data !== "object" || e.data === null || Array.isArray(e.data))
      return "data must be an object";
    let json: string;
    try {
      json = JSON.stringify(e.data);
    } catch (err) {
      return `data is not JSON: ${(err as Error).message}`;
    }
    if (Buffer.byteLength(json) > storeLimits.maxEventDataBytes) {
      return `data is more than ${storeLimits.maxEventDataBytes} bytes of JSON`;
    }
  }
  return undefined;
}

export function validateEvents(events: readonly StoredEvent[]): void {
  if (!Array.isArray(events)) throw bad("events must be an array");
  for (let i = 0; i < events.length; i++) {
    const problem = checkEvent(events[i]!);
    if (problem !== undefined) throw bad(`event ${i}: ${problem}`);
  }
}

function checkRollup(r: RollupRow): string | undefined {
  if (typeof r !== "object" || r === null) return "not an object";
  const problem =
    checkString(r.node, "node", storeLimits.maxEventFieldChars, false) ??
    checkString(r.pool, "pool", storeLimits.maxNameChars, false) ??
    checkString(r.target, "target", storeLimits.maxNameChars, false);
  if (problem !== undefined) return problem;
  if (
    !Number.isSafeInteger(r.minuteStartMs) ||
    r.minuteStartMs < 0 ||
    r.minuteStartMs % ROLLUP_STEP_MS.minute !== 0
  ) {
    return `minuteStartMs must be a whole minute in ms, got ${r.minuteStartMs}`;
  }
  if (!Number.isSafeInteger(r.count) || r.count < 1) return `count must be an integer >= 1, got ${r.count}`;
  if (!Number.isSafeInteger(r.failures) || r.failures < 0 || r.failures > r.count) {
    return `failures must be an integer in 0..count, got ${r.failures}`;
  }
  for (const [name, v] of [
    ["latencyMsMin", r.latencyMsMin],
    ["latencyMsMax", r.latencyMsMax],
    ["latencyMsSum", r.latencyMsSum],
  ] as const) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return `${name} must be a finite number >= 0`;
  }
  if (r.latencyMsMin > r.latencyMsMax) return "latencyMsMin is greater than latencyMsMax";
  if (!(r.sketch instanceof Uint8Array)) return "sketch must be a Uint8Array";
  const decoded = LatencySketch.decode(r.sketch);
  if (!decoded.ok) return decoded.error.message;
  return undefined;
}

export function validateRollups(rows: readonly RollupRow[]): void {
  if (!Array.isArray(rows)) throw bad("rollups must be an array");
  for (let i = 0; i < rows.length; i++) {
    const problem = checkRollup(rows[i]!);
    if (problem !== undefined) throw bad(`rollup ${i}: ${problem}`);
  }
}

/** The row sequence after which to read: 0 for "from the start". */
export function parseCursor(c: Cursor | undefined): number {
  if (c === undefined || c === "") return 0;
  if (typeof c !== "string" || !/^[0-9]{1,16}$/.test(c)) throw bad(`bad cursor ${JSON.stringify(c)}`);
  const n = Number(c);
  if (!Number.isSafeInteger(n)) throw bad(`cursor ${c} out of range`);
  return n;
}

/**
 * An event query checked, with its defaults filled in and its cursors as numbers: what the stores
 * run (normalizeEventQuery), and what `GET /v1/events` parses its query string into
 * (parseEventsRequest in src/serve/api/history-routes.ts), for the store or the in-memory ring.
 */
export interface NormalEventQuery {
  /** "asc": oldest first, paged by `after`; "desc": newest first, paged by `before`. */
  order: EventOrder;
  /** Exclusive lower bound on the cursor; 0 for none (from the oldest). */
  after: number;
  /** Exclusive upper bound on the cursor; undefined for none (up to the newest). */
  before: number | undefined;
  limit: number;
  pool: string | undefined;
  target: string | undefined;
  /** Any of these types; undefined for every type (an empty list matches nothing). */
  types: string[] | undefined;
  /** ts >= fromMs */
  fromMs: number | undefined;
  /** ts < toMs */
  toMs: number | undefined;
}

function checkMs(v: number | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v)) throw bad(`${what} must be an integer ms, got ${v}`);
  return v;
}

export function normalizeEventQuery(q: EventQuery): NormalEventQuery {
  const limit = q.limit;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > storeLimits.maxEventsPerQuery) {
    throw bad(`limit must be an integer in 1..${storeLimits.maxEventsPerQuery}, got ${limit}`);
  }
  let types: string[] | undefined;
  if (q.types !== undefined) {
    if (!Array.isArray(q.types) || q.types.length > storeLimits.maxTypesPerQuery) {
      throw bad(`types must be an array of at most ${storeLimits.maxTypesPerQuery}`);
    }
    if (q.types.some((t) => typeof t !== "string")) throw bad("types must be strings");
    types = [...q.types];
  }
  const order = q.order === undefined ? "asc" : q.order;
  if (order !== "asc" && order !== "desc")
    throw bad(`order must be "asc" or "desc", got ${JSON.stringify(order)}`);
  return {
    order,
    after: parseCursor(q.afterCursor),
    before: q.beforeCursor === undefined || q.beforeCursor === "" ? undefined : parseCursor(q.beforeCursor),
    limit,
    pool: q.pool,
    target: q.target,
    types,
    fromMs: checkMs(q.fromMs, "fromMs"),
    toMs: checkMs(q.toMs, "toMs"),
  };
}

/** EventPage.nextCursor: the last event's cursor, else the bound the query paged from. */
export function nextEventCursor(q: NormalEventQuery, events: readonly EventRecord[]): Cursor {
  const last = events[events.length - 1];
  if (last !== undefined) return last.cursor;
  return String(q.order === "asc" ? q.after : (q.before ?? 0));
}

export interface NormalRollupQuery {
  pool: string;
  target: string;
  fromMs: number;
  toMs: number;
  node: string | undefined;
  resolution: RollupResolution;
  limit: number;
}

export function normalizeRollupQuery(q: RollupQuery): NormalRollupQuery {
  if (typeof q.pool !== "string" || typeof q.target !== "string") throw bad("pool and target are required");
  const fromMs = checkMs(q.fromMs, "fromMs");
  const toMs = checkMs(q.toMs, "toMs");
  if (fromMs === undefined || toMs === undefined) throw bad("fromMs and toMs are required");
  const resolution = q.resolution ?? "minute";
  if (resolution !== "minute" && resolution !== "hour") throw bad(`resolution must be minute or hour`);
  const limit = q.limit ?? storeLimits.maxRollupsPerQuery;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > storeLimits.maxRollupsPerQuery) {
    throw bad(`limit must be an integer in 1..${storeLimits.maxRollupsPerQuery}, got ${limit}`);
  }
  return { pool: q.pool, target: q.target, fromMs, toMs, node: q.node, resolution, limit };
}

export function resolveRetention(r: Partial<Retention> | undefined): Retention {
  const out = { ...defaultRetention, ...r };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`retention ${k} must be an integer ms >= 0, got ${v}`);
  }
  return out;
}

export function checkNowMs(nowMs: number): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw bad(`nowMs must be an integer ms >= 0, got ${nowMs}`);
}

export function checkMetaKey(key: string): void {
  const problem = checkString(key, "meta key", storeLimits.maxMetaKeyChars, false);
  if (problem !== undefined) throw bad(problem);
}

export function checkMetaValue(value: string): void {
  if (typeof value !== "string") throw bad("meta value must be a string");
  if (value.includes("\u0000")) throw bad("meta value must not contain NUL characters");
  if (Buffer.byteLength(value) > storeLimits.maxMetaValueBytes) {
    throw bad(`meta value is more than ${storeLimits.maxMetaValueBytes} bytes`);
  }
}

export function checkDocKey(namespace: string, key: string): void {
  const problem =
    checkString(namespace, "namespace", storeLimits.maxEventFieldChars, false) ??
    checkString(key, "key", storeLimits.maxNameChars, false);
  if (problem !== undefined) throw bad(problem);
}

/** The JSON text to store for a doc value. */
export function encodeDoc(value: unknown, hlc: string): string {
  if (typeof hlc !== "string" || hlc.length > storeLimits.maxEventFieldChars || hlc.includes("\u0000")) {
    throw bad(`hlc must be a string of at most ${storeLimits.maxEventFieldChars} chars`);
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw bad(`doc is not JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw bad("doc is not JSON");
  if (Buffer.byteLength(json) > storeLimits.maxDocBytes) {
    throw bad(`doc is more than ${storeLimits.maxDocBytes} bytes of JSON`);
  }
  return json;
}

/** An LWW record as the stores write it: the value as JSON text, null for a tombstone. */
export interface LwwRow {
  kind: LwwKind;
  key: string;
  json: string | null;
  wallMs: number;
  logical: number;
  origin: string;
}

/** The row the stores write for `r`, or why they refuse it. */
export function lwwRowOf(r: LwwRecord): { row: LwwRow } | { problem: string } {
  if (typeof r !== "object" || r === null) return { problem: "not an object" };
  if (!LWW_KINDS.includes(r.kind)) return { problem: `kind must be one of ${LWW_KINDS.join(", ")}` };
  const problem =
    checkString(r.key, "key", storeLimits.maxLwwKeyChars, false) ??
    checkString(r.origin, "origin", storeLimits.maxLwwKeyChars, false);
  if (problem !== undefined) return { problem };
  if (!Number.isSafeInteger(r.wallMs) || r.wallMs < 0) return { problem: `wallMs must be an integer >= 0` };
  if (!Number.isSafeInteger(r.logical) || r.logical < 0)
    return { problem: `logical must be an integer >= 0` };
  let json: string | null = null;
  if (r.value !== null) {
    try {
      json = JSON.stringify(r.value) ?? null;
    } catch (err) {
      return { problem: `value is not JSON: ${(err as Error).message}` };
    }
    // undefined, a function: nothing JSON can say. A tombstone is null, said explicitly.
    if (json === null || json === "null") return { problem: "value is not JSON (a tombstone is null)" };
    if (Buffer.byteLength(json) > storeLimits.maxDocBytes) {
      return { problem: `value is more than ${storeLimits.maxDocBytes} bytes of JSON` };
    }
  }
  return { row: { kind: r.kind, key: r.key, json, wallMs: r.wallMs, logical: r.logical, origin: r.origin } };
}

/** Why the store would refuse `r` in a putLww, or undefined: callers filter with it first. */
export function lwwProblem(r: LwwRecord): string | undefined {
  const out = lwwRowOf(r);
  return "problem" in out ? out.problem : undefined;
}

/**
 * The rows to write, one per (kind, key): the greatest stamp among the call's own duplicates, so
 * the store compares each key once. Refuses the whole call when one record is bad.
 */
export function validateLww(records: readonly LwwRecord[]): LwwRow[] {
  if (!Array.isArray(records)) throw bad("LWW records must be an array");
  if (records.length > storeLimits.maxLwwPerPut) {
    throw bad(`${records.length} LWW records in one call, more than ${storeLimits.maxLwwPerPut}`);
  }
  const byKey = new Map<string, LwwRow>();
  for (let i = 0; i < records.length; i++) {
    const r = lwwRowOf(records[i]!);
    if ("problem" in r) throw bad(`LWW record ${i}: ${r.problem}`);
    const k = `${r.row.kind}\u0000${r.row.key}`;
    const had = byKey.get(k);
    if (had === undefined || compareLwwStamps(r.row, had) > 0) byKey.set(k, r.row);
  }
  return [...byKey.values()];
}

/** The stamp order the stores implement in SQL: wall ms, logical counter, origin by UTF-8 bytes. */
export function compareLwwStamps(
  a: { wallMs: number; logical: number; origin: string },
  b: { wallMs: number; logical: number; origin: string },
): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return Buffer.compare(Buffer.from(a.origin), Buffer.from(b.origin));
}

export function checkLwwKind(kind: LwwKind | undefined): void {
  if (kind !== undefined && !LWW_KINDS.includes(kind))
    throw bad(`kind must be one of ${LWW_KINDS.join(", ")}`);
}

export function checkWallMs(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw bad(`${what} must be an integer ms >= 0, got ${v}`);
}

/**
 * A stored row read back, or undefined when its value is not the JSON the store wrote (a file
 * edited by hand or damaged): such a row is left out rather than failing the node's start.
 */
export function lwwRecordOf(
  kind: LwwKind,
  key: string,
  json: string | null,
  wallMs: number,
  logical: number,
  origin: string,
): LwwRecord | undefined {
  let value: unknown = null;
  if (json !== null) {
    try {
      value = JSON.parse(json);
    } catch {
      return undefined;
    }
    if (value === null) return undefined;
  }
  return { kind, key, value, wallMs, logical, origin };
}

export function storeError(message: string, cause?: unknown): VigilError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new VigilError(ErrorCode.store, `${message}${detail}`, cause === undefined ? {} : { cause });
}

export function closedError(): VigilError {
  return new VigilError(ErrorCode.store, "store is closed");
}
