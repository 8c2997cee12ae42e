import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  compareHlc,
  type Hlc,
  HybridClock,
  type LwwEntry,
  LwwMap,
  stateLimits,
} from "../../src/core/state/index.ts";

const DAY = 24 * 3600 * 1000;
const T0 = 1_700_000_000_000;

describe("HybridClock", () => {
  it("follows the wall clock, and counts logically when it stands still or steps back", () => {
    const c = new HybridClock("n1");
    assert.deepEqual(c.tick(T0), { wallMs: T0, logical: 0, node: "n1" });
    assert.deepEqual(c.tick(T0), { wallMs: T0, logical: 1, node: "n1" });
    assert.deepEqual(c.tick(T0 - 5000), { wallMs: T0, logical: 2, node: "n1" });
    assert.deepEqual(c.tick(T0 + 1), { wallMs: T0 + 1, logical: 0, node: "n1" });
  });

  it("orders after a received timestamp, even one ahead of the local wall clock", () => {
    const c = new HybridClock("n1");
    c.tick(T0);
    const remote: Hlc = { wallMs: T0 + 10_000, logical: 7, node: "n2" };
    const after = c.receive(remote, T0 + 1);
    assert.deepEqual(after, { wallMs: T0 + 10_000, logical: 8, node: "n1" });
    assert.ok(compareHlc(c.tick(T0 + 2), remote) > 0);
    // Once the wall clock passes it, logical resets.
    assert.deepEqual(c.receive({ wallMs: T0, logical: 99, node: "n3" }, T0 + 20_000), {
      wallMs: T0 + 20_000,
      logical: 0,
      node: "n1",
    });
  });

  it("restores from persistence, and breaks ties by node name", () => {
    const c = new HybridClock("n1", { wallMs: T0, logical: 5 });
    assert.deepEqual(c.tick(T0 - 1), { wallMs: T0, logical: 6, node: "n1" });
    assert.ok(compareHlc({ wallMs: 1, logical: 1, node: "a" }, { wallMs: 1, logical: 1, node: "b" }) < 0);
    assert.equal(compareHlc({ wallMs: 1, logical: 1, node: "a" }, { wallMs: 1, logical: 1, node: "a" }), 0);
    assert.ok(compareHlc({ wallMs: 2, logical: 0, node: "a" }, { wallMs: 1, logical: 9, node: "b" }) > 0);
    assert.throws(() => c.tick(Number.NaN), /finite/);
  });

  it("is strictly monotonic whatever the wall clock and the messages do", () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("tick" as const), wallMs: fc.integer({ min: 0, max: 1e6 }) }),
      fc.record({
        kind: fc.constant("receive" as const),
        wallMs: fc.integer({ min: 0, max: 1e6 }),
        remote: fc.record({
          wallMs: fc.integer({ min: 0, max: 1e6 }),
          logical: fc.integer({ min: 0, max: 1000 }),
          node: fc.constantFrom("a", "b", "z"),
        }),
      }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 100 }), (steps) => {
        const c = new HybridClock("m");
        let prev = c.current();
        for (const s of steps) {
          const next = s.kind === "tick" ? c.tick(s.wallMs) : c.receive(s.remote, s.wallMs);
          assert.ok(compareHlc(next, prev) > 0, "strictly after the previous timestamp");
          assert.ok(next.wallMs >= s.wallMs, "never behind the wall clock");
          if (s.kind === "receive")
            assert.ok(compareHlc(next, { ...s.remote, node: "m" }) > 0, "after the remote");
          prev = next;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("LwwMap", () => {
  it("sets, overwrites, deletes with a tombstone, and reports visible changes", () => {
    const a = new LwwMap<string>({ node: "a" });
    const b = new LwwMap<string>({ node: "b" });
    const d1 = a.set("web", "v1", T0);
    assert.equal(a.get("web"), "v1");
    assert.deepEqual(b.applyDelta(d1, T0), [{ key: "web", before: undefined, after: "v1" }]);
    assert.deepEqual(b.applyDelta(d1, T0), []);
    const d2 = b.set("web", "v2", T0);
    assert.ok(compareHlc(d2[0]!.ts, d1[0]!.ts) > 0, "a write after seeing another orders after it");
    assert.deepEqual(a.applyDelta(d2, T0), [{ key: "web", before: "v1", after: "v2" }]);
    const del = a.delete("web", T0);
    assert.equal(a.has("web"), false);
    assert.equal(a.entry("web")?.deleted, true);
    assert.deepEqual(b.applyDelta(del, T0), [{ key: "web", before: "v2", after: undefined }]);
    assert.equal(b.size, 0);
    // The older write arriving late loses to the tombstone.
    assert.deepEqual(b.applyDelta(d1, T0), []);
    assert.equal(b.get("web"), undefined);
    assert.deepEqual(b.stats(), { live: 0, tombstones: 1, refusedFuture: 0, refusedStale: 0 });
  });

  it("drops tombstones after the retention and refuses writes older than the gc horizon", () => {
    const a = new LwwMap<string>({ node: "a" });
    const b = new LwwMap<string>({ node: "b" });
    const old = a.set("p", "v", T0);
    b.applyDelta(old, T0);
    b.delete("p", T0 + 1);
    b.set("q", "live", T0);
    assert.equal(b.gc(T0 + DAY), 0);
    assert.equal(b.gc(T0 + DAY + 2), 1);
    assert.equal(b.entry("p"), undefined);
    assert.equal(b.get("q"), "live");
    // The pre-delete write comes back late: refused, the tombstone it lost to is gone.
    assert.deepEqual(b.applyDelta(old, T0 + DAY + 3), []);
    assert.equal(b.get("p"), undefined);
    assert.equal(b.stats().refusedStale, 1);
    assert.equal(b.gc(T0 + 10, 5), 0, "a shorter retention only drops tombstones");
  });

  it("refuses entries stamped far ahead of the local clock until the clock catches up", () => {
    const a = new LwwMap<string>({ node: "a", maxClockSkewMs: 1000 });
    const b = new LwwMap<string>({ node: "b", maxClockSkewMs: 1000 });
    const ahead = a.set("p", "from-the-future", T0 + 60_000);
    assert.deepEqual(b.applyDelta(ahead, T0), []);
    assert.equal(b.stats().refusedFuture, 1);
    assert.ok(b.clock.current().wallMs < T0 + 60_000, "the refused stamp did not drag the clock");
    assert.equal(b.applyDelta(ahead, T0 + 59_500).length, 1);
    const bogus: LwwEntry<string> = {
      key: "x",
      ts: { wallMs: T0, logical: stateLimits.maxHlcLogical + 1, node: "evil" },
      value: "v",
      deleted: false,
    };
    assert.deepEqual(b.applyDelta([bogus], T0 + 60_000), []);
  });

  it("digests match exactly when the contents match", () => {
    const a = new LwwMap<number>({ node: "a" });
    const b = new LwwMap<number>({ node: "b" });
    const d = [...a.set("x", 1, T0), ...a.set("y", 2, T0), ...a.delete("z", T0)];
    b.applyDelta([...d].reverse(), T0);
    assert.deepEqual(a.digest(), b.digest());
    b.applyDelta(a.set("x", 3, T0), T0);
    assert.notDeepEqual(a.digest(), new LwwMap<number>({ node: "c" }).digest());
    assert.deepEqual(a.digest(), b.digest());
    b.set("x", 3, T0);
    assert.notEqual(a.digest().hash, b.digest().hash, "same value, newer stamp: different state");
  });

  it("anti-entropy by versions brings two maps together; entriesNewerThan catches up from a stamp", () => {
    const a = new LwwMap<number>({ node: "a" });
    const b = new LwwMap<number>({ node: "b" });
    a.set("only-a", 1, T0);
    b.set("only-b", 2, T0);
    a.set("both", 3, T0);
    const mark = a.clock.current();
    b.set("both", 4, T0 + 5);
    a.delete("only-b-gone", T0);
    b.applyDelta(a.missingFor(b.versions()), T0 + 10);
    a.applyDelta(b.missingFor(a.versions()), T0 + 10);
    assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
    assert.deepEqual(a.digest(), b.digest());
    assert.equal(a.get("both"), 4);
    assert.deepEqual(
      a.entriesNewerThan(mark).map((e) => e.key),
      ["only-b-gone", "only-b", "both"].filter((k) => compareHlc(a.entry(k)!.ts, mark) > 0),
    );
    assert.equal(a.entriesNewerThan(undefined).length, 4);
  });
});

describe("LwwMap onStore (what a shell persists)", () => {
  it("sees every stored entry, tombstones included, and nothing refused, stale or collected", () => {
    const seen: string[] = [];
    const m = new LwwMap<number>({
      node: "n1",
      onStore: (e) =>
        seen.push(`${e.key}=${e.deleted ? "x" : e.value}@${e.ts.wallMs}.${e.ts.logical}.${e.ts.node}`),
    });
    m.set("a", 1, T0);
    m.delete("b", T0 + 1);
    m.applyDelta(
      [
        { key: "a", ts: { wallMs: T0 - 5, logical: 0, node: "n2" }, value: 9, deleted: false },
        { key: "c", ts: { wallMs: T0 + 2, logical: 0, node: "n2" }, value: 3, deleted: false },
        { key: "c", ts: { wallMs: T0 + 2, logical: 0, node: "n2" }, value: 3, deleted: false },
        { key: "d", ts: { wallMs: T0 + 2 * DAY, logical: 0, node: "n2" }, value: 4, deleted: false },
        { key: "a", ts: { wallMs: T0 + 3, logical: 0, node: "n2" }, value: undefined, deleted: true },
      ],
      T0 + 3,
    );
    m.gc(T0 + 2 * DAY);
    m.applyDelta(
      [{ key: "e", ts: { wallMs: T0, logical: 0, node: "n2" }, value: 5, deleted: false }],
      T0 + 2 * DAY,
    );
    assert.deepEqual(seen, [
      `a=1@${T0}.0.n1`,
      `b=x@${T0 + 1}.0.n1`,
      `c=3@${T0 + 2}.0.n2`,
      `a=x@${T0 + 3}.0.n2`,
    ]);
    assert.equal(m.stats().refusedFuture, 1);
    assert.equal(m.stats().refusedStale, 1);
  });
});

describe("LwwMap properties", () => {
  type W = { node: number; key: number; del: boolean; wallMs: number };
  const writesArb = fc.array(
    fc.record({
      node: fc.integer({ min: 0, max: 2 }),
      key: fc.integer({ min: 0, max: 4 }),
      del: fc.boolean(),
      wallMs: fc.integer({ min: 0, max: 50 }),
    }),
    { maxLength: 40 },
  );

  function history(writes: W[]): LwwEntry<number>[] {
    const maps = [0, 1, 2].map((i) => new LwwMap<number>({ node: `n${i}` }));
    const out: LwwEntry<number>[] = [];
    writes.forEach((w, i) => {
      const m = maps[w.node]!;
      // Writers sometimes see each other's writes first, so stamps interleave causally too.
      if (i % 3 === 0 && out.length > 0) m.applyDelta([out[out.length - 1]!], T0 + w.wallMs);
      out.push(...(w.del ? m.delete(`k${w.key}`, T0 + w.wallMs) : m.set(`k${w.key}`, i, T0 + w.wallMs)));
    });
    return out;
  }

  const state = (entries: readonly LwwEntry<number>[]): string => {
    const m = new LwwMap<number>({ node: "viewer" });
    m.applyDelta(entries, T0 + 1000);
    return JSON.stringify([...m.versions()].map(([k]) => m.entry(k)));
  };

  it("merge is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(writesArb, fc.nat(), fc.nat(), (writes, cut1, cut2) => {
        const all = history(writes);
        const i = all.length === 0 ? 0 : cut1 % (all.length + 1);
        const j = all.length === 0 ? 0 : cut2 % (all.length + 1);
        const s1 = all.slice(0, i);
        const s2 = all.slice(i).reverse();
        const s3 = all.filter((_, n) => n % 2 === j % 2);
        assert.equal(state([...s1, ...s2]), state([...s2, ...s1]));
        assert.equal(state([...s1, ...s2, ...s3]), state([...s3, ...s1, ...s2]));
        assert.equal(state([...s1, ...s1]), state(s1));
        assert.equal(state(all), state([...all].reverse()));
      }),
      { numRuns: 300 },
    );
  });

  it("replicas fed any subsets in any order converge through versions anti-entropy", () => {
    fc.assert(
      fc.property(
        writesArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 })), { maxLength: 60 }),
        (writes, deliveries) => {
          const all = history(writes);
          const replicas = [0, 1, 2].map((i) => new LwwMap<number>({ node: `r${i}` }));
          // Every write reaches at least its first replica; the rest is random, with duplicates.
          for (const [n, e] of all.entries()) replicas[n % 3]!.applyDelta([e], T0 + 1000);
          for (const [pick, to] of deliveries) {
            if (all.length > 0) replicas[to]!.applyDelta([all[pick % all.length]!], T0 + 1000);
          }
          for (const x of replicas)
            for (const y of replicas) x.applyDelta(y.missingFor(x.versions()), T0 + 1000);
          const digests = replicas.map((r) => r.digest());
          for (const d of digests) assert.deepEqual(d, digests[0]);
          assert.equal(JSON.stringify(replicas[1]!.versions()), JSON.stringify(replicas[0]!.versions()));
          assert.equal(state(all), state(replicas[0]!.entriesNewerThan(undefined)));
        },
      ),
      { numRuns: 300 },
    );
  });
});
