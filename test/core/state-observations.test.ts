import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ExchangeCursor,
  ObservationMap,
  type Register,
  stateLimits,
} from "../../src/core/state/index.ts";

interface Obs {
  state: "up" | "down";
  n: number;
}

const up = (n: number): Obs => ({ state: "up", n });
const HOUR = 3600_000;
const big = { maxRegisters: 1_000_000, maxBytes: Number.POSITIVE_INFINITY };

function map(self: string, counterStart = 0): ObservationMap<Obs> {
  return new ObservationMap<Obs>({ self, counterStart, retentionMs: HOUR });
}

/** One full push-pull round: a asks b, b asks a. */
function sync(a: ObservationMap<Obs>, b: ObservationMap<Obs>, budget = big): void {
  const toA = b.missingFor(a.vector(), budget);
  a.mergeExchange(toA.registers, toA.vector, toA.complete);
  const toB = a.missingFor(b.vector(), budget);
  b.mergeExchange(toB.registers, toB.vector, toB.complete);
}

const key = (r: Register<Obs>): string => `${r.targetId}|${r.observer}|${r.counter}`;

describe("ObservationMap: writes and deltas", () => {
  it("a local write bumps the counter, returns its delta, and advances the own vector entry", () => {
    const a = map("a");
    const d1 = a.localWrite("web/x:80", up(1));
    const d2 = a.localWrite("web/y:80", up(2));
    const d3 = a.localWrite("web/x:80", up(3));
    assert.deepEqual(d1, [{ targetId: "web/x:80", observer: "a", counter: 1, value: up(1) }]);
    assert.equal(d2[0]!.counter, 2);
    assert.equal(d3[0]!.counter, 3);
    assert.equal(a.counter, 3);
    assert.deepEqual(a.vectorEntries(), [["a", 3]]);
    assert.deepEqual(a.get("web/x:80", "a")?.value, up(3));
    assert.equal(a.observationsOf("web/x:80").length, 1);
  });

  it("merge keeps the higher counter, is idempotent, ignores older deltas, and reports real changes only", () => {
    const a = map("a");
    const b = map("b");
    const d1 = a.localWrite("t", up(1));
    const d2 = a.localWrite("t", up(2));
    assert.deepEqual(b.applyDelta(d2).map(key), ["t|a|2"]);
    assert.deepEqual(b.applyDelta(d1), []);
    assert.deepEqual(b.applyDelta(d2), []);
    assert.deepEqual(b.get("t", "a")?.value, up(2));
  });

  it("gossiped deltas do not raise the vector; a complete exchange does", () => {
    const a = map("a");
    const b = map("b");
    a.localWrite("t1", up(1));
    const d2 = a.localWrite("t2", up(2));
    b.applyDelta(d2);
    assert.deepEqual(b.vectorEntries(), []);
    sync(b, a);
    assert.deepEqual(b.vectorEntries(), [["a", 2]]);
    assert.equal(b.observationsOf("t1").length, 1);
  });

  it("restores the counter from persistence without claiming the registers it no longer holds", () => {
    const a = map("a");
    const peer = map("p");
    for (let i = 0; i < 5; i++) peer.applyDelta(a.localWrite(`t${i}`, up(i)));
    sync(peer, a);
    // a restarts with only its counter.
    const a2 = map("a", a.counter);
    assert.equal(a2.counter, 5);
    const d = a2.localWrite("t0", up(100));
    assert.equal(d[0]!.counter, 6);
    // It holds t0 only, so it must not claim dots 1..5.
    assert.deepEqual(a2.vectorEntries(), []);
    sync(a2, peer);
    assert.deepEqual(a2.vectorEntries(), [["a", 6]]);
    for (let i = 1; i < 5; i++) assert.deepEqual(a2.get(`t${i}`, "a")?.value, up(i));
    assert.deepEqual(a2.get("t0", "a")?.value, up(100));
  });

  it("never reuses a counter a peer has seen, even if persistence lost it", () => {
    const a = map("a");
    const peer = map("p");
    for (let i = 0; i < 3; i++) peer.applyDelta(a.localWrite(`t${i}`, up(i)));
    const reborn = map("a", 0);
    sync(reborn, peer);
    assert.equal(reborn.counter, 3);
    assert.equal(reborn.localWrite("t0", up(9))[0]!.counter, 4);
    // The new write supersedes the old one everywhere.
    peer.applyDelta(reborn.localWrite("t1", up(10)));
    assert.deepEqual(peer.get("t1", "a")?.value, up(10));
  });

  it("closeBootGap lets the own entry follow the counter when pre-boot writes were lost", () => {
    const a2 = map("a", 10);
    a2.localWrite("t", up(1));
    assert.deepEqual(a2.vectorEntries(), []);
    a2.closeBootGap();
    assert.deepEqual(a2.vectorEntries(), [["a", 11]]);
    a2.localWrite("t", up(2));
    assert.deepEqual(a2.vectorEntries(), [["a", 12]]);
  });

  it("caps registers per target against a flood of observers", () => {
    const a = map("a");
    const flood: Register<Obs>[] = [];
    for (let i = 0; i < stateLimits.maxRegistersPerTarget + 10; i++) {
      flood.push({ targetId: "t", observer: `o${i}`, counter: 1, value: up(i) });
    }
    a.applyDelta(flood);
    assert.equal(a.observationsOf("t").length, stateLimits.maxRegistersPerTarget);
    assert.equal(a.stats().droppedOverLimit, 10);
    // The owner's own write always lands.
    a.localWrite("t", up(0));
    assert.equal(a.observationsOf("t").length, stateLimits.maxRegistersPerTarget + 1);
  });

  it("on a full target, the evict choice decides which register gives way", () => {
    const asked: { held: string[]; incoming: string }[] = [];
    // Keeps the highest n: the lowest, incoming included, gives way.
    const a = new ObservationMap<Obs>({
      self: "a",
      maxRegistersPerTarget: 3,
      evict: (_t, held, incoming) => {
        asked.push({ held: held.map((r) => r.observer).sort(), incoming: incoming.observer });
        return [...held, incoming].sort((x, y) => x.value.n - y.value.n)[0]!.observer;
      },
    });
    a.localWrite("t", up(0));
    a.applyDelta([
      { targetId: "t", observer: "o1", counter: 1, value: up(10) },
      { targetId: "t", observer: "o2", counter: 1, value: up(20) },
    ]);
    // Full (a, o1, o2): o3 outranks o1, which goes; our own register is never offered.
    const changed = a.applyDelta([{ targetId: "t", observer: "o3", counter: 1, value: up(30) }]);
    assert.deepEqual(asked, [{ held: ["o1", "o2"], incoming: "o3" }]);
    assert.deepEqual(
      changed.map((r) => r.observer),
      ["o3"],
    );
    assert.deepEqual(
      a
        .observationsOf("t")
        .map((r) => r.observer)
        .sort(),
      ["a", "o2", "o3"],
    );
    // An incoming register the choice ranks lowest is refused.
    assert.deepEqual(a.applyDelta([{ targetId: "t", observer: "o4", counter: 1, value: up(5) }]), []);
    assert.deepEqual(
      a
        .observationsOf("t")
        .map((r) => r.observer)
        .sort(),
      ["a", "o2", "o3"],
    );
    // A choice naming an observer the target does not hold refuses too.
    const b = new ObservationMap<Obs>({ self: "b", maxRegistersPerTarget: 1, evict: () => "nobody" });
    b.applyDelta([{ targetId: "t", observer: "o1", counter: 1, value: up(1) }]);
    assert.deepEqual(b.applyDelta([{ targetId: "t", observer: "o2", counter: 1, value: up(2) }]), []);
    assert.equal(a.stats().droppedOverLimit, 2);
    // The evicted register is gone from the anti-entropy index too: a peer is not offered it.
    const peer = map("p");
    const reply = a.missingFor(peer.vector(), big);
    assert.deepEqual(reply.registers.map((r) => r.observer).sort(), ["a", "o2", "o3"]);
    // Updates to registers held are not arrivals: no choice is asked for.
    asked.length = 0;
    a.applyDelta([{ targetId: "t", observer: "o2", counter: 2, value: up(1) }]);
    assert.deepEqual(asked, []);
    assert.equal(a.get("t", "o2")?.value.n, 1);
  });
});

