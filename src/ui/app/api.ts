// The dashboard's view of the Vigil HTTP API (docs/api.md): types and fetch helpers. Pure
// fetch, no DOM, so node tests can use it against a real node.

import type { Effective } from "./format.ts";

export interface ObserverView {
  node: string;
  state: "up" | "down" | "unknown";
  since: number | null;
  reason: string;
  latencyMs: number | null;
  checkedAt: number | null;
  owner: boolean;
  voting: boolean;
}

export interface TargetRow {
  pool: string;
  target: string;
  state: Effective;
  verdict: "up" | "down" | "unknown";
  since: number;
  admin: "none" | "maint" | "drain";
  adminReason?: string;
  reason: string;
  owners: string[];
  observers: ObserverView[];
}

export interface TargetsPage {
  total: number;
  counts: Record<Effective, number>;
  offset: number;
  limit: number;
  now: number;
  targets: TargetRow[];
}

export interface RecentResult {
  ts: number;
  ok: boolean;
  latencyMs: number;
  reason: string;
}

export interface TargetDetail extends Omit<TargetRow, "pool"> {
  recent?: RecentResult[];
}

export interface Member {
  name: string;
  state: "alive" | "suspect" | "dead" | "left";
  incarnation: number;
  zone: string;
  weight?: number;
  gossip: string;
  api: string;
  version?: string;
  owned?: number;
  self?: boolean;
  localHealth?: number;
}

export interface VigilEvent {
  /** The cursor of the log that answered: the store's, or the in-memory ring's (SSE ids). */
  seq: number;
  /** Deterministic, on events read from a store (none on the live stream). */
  id?: string;
  ts: number;
  type: string;
  pool?: string;
  target?: string;
  node?: string;
  from?: string;
  to?: string;
  cause?: string;
}

export interface EventsPage {
  events: VigilEvent[];
  /** Pass as `since` (order asc) or `before` (order desc) for the next page. */
  next: number;
  order: "asc" | "desc";
  source: "sqlite" | "postgres" | "memory";
}

export interface PoolSummary {
  name: string;
  type: string;
  targets: number;
  counts: Record<Effective, number>;
}

export const eventTypes = [
  "verdict.changed",
  "observation.changed",
  "target.admin",
  "pool.created",
  "pool.updated",
  "pool.deleted",
  "member.joined",
  "member.suspect",
  "member.alive",
  "member.dead",
  "member.left",
  "member.updated",
] as const;

/** An error answered by the API (`{"error": {code, message}}`) or by the network. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * With API tokens (docs/security.md): where writes get their token from, and who hears of a 401.
 * Set by the page (auth.tsx); node tests leave them unset and send no token.
 */
const auth: { token: () => string | undefined; onUnauthorized: () => void } = {
  token: () => undefined,
  onUnauthorized: () => {},
};

export function setAuthHooks(hooks: { token(): string | undefined; onUnauthorized(): void }): void {
  auth.token = hooks.token;
  auth.onUnauthorized = hooks.onUnauthorized;
}

async function parse<T>(r: Response): Promise<T> {
  if (r.status === 401) auth.onUnauthorized();
  const text = await r.text();
  let body: unknown;
  try {
    body = text === "" ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(r.status, "BAD_RESPONSE", `unexpected answer (${r.status}) from the node`);
  }
  if (!r.ok) {
    const e = (body as { error?: { code?: string; message?: string } }).error;
    throw new ApiError(r.status, e?.code ?? `HTTP_${r.status}`, e?.message ?? `HTTP ${r.status}`);
  }
  return body as T;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  let r: Response;
  try {
    r = await fetch(path, { headers: { accept: "application/json" }, ...(signal ? { signal } : {}) });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "NETWORK", `cannot reach the node: ${(e as Error).message}`);
  }
  return parse<T>(r);
}

export async function putJson<T>(path: string, body: unknown): Promise<T> {
  let r: Response;
  // The node takes the cookie for reads only: a write carries its token in the header.
  const token = auth.token();
  try {
    r = await fetch(path, {
      method: "PUT",
      headers: {
        "content-type": "application/json",
        accept: "application/json",
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "NETWORK", `cannot reach the node: ${(e as Error).message}`);
  }
  return parse<T>(r);
}

export interface TargetsQuery {
  q: string;
  states: readonly Effective[];
  pool: string;
  offset: number;
  limit: number;
}

/** The `GET /v1/targets` URL for a query; empty filters are left out. */
export function targetsUrl(query: TargetsQuery): string {
  const p = new URLSearchParams();
  if (query.q.trim() !== "") p.set("q", query.q.trim());
  if (query.states.length > 0) p.set("state", query.states.join(","));
  if (query.pool !== "") p.set("pool", query.pool);
  p.set("offset", String(query.offset));
  p.set("limit", String(query.limit));
  return `/v1/targets?${p.toString()}`;
}

export function targetPath(pool: string, target: string): string {
  return `/v1/pools/${encodeURIComponent(pool)}/targets/${encodeURIComponent(target)}`;
}

export interface EventsFilter {
  types: readonly string[];
  pool: string;
  target: string;
}

export function eventsQuery(f: EventsFilter, extra: Record<string, string | number> = {}): string {
  const p = new URLSearchParams();
  if (f.types.length > 0) p.set("type", f.types.join(","));
  if (f.pool !== "") p.set("pool", f.pool);
  if (f.target !== "") p.set("target", f.target);
  for (const [k, v] of Object.entries(extra)) p.set(k, String(v));
  return p.toString();
}

export function setAdmin(
  pool: string,
  target: string,
  state: "none" | "maint" | "drain",
  reason: string,
): Promise<TargetDetail> {
  const body: { state: string; reason?: string } = { state };
  if (reason.trim() !== "") body.reason = reason.trim();
  return putJson<TargetDetail>(`${targetPath(pool, target)}/admin`, body);
}
