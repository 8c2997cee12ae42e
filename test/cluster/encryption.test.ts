import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { eventually } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// Encrypted gossip between real nodes on loopback: a keyring rotation by rolling restarts with
// no partition, and a node with the wrong key kept out (and counted).

const key = (): string => randomBytes(32).toString("base64");

async function startNode(
  name: string,
  keys: string[],
  join: string | undefined,
  port = 0,
): Promise<VigilNode> {
  const cfg = parseConfigText(
    `node:
  name: ${name}
  api: 127.0.0.1:0
  gossip: 127.0.0.1:${port}
  data_dir: ${tmpDataDir(name)}
  profile: local
  encrypt_keys: [${keys.map((k) => `"${k}"`).join(", ")}]
${join === undefined ? "" : `  join: ["${join}"]\n`}`,
    "<test>",
  );
  const n = new VigilNode(cfg, {
    clock: systemClock,
    random: new SeededRandom(name.length * 7919 + port),
    prober: createProber(),
    logger: silentLogger,
  });
  await n.start();
  return n;
}

function memberStates(n: VigilNode): Map<string, string> {
  return new Map((n.members() as { name: string; state: string }[]).map((m) => [m.name, m.state]));
}

describe("gossip encryption", () => {
  const nodes = new Map<string, VigilNode>();
  after(async () => {
    await Promise.all([...nodes.values()].map((n) => n.stop()));
  });

  it("rotates the key by rolling restarts without a partition, and keeps out a node with a wrong key", async () => {
    const k1 = key();
    const k2 = key();
    nodes.set("e1", await startNode("e1", [k1], undefined));
    const seed = nodes.get("e1")!.gossipAddr;
    nodes.set("e2", await startNode("e2", [k1], seed));
    nodes.set("e3", await startNode("e3", [k1], seed));
    const allAlive = (names: string[]) => async () =>
      [...nodes.values()].every((n) => names.every((x) => memberStates(n).get(x) === "alive"));
    await eventually(allAlive(["e1", "e2", "e3"]), "3 nodes alive everywhere");

    // Watch for any member ever marked dead: a partition would show as deaths.
    const deaths: string[] = [];
    const watch = (n: VigilNode) =>
      n.events.subscribe((e) => e.type === "member.dead" && deaths.push(`${n.name} saw ${e.node}`));
    for (const n of nodes.values()) watch(n);

    // Step 1: add k2 as a second key everywhere. Step 2: make k2 the first (encrypting) key.
    // Step 3: drop k1. Each step restarts one node at a time on its old gossip port.
    for (const keys of [[k1, k2], [k2, k1], [k2]]) {
      for (const name of ["e1", "e2", "e3"]) {
        const old = nodes.get(name)!;
        const port = Number(old.gossipAddr.split(":")[1]);
        const peer = [...nodes.values()].find((n) => n !== old)!.gossipAddr;
        await old.stop();
        nodes.delete(name);
        const fresh = await startNode(name, keys, peer, port);
        watch(fresh);
        nodes.set(name, fresh);
        await eventually(
          allAlive(["e1", "e2", "e3"]),
          `all alive after restarting ${name} with ${keys.length} key(s)`,
          15_000,
        );
      }
    }
    assert.deepEqual(deaths, [], "no member was declared dead during the rotation");

    // A node with a key the cluster does not hold cannot join, and shows up in a metric.
    const intruder = await startNode("intruder", [k1], nodes.get("e1")!.gossipAddr);
    nodes.set("intruder", intruder);
    const text = await eventually(async () => {
      const t = await (await fetch(`${nodes.get("e1")!.apiUrl}/metrics`)).text();
      const m = /vigil_gossip_dropped_total\{reason="decrypt"\} (\d+)/.exec(t);
      return m !== null && Number(m[1]) > 0 ? t : undefined;
    }, "e1 to count undecryptable gossip");
    assert.ok(text.length > 0);
    await new Promise((r) => setTimeout(r, 1_000));
    for (const name of ["e1", "e2", "e3"]) {
      assert.equal(memberStates(nodes.get(name)!).has("intruder"), false, `${name} lists the intruder`);
    }
    assert.deepEqual([...memberStates(intruder).keys()], ["intruder"], "the intruder sees only itself");
  });
});