describe("ObservationMap: anti-entropy", () => {
  it("answers with registers newer than the peer's entries, in canonical order", () => {
    const a = map("a");
    const b = map("b");
    const c = map("c");
    a.localWrite("t1", up(1));
    a.localWrite("t2", up(2));
    b.applyDelta(c.localWrite("t1", up(3)));
    b.applyDelta(a.localWrite("t3", up(4)));
    b.applyDelta(a.localWrite("t4", up(5)));
    b.localWrite("t9", up(6));
    const reply = b.missingFor(new Map([["a", 3]]), big);
    assert.deepEqual(reply.registers.map(key), ["t4|a|4", "t9|b|1", "t1|c|1"]);
    assert.equal(reply.complete, true);
    assert.deepEqual(reply.vector, [["b", 1]]);
  });

  it("a budget cuts the reply; a cut reply still raises what it provably covered", () => {
    const src = map("src");
    const other = map("o");
    for (let i = 0; i < 10; i++) src.localWrite(`t${i}`, up(i));
    for (let i = 0; i < 10; i++) src.applyDelta(other.localWrite(`u${i}`, up(i)));
    // Gossip alone does not let src vouch for o; an exchange with o does.
    assert.deepEqual(src.vectorEntries(), [["src", 10]]);
    sync(src, other);
    const dst = map("dst");
    const r1 = src.missingFor(dst.vector(), { maxRegisters: 4, maxBytes: Number.POSITIVE_INFINITY });
    assert.equal(r1.registers.length, 4);
    assert.equal(r1.complete, false);
    dst.mergeExchange(r1.registers, r1.vector, r1.complete);
    // "o" sorts before "src": o's 4 first registers arrived, so o is covered up to 4 only.
    assert.deepEqual(dst.vectorEntries(), [["o", 4]]);
    let exchanges = 1;
    for (let complete = false; !complete && exchanges < 20; exchanges++) {
      const r = src.missingFor(dst.vector(), { maxRegisters: 4, maxBytes: Number.POSITIVE_INFINITY });
      dst.mergeExchange(r.registers, r.vector, r.complete);
      complete = r.complete;
    }
    // 20 registers, 4 per reply: every reply makes progress.
    assert.equal(exchanges, 5);
    assert.deepEqual(dst.snapshot().registers, src.snapshot().registers);
    assert.deepEqual(dst.vectorEntries(), [
      ["o", 10],
      ["src", 10],
    ]);
  });

  it("paging with a cursor moves past registers the peer holds but cannot vouch for", () => {
    const o = map("o");
    const z = map("z");
    const b = map("b");
    // b learned o's writes by gossip only, so it does not vouch for o; z's it does.
    for (let i = 0; i < 6; i++) b.applyDelta(o.localWrite(`t${i}`, up(i)));
    b.applyDelta(z.localWrite("u", up(0)));
    sync(b, z);
    const a = map("a");
    let after: ExchangeCursor | undefined;
    let pages = 0;
    do {
      const reply = b.missingFor(a.vector(), { maxRegisters: 2, maxBytes: Number.POSITIVE_INFINITY }, after);
      a.mergeExchange(reply.registers, reply.vector, reply.complete, after);
      after = ObservationMap.nextCursor(reply);
      pages++;
    } while (after !== undefined && pages < 10);
    assert.equal(pages, 4);
    assert.equal(a.stats().registers, 7);
    // o is not vouched for by b, z is.
    assert.deepEqual(a.vectorEntries(), [["z", 1]]);
  });

  it("a page does not vouch for the cursor's observer below the cursor", () => {
    const o = map("o");
    const q = map("q");
    const ds = [1, 2, 3, 4].map((i) => o.localWrite(`t${i}`, up(i)));
    const b = map("b");
    b.applyDelta(ds[0]!);
    b.applyDelta(ds[2]!);
    b.applyDelta(q.localWrite("u", up(0)));
    const a = map("a");
    const budget = { maxRegisters: 1, maxBytes: Number.POSITIVE_INFINITY };
    let after: ExchangeCursor | undefined;
    const page = (): string[] => {
      const reply = b.missingFor(a.vector(), budget, after);
      a.mergeExchange(reply.registers, reply.vector, reply.complete, after);
      after = ObservationMap.nextCursor(reply);
      return reply.registers.map(key);
    };
    assert.deepEqual([...page(), ...page()], ["t1|o|1", "t3|o|3"]);
    // Meanwhile b gets dot 2 (below the cursor) and comes to vouch for o up to 4.
    sync(b, o);
    assert.deepEqual(page(), ["t4|o|4"]);
    // a never received dot 2, so it must not claim o:4, nor anything of o.
    assert.equal(a.get("t2", "o"), undefined);
    assert.deepEqual(a.vectorEntries(), []);
    assert.deepEqual(page(), ["u|q|1"]);
    assert.equal(after, undefined);
    // A fresh session catches up and then vouches.
    sync(a, b);
    assert.deepEqual(a.get("t2", "o")?.value, up(2));
    assert.deepEqual(a.vectorEntries(), [["o", 4]]);
  });

  it("a byte budget always lets one register through", () => {
    const a = map("a");
    a.localWrite("t1", up(1));
    a.localWrite("t2", up(2));
    const r = a.missingFor(new Map(), { maxRegisters: 100, maxBytes: 1 });
    assert.equal(r.registers.length, 1);
    assert.equal(r.complete, false);
    const sized = a.missingFor(new Map(), { maxRegisters: 100, maxBytes: 50, sizeOf: () => 20 });
    assert.equal(sized.registers.length, 2);
  });

  it("a cut reply out of canonical order raises nothing", () => {
    const dst = map("dst");
    const regs: Register<Obs>[] = [
      { targetId: "t2", observer: "b", counter: 2, value: up(2) },
      { targetId: "t1", observer: "a", counter: 1, value: up(1) },
    ];
    dst.mergeExchange(
      regs,
      [
        ["a", 5],
        ["b", 5],
      ],
      false,
    );
    assert.deepEqual(dst.vectorEntries(), []);
    assert.equal(dst.stats().registers, 2);
  });

  it("a stale delta never replaces a newer register", () => {
    const a = map("a");
    const old = a.localWrite("t", up(1));
    a.localWrite("t", up(2));
    const fresh = map("c");
    sync(fresh, a);
    assert.deepEqual(fresh.applyDelta(old), []);
    assert.deepEqual(fresh.get("t", "a")?.counter, 2);
  });
});

