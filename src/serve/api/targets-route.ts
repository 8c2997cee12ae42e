import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, VigilError } from "../../core/errors.ts";
import type { NodeCore, TargetView } from "../../core/node/node-core.ts";
import type { Effective } from "../../core/verdict/verdict.ts";
import { sendJson } from "./http-util.ts";

// GET /v1/targets: every pool's targets in one list, filtered, sorted and paged on the server,
// so that a dashboard over 10,000 targets moves a page of rows, never the whole set.

export const targetsRouteLimits = {
  /** Rows per page at most: a page is what one screen (or a few) shows. */
  maxLimit: 500,
  defaultLimit: 100,
  /** A search string longer than any pool name plus address is a mistake, not a search. */
  maxQueryChars: 200,
  /** Offsets past this are refused: no deployment pages this far through one list. */
  maxOffset: 10_000_000,
} as const;

export const effectiveStates: readonly Effective[] = ["up", "down", "unknown", "maint", "drain"];

export interface TargetsQuery {
  /** Lower-cased substring of the pool name or the target address; "" matches all. */
  q: string;
  /** Effective states to keep; undefined keeps all. */
  states: ReadonlySet<Effective> | undefined;
  /** Exact pool name; undefined means every pool. */
  pool: string | undefined;
  offset: number;
  limit: number;
}

export interface TargetRow extends TargetView {
  pool: string;
}

export interface TargetsPage {
  /** Rows matching q, pool and state. */
  total: number;
  /** Rows matching q and pool, by state: what each state filter would give. */
  counts: Record<Effective, number>;
  offset: number;
  limit: number;
  /** The server's wall clock, so a client can show "since" without trusting its own clock. */
  now: number;
  targets: TargetRow[];
}

/** What the route reads from the node: `NodeCore` satisfies it. */
export type TargetsSource = Pick<NodeCore, "poolNames" | "targetsOf" | "view" | "effective">;
type TargetRt = NonNullable<ReturnType<NodeCore["targetsOf"]>>[number];

const badRequest = (message: string, path: string): VigilError =>
  new VigilError(ErrorCode.badRequest, message, { path });

function intParam(url: URL, name: string, min: number, max: number, dflt: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return dflt;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw badRequest(`${name} must be an integer between ${min} and ${max}, got "${raw}"`, name);
  }
  return Number(raw);
}

/** Validates the query string; bad values are 400s naming the parameter. */
export function parseTargetsQuery(url: URL): TargetsQuery {
  for (const k of url.searchParams.keys()) {
    if (k !== "q" && k !== "state" && k !== "pool" && k !== "offset" && k !== "limit") {
      throw badRequest(`unknown query parameter "${k}"; expected q, state, pool, offset or limit`, k);
    }
  }
  const q = (url.searchParams.get("q") ?? "").trim();
  if (q.length > targetsRouteLimits.maxQueryChars) {
    throw badRequest(`q must be at most ${targetsRouteLimits.maxQueryChars} characters`, "q");
  }
  let states: Set<Effective> | undefined;
  const rawState = url.searchParams.get("state");
  if (rawState !== null && rawState !== "") {
    states = new Set();
    for (const s of rawState.split(",")) {
      if (!(effectiveStates as readonly string[]).includes(s)) {
        throw badRequest(
          `state must be a comma-separated list of ${effectiveStates.join(", ")}; got "${s}"`,
          "state",
        );
      }
      states.add(s as Effective);
    }
  }
  const rawPool = url.searchParams.get("pool");
  return {
    q: q.toLowerCase(),
    states,
    pool: rawPool === null || rawPool === "" ? undefined : rawPool,
    offset: intParam(url, "offset", 0, targetsRouteLimits.maxOffset, 0),
    limit: intParam(url, "limit", 1, targetsRouteLimits.maxLimit, targetsRouteLimits.defaultLimit),
  };
}

/** Down first (what an operator came for), then unknown, then the rest. */
function rank(s: Effective): number {
  return s === "down" ? 0 : s === "unknown" ? 1 : 2;
}

// Addresses sort with their numbers compared as numbers (10.0.0.9 before 10.0.0.10). The key
// is computed once per target: sorting 10,000 rows on every request must stay cheap.
const sortKeys = new WeakMap<object, string>();
function addressKey(t: TargetRt): string {
  let k = sortKeys.get(t);
  if (k === undefined) {
    k = t.addr.key.toLowerCase().replace(/\d+/g, (d) => d.padStart(10, "0"));
    sortKeys.set(t, k);
  }
  return k;
}

/** Filters, counts, sorts and pages the node's targets. Only the returned page is rendered. */
export function queryTargets(core: TargetsSource, query: TargetsQuery, nowWallMs: number): TargetsPage {
  const counts: Record<Effective, number> = { up: 0, down: 0, unknown: 0, maint: 0, drain: 0 };
  const matched: { t: TargetRt; state: Effective; pool: string }[] = [];
  const pools = query.pool === undefined ? core.poolNames() : [query.pool];
  for (const pool of pools) {
    const targets = core.targetsOf(pool);
    if (targets === undefined) continue;
    const poolMatches = query.q === "" || pool.toLowerCase().includes(query.q);
    for (const t of targets) {
      if (!poolMatches && !t.addr.key.toLowerCase().includes(query.q)) continue;
      const state = core.effective(t);
      counts[state]++;
      if (query.states !== undefined && !query.states.has(state)) continue;
      matched.push({ t, state, pool });
    }
  }
  matched.sort((a, b) => {
    const r = rank(a.state) - rank(b.state);
    if (r !== 0) return r;
    if (a.pool !== b.pool) return a.pool < b.pool ? -1 : 1;
    const ka = addressKey(a.t);
    const kb = addressKey(b.t);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const page = matched.slice(query.offset, query.offset + query.limit);
  return {
    total: matched.length,
    counts,
    offset: query.offset,
    limit: query.limit,
    now: nowWallMs,
    targets: page.map(({ t, pool }) => ({ pool, ...core.view(t) })),
  };
}

/**
 * Serves `GET /v1/targets` when the path is that route; returns false for any other path so
 * the caller tries its next route.
 */
export function targetsRoute(
  core: TargetsSource,
  req: IncomingMessage,
  res: ServerResponse,
  segments: readonly string[],
  url: URL,
): boolean {
  if (segments.length !== 2 || segments[0] !== "v1" || segments[1] !== "targets") return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET");
    throw new VigilError(ErrorCode.methodNotAllowed, "method not allowed; use GET");
  }
  sendJson(res, 200, queryTargets(core, parseTargetsQuery(url), Date.now()));
  return true;
}
