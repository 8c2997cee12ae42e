import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Prober } from "../../src/checkers/types.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import type { LookupThread } from "../../src/serve/lookup-thread.ts";
import { addressesOf, dnsQuery, firstReplyAfterJunk, rcodeOf } from "../helpers/dns.ts";
import { eventually } from "../helpers/origins.ts";
import { scriptedProber } from "../helpers/prober.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// A node's DNS server (node.dns) answering from the node's own verdicts, over a real UDP
// socket, and counting what it did in /metrics. The prober is a stub: the targets' addresses
// appear in answers only, nothing is sent to them.

/** A node named `name` with DNS on, the `pools:` given, checks answered by `prober`. */
function dnsNode(name: string, seed: number, pools: string, prober: Prober): VigilNode {
  const cfg = parseConfigText(
    `
node: { name: ${name}, api: "127.0.0.1:0", gossip: "127.0.0.1:0", dns: "127.0.0.1:0", data_dir: "${tmpDataDir()}" }
defaults: { interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }
pools:
${pools}`,
    "<test>",
  );
  return new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(seed),
    prober,
    logger: silentLogger,
  });
}

describe("DNS server of a node", () => {
  const { prober, results } = scriptedProber();
  let node: VigilNode;
  let port: number;
  before(async () => {
    node = dnsNode(
      "d1",
      4,
      `  web:
    check: { type: http, path: /healthz }
    targets: [10.2.0.1:8080, 10.2.0.2:8080, 10.2.0.3:8081]
`,
      prober,
    );
    await node.start();
    port = node.dnsPort!;
  });
  after(async () => {
    await node.stop();
  });

  it("answers A and SRV from the node's verdicts, and follows a target going down and up", async () => {
    const all = ["10.2.0.1", "10.2.0.2", "10.2.0.3"];
    await eventually(
      async () =>
        JSON.stringify(addressesOf(await dnsQuery(port, "web.service.vigil.", "A"))) === JSON.stringify(all),
      "all three healthy",
    );
    const srv = await dnsQuery(port, "_web._tcp.service.vigil.", "SRV");
    const ports = (srv.answers ?? []).map((r) => (r as { data: { port: number } }).data.port).sort();
    assert.deepEqual(ports, [8080, 8080, 8081]);
    results.set("10.2.0.2", { ok: false, latencyMs: 0.1, reason: "status 503" });
    await eventually(
      async () =>
        JSON.stringify(addressesOf(await dnsQuery(port, "web.service.vigil.", "A"))) ===
        JSON.stringify(["10.2.0.1", "10.2.0.3"]),
      "10.2.0.2 left out once down",
    );
    results.delete("10.2.0.2");
    await eventually(
      async () => addressesOf(await dnsQuery(port, "web.service.vigil.", "A")).length === 3,
      "10.2.0.2 back",
    );
  });

  it("follows admin states, pools added and deleted, and fail_open", async () => {
    const a = async (name: string): Promise<string[]> => addressesOf(await dnsQuery(port, name, "A"));
    node.setAdmin("web", "10.2.0.1:8080", { state: "maint", reason: "disk" });
    await eventually(async () => !(await a("web.service.vigil.")).includes("10.2.0.1"), "maint left out");
    node.setAdmin("web", "10.2.0.1:8080", { state: "none" });
    await eventually(async () => (await a("web.service.vigil.")).includes("10.2.0.1"), "maint lifted");
    // Every target of this pool fails its checks; fail_open still serves them.
    for (const h of ["10.3.0.1", "10.3.0.2"])
      results.set(h, { ok: false, latencyMs: 0.1, reason: "status 503" });
    const pool = (failOpen: boolean) => ({
      check: { type: "tcp" },
      interval: "100ms",
      timeout: "80ms",
      rise: 1,
      fall: 1,
      fail_open: failOpen,
      targets: ["10.3.0.1:81", "10.3.0.2:81"],
    });
    node.putPool("db", pool(false));
    await eventually(async () => {
      const r = await dnsQuery(port, "db.service.vigil.", "A");
      return (
        rcodeOf(r) === "NOERROR" &&
        addressesOf(r).length === 0 &&
        node.lookupTarget("db", "10.3.0.1:81")?.state === "down"
      );
    }, "db answered, nothing healthy");
    node.putPool("db", pool(true));
    await eventually(
      async () => JSON.stringify(await a("db.service.vigil.")) === JSON.stringify(["10.3.0.1", "10.3.0.2"]),
      "fail_open serves both",
    );
    node.deletePool("db");
    await eventually(
      async () => rcodeOf(await dnsQuery(port, "db.service.vigil.", "A")) === "NXDOMAIN",
      "deleted pool is NXDOMAIN",
    );
  });

  it("says NXDOMAIN for a pool it does not know", async () => {
    assert.equal(rcodeOf(await dnsQuery(port, "nope.service.vigil.", "A")), "NXDOMAIN");
  });

  it("counts what it answered and what it dropped in /metrics", async () => {
    const { firstId, queryId } = await firstReplyAfterJunk(
      port,
      Buffer.from([1, 2, 3]),
      "web.service.vigil.",
    );
    assert.equal(firstId, queryId, "a 3-byte datagram gets no answer: the first reply is the next query's");
    await dnsQuery(port, "nope.service.vigil.", "A");
    // The lookup process sends its counters every 200 ms: wait for a copy with the drop and the
    // last query in it, then judge that copy.
    let text = "";
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? Number.NaN);
    await eventually(
      async () => {
        text = await (await fetch(`${node.apiUrl}/metrics`)).text();
        return (
          value(/vigil_dns_dropped_total\{reason="short"\} (\d+)/) >= 1 &&
          value(/vigil_dns_responses_total\{transport="udp",rcode="NXDOMAIN"\} (\d+)/) >= 2
        );
      },
      () =>
        `DNS counters in /metrics, last seen:\n${text
          .split("\n")
          .filter((l) => l.startsWith("vigil_dns"))
          .join("\n")}`,
    );
    assert.ok(value(/vigil_dns_responses_total\{transport="udp",rcode="NOERROR"\} (\d+)/) >= 4);
    assert.ok(value(/vigil_dns_responses_total\{transport="udp",rcode="NXDOMAIN"\} (\d+)/) >= 2);
    assert.equal(value(/vigil_dns_dropped_total\{reason="short"\} (\d+)/), 1);
    assert.equal(value(/vigil_dns_internal_errors_total (\d+)/), 0);
    assert.equal(value(/vigil_dns_tcp_connections (\d+)/), 0);
    assert.equal(value(/vigil_dns_tcp_connections_accepted_total (\d+)/), 0);
    assert.equal(value(/vigil_dns_truncated_total\{transport="udp"\} (\d+)/), 0);
  });
});

