// Membership broadcasts and application payloads share each packet with separate budgets:
// a flood on either side must not stop the other from spreading.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SimCluster } from "../../sim/cluster.ts";
import { withSeed } from "../../sim/seed.ts";
import { BroadcastQueue } from "../../src/core/membership/broadcast-queue.ts";
import type { AppDelegate } from "../../src/core/membership/types.ts";
import { allSee, describeViews } from "./sim-util.ts";

/** An application with an endless supply of payloads: it fills whatever room it is offered, to the byte. */
function floodingApp(received: { count: number }): AppDelegate {
  return {
    getBroadcasts(overheadBytes, limitBytes) {
      const out: Uint8Array[] = [];
      let left = limitBytes;
      while (left > overheadBytes) {
        const size = Math.min(200, left - overheadBytes);
        out.push(new Uint8Array(size).fill(7));
        left -= overheadBytes + size;
      }
      return out;
    },
    notifyMsg() {
      received.count++;
    },
    localState: () => new Uint8Array(0),
    mergeRemoteState() {},
  };
}

/** An application that gossips rumours epidemically, as the replicated state will. */
function rumourApp(seen: Set<string>, n: () => number): AppDelegate & { say(s: string): void } {
  const queue = new BroadcastQueue({ retransmitMult: 4, maxQueued: 1_000, numMembers: n });
  const hear = (s: string): void => {
    if (seen.has(s)) return;
    seen.add(s);
    queue.queue(s, new TextEncoder().encode(s));
  };
  return {
    say: hear,
    getBroadcasts: (overheadBytes, limitBytes) => queue.getBroadcasts(overheadBytes, limitBytes),
    notifyMsg: (_from, payload) => hear(new TextDecoder().decode(payload)),
    localState: () => new Uint8Array(0),
    mergeRemoteState() {},
  };
}

test("a flood of application payload does not stop membership news", () =>
  withSeed(401, (seed) => {
    const received = { count: 0 };
    const c = new SimCluster({ seed, delegate: () => floodingApp(received) });
    const nodes = c.addNodes(30, { staggerMs: 1_000 });
    assert.ok(c.runUntil(() => allSee(c, nodes, nodes, "alive"), 30_000) !== undefined, describeViews(nodes));
    // New members still get in, a metadata change still spreads, a crash is still detected.
    const late = c.addNode();
    c.join(late, [nodes[9]!]);
    const meta = new TextEncoder().encode("zone=z9");
    c.setMeta(nodes[3]!, meta);
    const crashed = nodes[20]!;
    c.crash(crashed);
    const live = [...nodes.filter((n) => n !== crashed), late];
    const spreads = (): boolean =>
      allSee(c, live, [late], "alive") &&
      live.every((o) => o.core!.member(nodes[3]!.name)?.meta.length === meta.length) &&
      allSee(c, live, [crashed], "dead");
    const t = c.runUntil(spreads, 30_000);
    assert.ok(t !== undefined, `membership news stalled under app flood: ${describeViews(live)}`);
    // The flood was real: application bytes dwarf membership bytes.
    const s = nodes[0]!.core!.stats();
    assert.ok(s.messagesOut.app.bytes > 5 * s.messagesOut.alive.bytes, JSON.stringify(s.messagesOut));
    assert.ok(received.count > 10_000);
  }));

test("a flood of membership broadcasts does not stop application payload", () =>
  withSeed(402, (seed) => {
    const seen = new Map<string, Set<string>>();
    const apps = new Map<string, ReturnType<typeof rumourApp>>();
    // 420 bytes: three alive messages fill a packet so tightly that no rumour would fit after them.
    const bigMeta = (i: number): Uint8Array => new Uint8Array(420).fill(i & 255);
    const c = new SimCluster({
      seed,
      meta: () => bigMeta(0),
      delegate: (name) => {
        const s = new Set<string>();
        seen.set(name, s);
        const app = rumourApp(s, () => 30);
        apps.set(name, app);
        return app;
      },
    });
    const nodes = c.addNodes(30, { staggerMs: 1_000 });
    assert.ok(c.runUntil(() => allSee(c, nodes, nodes, "alive"), 30_000) !== undefined, describeViews(nodes));
    // Every 100 ms, ten nodes change their metadata: more alive news than packets can carry.
    let round = 0;
    const churn = (): void => {
      round++;
      for (let i = 0; i < 10; i++) c.setMeta(nodes[(round * 10 + i) % nodes.length]!, bigMeta(round + i));
      c.at(c.now + 100, churn);
    };
    churn();
    c.runFor(2_000);
    apps.get(nodes[17]!.name)!.say("pool web: target 10.0.1.10:8080 down");
    const t = c.runUntil(() => nodes.every((n) => seen.get(n.name)!.size === 1), 10_000, 10);
    assert.ok(
      t !== undefined,
      `rumour reached ${nodes.filter((n) => seen.get(n.name)!.size === 1).length} of 30`,
    );
    const s = nodes[0]!.core!.stats();
    assert.ok(s.messagesOut.alive.bytes > 20 * s.messagesOut.app.bytes, JSON.stringify(s.messagesOut));
  }));
