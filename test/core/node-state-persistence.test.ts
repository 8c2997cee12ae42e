// NodeCore's replicated state (pool documents, admin states) going to and coming back from a
// store: exportState / restoreState / watchState. A restore is an ordinary LWW merge, so state
// read back from disk can never beat newer state, and a tombstone keeps its pool deleted.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parsePoolDocument } from "../../src/config/load.ts";
import { type CoreOutput, NodeCore, type StateEntry } from "../../src/core/node/node-core.ts";
import { encodeWire } from "../../src/core/node/wire.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { compareHlc, stateLimits } from "../../src/core/state/index.ts";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

function core(name = "n1", opts: { tombstoneRetentionMs?: number } = {}): NodeCore {
  return new NodeCore({
    name,
    zone: "z",
    weight: 1,
    random: new SeededRandom(7),
    maxConcurrentChecks: 16,
    counterStart: 1,
    parsePool: (n, d) => parsePoolDocument(n, d),
    antiEntropyIntervalMs: 10_000,
    retransmitMult: 4,
    ...opts,
  });
}

const doc = (port: number, interval = "1h") => ({
  check: { type: "tcp" },
  interval,
  targets: [`127.0.0.1:${port}`],
});

function events(
  c: NodeCore,
): { type: string; pool?: string; target?: string; cause?: string; node?: string }[] {
  return c
    .drain()
    .filter((o): o is Extract<CoreOutput, { kind: "event" }> => o.kind === "event")
    .map((o) => o.event);
}

/** A map of kind/key to entry, for comparing states whatever the order. */
function byKey(entries: readonly StateEntry[]): Map<string, StateEntry> {
  return new Map(entries.map((e) => [`${e.kind}/${e.key}`, e]));
}

