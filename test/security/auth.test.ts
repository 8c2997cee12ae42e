import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import type { ApiTokenSpec } from "../../src/config/types.ts";
import {
  ApiAuth,
  authLimits,
  createApiAuth,
  pathSegments,
  registerAuthMetrics,
  requiredScope,
  tokenFromCookie,
} from "../../src/serve/api/auth.ts";
import { READ_TOKEN, WRITE_TOKEN } from "./helpers.ts";

// The token check of src/serve/api/auth.ts on its own: which routes need what, where a token
// may come from, what each refusal says, and what is counted and logged.

const tokens: ApiTokenSpec[] = [
  { name: "ops", scope: "write", token: WRITE_TOKEN },
  { name: "prometheus", scope: "read", token: READ_TOKEN },
];
const bearer = (t: string) => `Bearer ${t}`;
const seg = (path: string) => pathSegments(path);

describe("which routes need which scope", () => {
  it("leaves only the health route and the dashboard's static files open", () => {
    assert.equal(requiredScope("GET", ["v1", "health"]), "none");
    assert.equal(requiredScope("HEAD", ["v1", "health"]), "none");
    assert.equal(requiredScope("GET", []), "none");
    assert.equal(requiredScope("GET", ["ui", "assets", "app-ABCDEFGH.js"]), "none");
    assert.equal(requiredScope("PUT", ["v1", "health"]), "write");
    assert.equal(requiredScope("POST", []), "write");
    for (const path of [
      "/metrics",
      "/v1/pools",
      "/v1/pools/web/targets/10.0.0.1:80",
      "/v1/events/stream",
      "/v1/nope",
    ]) {
      assert.equal(requiredScope("GET", seg(path)!), "read", path);
      assert.equal(requiredScope("PUT", seg(path)!), "write", path);
      assert.equal(requiredScope("DELETE", seg(path)!), "write", path);
    }
  });

  it("splits paths exactly as the router does, so no spelling of a data route is open", () => {
    assert.deepEqual(seg("/v1/health"), ["v1", "health"]);
    assert.deepEqual(seg("/v1//health/?x=1"), ["v1", "health"]);
    // "//v1" reads as an authority, for the router as much as here.
    assert.deepEqual(seg("//v1/pools"), ["pools"]);
    assert.deepEqual(seg("/v1/%68ealth"), ["v1", "health"]);
    assert.deepEqual(seg("/v1/health/../pools"), ["v1", "pools"]);
    assert.deepEqual(seg("/ui/../v1/pools"), ["v1", "pools"]);
    assert.deepEqual(seg("/ui/%2e%2e/v1/pools"), ["v1", "pools"]);
    assert.equal(seg("/v1/%zz"), undefined);
  });
});

describe("reading the token", () => {
  it("finds the vigil_token cookie among others", () => {
    assert.equal(tokenFromCookie(`a=1; vigil_token=${READ_TOKEN}; b=2`), READ_TOKEN);
    assert.equal(tokenFromCookie(`vigil_token="${READ_TOKEN}"`), READ_TOKEN);
    assert.equal(tokenFromCookie(`vigil_token=${READ_TOKEN}; vigil_token=other`), READ_TOKEN);
    assert.equal(tokenFromCookie("xvigil_token=abc"), undefined);
    assert.equal(tokenFromCookie("vigil_token="), undefined);
    assert.equal(tokenFromCookie(undefined), undefined);
  });

  it("takes `Bearer <token>`, scheme case-insensitively, and nothing else", () => {
    const auth = new ApiAuth(tokens);
    const get = (authorization: string) => auth.decide("GET", ["v1", "pools"], authorization, undefined);
    assert.equal(get(bearer(READ_TOKEN)).ok, true);
    assert.equal(get(`bearer  ${READ_TOKEN} `).ok, true);
    for (const bad of [
      READ_TOKEN,
      `Basic ${READ_TOKEN}`,
      "Bearer",
      "Bearer ",
      `Bearer ${READ_TOKEN} extra`,
      `Bearer\t${READ_TOKEN}`,
    ]) {
      const d = get(bad);
      assert.equal(d.ok, false, bad);
      if (!d.ok) {
        assert.equal(d.reason, "malformed", bad);
        assert.equal(d.status, 401);
        assert.match(d.wwwAuthenticate, /^Bearer realm="vigil", error="invalid_request"$/);
      }
    }
    const long = get(`Bearer ${"a".repeat(authLimits.maxCredentialChars)}`);
    assert.equal(!long.ok && long.reason, "malformed");
  });
});

