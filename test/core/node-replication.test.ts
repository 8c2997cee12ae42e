// NodeCore's side of replication at scale: a target crowded with stale registers still takes
// its owners' reports, and a pool write that only moves the stamp (every node writes its
// config file's pools at start) is merged quietly instead of starting a fan-out epidemic.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parsePoolDocument } from "../../src/config/load.ts";
import { type CoreOutput, NodeCore } from "../../src/core/node/node-core.ts";
import { encodeWire } from "../../src/core/node/wire.ts";
import { initialObservation, type Observation } from "../../src/core/observation/observation.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { type Register, stateLimits } from "../../src/core/state/index.ts";

const T0 = 1_700_000_000_000;

function core(name: string): NodeCore {
  return new NodeCore({
    name,
    zone: "z",
    weight: 1,
    random: new SeededRandom(3),
    maxConcurrentChecks: 16,
    counterStart: 1,
    parsePool: (n, d) => parsePoolDocument(n, d),
    antiEntropyIntervalMs: 10_000,
    retransmitMult: 4,
  });
}

function poolDoc(targets: number, interval = "1h") {
  return {
    check: { type: "tcp" },
    interval,
    observers: 2,
    targets: Array.from({ length: targets }, (_, i) => `10.0.${i >> 8}.${i & 255}:80`),
  };
}

function obs(state: "up" | "down", checkedWallMs: number): Observation {
  return { ...initialObservation(checkedWallMs), state, lastCheckedWallMs: checkedWallMs, checks: 3 };
}

function reg(targetId: string, observer: string, value: Observation): Register<Observation> {
  return { targetId, observer, counter: 10, value };
}

function kinds(outputs: CoreOutput[]): { events: string[]; syncs: number } {
  return {
    events: outputs.flatMap((o) => (o.kind === "event" ? [o.event.type] : [])),
    syncs: outputs.filter((o) => o.kind === "sync").length,
  };
}

describe("NodeCore: registers on a crowded target", () => {
  it("the owners' reports land and decide the verdict even when stale registers fill the target", () => {
    const c = core("n0");
    c.putPool("web", poolDoc(20), 0, T0);
    const members = Array.from({ length: 90 }, (_, i) => `n${i + 1}`);
    for (const m of members) c.memberUpdate({ name: m, zone: "z", weight: 1, state: "alive" }, 0, T0);
    const t = c.targetsOf("web")!.find((x) => !c.isOwner(x.id))!;
    const owners = [...c.owners(t.id)];
    assert.equal(owners.length, 2);
    // Former owners (nodes that each ran alone for a while) reported the target up earlier.
    const stale = members.filter((m) => !owners.includes(m)).slice(0, stateLimits.maxRegistersPerTarget);
    const flood = stale.map((m, i) => reg(t.id, m, obs("up", T0 - 60_000 + i)));
    c.notifyMsg(encodeWire({ t: "obs", registers: flood }), 1, T0 + 1);
    assert.equal(c.observations.observationsOf(t.id).length, stateLimits.maxRegistersPerTarget);
    assert.equal(t.verdict, "up");

    // Now the owners report it down: their registers take the place of the stalest ones.
    c.notifyMsg(
      encodeWire({ t: "obs", registers: owners.map((o) => reg(t.id, o, obs("down", T0))) }),
      2,
      T0 + 2,
    );
    for (const o of owners) assert.equal(c.observations.get(t.id, o)?.value.state, "down", o);
    assert.equal(c.observations.observationsOf(t.id).length, stateLimits.maxRegistersPerTarget);
    assert.equal(c.observations.get(t.id, stale[0]!), undefined, "the stalest register gave way");
    assert.equal(c.observations.get(t.id, stale[1]!), undefined);
    assert.equal(t.verdict, "down");
    assert.deepEqual(
      c
        .view(t)
        .observers.filter((o) => o.voting)
        .map((o) => o.node)
        .sort(),
      [...owners].sort(),
    );

    // A stale non-owner arriving late is refused; a dead observer's register goes before a
    // live one's, however fresh.
    const late = members.filter((m) => !owners.includes(m) && !stale.includes(m));
    c.notifyMsg(
      encodeWire({ t: "obs", registers: [reg(t.id, late[0]!, obs("up", T0 - 120_000))] }),
      3,
      T0 + 3,
    );
    assert.equal(c.observations.get(t.id, late[0]!), undefined);
    const freshest = stale[stale.length - 1]!;
    c.memberUpdate({ name: freshest, zone: "z", weight: 1, state: "dead" }, 4, T0 + 4);
    c.notifyMsg(
      encodeWire({ t: "obs", registers: [reg(t.id, late[1]!, obs("up", T0 - 59_000))] }),
      5,
      T0 + 5,
    );
    assert.equal(c.observations.get(t.id, freshest), undefined);
    assert.notEqual(c.observations.get(t.id, late[1]!), undefined);
    for (const o of owners) assert.notEqual(c.observations.get(t.id, o), undefined);
  });
});