describe("NodeCore state: export and restore", () => {
  it("a fresh core restored from another's export serves the same pools, admin states and tombstones", () => {
    const a = core("n1");
    a.putPool("web", doc(81), 0, T0);
    a.putPool("api", doc(82), 1, T0 + 1);
    a.putPool("gone", doc(83), 2, T0 + 2);
    a.deletePool("gone", 3, T0 + 3);
    assert.equal(a.setAdmin("web", "127.0.0.1:81", "maint", "disk swap", 4, T0 + 4), true);
    assert.equal(a.setAdmin("api", "127.0.0.1:82", "drain", undefined, 5, T0 + 5), true);
    assert.equal(a.setAdmin("api", "127.0.0.1:82", "none", undefined, 6, T0 + 6), true);
    const exported = a.exportState();
    assert.deepEqual(
      exported.map((e) => `${e.kind}/${e.key}${e.deleted ? " (deleted)" : ""}`),
      [
        "pool/web",
        "pool/api",
        "pool/gone (deleted)",
        "admin/web/127.0.0.1:81",
        "admin/api/127.0.0.1:82 (deleted)",
      ],
    );

    const b = core("n2");
    const report = b.restoreState(exported, 0, T0 + 10);
    assert.deepEqual(report, { applied: 5, superseded: 0, refused: 0, invalid: 0 });
    assert.deepEqual(b.poolNames(), ["api", "web"]);
    assert.deepEqual(b.poolSpec("web")?.doc, doc(81));
    assert.deepEqual(b.admin("web/127.0.0.1:81"), { state: "maint", reason: "disk swap" });
    assert.deepEqual(b.admin("api/127.0.0.1:82"), { state: "none", reason: undefined });
    assert.equal(b.effective(b.target("web", "127.0.0.1:81")!), "maint");
    // The same entries, stamps and all: a restore does not restamp.
    assert.deepEqual(byKey(b.exportState()), byKey(exported));
    // Its events say where the state came from (and a shared store leaves them to the writer).
    assert.deepEqual(
      events(b).map((e) => `${e.type} ${e.pool}${e.target === undefined ? "" : `/${e.target}`} ${e.cause}`),
      ["pool.created web restored", "pool.created api restored", "target.admin web/127.0.0.1:81 disk swap"],
    );
  });

  it("an older restored entry loses to the newer one the core holds, and a newer one wins", () => {
    const old = core("n1");
    old.putPool("web", doc(81), 0, T0);
    old.setAdmin("web", "127.0.0.1:81", "maint", undefined, 1, T0 + 1);
    const stale = old.exportState();

    const c = core("n2");
    c.putPool("web", doc(99), 0, T0 + 1000);
    c.setAdmin("web", "127.0.0.1:99", "drain", undefined, 1, T0 + 1001);
    const before = c.exportState();
    events(c);
    const report = c.restoreState(stale, 2, T0 + 2000);
    assert.equal(report.applied, 1, "only the admin key of a target the core does not hold is new");
    assert.equal(report.superseded, 1);
    assert.deepEqual(c.poolSpec("web")?.doc, doc(99));
    assert.deepEqual(c.poolNames(), ["web"]);
    assert.equal(c.target("web", "127.0.0.1:81"), undefined);
    assert.deepEqual(c.admin("web/127.0.0.1:99"), { state: "drain", reason: undefined });
    assert.deepEqual(events(c), [], "nothing visible changed");
    for (const e of before) assert.deepEqual(byKey(c.exportState()).get(`${e.kind}/${e.key}`), e);

    // The other way round: restored state newer than what the core holds replaces it.
    const d = core("n3");
    d.putPool("web", doc(77), 0, T0 - 1000);
    const r2 = d.restoreState(before, 1, T0 + 2000);
    assert.equal(r2.applied, 2);
    assert.deepEqual(d.poolSpec("web")?.doc, doc(99));
    assert.deepEqual(
      events(d).map((e) => `${e.type} ${e.type === "target.admin" ? e.node : e.cause}`),
      ["pool.created api", "pool.updated restored", "target.admin restored"],
    );
  });

  it("a restored tombstone keeps the pool deleted against older copies from the store or from peers", () => {
    const a = core("n1");
    a.putPool("web", doc(81), 0, T0);
    const live = a.exportState();
    a.deletePool("web", 1, T0 + 5);
    const deleted = a.exportState();
    assert.equal(deleted[0]?.deleted, true);

    const b = core("n2");
    b.restoreState(deleted, 0, T0 + 10);
    assert.deepEqual(b.poolNames(), []);
    assert.deepEqual(b.restoreState(live, 1, T0 + 11), { applied: 0, superseded: 1, refused: 0, invalid: 0 });
    assert.deepEqual(b.poolNames(), []);
    // A peer that missed the delete gossips its older copy: the normal merge refuses it too.
    b.notifyMsg(
      encodeWire({
        t: "pools",
        entries: [{ key: "web", ts: live[0]!.ts, value: live[0]!.value, deleted: false }],
      }),
      2,
      T0 + 12,
    );
    assert.deepEqual(b.poolNames(), []);
    assert.deepEqual(events(b), []);
  });

  it("moves the clock past restored stamps, so a later local write wins even against a clock behind", () => {
    const c = core("n1");
    // Written by a node whose clock ran 10 minutes ahead (within the allowed skew), or by this
    // node before its clock stepped back.
    const ahead = { wallMs: T0 + 600_000, logical: 5, node: "zz" };
    const restored: StateEntry[] = [
      { kind: "pool", key: "web", ts: ahead, value: doc(81), deleted: false },
      { kind: "admin", key: "web/127.0.0.1:81", ts: ahead, value: { state: "maint" }, deleted: false },
    ];
    assert.equal(c.restoreState(restored, 0, T0).applied, 2);
    assert.equal(c.setAdmin("web", "127.0.0.1:81", "none", undefined, 1, T0 + 1), true);
    c.putPool("web", doc(82), 2, T0 + 2);
    assert.deepEqual(c.poolSpec("web")?.doc, doc(82));
    const now = byKey(c.exportState());
    assert.ok(compareHlc(now.get("pool/web")!.ts, ahead) > 0);
    assert.ok(compareHlc(now.get("admin/web/127.0.0.1:81")!.ts, ahead) > 0);
    assert.equal(now.get("admin/web/127.0.0.1:81")!.deleted, true);
    // And a peer comparing the two sees the local write as the newer.
    const peer = core("n2");
    peer.restoreState(restored, 0, T0);
    peer.restoreState(c.exportState(), 1, T0 + 4);
    assert.deepEqual(peer.poolSpec("web")?.doc, doc(82));
  });

  it("refuses entries stamped too far ahead until the clock catches up, like the wire does", () => {
    const c = core("n1");
    const far: StateEntry = {
      kind: "pool",
      key: "web",
      ts: { wallMs: T0 + stateLimits.maxClockSkewMsDefault + 1, logical: 0, node: "n9" },
      value: doc(81),
      deleted: false,
    };
    assert.deepEqual(c.restoreState([far], 0, T0), { applied: 0, superseded: 0, refused: 1, invalid: 0 });
    assert.deepEqual(c.poolNames(), []);
    const later = c.putPool("api", doc(82), 1, T0 + 1);
    assert.equal(later.created, true);
    assert.ok(compareHlc(byKey(c.exportState()).get("pool/api")!.ts, far.ts) < 0, "the clock did not jump");
    assert.equal(c.restoreState([far], 2, T0 + 2 * HOUR).applied, 1);
    assert.deepEqual(c.poolNames(), ["api", "web"]);
  });

  it("counts damaged entries as invalid and applies the rest", () => {
    const c = core("n1");
    const ts = { wallMs: T0, logical: 0, node: "n1" };
    const good: StateEntry = { kind: "pool", key: "web", ts, value: doc(81), deleted: false };
    const bad: unknown[] = [
      { ...good, kind: "pools" },
      { ...good, key: "" },
      { ...good, key: "k".repeat(stateLimits.maxIdChars + 1) },
      { ...good, key: 5 },
      { ...good, ts: { wallMs: -1, logical: 0, node: "n1" } },
      { ...good, ts: { wallMs: T0, logical: 0.5, node: "n1" } },
      { ...good, ts: { wallMs: T0, logical: 0, node: "" } },
      { ...good, ts: undefined },
      { ...good, deleted: "no" },
      { ...good, value: [1, 2] },
      { ...good, value: null },
      { ...good, kind: "admin", key: "web/127.0.0.1:81", value: { state: "bogus" } },
      { ...good, kind: "admin", key: "web/127.0.0.1:81", value: { state: "maint", extra: 1 } },
      { ...good, kind: "admin", key: "web/127.0.0.1:81", value: { state: "maint", reason: "r".repeat(201) } },
      null,
    ];
    const report = c.restoreState([...(bad as StateEntry[]), good], 0, T0 + 1);
    assert.deepEqual(report, { applied: 1, superseded: 0, refused: 0, invalid: bad.length });
    assert.deepEqual(c.poolNames(), ["web"]);
    assert.deepEqual(c.admin("web/127.0.0.1:81"), { state: "none", reason: undefined });
  });

  it("a pool document the pool parser refuses is held (as the wire does) but not served", () => {
    const c = core("n1");
    const ts = { wallMs: T0, logical: 0, node: "n1" };
    const report = c.restoreState(
      [{ kind: "pool", key: "web", ts, value: { check: { type: "nope" } }, deleted: false }],
      0,
      T0,
    );
    assert.equal(report.applied, 1);
    assert.deepEqual(c.poolNames(), []);
    assert.equal(c.stats.poolsRejected, 1);
  });

  it("an admin state restored before its pool exists applies once the pool arrives", () => {
    const c = core("n1");
    const ts = { wallMs: T0, logical: 0, node: "n2" };
    c.restoreState(
      [{ kind: "admin", key: "web/127.0.0.1:81", ts, value: { state: "maint" }, deleted: false }],
      0,
      T0,
    );
    assert.deepEqual(events(c), []);
    // The config file's pool, written after the restore.
    c.putPool("web", doc(81), 1, T0 + 1, "config");
    assert.equal(c.effective(c.target("web", "127.0.0.1:81")!), "maint");
  });
});

