import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, VigilError } from "../../core/errors.ts";

// Mapping operating errors to HTTP statuses happens here, at the API edge, and nowhere else.
const statusByCode: Record<string, number> = {
  [ErrorCode.config]: 400,
  [ErrorCode.badRequest]: 400,
  [ErrorCode.usage]: 400,
  [ErrorCode.decode]: 400,
  [ErrorCode.notFound]: 404,
  [ErrorCode.methodNotAllowed]: 405,
  [ErrorCode.tooLarge]: 413,
  [ErrorCode.unsupportedMediaType]: 415,
  [ErrorCode.unauthorized]: 401,
  [ErrorCode.forbidden]: 403,
  [ErrorCode.unavailable]: 503,
  [ErrorCode.store]: 500,
  [ErrorCode.crypto]: 500,
  [ErrorCode.internal]: 500,
};

export function httpStatusFor(e: VigilError): number {
  return statusByCode[e.code] ?? 500;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body));
}

/** Sends JSON already serialized. The fast path (fast-path.ts) writes these same headers. */
export function sendJsonText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/** The JSON body of an error answer: `{"error": {"code", "message", "path"?}}`. */
export function errorBody(e: VigilError): string {
  const body: { error: { code: string; message: string; path?: string } } = {
    error: { code: e.code, message: e.message },
  };
  if (e.path !== undefined) body.error.path = e.path;
  return JSON.stringify(body);
}

export function sendError(res: ServerResponse, e: VigilError, extraHeaders?: Record<string, string>): void {
  if (extraHeaders) for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v);
  sendJsonText(res, httpStatusFor(e), errorBody(e));
}

/** Reads a JSON request body, refusing more than `maxBytes` (413) and bad JSON (400). */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBytes) {
      req.resume();
      reject(
        new VigilError(
          ErrorCode.tooLarge,
          `request body of ${declared} bytes exceeds the limit of ${maxBytes}`,
        ),
      );
      return;
    }
    const ctype = req.headers["content-type"];
    if (
      ctype !== undefined &&
      !/^application\/(json|[a-z.+-]*\+json)\b/i.test(ctype) &&
      !/^text\/plain\b/i.test(ctype)
    ) {
      req.resume();
      reject(
        new VigilError(
          ErrorCode.unsupportedMediaType,
          `expected content-type application/json, got "${ctype}"`,
        ),
      );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        reject(new VigilError(ErrorCode.tooLarge, `request body exceeds the limit of ${maxBytes} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", (err) => {
      if (!failed) reject(new VigilError(ErrorCode.badRequest, `reading request body: ${err.message}`));
      failed = true;
    });
    req.on("end", () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") {
        reject(new VigilError(ErrorCode.badRequest, "request body is empty; expected a JSON object"));
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(
          new VigilError(ErrorCode.badRequest, `request body is not valid JSON: ${(err as Error).message}`),
        );
      }
    });
  });
}
