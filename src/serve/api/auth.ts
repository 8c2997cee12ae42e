// Bearer tokens for the HTTP API (`node.api_tokens`, docs/security.md).
//
// - `GET /v1/health` stays open (liveness probes), and so do the dashboard's own static files
//   (`/`, `/ui/...`: the same bytes as in the package, no cluster data), so a browser can load the
//   page that asks for the token. Every other route needs a token: `read` for GET and HEAD,
//   `write` for anything else; `write` includes `read`. Auth runs before routing, so an
//   unknown path answers 401 to a caller without a token, never 404: routes are not probed.
// - The token comes in `Authorization: Bearer <token>`. A browser's EventSource cannot set
//   headers, so GET and HEAD also accept the `vigil_token` cookie that the dashboard sets
//   (SameSite=Strict). Writes never do: a cookie rides along on requests the user did not
//   mean to make, a header does not.
// - Presented tokens are hashed and compared with every configured token's hash in constant
//   time, so neither the secret nor which token matched leaks through timing.
// - 401 (no usable token) carries `WWW-Authenticate: Bearer`, 403 (a read token on a write)
//   says which scope is needed (RFC 6750). Failures are counted by reason
//   (`vigil_api_auth_failures_total{reason}`) and logged without the token, at most
//   `authLimits.maxLogLinesPerWindow` lines per window so a scanner cannot flood the log.

import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, type Registry } from "prom-client";
import type { ApiScope, ApiTokenSpec } from "../../config/types.ts";
import { ErrorCode, VigilError } from "../../core/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { sendError } from "./http-util.ts";

export const authLimits = {
  /** Auth failure log lines per window; the rest are counted and summed up in the next line. */
  maxLogLinesPerWindow: 20,
  logWindowMs: 60_000,
  /** An Authorization or Cookie header longer than this is not ours: refused unread. */
  maxCredentialChars: 8192,
} as const;

/** The cookie the dashboard sets for its GET requests and its event stream. */
export const tokenCookieName = "vigil_token";

export const authFailureReasons = [
  /** No Authorization header and no cookie. */
  "missing",
  /** An Authorization header that is not `Bearer <token>`. */
  "malformed",
  /** A token that is not configured. */
  "unknown_token",
  /** A read token on a write. */
  "insufficient_scope",
  /** A write with the cookie only: writes need the header. */
  "cookie_on_write",
] as const;
export type AuthFailureReason = (typeof authFailureReasons)[number];

export type RequiredScope = "none" | ApiScope;

export type AuthDecision =
  | { ok: true; token: string | undefined }
  | {
      ok: false;
      reason: AuthFailureReason;
      status: 401 | 403;
      error: VigilError;
      wwwAuthenticate: string;
      /** The token's name, when a known token lacked the scope. */
      token?: string;
    };

/** The route segments (decoded, as the router splits them) that need no token. */
export function requiredScope(method: string, segments: readonly string[]): RequiredScope {
  const read = method === "GET" || method === "HEAD";
  if (read && segments.length === 2 && segments[0] === "v1" && segments[1] === "health") return "none";
  if (read && (segments.length === 0 || segments[0] === "ui")) return "none";
  return read ? "read" : "write";
}

/** Path segments of a request target as the router makes them; undefined when they do not decode. */
export function pathSegments(url: string | undefined): string[] | undefined {
  try {
    // Exactly as server.ts's router parses it: what is open here is what is open there.
    return new URL(url ?? "/", "http://vigil.invalid").pathname
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/** The `vigil_token` cookie's value in a Cookie header, if any (the first one). */
export function tokenFromCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== tokenCookieName) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value === "" ? undefined : value;
  }
  return undefined;
}

const BEARER = /^Bearer +([^\s]+) *$/i;

interface Known {
  name: string;
  scope: ApiScope;
  digest: Buffer;
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

const realm = 'Bearer realm="vigil"';

function refusal(
  reason: AuthFailureReason,
  message: string,
  challenge: string,
  token?: string,
): AuthDecision & { ok: false } {
  const status = reason === "insufficient_scope" ? 403 : 401;
  const code = status === 403 ? ErrorCode.forbidden : ErrorCode.unauthorized;
  const d: AuthDecision & { ok: false } = {
    ok: false,
    reason,
    status,
    error: new VigilError(code, message),
    wwwAuthenticate: challenge,
  };
  if (token !== undefined) d.token = token;
  return d;
}

export interface ApiAuthOptions {
  logger?: Logger;
  nowMs?: () => number;
}

/** The API's token check. Build it with createApiAuth; without tokens there is none. */
export class ApiAuth {
  private known: readonly Known[] = [];
  /** Failures by reason since start, for the metric; kept across setTokens. */
  readonly failures: Record<AuthFailureReason, number>;
  private peer = "";
  private readonly logger: Logger | undefined;
  private readonly nowMs: () => number;
  private logWindowStartMs = Number.NEGATIVE_INFINITY;
  private logLines = 0;
  private logSuppressed = 0;

  constructor(tokens: readonly ApiTokenSpec[], opts: ApiAuthOptions = {}) {
    this.setTokens(tokens);
    this.failures = Object.fromEntries(authFailureReasons.map((r) => [r, 0])) as Record<
      AuthFailureReason,
      number
    >;
    this.logger = opts.logger;
    this.nowMs = opts.nowMs ?? Date.now;
  }

  /** The token this node sends to its peers' APIs: the first read token, else the first write token. */
  get peerToken(): string {
    return this.peer;
  }

