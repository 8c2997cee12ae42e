import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import { describe, it } from "node:test";
import { parseConfigText } from "../../src/config/load.ts";
import { isVigilError } from "../../src/core/errors.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { advertiseHost } from "../../src/runtime/advertise.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { joinHostPort, splitAddr } from "../../src/runtime/transport/udp-tcp.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

function nic(address: string, family: "IPv4" | "IPv6", internal = false): NetworkInterfaceInfo {
  const base = { address, netmask: "", mac: "00:00:00:00:00:00", internal, cidr: null };
  return family === "IPv4" ? { ...base, family } : { ...base, family, scopeid: 0 };
}

const lo = { lo: [nic("127.0.0.1", "IPv4", true), nic("::1", "IPv6", true)] };

describe("advertised address", () => {
  it("is the bind host when that is a specific address", () => {
    assert.equal(advertiseHost("127.0.0.1", undefined, lo), "127.0.0.1");
    assert.equal(advertiseHost("10.1.2.3", undefined, {}), "10.1.2.3");
  });

  it("is node.advertise when given, whatever the bind", () => {
    assert.equal(advertiseHost("0.0.0.0", "192.0.2.7", lo), "192.0.2.7");
    assert.equal(advertiseHost("127.0.0.1", "192.0.2.7", lo), "192.0.2.7");
  });

  it("for 0.0.0.0 picks a private IPv4 interface address before a public one, never loopback", () => {
    const ifs = {
      lo: lo.lo,
      eth0: [nic("203.0.113.9", "IPv4"), nic("fe80::1", "IPv6")],
      eth1: [nic("172.20.0.4", "IPv4")],
    };
    assert.equal(advertiseHost("0.0.0.0", undefined, ifs), "172.20.0.4");
    assert.equal(
      advertiseHost("::", undefined, { lo: lo.lo, eth0: [nic("203.0.113.9", "IPv4")] }),
      "203.0.113.9",
    );
  });

  it("falls back to a global IPv6 address, skipping link-local ones", () => {
    const ifs = { lo: lo.lo, eth0: [nic("fe80::1", "IPv6"), nic("2001:db8::5", "IPv6")] };
    assert.equal(advertiseHost("::", undefined, ifs), "2001:db8::5");
  });

  it("refuses to guess when only loopback exists, and says to set node.advertise", () => {
    assert.throws(
      () => advertiseHost("0.0.0.0", undefined, lo),
      (e: unknown) => isVigilError(e) && /set node\.advertise/.test(e.message),
    );
  });

  it("brackets IPv6 hosts with their port", () => {
    assert.equal(joinHostPort("2001:db8::5", 7946), "[2001:db8::5]:7946");
    assert.equal(joinHostPort("10.0.0.1", 7946), "10.0.0.1:7946");
    assert.deepEqual(splitAddr(joinHostPort("2001:db8::5", 7946)), ["2001:db8::5", 7946]);
  });

  it("config: node.advertise takes an IP address and refuses names and unspecified addresses", () => {
    const ok = parseConfigText("node: { name: a, advertise: 10.0.1.5 }\n", "a.yaml");
    assert.equal(ok.node.advertise, "10.0.1.5");
    assert.equal(
      parseConfigText('node: { name: a, advertise: "[2001:db8::1]" }\n', "a.yaml").node.advertise,
      "2001:db8::1",
    );
    for (const [value, message] of [
      ["vigil-1.example.com", /node\.advertise.*an IP address peers can reach/],
      ["0.0.0.0", /node\.advertise.*no address a peer can reach/],
      ['"::"', /node\.advertise.*no address a peer can reach/],
      ["7", /node\.advertise.*an IP address/],
    ] as const) {
      assert.throws(
        () => parseConfigText(`node: { name: a, advertise: ${value} }\n`, "a.yaml"),
        (e: unknown) => isVigilError(e) && message.test(e.describe()) && e.describe().startsWith("a.yaml: "),
        value,
      );
    }
  });

  it("a node gossips and publishes its API under node.advertise", async () => {
    const cfg = parseConfigText(
      `node: { name: adv, api: "127.0.0.1:0", gossip: "127.0.0.1:0", advertise: 127.0.0.2, data_dir: "${tmpDataDir()}", store: none }\n`,
      "adv.yaml",
    );
    const node = new VigilNode(cfg, {
      clock: systemClock,
      random: new SeededRandom(1),
      prober: { check: () => Promise.reject(new Error("no checks")), close: () => Promise.resolve() },
      logger: silentLogger,
    });
    await node.start();
    try {
      const [self] = node.members() as { gossip: string; api: string }[];
      assert.match(self!.gossip, /^127\.0\.0\.2:\d+$/);
      assert.match(self!.api, /^http:\/\/127\.0\.0\.2:\d+$/);
    } finally {
      await node.stop();
    }
  });
});
