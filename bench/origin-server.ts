// Origins for the check benchmark, in their own process so the agent's CPU is measured alone.
// Listens on `count` ports on 127.0.0.1, prints them as one JSON line, serves until killed.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const count = Number(process.argv[2] ?? "100");
const ports: number[] = [];
for (let i = 0; i < count; i++) {
  const s = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": "3" });
    res.end("ok\n");
  });
  s.keepAliveTimeout = 5000;
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", 4096, () => r()));
  ports.push((s.address() as AddressInfo).port);
}
process.stdout.write(`${JSON.stringify({ ports })}\n`);
