// A webhook receiver as a real application would write one: it verifies the signature,
// applies each notice once by its idempotency key, and answers 2xx. Tests can make it fail.

import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/** A parsed notice; tests reach into it by path. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary paths of received JSON
export type Json = Record<string, any>;

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: Json;
}

/** What the next request gets: a status, or "close" (the socket is destroyed without an answer). */
export type Answer = number | "close";

export interface Receiver {
  url: string;
  port: number;
  /** Every request, in arrival order. */
  raw: Received[];
  /** Notices applied, once per idempotency key, in order. */
  applied: Received[];
  /** Answers for the next requests, used up in order; then `otherwise`. */
  script: Answer[];
  otherwise: Answer;
  /** Apply a notice even when answering it with a failure (the answer got lost). */
  applyBeforeFailing: boolean;
  close(): Promise<void>;
}

/** The receiver's own check of the signature, written from the documentation, not from src/. */
export function signatureOk(secret: string, r: Received): boolean {
  const ts = String(r.headers["x-vigil-timestamp"]);
  const expected = `sha256=${createHmac("sha256", secret).update(`${ts}.${r.body}`).digest("hex")}`;
  return r.headers["x-vigil-signature"] === expected;
}

export async function startReceiver(): Promise<Receiver> {
  const rec: Receiver = {
    url: "",
    port: 0,
    raw: [],
    applied: [],
    script: [],
    otherwise: 200,
    applyBeforeFailing: false,
    close: async () => {},
  };
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const r: Received = { headers: req.headers, body, json: JSON.parse(body) as Json };
      rec.raw.push(r);
      const answer = rec.script.shift() ?? rec.otherwise;
      const ok = typeof answer === "number" && answer >= 200 && answer <= 299;
      const key = String(req.headers["x-vigil-idempotency-key"]);
      if ((ok || rec.applyBeforeFailing) && !seen.has(key)) {
        seen.add(key);
        rec.applied.push(r);
      }
      if (answer === "close") {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer, { "content-type": "text/plain" });
      res.end(ok ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  rec.port = (server.address() as AddressInfo).port;
  rec.url = `http://127.0.0.1:${rec.port}/hook`;
  rec.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return rec;
}