describe("ObservationMap: removal, reaping, gc", () => {
  it("a removed target's registers are hidden, late deltas stay hidden, restore brings them back", () => {
    const a = map("a");
    const b = map("b");
    b.applyDelta(a.localWrite("t", up(1)));
    const late = a.localWrite("t", up(2));
    assert.deepEqual(b.removeTarget("t", 0).map(key), ["t|a|1"]);
    assert.deepEqual(b.observationsOf("t"), []);
    assert.deepEqual(b.applyDelta(late), []);
    assert.equal(b.get("t", "a"), undefined);
    assert.equal(b.stats().hiddenRegisters, 1);
    assert.ok(b.isRemoved("t"));
    assert.deepEqual(b.restoreTarget("t").map(key), ["t|a|2"]);
    assert.deepEqual(b.get("t", "a")?.value, up(2));
  });

  it("after the retention a removed target is forgotten and stale deltas do not resurrect it", () => {
    const a = map("a");
    const b = map("b");
    b.applyDelta(a.localWrite("t", up(1)));
    sync(b, a);
    b.removeTarget("t", 1000);
    assert.deepEqual(b.gc(1000 + HOUR - 1), { targets: 0, observers: 0 });
    assert.deepEqual(b.gc(1000 + HOUR), { targets: 1, observers: 0 });
    assert.equal(b.isRemoved("t"), false);
    // A peer that still holds the old register does not send it back: our vector covers it.
    sync(b, a);
    assert.deepEqual(b.observationsOf("t"), []);
    assert.equal(b.stats().registers, 0);
    assert.equal(b.stats().hiddenRegisters, 0);
  });

  it("hidden registers still flow through anti-entropy so peers converge", () => {
    const a = map("a");
    const b = map("b");
    const c = map("c");
    b.applyDelta(a.localWrite("t", up(1)));
    b.removeTarget("t", 0);
    sync(c, b);
    assert.deepEqual(c.get("t", "a")?.value, up(1));
    assert.deepEqual(b.snapshot(), { ...c.snapshot(), vector: b.snapshot().vector });
  });

  it("bounds the removed-target memory, forgetting the oldest first", () => {
    const a = new ObservationMap<Obs>({ self: "a", maxRemovedTargets: 2 });
    a.removeTarget("t1", 1);
    a.removeTarget("t2", 2);
    a.removeTarget("t3", 3);
    assert.deepEqual(
      ["t1", "t2", "t3"].map((t) => a.isRemoved(t)),
      [false, true, true],
    );
  });

  it("reaping drops an observer's registers, refuses its deltas, and keeps its entry as a floor", () => {
    const dead = map("dead");
    const b = map("b");
    const c = map("c");
    const d1 = dead.localWrite("t1", up(1));
    b.applyDelta(d1);
    c.applyDelta(d1);
    sync(b, dead);
    const late = dead.localWrite("t2", up(2));
    assert.deepEqual(b.reapObserver("dead", 0).map(key), ["t1|dead|1"]);
    assert.deepEqual(b.reapObserver("dead", 0), []);
    assert.ok(b.isReaped("dead"));
    assert.deepEqual(b.applyDelta(late), []);
    assert.deepEqual(b.applyDelta(d1), []);
    assert.deepEqual(b.observationsOf("t1"), []);
    // A peer that has not reaped yet offers the registers again: refused.
    sync(b, c);
    assert.equal(b.stats().registers, 0);
    assert.deepEqual(b.vectorEntries(), [["dead", 1]]);
    // Replies do not vouch for reaped observers.
    assert.deepEqual(b.missingFor(new Map(), big).vector, []);
    assert.throws(() => b.reapObserver("b", 0), /itself/);
  });

  it("an admitted observer is accepted again and refetched; a reap marker expires", () => {
    const o = map("o");
    const b = map("b");
    b.applyDelta(o.localWrite("t1", up(1)));
    b.reapObserver("o", 0);
    b.admitObserver("o");
    assert.equal(b.isReaped("o"), false);
    sync(b, o);
    assert.deepEqual(b.get("t1", "o")?.value, up(1));
    b.reapObserver("o", 10);
    assert.deepEqual(b.gc(10 + HOUR), { targets: 0, observers: 1 });
    assert.equal(b.isReaped("o"), false);
    assert.deepEqual(b.vectorEntries(), []);
  });
});