describe("NodeCore state: changes for the store", () => {
  it("reports local writes and merged news once per key, not restored or stale entries", () => {
    const c = core("n1");
    c.putPool("before", doc(80), 0, T0);
    assert.deepEqual(c.takeStateChanges(), [], "nothing is recorded before watchState");
    let calls = 0;
    c.watchState(() => calls++);
    const ts = { wallMs: T0 - 10, logical: 0, node: "n2" };
    c.restoreState([{ kind: "pool", key: "old", ts, value: doc(79), deleted: false }], 1, T0 + 1);
    assert.equal(c.pendingStateChanges, 0, "restored entries are in the store already");
    assert.equal(calls, 0);

    c.putPool("web", doc(81), 2, T0 + 2);
    c.putPool("web", doc(82), 3, T0 + 3);
    c.setAdmin("web", "127.0.0.1:82", "maint", "x", 4, T0 + 4);
    c.deletePool("before", 5, T0 + 5);
    assert.equal(calls, 1, "one wake-up for a burst");
    assert.equal(c.pendingStateChanges, 3);
    const taken = byKey(c.takeStateChanges());
    assert.deepEqual([...taken.keys()].sort(), ["admin/web/127.0.0.1:82", "pool/before", "pool/web"]);
    assert.deepEqual(taken.get("pool/web")!.value, doc(82), "the latest write of a key");
    assert.equal(taken.get("pool/before")!.deleted, true);
    assert.equal(taken.get("pool/before")!.value, undefined);
    assert.deepEqual(c.takeStateChanges(), []);

    // From a peer: news is recorded, an older copy is not.
    const peer = core("n3");
    peer.putPool("api", doc(90), 0, T0 + 6);
    const news = peer.exportState()[0]!;
    const wire = (e: StateEntry) =>
      encodeWire({ t: "pools", entries: [{ key: e.key, ts: e.ts, value: e.value, deleted: e.deleted }] });
    c.notifyMsg(wire(news), 6, T0 + 7);
    assert.equal(calls, 2);
    assert.deepEqual(
      c.takeStateChanges().map((e) => e.key),
      ["api"],
    );
    c.notifyMsg(wire(news), 7, T0 + 8);
    c.notifyMsg(wire({ ...news, key: "web", ts: { wallMs: T0, logical: 0, node: "n3" } }), 8, T0 + 9);
    assert.equal(c.pendingStateChanges, 0);
    assert.equal(calls, 2);
  });

  it("tombstones dropped by gc are not reported as changes", () => {
    const c = core("n1", { tombstoneRetentionMs: HOUR });
    assert.equal(c.stateTombstoneRetentionMs, HOUR);
    assert.equal(core("n2").stateTombstoneRetentionMs, stateLimits.tombstoneRetentionMsDefault);
    c.watchState(() => {});
    c.putPool("web", doc(81), 0, T0);
    c.deletePool("web", 1, T0 + 1);
    c.takeStateChanges();
    c.tick(2 * HOUR, T0 + 2 * HOUR);
    assert.deepEqual(c.exportState(), [], "gc dropped the tombstone");
    assert.equal(c.pendingStateChanges, 0);
  });
});

