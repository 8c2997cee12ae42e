// Calls to another node's HTTP API (the history fan-out, `?local=1`) and to a node from the
// CLI (`vigil status`, `vigil members`). With `node.api_tokens` the caller sends a token; with
// TLS it verifies the server against a given CA bundle (`api_tls.ca`, `--ca`) or else the
// system store. docs/security.md.
//
// node:http(s) rather than fetch: fetch cannot be given a CA bundle without undici's Agent,
// which is not a dependency here.

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

export interface GetTextOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** PEM CA bundle for https servers; the system store when absent. */
  ca?: string;
  timeoutMs: number;
  /** More of an answer than this is an error, not a truncated answer. */
  maxBytes: number;
  /** Refuse plain http URLs (a node that serves its own API over TLS sends its token over TLS only). */
  httpsOnly?: boolean;
}

export interface TextAnswer {
  status: number;
  text: string;
}

/** A GET of `url`: its status and body, or a rejection with the transport's reason. */
export function getText(url: string, opts: GetTextOptions): Promise<TextAnswer> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new Error(`not a URL: ${JSON.stringify(url.slice(0, 200))}`));
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return Promise.reject(new Error(`expected an http:// or https:// URL, got "${u.protocol}"`));
  }
  if (opts.httpsOnly === true && u.protocol !== "https:") {
    return Promise.reject(
      new Error("the API is plain http, and this node calls its peers over https only (it serves api_tls)"),
    );
  }
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const signal = AbortSignal.timeout(opts.timeoutMs);
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const declared = Number(res.headers["content-length"] ?? "0");
      if (declared > opts.maxBytes) {
        res.destroy();
        reject(new Error(`answer of ${declared} bytes exceeds ${opts.maxBytes}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) {
          res.destroy();
          reject(new Error(`answer exceeds ${opts.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", (e) => reject(describe(e, signal)));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
      );
    };
    // A fresh connection per call (agent: false): nothing is left open for a stop to close.
    const req =
      u.protocol === "https:"
        ? httpsRequest(
            u,
            { headers, signal, agent: false, ...(opts.ca === undefined ? {} : { ca: opts.ca }) },
            onResponse,
          )
        : httpRequest(u, { headers, signal, agent: false }, onResponse);
    req.on("error", (e) => reject(describe(e, signal)));
    req.end();
  });
}

function describe(e: Error, signal: AbortSignal): Error {
  if (signal.aborted) return new Error("timed out");
  const code = (e as NodeJS.ErrnoException).code;
  // TLS verification failures carry their reason in the message ("self-signed certificate").
  return new Error(code !== undefined && !e.message.includes(code) ? `${e.message} (${code})` : e.message);
}

export interface PeerClient {
  /** GET of a peer's API URL (its advertised base URL + path). */
  get(url: string, opts: { timeoutMs: number; maxBytes: number }): Promise<TextAnswer>;
}

export interface PeerClientOptions {
  /** The token sent to peers (ApiAuth.peerToken): a node with tokens expects its peers to share one. */
  token?: string;
  /** `api_tls.ca`: trusted for peers' certificates instead of the system store. */
  ca?: string;
  /** Set when this node serves its API over TLS: its token never travels in the clear. */
  httpsOnly: boolean;
}

export function createPeerClient(opts: PeerClientOptions): PeerClient {
  return {
    get: (url, o) =>
      getText(url, {
        ...o,
        httpsOnly: opts.httpsOnly,
        ...(opts.token === undefined ? {} : { token: opts.token }),
        ...(opts.ca === undefined ? {} : { ca: opts.ca }),
      }),
  };
}

/** What a node without tokens or TLS uses: plain calls, the system store for https peers. */
export const openPeerClient: PeerClient = createPeerClient({ httpsOnly: false });