describe("decisions", () => {
  const auth = new ApiAuth(tokens);
  const decide = (method: string, path: string, authorization?: string, cookie?: string) =>
    auth.decide(method, seg(path), authorization, cookie);

  it("lets read tokens read and write tokens do both", () => {
    assert.deepEqual(decide("GET", "/v1/pools", bearer(READ_TOKEN)), { ok: true, token: "prometheus" });
    assert.deepEqual(decide("GET", "/metrics", bearer(WRITE_TOKEN)), { ok: true, token: "ops" });
    assert.deepEqual(decide("PUT", "/v1/pools/web", bearer(WRITE_TOKEN)), { ok: true, token: "ops" });
    assert.deepEqual(decide("DELETE", "/v1/pools/web", bearer(WRITE_TOKEN)), { ok: true, token: "ops" });
    assert.deepEqual(decide("GET", "/v1/health"), { ok: true, token: undefined });
  });

  it("answers 401 without a token, with an unknown one, and for a cookie on a write", () => {
    const missing = decide("GET", "/v1/pools");
    assert.equal(missing.ok, false);
    if (!missing.ok) {
      assert.equal(missing.reason, "missing");
      assert.equal(missing.status, 401);
      assert.equal(missing.error.code, "VIGIL_ERR_UNAUTHORIZED");
      assert.equal(missing.wwwAuthenticate, 'Bearer realm="vigil"');
      assert.match(missing.error.message, /Authorization: Bearer <token>/);
    }
    const unknown = decide("GET", "/v1/pools", bearer(`${READ_TOKEN}x`));
    assert.ok(!unknown.ok && unknown.reason === "unknown_token" && unknown.status === 401);
    assert.ok(!unknown.ok && unknown.wwwAuthenticate.endsWith('error="invalid_token"'));
    // Unknown paths too: a caller without a token learns nothing about the routes.
    const probe = decide("GET", "/v1/secret-route");
    assert.ok(!probe.ok && probe.reason === "missing");
    const cookieWrite = decide("PUT", "/v1/pools/web", undefined, `vigil_token=${WRITE_TOKEN}`);
    assert.ok(!cookieWrite.ok && cookieWrite.reason === "cookie_on_write" && cookieWrite.status === 401);
    assert.ok(!cookieWrite.ok && /GET and HEAD only/.test(cookieWrite.error.message));
  });

  it("answers 403 naming the scope when a read token writes", () => {
    const d = decide("PUT", "/v1/pools/web/targets/10.0.0.1:80/admin", bearer(READ_TOKEN));
    assert.equal(d.ok, false);
    if (!d.ok) {
      assert.equal(d.reason, "insufficient_scope");
      assert.equal(d.status, 403);
      assert.equal(d.error.code, "VIGIL_ERR_FORBIDDEN");
      assert.equal(d.token, "prometheus");
      assert.equal(d.wwwAuthenticate, 'Bearer realm="vigil", error="insufficient_scope", scope="write"');
      assert.match(d.error.message, /token "prometheus" has the read scope; PUT needs .* write scope/);
    }
  });

  it("accepts the cookie for GET and HEAD; the header wins over it", () => {
    assert.equal(decide("GET", "/v1/events/stream", undefined, `vigil_token=${READ_TOKEN}`).ok, true);
    assert.equal(decide("HEAD", "/v1/pools", undefined, `vigil_token=${READ_TOKEN}`).ok, true);
    const headerWins = decide(
      "GET",
      "/v1/pools",
      bearer("not-a-valid-token-at-all"),
      `vigil_token=${READ_TOKEN}`,
    );
    assert.ok(!headerWins.ok && headerWins.reason === "unknown_token");
  });

  it("uses the first read token for peers, else the first write token", () => {
    assert.equal(new ApiAuth(tokens).peerToken, READ_TOKEN);
    assert.equal(new ApiAuth([tokens[0]!]).peerToken, WRITE_TOKEN);
    assert.equal(createApiAuth(undefined), undefined);
    assert.equal(createApiAuth([]), undefined);
  });
});

