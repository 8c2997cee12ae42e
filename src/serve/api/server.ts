import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ErrorCode, isVigilError, VigilError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { EventQuery, VigilEvent } from "../../runtime/events.ts";
import { readJsonBody, sendError, sendJson } from "./http-util.ts";

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
  setAdmin(pool: string, target: string, body: unknown): unknown;
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

export interface ApiServerOptions {
  host: string;
  port: number;
  backend: ApiBackend;
  onRequest?: (route: string, status: number) => void;
}

export interface ApiServer {
  server: Server;
  address: { host: string; port: number };
  url: string;
  close(): Promise<void>;
}

const notFound = (what: string): VigilError => new VigilError(ErrorCode.notFound, what);

/** Answers 405 and returns the route name, so handlers can `return methodNotAllowed(...)`. */
function methodNotAllowed(res: ServerResponse, allow: string, routeName: string): string {
  sendError(res, new VigilError(ErrorCode.methodNotAllowed, `method not allowed; use ${allow}`), { allow });
  return routeName;
}

function parseQuery(url: URL): EventQuery {
  const q: EventQuery = {};
  const since = url.searchParams.get("since");
  if (since !== null) {
    if (!/^\d+$/.test(since))
      throw new VigilError(
        ErrorCode.badRequest,
        `since must be a non-negative integer cursor, got "${since}"`,
        { path: "since" },
      );
    q.since = Number(since);
  }
  const limit = url.searchParams.get("limit");
  if (limit !== null) {
    if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > limits.maxEventsPerPage) {
      throw new VigilError(
        ErrorCode.badRequest,
        `limit must be an integer between 1 and ${limits.maxEventsPerPage}, got "${limit}"`,
        { path: "limit" },
      );
    }
    q.limit = Number(limit);
  }
  const pool = url.searchParams.get("pool");
  if (pool !== null) q.pool = pool;
  const target = url.searchParams.get("target");
  if (target !== null) q.target = target;
  const type = url.searchParams.get("type");
  if (type !== null) q.types = new Set(type.split(",").filter((t) => t !== ""));
  return q;
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
      // A node with a durable log (history-routes.ts) answers from it; else the in-memory ring.
      if (backend.extraRoute !== undefined && (await backend.extraRoute(req, res, segments, url)))
        return "events";
      const page = backend.queryEvents(parseQuery(url));
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
      const t = backend.getTarget(c, e);
      if (t === undefined) {
        throw notFound(
          backend.getPool(c) === undefined ? `no pool named "${c}"` : `pool "${c}" has no target "${e}"`,
        );
      }
      sendJson(res, 200, t);
      return "target";
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

export function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const server = createServer(
    { keepAliveTimeout: 65_000, headersTimeout: 10_000, requestTimeout: 30_000 },
    (req, res) => {
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
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      const addr = server.address() as AddressInfo;
      const host = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
      resolve({
        server,
        address: { host: addr.address, port: addr.port },
        url: `http://${host}:${addr.port}`,
        close: () =>
          new Promise<void>((res) => {
            server.close(() => res());
            server.closeAllConnections();
          }),
      });
    });
  });
}