describe("DNS table feed of a node", () => {
  // A pool's DNS answer is its whole healthy list, so the node sends changed lists to the lookup
  // servers at most every 50 ms, not on every event-loop turn: 60 targets coming up over one
  // 100 ms interval would otherwise send the growing list dozens of times.
  const { prober, results } = scriptedProber();
  const hosts = Array.from({ length: 60 }, (_, i) => `10.3.0.${i + 1}`);
  let node: VigilNode;
  /** What reached the lookup servers: when, and pool big's list (hosts) if it was in it. */
  const feeds: { atMs: number; big: string[] | undefined }[] = [];
  before(async () => {
    node = dnsNode(
      "f1",
      6,
      `  big:
    check: { type: tcp }
    targets: [${hosts.map((h) => `${h}:80`).join(", ")}]
`,
      prober,
    );
    // Every target down at first; then watch what reaches the lookup servers.
    for (const h of hosts) results.set(h, { ok: false, latencyMs: 0.1, reason: "refused" });
    await node.start();
    const lookups = (node as unknown as { lookups: LookupThread }).lookups;
    const update = lookups.updateDns.bind(lookups);
    lookups.updateDns = (entries) => {
      const big = entries.find((e) => e[0] === "big");
      feeds.push({ atMs: performance.now(), big: big?.[1]?.map((t) => t.host).sort() });
      update(entries);
    };
  });
  after(async () => {
    await node.stop();
  });

  // 60 addresses do not fit a 512-byte UDP answer: it holds the first few, truncated.
  const answer = async (): Promise<string[]> =>
    addressesOf(await dnsQuery(node.dnsPort!, "big.service.vigil.", "A")).sort();
  const lastFed = (): string[] | undefined => feeds.findLast((f) => f.big !== undefined)?.big;
  const gapsMs = (): number[] => feeds.slice(1).map((f, i) => f.atMs - feeds[i]!.atMs);

  it("sends a pool's list at most every 50 ms while its targets come up, and ends whole", async () => {
    for (const h of hosts) results.delete(h);
    await eventually(
      () => lastFed()?.length === hosts.length,
      () => `every target in the list sent; feeds: ${JSON.stringify(feeds.map((f) => f.big?.length))}`,
    );
    assert.deepEqual(lastFed(), [...hosts].sort());
    assert.ok((await answer()).length > 0, "the answer comes from it");
    // Measured from each message to the next by the same clock the node decides with: exact.
    assert.ok(
      gapsMs().every((g) => g >= 50),
      `feeds closer than 50 ms: ${gapsMs().map((g) => g.toFixed(1))}`,
    );
  });

  it("and again while they all go down: the last list sent is the empty one", async () => {
    const before_ = feeds.length;
    for (const h of hosts) results.set(h, { ok: false, latencyMs: 0.1, reason: "refused" });
    await eventually(() => lastFed()?.length === 0, "the empty list sent");
    assert.deepEqual(await answer(), []);
    assert.ok(feeds.length > before_, "the change was sent");
    assert.ok(
      gapsMs().every((g) => g >= 50),
      `feeds closer than 50 ms: ${gapsMs().map((g) => g.toFixed(1))}`,
    );
  });
});
