// The API's listening socket: plain TCP, or TLS with `node.api_tls` (docs/security.md). Either
// way what comes out is a socket of plain HTTP bytes, so the fast path (fast-path.ts) and
// node:http serve both alike: TLS ends here.

import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import type { ApiTlsSpec } from "../../config/types.ts";

export const apiTlsLimits = {
  /** A client that has not finished its handshake in this long is cut off. */
  handshakeTimeoutMs: 10_000,
} as const;

/**
 * A listener that hands each connection (after the TLS handshake, with `tls`) to `onSocket`,
 * with the options node:http's and node:https's own listeners set.
 */
export function createApiListener(tls: ApiTlsSpec | undefined, onSocket: (socket: Socket) => void): Server {
  if (tls === undefined) return createNetServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  const server = createTlsServer(
    {
      // Not half-open, as node:https: a client that hangs up mid-handshake would otherwise hold
      // its socket until the handshake timeout (and hold up close()).
      allowHalfOpen: false,
      noDelay: true,
      ...secureOptions(tls),
      handshakeTimeout: apiTlsLimits.handshakeTimeoutMs,
      // HTTP/1.1 only: the fast path and node:http speak nothing else.
      ALPNProtocols: ["http/1.1"],
    },
    onSocket,
  );
  // A client that fails its handshake (plain HTTP to an HTTPS port, an untrusted certificate on
  // its side) is one connection lost, not an error of the node.
  server.on("tlsClientError", (_err, socket) => {
    socket.destroy();
  });
  return server;
}

/** What the listener's secure context is made of, at start and at a reload alike. */
function secureOptions(tls: ApiTlsSpec): { cert: string; key: string; minVersion: "TLSv1.2" } {
  return { cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" };
}

/**
 * Serves `tls`'s certificate and key from now on (a config reload): new handshakes get them,
 * connections already open keep theirs. Throws, changing nothing, if they do not make a context.
 */
export function replaceApiTls(listener: Server, tls: ApiTlsSpec): void {
  if (!("setSecureContext" in listener)) throw new Error("invariant: the API listener is not TLS");
  (listener as TlsServer).setSecureContext(secureOptions(tls));
}

/** The scheme of the API's URLs. */
export function apiScheme(tls: ApiTlsSpec | undefined): "http" | "https" {
  return tls === undefined ? "http" : "https";
}
