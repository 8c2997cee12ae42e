import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** An HTTP origin whose answer a test can change: status, body, delay. */
export interface TestOrigin {
  port: number;
  key: string;
  status: number;
  body: string;
  delayMs: number;
  requests: number;
  lastRequest: IncomingMessage | undefined;
  close(): Promise<void>;
}

export async function startTestOrigin(status = 200, body = "ok"): Promise<TestOrigin> {
  const o: TestOrigin = {
    port: 0,
    key: "",
    status,
    body,
    delayMs: 0,
    requests: 0,
    lastRequest: undefined,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    o.requests++;
    o.lastRequest = req;
    req.resume();
    const reply = (): void => {
      res.writeHead(o.status, { "content-type": "text/plain" });
      res.end(o.body);
    };
    if (o.delayMs > 0) setTimeout(reply, o.delayMs);
    else reply();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  o.port = (server.address() as AddressInfo).port;
  o.key = `127.0.0.1:${o.port}`;
  o.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return o;
}

/** Polls `cond` on the real event loop until it holds, failing after `timeoutMs`. */
export async function eventually<T>(
  cond: () => Promise<T | undefined | false> | T | undefined | false,
  /** What is awaited; a function is asked at the timeout, so it can say what was last seen. */
  what: string | (() => string),
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const said = typeof what === "function" ? what() : what;
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${said}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
