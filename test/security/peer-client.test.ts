import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createPeerClient, getText } from "../../src/serve/api/peer-client.ts";
import { READ_TOKEN } from "./helpers.ts";

// How a node calls a peer's API and the CLI calls a node (src/serve/api/peer-client.ts): the
// token it sends, what it refuses to send it over, and its bounds on time and size.

describe("peer API client", () => {
  let server: Server;
  let base: string;
  let last: IncomingMessage | undefined;
  before(async () => {
    server = createServer((req, res) => {
      last = req;
      if (req.url === "/slow") return; // never answers
      if (req.url === "/big") {
        res.writeHead(200, { "content-type": "application/json", "content-length": 10_000 });
        res.end("x".repeat(10_000));
        return;
      }
      if (req.url === "/chunked") {
        res.writeHead(200);
        for (let i = 0; i < 10; i++) res.write("y".repeat(1000));
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("sends the token as a bearer header, and none without one", async () => {
    const withToken = createPeerClient({ token: READ_TOKEN, httpsOnly: false });
    const r = await withToken.get(`${base}/v1/x`, { timeoutMs: 2000, maxBytes: 1024 });
    assert.deepEqual(r, { status: 200, text: '{"ok":true}' });
    assert.equal(last?.headers.authorization, `Bearer ${READ_TOKEN}`);
    await createPeerClient({ httpsOnly: false }).get(`${base}/v1/x`, { timeoutMs: 2000, maxBytes: 1024 });
    assert.equal(last?.headers.authorization, undefined);
  });

  it("never sends a token over plain http when it serves TLS itself", async () => {
    last = undefined;
    const client = createPeerClient({ token: READ_TOKEN, httpsOnly: true });
    await assert.rejects(
      client.get(`${base}/v1/x`, { timeoutMs: 2000, maxBytes: 1024 }),
      /plain http.*https only/,
    );
    assert.equal(last, undefined, "the request left");
  });

  it("bounds time and size, and refuses what is not an http(s) URL", async () => {
    await assert.rejects(getText(`${base}/slow`, { timeoutMs: 100, maxBytes: 1024 }), /timed out/);
    await assert.rejects(
      getText(`${base}/big`, { timeoutMs: 2000, maxBytes: 1024 }),
      /answer of 10000 bytes exceeds 1024/,
    );
    await assert.rejects(
      getText(`${base}/chunked`, { timeoutMs: 2000, maxBytes: 5000 }),
      /exceeds 5000 bytes/,
    );
    await assert.rejects(
      getText("ftp://127.0.0.1/x", { timeoutMs: 100, maxBytes: 1 }),
      /http:\/\/ or https:\/\//,
    );
    await assert.rejects(getText("not a url", { timeoutMs: 100, maxBytes: 1 }), /not a URL/);
    await assert.rejects(getText("http://127.0.0.1:1/x", { timeoutMs: 2000, maxBytes: 1 }), /ECONNREFUSED/);
  });
});