describe("counting and logging refusals", () => {
  function captureLogger() {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    return { logger: pino({ level: "info" }, stream), lines };
  }
  const req = (method: string, url: string, headers: Record<string, string> = {}) =>
    ({ method, url, headers, socket: { remoteAddress: "192.0.2.1" } }) as unknown as IncomingMessage;
  const flush = () => new Promise((r) => setImmediate(r));

  it("counts each refusal by reason and logs it without the token", async () => {
    const { logger, lines } = captureLogger();
    const auth = new ApiAuth(tokens, { logger });
    auth.authorize(req("GET", "/v1/pools?token=x"));
    auth.authorize(req("GET", "/v1/pools", { authorization: bearer(`${WRITE_TOKEN}0`) }));
    auth.authorize(req("PUT", "/v1/pools/web", { authorization: bearer(READ_TOKEN) }));
    auth.authorize(req("DELETE", "/v1/pools/web", { cookie: `vigil_token=${WRITE_TOKEN}` }));
    auth.authorize(req("GET", "/v1/pools", { authorization: "Basic abc" }));
    assert.equal(auth.authorize(req("GET", "/v1/pools", { authorization: bearer(READ_TOKEN) })).ok, true);
    assert.equal(auth.authorize(req("GET", "/v1/health")).ok, true);
    assert.deepEqual(auth.failures, {
      missing: 1,
      malformed: 1,
      unknown_token: 1,
      insufficient_scope: 1,
      cookie_on_write: 1,
    });
    await flush();
    assert.equal(lines.length, 5);
    assert.deepEqual(
      lines.map((l) => [l.reason, l.status, l.method, l.path, l.remote]),
      [
        ["missing", 401, "GET", "/v1/pools", "192.0.2.1"],
        ["unknown_token", 401, "GET", "/v1/pools", "192.0.2.1"],
        ["insufficient_scope", 403, "PUT", "/v1/pools/web", "192.0.2.1"],
        ["cookie_on_write", 401, "DELETE", "/v1/pools/web", "192.0.2.1"],
        ["malformed", 401, "GET", "/v1/pools", "192.0.2.1"],
      ],
    );
    assert.equal(lines[2]!.token, "prometheus");
    const all = JSON.stringify(lines);
    assert.ok(!all.includes(WRITE_TOKEN) && !all.includes(READ_TOKEN), "a token reached the log");
  });

  it("logs at most a window's worth of lines, then says how many it left out", async () => {
    const { logger, lines } = captureLogger();
    let now = 0;
    const auth = new ApiAuth(tokens, { logger, nowMs: () => now });
    for (let i = 0; i < authLimits.maxLogLinesPerWindow + 30; i++) auth.authorize(req("GET", "/v1/pools"));
    await flush();
    assert.equal(lines.length, authLimits.maxLogLinesPerWindow);
    assert.equal(auth.failures.missing, authLimits.maxLogLinesPerWindow + 30);
    now += authLimits.logWindowMs;
    auth.authorize(req("GET", "/v1/pools"));
    await flush();
    assert.equal(lines.length, authLimits.maxLogLinesPerWindow + 2);
    assert.equal(lines.at(-2)!.suppressed, 30);
    assert.equal(lines.at(-1)!.reason, "missing");
  });

  it("exposes vigil_api_auth_failures_total{reason}, every reason from zero", async () => {
    const registry = new Registry();
    const auth = new ApiAuth(tokens);
    registerAuthMetrics(registry, auth);
    auth.authorize(req("GET", "/metrics"));
    auth.authorize(req("GET", "/metrics"));
    auth.authorize(req("PUT", "/v1/pools/a", { authorization: bearer(READ_TOKEN) }));
    const text = await registry.metrics();
    assert.match(text, /^vigil_api_auth_failures_total\{reason="missing"\} 2$/m);
    assert.match(text, /^vigil_api_auth_failures_total\{reason="insufficient_scope"\} 1$/m);
    assert.match(text, /^vigil_api_auth_failures_total\{reason="unknown_token"\} 0$/m);
  });
});