describe("NodeCore: pool entries that only move the stamp", () => {
  // Too big to gossip (over 1,000 bytes): a change is pushed by exchanging state with 3 peers.
  const big = poolDoc(100);

  function started(): NodeCore {
    const c = core("n1");
    c.putPool("web", big, 0, T0);
    c.memberUpdate({ name: "n2", zone: "z", weight: 1, state: "alive" }, 0, T0);
    c.memberUpdate({ name: "n3", zone: "z", weight: 1, state: "alive" }, 0, T0);
    c.tick(0, T0); // the first periodic exchange
    c.drain();
    return c;
  }

  const entry = (value: unknown, wallMs: number, node = "n2") => ({
    key: "web",
    ts: { wallMs, logical: 0, node },
    value,
    deleted: false,
  });

  it("the same document with a newer stamp is merged without an event or a fan-out", () => {
    const c = started();
    const spec = c.poolSpec("web")!.spec;
    c.notifyMsg(encodeWire({ t: "pools", entries: [entry(structuredClone(big), T0 + 5_000)] }), 1, T0 + 10);
    c.tick(1, T0 + 10);
    assert.deepEqual(kinds(c.drain()), { events: [], syncs: 0 });
    assert.deepEqual(c.getBroadcasts(0, 1_400), []);
    // The newer stamp is held (LWW converges), and the running spec is untouched.
    const held = c.exportState().find((e) => e.kind === "pool" && e.key === "web")!;
    assert.deepEqual(held.ts, { wallMs: T0 + 5_000, logical: 0, node: "n2" });
    assert.equal(c.poolSpec("web")!.spec, spec);
    assert.equal(c.stats.broadcastsTooBig, 0);
  });

  it("a changed document is applied and pushed to 3 peers", () => {
    const c = started();
    const changed = { ...big, interval: "2h" };
    c.notifyMsg(encodeWire({ t: "pools", entries: [entry(changed, T0 + 5_000)] }), 1, T0 + 10);
    c.tick(1, T0 + 10);
    const out = kinds(c.drain());
    assert.deepEqual(out.events, ["pool.updated"]);
    // Two live peers: the third exchange picks one of them again.
    assert.equal(out.syncs, 3);
    assert.equal(c.poolSpec("web")!.spec.intervalMs, 7_200_000);
    // A deletion is content too (a tombstone is small: gossiped, not pushed).
    c.notifyMsg(
      encodeWire({
        t: "pools",
        entries: [
          { key: "web", ts: { wallMs: T0 + 6_000, logical: 0, node: "n3" }, value: undefined, deleted: true },
        ],
      }),
      2,
      T0 + 20,
    );
    c.tick(2, T0 + 20);
    const del = kinds(c.drain());
    assert.deepEqual(del, { events: ["pool.deleted"], syncs: 0 });
    assert.equal(c.getBroadcasts(0, 1_400).length, 1);
  });

  it("an older stamp changes nothing", () => {
    const c = started();
    c.notifyMsg(encodeWire({ t: "pools", entries: [entry({ ...big, interval: "2h" }, T0 - 1)] }), 1, T0 + 10);
    c.tick(1, T0 + 10);
    assert.deepEqual(kinds(c.drain()), { events: [], syncs: 0 });
    assert.equal(c.poolSpec("web")!.spec.intervalMs, 3_600_000);
  });
});

describe("NodeCore: recent results", () => {
  it("keeps the newest ten check results of a target, oldest first", () => {
    const c = core("n0");
    c.putPool("web", poolDoc(1, "1s"), 0, T0);
    const t = c.targetsOf("web")![0]!;
    const spec = c.poolSpec("web")!.spec;
    let now = 0;
    for (let i = 1; i <= 13; i++) {
      // Run the clock until the target's check starts, then report result i.
      for (let step = 0; step < 100; step++) {
        now += 100;
        c.tick(now, T0 + now);
        if (c.drain().some((o) => o.kind === "check" && o.id === t.id)) break;
      }
      c.checkDone(t.id, spec, { ok: i % 2 === 0, latencyMs: i, reason: `result ${i}` }, now, T0 + now);
      assert.deepEqual(
        t.recent.map((r) => r.reason),
        Array.from({ length: Math.min(i, 10) }, (_, k) => `result ${Math.max(1, i - 9) + k}`),
      );
    }
    assert.deepEqual(
      t.recent.map((r) => [r.ok, r.latencyMs]),
      [4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((i) => [i % 2 === 0, i]),
    );
  });
});
