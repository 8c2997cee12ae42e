import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { ApiTlsSpec } from "../../config/types.ts";
import { ErrorCode, isVigilError, VigilError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { EventQuery, VigilEvent } from "../../runtime/events.ts";
import { type ApiAuth, sendAuthRefusal } from "./auth.ts";
import { createFastPath, type FastAnswer } from "./fast-path.ts";
import { eventsFromMemory, parseEventsRequest } from "./history-routes.ts";
import { errorBody, readJsonBody, sendError, sendJson, sendJsonText } from "./http-util.ts";
import { apiScheme, createApiListener, replaceApiTls } from "./tls.ts";

/** What the HTTP API needs from a node. The runtime implements it; tests may too. */
export interface ApiBackend {
  health(): unknown;
  members(): unknown[];
  listPools(): unknown[];
  getPool(name: string): unknown | undefined;
  /** Validates and stores; throws VigilError(config) with a path relative to the pool. */
  putPool(name: string, doc: unknown): { created: boolean; pool: unknown };
  deletePool(name: string): boolean;
  getTarget(pool: string, target: string): unknown | undefined;
  /** Whether a pool exists; without it, getPool answers (which renders the whole pool). */
  hasPool?(name: string): boolean;
  setAdmin(pool: string, target: string, body: unknown): unknown;
  /** The in-memory event log (`EventLog.query`): answers `GET /v1/events` when `extraRoute` does not. */
  queryEvents(q: EventQuery): { events: VigilEvent[]; next: number };
  metricsText(): Promise<{ contentType: string; text: string }>;
  /** Optional extra routes (event stream, history, dashboard) tried before the 404. */
  extraRoute?(
    req: IncomingMessage,
    res: ServerResponse,
    segments: string[],
    url: URL,
  ): boolean | Promise<boolean>;
}

/** node:http's timeouts, as the API server sets them (tests shorten them). */
export interface ApiTimeouts {
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** The request head must arrive within this (408 after). */
  headersTimeoutMs: number;
  /** The whole request must arrive within this (408 after). */
  requestTimeoutMs: number;
  /** How often node:http checks the two above. */
  checkIntervalMs: number;
}

export const apiTimeoutsDefault: ApiTimeouts = {
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  checkIntervalMs: 30_000,
};

export interface ApiServerOptions {
  host: string;
  port: number;
  backend: ApiBackend;
  onRequest?: (route: string, status: number) => void;
  /** Serve `GET /v1/pools/{pool}/targets/{target}` on the lean path (fast-path.ts); default
   * true. Off, node:http serves every request. */
  fastPath?: boolean;
  timeouts?: Partial<ApiTimeouts>;
  /** Bearer tokens (auth.ts): every request but the open ones is checked, on both paths. A
   * function is asked on every request (a node whose tokens a reload may turn on or off). */
  auth?: ApiAuth | (() => ApiAuth | undefined);
  /** HTTPS (tls.ts); plain HTTP without it. */
  tls?: ApiTlsSpec;
}

export interface ApiServer {
  /** node:http's server: it never listens itself; it gets the connections the fast path hands
   * over (all of them with `fastPath: false`). */
  server: Server;
  address: { host: string; port: number };
  url: string;
  /** Connections on the fast path now (not handed to node:http). */
  readonly fastConnections: number;
  /** A server started with `tls`: serve this certificate and key to new connections (tls.ts). */
  replaceTls(tls: ApiTlsSpec): void;
  close(): Promise<void>;
}

const notFound = (what: string): VigilError => new VigilError(ErrorCode.notFound, what);

const fastPathRefusal = new Error("credentials refused on the fast path");

/**
 * `GET /v1/pools/{pool}/targets/{target}`: the status and JSON body, as both the router and the
 * fast path send them. A 404 counts under the route "error", as every thrown error does.
 */
export function targetAnswer(backend: ApiBackend, pool: string, target: string): FastAnswer {
  const t = backend.getTarget(pool, target);
  if (t !== undefined) return { status: 200, body: JSON.stringify(t), route: "target" };
  const known = backend.hasPool !== undefined ? backend.hasPool(pool) : backend.getPool(pool) !== undefined;
  const e = notFound(known ? `pool "${pool}" has no target "${target}"` : `no pool named "${pool}"`);
  return { status: 404, body: errorBody(e), route: "error" };
}

/** Answers 405 and returns the route name, so handlers can `return methodNotAllowed(...)`. */
function methodNotAllowed(res: ServerResponse, allow: string, routeName: string): string {
  sendError(res, new VigilError(ErrorCode.methodNotAllowed, `method not allowed; use ${allow}`), { allow });
  return routeName;
}

async function route(backend: ApiBackend, req: IncomingMessage, res: ServerResponse): Promise<string> {
  const url = new URL(req.url ?? "/", "http://vigil.invalid");
  let segments: string[];
  try {
    segments = url.pathname
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
  } catch {
    throw new VigilError(ErrorCode.badRequest, "path is not valid percent-encoding");
  }
  const method = req.method ?? "GET";
  const [a, b, c, d, e, f] = segments;

  if (a === "metrics" && segments.length === 1) {
    if (method !== "GET") return methodNotAllowed(res, "GET", "metrics");
    const m = await backend.metricsText();
    res.writeHead(200, { "content-type": m.contentType });
    res.end(m.text);
    return "metrics";
  }
  if (a === "v1") {
    if (b === "health" && segments.length === 2) {
      if (method !== "GET") return methodNotAllowed(res, "GET", "health");
      sendJson(res, 200, backend.health());
      return "health";
    }
    if (b === "members" && segments.length === 2) {
      if (method !== "GET") return methodNotAllowed(res, "GET", "members");
      sendJson(res, 200, { members: backend.members() });
      return "members";
    }
    if (b === "events" && segments.length === 2) {
      if (method !== "GET") return methodNotAllowed(res, "GET", "events");
      // A node (VigilNode) serves this from its history routes (history-routes.ts): the store,
      // else its ring. A backend without them is answered from its ring here, with the same
      // parameters, checks and answer (one parser: parseEventsRequest).
      if (backend.extraRoute !== undefined && (await backend.extraRoute(req, res, segments, url)))
        return "events";
      const page = eventsFromMemory((q) => backend.queryEvents(q), parseEventsRequest(url, Date.now()));
      sendJson(res, 200, page);
      return "events";
    }
    if (b === "pools" && segments.length === 2) {
      if (method !== "GET") return methodNotAllowed(res, "GET", "pools");
      sendJson(res, 200, { pools: backend.listPools() });
      return "pools";
    }
    if (b === "pools" && c !== undefined && segments.length === 3) {
      if (method === "GET") {
        const pool = backend.getPool(c);
        if (pool === undefined) throw notFound(`no pool named "${c}"`);
        sendJson(res, 200, pool);
      } else if (method === "PUT") {
        const body = await readJsonBody(req, limits.maxApiBodyBytes);
        const r = backend.putPool(c, body);
        sendJson(res, r.created ? 201 : 200, r.pool);
      } else if (method === "DELETE") {
        if (!backend.deletePool(c)) throw notFound(`no pool named "${c}"`);
        res.writeHead(204).end();
      } else {
        methodNotAllowed(res, "GET, PUT, DELETE", "pool");
      }
      return "pool";
    }
    if (b === "pools" && c !== undefined && d === "targets" && e !== undefined && segments.length === 5) {
      if (method !== "GET") return methodNotAllowed(res, "GET", "target");
      const a = targetAnswer(backend, c, e);
      sendJsonText(res, a.status, a.body);
      return a.route;
    }
    if (
      b === "pools" &&
      c !== undefined &&
      d === "targets" &&
      e !== undefined &&
      f === "admin" &&
      segments.length === 6
    ) {
      if (method !== "PUT") return methodNotAllowed(res, "PUT", "admin");
      const body = await readJsonBody(req, limits.maxApiBodyBytes);
      sendJson(res, 200, backend.setAdmin(c, e, body));
      return "admin";
    }
  }
  if (backend.extraRoute !== undefined && (await backend.extraRoute(req, res, segments, url))) return "extra";
  throw notFound(`no route for ${method} ${url.pathname}`);
}

/** The API without a listening socket of its own: it serves the connections it is given. */
export interface ApiHandler {
  /** node:http's server (it never listens): every connection the fast path hands over. */
  readonly http: Server;
  /** Serves `socket`, after `rest` (bytes read from it and not answered elsewhere): the fast path
   * first (unless off), as a connection accepted here. */
  adopt(socket: Socket, rest?: Buffer): void;
  /** Connections on the fast path now (not handed to node:http). */
  readonly fastConnections: number;
  /** Destroys the connections it serves. */
  close(): void;
}

export type ApiHandlerOptions = Omit<ApiServerOptions, "host" | "port" | "tls">;

/**
 * The API's routes, auth and fast path, for the connections a listener (startApiServer's, or
 * the lookup processes' with `node.lookup_api`) gives it.
 */
export function createApiHandler(opts: ApiHandlerOptions): ApiHandler {
  const timeouts = { ...apiTimeoutsDefault, ...opts.timeouts };
  const given = opts.auth;
  const authNow = typeof given === "function" ? given : () => given;
  const http = createServer(
    {
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      connectionsCheckingInterval: timeouts.checkIntervalMs,
    },
    (req, res) => {
      const auth = authNow();
      if (auth !== undefined) {
        const d = auth.authorize(req);
        if (!d.ok) {
          sendAuthRefusal(res, d);
          opts.onRequest?.("auth", res.statusCode);
          return;
        }
      }
      route(opts.backend, req, res)
        .then((r) => opts.onRequest?.(r, res.statusCode))
        .catch((err: unknown) => {
          const e = isVigilError(err)
            ? err
            : new VigilError(ErrorCode.internal, `internal error: ${(err as Error)?.message ?? String(err)}`);
          if (!res.headersSent) sendError(res, e);
          else res.destroy();
          opts.onRequest?.("error", res.statusCode);
        });
    },
  );
  // node:http starts its header and request timeout checks when it starts listening; it never
  // does here (the listener owns the port), so start them as listening would.
  http.emit("listening");
  const toHttp = (socket: Socket, rest: Buffer | undefined): void => {
    // Paused, so the bytes put back reach node:http's parser first, before anything newer.
    socket.pause();
    if (rest !== undefined && rest.length > 0) socket.unshift(rest);
    http.emit("connection", socket);
    socket.resume();
  };
  const fast =
    opts.fastPath === false
      ? undefined
      : createFastPath({
          answer: (pool, target, credentials) => {
            // Refused here, answered by node:http: its 401 or 403 is the one answer to that.
            const auth = authNow();
            if (auth !== undefined && !auth.allowsRead(credentials.authorization, credentials.cookie)) {
              throw fastPathRefusal;
            }
            return targetAnswer(opts.backend, pool, target);
          },
          handOver: toHttp,
          keepAliveTimeoutMs: timeouts.keepAliveTimeoutMs,
          headersTimeoutMs: timeouts.headersTimeoutMs,
          ...(opts.onRequest === undefined ? {} : { onRequest: opts.onRequest }),
        });
  return {
    http,
    adopt: (socket, rest) => {
      if (fast === undefined) return toHttp(socket, rest);
      if (rest !== undefined && rest.length > 0) {
        // Put back before the fast path listens: its first "data" is these bytes.
        socket.pause();
        socket.unshift(rest);
      }
      fast.serve(socket);
      socket.resume();
    },
    get fastConnections() {
      return fast?.connections ?? 0;
    },
    close: () => {
      fast?.close();
      // Stops node:http's timeout checks (it never listened: the error is expected).
      http.close(() => {});
      http.closeAllConnections();
    },
  };
}

export function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const handler = createApiHandler(opts);
  // allowHalfOpen and noDelay as node:http's own listener sets them, for the connections it
  // gets; the fast path answers a half-closed peer and then closes.
  // With TLS, the sockets both paths see carry the decrypted bytes.
  const listener = createApiListener(opts.tls, (socket) => handler.adopt(socket));
  return new Promise((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(opts.port, opts.host, () => {
      listener.off("error", reject);
      // After listening, an accept that fails (EMFILE) is one connection lost, not a crash.
      listener.on("error", () => {});
      const addr = listener.address() as AddressInfo;
      const api = apiServerOver(handler, addr.address, addr.port, opts.tls);
      let closing: Promise<void> | undefined;
      // Its own listener: TLS can be replaced, and close() closes the port too.
      api.replaceTls = (tls) => {
        if (opts.tls === undefined) throw new Error("invariant: the API server was started without TLS");
        replaceApiTls(listener, tls);
      };
      api.close = () => {
        closing ??= new Promise<void>((res) => {
          listener.close(() => res());
          handler.close();
        });
        return closing;
      };
      resolve(api);
    });
  });
}

/**
 * The ApiServer of a handler whose connections come from elsewhere (the lookup processes,
 * `node.lookup_api`) on `host`:`port`; close() closes the handler only.
 */
export function apiServerOver(handler: ApiHandler, host: string, port: number, tls?: ApiTlsSpec): ApiServer {
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return {
    server: handler.http,
    address: { host, port },
    url: `${apiScheme(tls)}://${bracketed}:${port}`,
    get fastConnections() {
      return handler.fastConnections;
    },
    replaceTls: () => {
      throw new Error("invariant: the API's port is not this server's");
    },
    close: () => {
      handler.close();
      return Promise.resolve();
    },
  };
}
