// The DNS server as a real resolver client sees it: BIND's dig, over UDP (including the
// automatic TCP retry after a truncated answer) and over TCP. CI installs dig
// (Debian: bind9-dnsutils); without it this test fails rather than skips, so a missing
// install cannot pass unnoticed.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type DnsServer, type DnsTarget, startDnsServer } from "../../src/serve/dns-server.ts";

const run = promisify(execFile);

const pools: Record<string, DnsTarget[]> = {
  web: [
    { host: "10.0.1.10", port: 8080 },
    { host: "10.0.1.11", port: 8080 },
    { host: "2001:db8::1", port: 80 },
    { host: "api.example.com", port: 443 },
  ],
  big: Array.from({ length: 100 }, (_, i) => ({ host: `10.1.0.${i + 1}`, port: 80 })),
};

/** dig's output lines; asynchronous, since the server answers from this same event loop. */
async function dig(port: number, ...args: string[]): Promise<string[]> {
  try {
    const { stdout } = await run("dig", ["@127.0.0.1", "-p", String(port), "+time=2", "+tries=1", ...args], {
      timeout: 10_000,
    });
    return stdout.split("\n").filter((l) => l !== "");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      assert.fail(
        "dig is not installed: install bind9-dnsutils (apt-get install -y bind9-dnsutils); CI installs it",
      );
    }
    throw e;
  }
}

describe("DNS server answering dig", () => {
  let server: DnsServer;
  before(async () => {
    server = await startDnsServer({
      host: "127.0.0.1",
      port: 0,
      lookup: (pool) => (pools[pool] === undefined ? undefined : { targets: pools[pool] }),
    });
  });
  after(() => server.close());

  it("dig +short A", async () => {
    assert.deepEqual((await dig(server.port, "web.service.vigil", "A", "+short")).sort(), [
      "10.0.1.10",
      "10.0.1.11",
    ]);
  });

  it("dig +tcp SRV", async () => {
    const lines = await dig(server.port, "+tcp", "_web._tcp.service.vigil", "SRV", "+short");
    assert.deepEqual(lines.sort(), [
      "1 1 443 api.example.com.",
      "1 1 80 2001-db8--1.addr.vigil.",
      "1 1 8080 10-0-1-10.addr.vigil.",
      "1 1 8080 10-0-1-11.addr.vigil.",
    ]);
    assert.ok(server.stats.responses.tcp.NOERROR >= 1, "the SRV query came over TCP");
  });

  it("dig follows TC to TCP and gets the whole pool", async () => {
    const tcpBefore = server.stats.responses.tcp.NOERROR;
    const lines = await dig(server.port, "big.service.vigil", "A", "+short");
    assert.equal(lines.length, 100);
    assert.deepEqual(new Set(lines), new Set(pools.big!.map((t) => t.host)));
    assert.ok(server.stats.truncated.udp >= 1);
    assert.equal(server.stats.responses.tcp.NOERROR, tcpBefore + 1);
  });

  it("dig sees NXDOMAIN with the SOA, and an authoritative answer", async () => {
    const nx = (await dig(server.port, "nope.service.vigil", "A")).join("\n");
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /flags: qr aa rd;/);
    assert.match(nx, /vigil\.\s+0\s+IN\s+SOA\s+vigil\. hostmaster\.vigil\. 1 /);
  });
});
