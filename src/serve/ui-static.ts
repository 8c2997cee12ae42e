import { createHash } from "node:crypto";
import { readFileSync, realpathSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { ErrorCode, VigilError } from "../core/errors.ts";

// The dashboard's built files (src/ui/dist, written by `npm run build`), served by every node
// from its API server: `/` is the page, `/ui/...` its assets. Nothing is fetched from
// elsewhere at run time.

export const uiStaticLimits = {
  /** Files larger than this are not the dashboard's: refuse rather than hold them in memory. */
  maxFileBytes: 8 * 1024 * 1024,
  /** Files kept in memory at most (the dashboard has a handful). */
  maxCachedFiles: 256,
  /** Path segments at most under /ui/. */
  maxSegments: 8,
} as const;

/** The built dashboard, beside the sources. */
export const defaultUiRoot = fileURLToPath(new URL("../ui/dist/", import.meta.url));

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** Built assets carry a content hash in their names (`app-3F2K7QXA.js`): cache them for good. */
const hashedName = /-[A-Z0-9]{8}\.[a-z0-9]+$/;

// The page may talk only to this node: no CDN, no third-party anything.
const pageSecurityHeaders = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

interface CachedFile {
  body: Buffer;
  gzipped: Buffer | undefined;
  etag: string;
  contentType: string;
  mtimeMs: number;
}

export interface UiStatic {
  /** Serves the dashboard when the path is its own; returns false for any other path. */
  route(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): boolean;
}

/** True for the paths the dashboard owns: `/` and everything under `/ui/`. */
export function isUiPath(segments: readonly string[]): boolean {
  return segments.length === 0 || segments[0] === "ui";
}

function notFound(): VigilError {
  return new VigilError(ErrorCode.notFound, "no such dashboard file");
}

/** A segment that could leave the root, hide a dotfile or confuse the file system. */
function unsafeSegment(s: string): boolean {
  return s === "" || s.startsWith(".") || /[/\\\0:]/.test(s) || s.length > 255;
}

const notBuiltPage = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Vigil</title>
<body style="font-family:system-ui;margin:2rem"><h1>Vigil</h1>
<p>The dashboard is not built. Run <code>npm run build</code> (npm start and npm test do it for you),
then reload. The HTTP API answers under <a href="/v1/health">/v1/</a> all the same.</p></body></html>`;

export function createUiStatic(root: string = defaultUiRoot): UiStatic {
  const cache = new Map<string, CachedFile>();
  let realRoot: string | undefined;

  function resolveRoot(): string | undefined {
    if (realRoot !== undefined) return realRoot;
    try {
      realRoot = realpathSync(root);
      return realRoot;
    } catch {
      return undefined; // not built (yet): checked again on the next request
    }
  }

  function load(rootDir: string, rel: readonly string[]): CachedFile | undefined {
    const path = join(rootDir, ...rel);
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      return undefined;
    }
    // A symbolic link out of the root is as good as a traversal: refuse it.
    if (!real.startsWith(rootDir + sep)) return undefined;
    const st = statSync(real, { throwIfNoEntry: false });
    if (st === undefined || !st.isFile() || st.size > uiStaticLimits.maxFileBytes) return undefined;
    const hit = cache.get(real);
    if (hit !== undefined && hit.mtimeMs === st.mtimeMs) return hit;
    const body = readFileSync(real);
    const contentType = contentTypes[extname(real).toLowerCase()] ?? "application/octet-stream";
    const compressible = /^(text\/|application\/json|image\/svg)/.test(contentType) && body.length > 1024;
    const file: CachedFile = {
      body,
      gzipped: compressible ? gzipSync(body) : undefined,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
      contentType,
      mtimeMs: st.mtimeMs,
    };
    if (cache.size >= uiStaticLimits.maxCachedFiles) cache.delete(cache.keys().next().value!);
    cache.set(real, file);
    return file;
  }

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    file: CachedFile,
    immutable: boolean,
    page: boolean,
  ) {
    const headers: Record<string, string> = {
      "content-type": file.contentType,
      etag: file.etag,
      "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
      vary: "accept-encoding",
      ...(page ? pageSecurityHeaders : {}),
    };
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    const gzip = file.gzipped !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? file.gzipped! : file.body;
    if (gzip) headers["content-encoding"] = "gzip";
    headers["content-length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }

  return {
    route(req, res, segments) {
      if (!isUiPath(segments)) return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        throw new VigilError(ErrorCode.methodNotAllowed, "method not allowed; use GET");
      }
      const rootDir = resolveRoot();
      const page = segments.length === 0;
      if (rootDir === undefined) {
        if (!page) throw notFound();
        res.writeHead(503, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : notBuiltPage);
        return true;
      }
      const rel = page ? ["index.html"] : segments.slice(1);
      if (rel.length === 0 || rel.length > uiStaticLimits.maxSegments || rel.some(unsafeSegment)) {
        throw notFound();
      }
      const file = load(rootDir, rel);
      if (file === undefined) {
        if (page) {
          res.writeHead(503, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
          res.end(req.method === "HEAD" ? undefined : notBuiltPage);
          return true;
        }
        throw notFound();
      }
      const name = rel[rel.length - 1]!;
      send(req, res, file, hashedName.test(name), file.contentType.startsWith("text/html"));
      return true;
    },
  };
}

let shared: UiStatic | undefined;

/** Serves the dashboard from the default build directory; false when the path is not its own. */
export function serveUi(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): boolean {
  if (!isUiPath(segments)) return false;
  shared ??= createUiStatic();
  return shared.route(req, res, segments);
}
