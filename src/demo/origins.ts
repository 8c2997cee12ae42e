import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

// Local origins for the demo: real HTTP servers on loopback with scripted behaviour.

export type OriginBehaviour =
  | { kind: "steady" }
  | { kind: "flapping"; upMs: number; downMs: number }
  | { kind: "slow"; delayMs: number }
  | { kind: "refusing" };

export interface DemoOrigin {
  name: string;
  behaviour: OriginBehaviour;
  port: number;
  /** Force down (503) from the outside, e.g. a test or the demo's own script. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startOrigin(
  name: string,
  behaviour: OriginBehaviour,
  nowMs: () => number,
): Promise<DemoOrigin> {
  let forcedDown = false;
  const born = nowMs();
  if (behaviour.kind === "refusing") {
    // Bind then close: the port is known and nothing listens on it.
    const s = createServer();
    const port = await listen(s);
    await new Promise<void>((r) => s.close(() => r()));
    return { name, behaviour, port, setDown: () => {}, close: async () => {} };
  }
  const server = createServer((req, res) => {
    const up = (): boolean => {
      if (forcedDown) return false;
      if (behaviour.kind !== "flapping") return true;
      const phase = (nowMs() - born) % (behaviour.upMs + behaviour.downMs);
      return phase < behaviour.upMs;
    };
    const reply = (): void => {
      const ok = up();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain", connection: "close" });
      res.end(ok ? "ok\n" : "unavailable\n");
    };
    req.resume();
    if (behaviour.kind === "slow") setTimeout(reply, behaviour.delayMs).unref();
    else reply();
  });
  const port = await listen(server);
  return {
    name,
    behaviour,
    port,
    setDown: (d) => {
      forcedDown = d;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function listen(s: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port));
  });
}

/** The demo's dozen: mostly healthy, some flapping, one slow, one refusing. */
export const demoFleet: { name: string; behaviour: OriginBehaviour }[] = [
  { name: "web-1", behaviour: { kind: "steady" } },
  { name: "web-2", behaviour: { kind: "steady" } },
  { name: "web-3", behaviour: { kind: "steady" } },
  { name: "web-4", behaviour: { kind: "flapping", upMs: 20_000, downMs: 10_000 } },
  { name: "web-5", behaviour: { kind: "steady" } },
  { name: "web-6", behaviour: { kind: "refusing" } },
  { name: "api-1", behaviour: { kind: "steady" } },
  { name: "api-2", behaviour: { kind: "steady" } },
  { name: "api-3", behaviour: { kind: "flapping", upMs: 15_000, downMs: 15_000 } },
  { name: "api-4", behaviour: { kind: "slow", delayMs: 1_500 } },
  { name: "api-5", behaviour: { kind: "steady" } },
  { name: "api-6", behaviour: { kind: "flapping", upMs: 40_000, downMs: 8_000 } },
];