  /**
   * Replaces the configured tokens (a config reload): requests checked from now on are checked
   * against these only. Failure counts and the log's rate limit carry on.
   */
  setTokens(tokens: readonly ApiTokenSpec[]): void {
    if (tokens.length === 0) throw new Error("invariant: ApiAuth needs at least one token");
    this.known = tokens.map((t) => ({ name: t.name, scope: t.scope, digest: digest(t.token) }));
    this.peer = (tokens.find((t) => t.scope === "read") ?? tokens[0]!).token;
  }

  /** The configured token `presented` is, compared in constant time; undefined when none. */
  private match(presented: string): Known | undefined {
    const d = digest(presented);
    let found: Known | undefined;
    // Every token is compared, whether or not an earlier one matched.
    for (const k of this.known) if (timingSafeEqual(d, k.digest) && found === undefined) found = k;
    return found;
  }

  /**
   * What to do with a request: pure, nothing counted or logged (see `authorize`).
   * `authorization` and `cookie` are the raw header values.
   */
  decide(
    method: string,
    segments: readonly string[] | undefined,
    authorization: string | undefined,
    cookie: string | undefined,
  ): AuthDecision {
    // A path that does not decode is answered 400 by the router; it still needs a token here.
    const needed =
      segments === undefined
        ? method === "GET" || method === "HEAD"
          ? "read"
          : "write"
        : requiredScope(method, segments);
    if (needed === "none") return { ok: true, token: undefined };
    let presented: string | undefined;
    if (authorization !== undefined) {
      const m = authorization.length > authLimits.maxCredentialChars ? null : BEARER.exec(authorization);
      if (m === null) {
        return refusal(
          "malformed",
          'expected an Authorization header "Bearer <token>"',
          `${realm}, error="invalid_request"`,
        );
      }
      presented = m[1]!;
    } else {
      const fromCookie =
        cookie !== undefined && cookie.length <= authLimits.maxCredentialChars
          ? tokenFromCookie(cookie)
          : undefined;
      if (fromCookie !== undefined && needed === "write") {
        return refusal(
          "cookie_on_write",
          `writes need the header "Authorization: Bearer <token>": the ${tokenCookieName} cookie is accepted for GET and HEAD only`,
          realm,
        );
      }
      presented = fromCookie;
    }
    if (presented === undefined) {
      return refusal(
        "missing",
        'this API needs a token: send "Authorization: Bearer <token>" (docs/security.md)',
        realm,
      );
    }
    const k = this.match(presented);
    if (k === undefined) {
      return refusal("unknown_token", "the token is not valid", `${realm}, error="invalid_token"`);
    }
    if (needed === "write" && k.scope !== "write") {
      return refusal(
        "insufficient_scope",
        `token "${k.name}" has the read scope; ${method} needs a token with the write scope`,
        `${realm}, error="insufficient_scope", scope="write"`,
        k.name,
      );
    }
    return { ok: true, token: k.name };
  }

  /** Whether the credentials of a plain GET of a data route pass (the fast path asks this). */
  allowsRead(authorization: string | undefined, cookie: string | undefined): boolean {
    return this.decide("GET", undefined, authorization, cookie).ok;
  }

  /** `decide` for a request, counting and logging a refusal. */
  authorize(req: IncomingMessage): AuthDecision {
    const method = req.method ?? "GET";
    const d = this.decide(method, pathSegments(req.url), header(req, "authorization"), header(req, "cookie"));
    if (!d.ok) this.noteFailure(d, method, req);
    return d;
  }

  private noteFailure(d: AuthDecision & { ok: false }, method: string, req: IncomingMessage): void {
    this.failures[d.reason]++;
    const log = this.logger;
    if (log === undefined) return;
    const now = this.nowMs();
    if (now - this.logWindowStartMs >= authLimits.logWindowMs) {
      if (this.logSuppressed > 0) {
        log.warn({ suppressed: this.logSuppressed }, "API auth failures not logged in the last window");
      }
      this.logWindowStartMs = now;
      this.logLines = 0;
      this.logSuppressed = 0;
    }
    if (this.logLines >= authLimits.maxLogLinesPerWindow) {
      this.logSuppressed++;
      return;
    }
    this.logLines++;
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    log.warn(
      {
        reason: d.reason,
        status: d.status,
        method,
        // The path only: a query string is the caller's business, and could carry anything.
        path: (q < 0 ? url : url.slice(0, q)).slice(0, 200),
        remote: req.socket.remoteAddress,
        ...(d.token === undefined ? {} : { token: d.token }),
      },
      "API request refused",
    );
  }
}

function header(req: IncomingMessage, name: "authorization" | "cookie"): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" ? v : undefined;
}

/** An ApiAuth for the configured tokens, or undefined when there are none (the API is open). */
export function createApiAuth(
  tokens: readonly ApiTokenSpec[] | undefined,
  opts: ApiAuthOptions = {},
): ApiAuth | undefined {
  return tokens === undefined || tokens.length === 0 ? undefined : new ApiAuth(tokens, opts);
}

/** Answers a refusal in the API's error format, with the challenge header. */
export function sendAuthRefusal(res: ServerResponse, d: AuthDecision & { ok: false }): void {
  sendError(res, d.error, { "www-authenticate": d.wwwAuthenticate });
}

/** `vigil_api_auth_failures_total{reason}`, read from the ApiAuth at scrape time. */
export function registerAuthMetrics(registry: Registry, auth: ApiAuth): void {
  new Counter({
    name: "vigil_api_auth_failures_total",
    help: "HTTP API requests refused for want of a valid token, by reason (missing, malformed, unknown_token, insufficient_scope, cookie_on_write).",
    labelNames: ["reason"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of authFailureReasons) this.labels(r).inc(auth.failures[r]);
    },
  });
}