describe("NodeCore state: restoring is an LWW merge (properties)", () => {
  const op = fc.oneof(
    fc.record({
      t: fc.constant("put" as const),
      pool: fc.constantFrom("a", "b", "c"),
      port: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({ t: fc.constant("del" as const), pool: fc.constantFrom("a", "b", "c") }),
    fc.record({
      t: fc.constant("admin" as const),
      pool: fc.constantFrom("a", "b", "c"),
      port: fc.integer({ min: 1, max: 3 }),
      state: fc.constantFrom("maint" as const, "drain" as const, "none" as const),
    }),
    fc.record({ t: fc.constant("snap" as const) }),
  );

  it("restoring any older snapshots, in any order, before or after the newest, ends at the newest", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.integer({ min: 0, max: 1000 }), (ops, shuffleSeed) => {
        const a = core("n1");
        const snaps: StateEntry[][] = [];
        let t = 0;
        for (const o of ops) {
          t++;
          if (o.t === "put") a.putPool(o.pool, doc(o.port), t, T0 + t * 7);
          else if (o.t === "del") a.deletePool(o.pool, t, T0 + t * 7);
          else if (o.t === "admin")
            a.setAdmin(o.pool, `127.0.0.1:${o.port}`, o.state, undefined, t, T0 + t * 7);
          else snaps.push(a.exportState());
        }
        const newest = a.exportState();
        const order = new SeededRandom(shuffleSeed);
        const shuffled = [...snaps].sort(() => order.next() - 0.5);
        const wallMs = T0 + (t + 1) * 7;

        const first = core("n2");
        first.restoreState(newest, 0, wallMs);
        for (const s of shuffled) first.restoreState(s, 0, wallMs);
        const last = core("n3");
        for (const s of shuffled) last.restoreState(s, 0, wallMs);
        last.restoreState(newest, 0, wallMs);
        for (const c of [first, last]) {
          assert.deepEqual(byKey(c.exportState()), byKey(newest));
          assert.deepEqual(c.poolNames(), a.poolNames());
          for (const name of a.poolNames()) {
            for (const tg of a.targetsOf(name)!) {
              assert.deepEqual(c.admin(tg.id), a.admin(tg.id));
            }
          }
        }
      }),
      { numRuns: 150, seed: 42 },
    );
  });
});
