// The API's port in a lookup process (`node.lookup_api`, see lookup-thread.ts): target lookups
// answered from the table the node pushes, on the fast path (api/fast-path.ts); anything else
// (another route, a target not in the table, which the node answers 404, credentials that do
// not pass) goes to the node with its connection, for good, as the node's own fast path hands a
// connection to node:http. The worker loads this module only when it serves the API's port: it
// brings the token check, and with it prom-client.

import type { Server, Socket } from "node:net";
import type { ApiTokenSpec } from "../config/types.ts";
import { ApiAuth } from "./api/auth.ts";
import { createFastPath } from "./api/fast-path.ts";
import { whenWritten } from "./api/hand-over.ts";
import { createApiListener } from "./api/tls.ts";

/** Where the API's port listens, and the bounds the node's own API keeps. */
export interface HttpListen {
  host: string;
  port: number;
  /** As node:http's (and the node's fast path's) keepAliveTimeout and headersTimeout. */
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  /** node.api_tokens: requests without a read token are the node's to refuse. */
  tokens?: readonly ApiTokenSpec[];
  reusePort?: boolean;
}

/** The HTTP counters of one lookup process: target lookups answered there, connections handed
 * to the node, connections cut off because their client did not take the answers written
 * before the hand-over within the head timeout. */
export const httpStatCells = 3;
/** Where each count lives in a block of httpStatCells. */
export const HttpCell = { answered: 0, handedOver: 1, cutOff: 2 } as const;
export interface LookupHttpStats {
  readonly answered: number;
  readonly handedOver: number;
  readonly cutOff: number;
}

export interface LookupHttpServer {
  readonly port: number;
  /** node.api_tokens after a reload (undefined or none: every lookup is answered). */
  setTokens(tokens: readonly ApiTokenSpec[] | undefined): void;
  close(): void;
}

/** Thrown out of the fast path's answer: the connection goes to the node from this request on. */
const forTheNode = new Error("answered by the node");

export async function startLookupHttp(opts: {
  listen: HttpListen;
  /** This process's block of httpStatCells. */
  cells: Float64Array;
  /** A target's body (status 200), or undefined when the table has none. */
  body(pool: string, target: string): string | undefined;
  /** Sends the socket to the node with the bytes read from it and not answered. */
  sendToNode(socket: Socket, rest: Buffer, done: (err: Error | null) => void): void;
}): Promise<LookupHttpServer> {
  const { listen: h, cells } = opts;
  let auth: ApiAuth | undefined;
  const setTokens = (tokens: readonly ApiTokenSpec[] | undefined): void => {
    auth = tokens === undefined || tokens.length === 0 ? undefined : new ApiAuth(tokens);
  };
  setTokens(h.tokens);
  const handOver = (socket: Socket, rest: Buffer | undefined): void =>
    whenWritten(
      socket,
      h.headersTimeoutMs,
      () => {
        const parts = rest === undefined ? [] : [rest];
        // Anything the stream had read ahead goes too, after `rest`.
        for (let c: Buffer | null = socket.read(); c !== null; c = socket.read()) parts.push(c);
        cells[HttpCell.handedOver]!++;
        opts.sendToNode(socket, Buffer.concat(parts), (err) => {
          if (err !== null) socket.destroy();
        });
      },
      () => {
        cells[HttpCell.cutOff]!++;
      },
    );
  const fast = createFastPath({
    answer: (pool, target, credentials) => {
      if (auth !== undefined && !auth.allowsRead(credentials.authorization, credentials.cookie))
        throw forTheNode;
      const body = opts.body(pool, target);
      if (body === undefined) throw forTheNode;
      return { status: 200, body, route: "target" };
    },
    handOver,
    onRequest: () => {
      cells[HttpCell.answered]!++;
    },
    keepAliveTimeoutMs: h.keepAliveTimeoutMs,
    headersTimeoutMs: h.headersTimeoutMs,
  });
  // The node's own plain-HTTP listener (half-open, no Nagle delay): TLS never gets here.
  const server: Server = createApiListener(undefined, (socket) => fast.serve(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      { host: h.host, port: h.port, ...(h.reusePort === true ? { reusePort: true } : {}) },
      () => {
        server.off("error", reject);
        // After listening, an accept that fails (EMFILE) is one connection lost, not a crash.
        server.on("error", () => {});
        resolve();
      },
    );
  });
  return {
    port: (server.address() as { port: number }).port,
    setTokens,
    close: () => {
      // Not waited for: connections sent to the node count as this server's until the node
      // closes them (node's child_process bookkeeping), and the process exits next anyway.
      server.close();
      fast.close();
    },
  };
}
