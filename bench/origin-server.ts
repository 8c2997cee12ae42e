// Origins for the check benchmarks, in their own process so the checker's CPU is measured alone.
// Listens on `count` ports on 127.0.0.1, prints them as one JSON line, serves until killed.
//
//   origin-server.ts COUNT [raw|node-http]
//
// A line on stdin asks for the number of requests answered so far, printed as one JSON line
// ({"requests":N}): a benchmark counts another checker's checks this way (HAProxy's).
//
// raw (the default): a minimal HTTP/1.1 server on node:net — reads the request head, answers
// `200 ok` and honours `Connection: close`. At 5,000 new connections a second a node:http
// server costs most of a core by itself, and on a 2-core machine that shared core is then what
// the benchmark measures (check latency grows, the node's concurrency cap fills, scheduler lag
// follows). The raw server keeps the origin out of the way. node-http: node:http's server, for
// comparison.
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";

const count = Number(process.argv[2] ?? "100");
const kind = process.argv[3] ?? "raw";
if (kind !== "raw" && kind !== "node-http") throw new Error(`unknown origin kind ${kind}`);

const RESPONSE = Buffer.from(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n",
  "latin1",
);
const RESPONSE_CLOSE = Buffer.from(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
  "latin1",
);
const HEAD_END = Buffer.from("\r\n\r\n", "latin1");
const CLOSE_HEADER = /\r\nconnection:\s*close/i;

let requests = 0;

/** Answers each request head on a connection; requests carry no body in the benchmarks. */
function serveRaw(s: Socket): void {
  s.setNoDelay(true);
  s.on("error", () => {}); // checkers close with a reset once they have the answer
  let pending: Buffer | undefined;
  s.on("data", (chunk: Buffer) => {
    let buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    for (let end = buf.indexOf(HEAD_END); end >= 0; end = buf.indexOf(HEAD_END)) {
      const head = buf.toString("latin1", 0, end);
      buf = buf.subarray(end + HEAD_END.length);
      requests++;
      if (CLOSE_HEADER.test(head)) {
        s.end(RESPONSE_CLOSE);
        return;
      }
      s.write(RESPONSE);
    }
    pending = buf.length > 0 ? buf : undefined;
    if (pending !== undefined && pending.length > 65_536) s.destroy();
  });
}

const ports: number[] = [];
for (let i = 0; i < count; i++) {
  let s: Server;
  if (kind === "raw") {
    s = createNetServer(serveRaw);
  } else {
    const h = createHttpServer((req, res) => {
      req.resume();
      requests++;
      res.writeHead(200, { "content-type": "text/plain", "content-length": "3" });
      res.end("ok\n");
    });
    h.keepAliveTimeout = 5000;
    s = h;
  }
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", 4096, () => r()));
  ports.push((s.address() as AddressInfo).port);
}
process.stdout.write(`${JSON.stringify({ ports, kind })}\n`);
process.stdin.on("data", () => process.stdout.write(`${JSON.stringify({ requests })}\n`));
process.stdin.on("end", () => {}); // the parent closing stdin is not a reason to stop serving
