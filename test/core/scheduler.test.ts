import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../../src/core/limits.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { KeyedMinHeap } from "../../src/core/scheduler/heap.ts";
import {
  type CheckStart,
  type CheckTiming,
  jitterMax,
  Scheduler,
} from "../../src/core/scheduler/scheduler.ts";

function timing(over: Partial<CheckTiming> = {}): CheckTiming {
  return {
    intervalMs: 10_000,
    fastIntervalMs: 2_000,
    downIntervalMs: 30_000,
    jitter: 0.1,
    timeoutMs: 2_000,
    ...over,
  };
}

interface Started extends CheckStart {
  atMs: number;
}

/**
 * Drives a scheduler on virtual time the way the shell does: one timer at nextDeadline(), checks
 * that take `latencyMs(key)` and complete in the order they finish, poll() after every wake.
 * The completion heap refuses a second check of a key in flight, so every run also checks that.
 */
function simulate(
  s: Scheduler,
  fromMs: number,
  untilMs: number,
  latencyMs: (key: string) => number = () => 0,
): Started[] {
  const finishing = new KeyedMinHeap<string>();
  const started: Started[] = [];
  let now = fromMs;
  for (;;) {
    const next = Math.min(s.nextDeadline() ?? Infinity, finishing.peekPriority() ?? Infinity);
    if (next > untilMs) break;
    now = Math.max(now, next);
    while ((finishing.peekPriority() ?? Infinity) <= now) s.complete(finishing.pop()!, now);
    for (const st of s.poll(now).start) {
      started.push({ ...st, atMs: now });
      finishing.push(st.key, now + latencyMs(st.key));
    }
  }
  return started;
}

describe("Scheduler: first run", () => {
  it("spreads the first checks of 10k targets added at once evenly over one interval", () => {
    const s = new Scheduler({ random: new SeededRandom(1) });
    const nowMs = 5_000;
    for (let i = 0; i < 10_000; i++) s.upsert(`web/10.0.${i >> 8}.${i & 255}:80`, timing(), nowMs);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const due = s.dueOf(`web/10.0.${i >> 8}.${i & 255}:80`)!;
      assert.ok(due >= nowMs && due < nowMs + 10_000, `due ${due} outside the first interval`);
      buckets[Math.floor((due - nowMs) / 1_000)]!++;
    }
    for (const [i, n] of buckets.entries()) assert.ok(n >= 800 && n <= 1_200, `bucket ${i} holds ${n}`);
    // And nothing fires at the moment of the load but the few whose phase fell there.
    assert.ok(s.poll(nowMs).start.length < 5);
    assert.deepEqual(s.stats(), {
      targets: 10_000,
      scheduled: 10_000 - s.inFlight,
      queued: 0,
      inFlight: s.inFlight,
    });
  });

  it("checks at once on `immediate` (ownership handoff), with no lag", () => {
    const s = new Scheduler({ random: new SeededRandom(2) });
    s.upsert("a", timing(), 700, "immediate");
    assert.equal(s.nextDeadline(), 700);
    assert.deepEqual(s.poll(700).start, [
      { key: "a", dueMs: 700, lagMs: 0, timeoutMs: 2_000, mode: "normal" },
    ]);
  });

  it("`immediate` on a target already waiting pulls its check to now", () => {
    const s = new Scheduler({ random: new SeededRandom(3) });
    s.upsert("a", timing(), 0);
    assert.ok(s.dueOf("a")! > 0);
    s.upsert("a", timing(), 40, "immediate");
    assert.equal(s.dueOf("a"), 40);
    assert.deepEqual(
      s.poll(40).start.map((x) => x.key),
      ["a"],
    );
  });
});

describe("Scheduler: concurrency cap", () => {
  it("never has more than the cap in flight; the rest start FIFO by due time as slots free, with their lag", () => {
    const s = new Scheduler({ random: new SeededRandom(4), maxConcurrent: 2 });
    s.upsert("blocker1", timing(), 0, "immediate");
    s.upsert("blocker2", timing(), 0, "immediate");
    assert.deepEqual(
      s.poll(0).start.map((x) => x.key),
      ["blocker1", "blocker2"],
    );
    // Twenty targets at random phases: inserted in one order, due in another.
    const keys = Array.from({ length: 20 }, (_, i) => `t${i}`);
    for (const k of keys) s.upsert(k, timing({ intervalMs: 1_000 }), 0);
    const byDue = [...keys].sort((x, y) => s.dueOf(x)! - s.dueOf(y)!);
    assert.notDeepEqual(byDue, keys, "the seed should give an order other than insertion");
    assert.deepEqual(s.poll(5_000).start, [], "both slots are taken");
    assert.deepEqual(s.stats(), { targets: 22, scheduled: 0, queued: 20, inFlight: 2 });
    // With every slot taken and all due checks queued, nothing is left to wake up for.
    assert.equal(s.nextDeadline(), undefined);

    // Free one slot at a time: each time the oldest due check starts, lag = start − due.
    const order: CheckStart[] = [];
    const inFlight = ["blocker1", "blocker2"];
    for (let now = 6_000; order.length < 20; now += 100) {
      const done = inFlight.shift()!;
      s.complete(done, now);
      assert.ok(s.nextDeadline()! <= now, "a freed slot with checks queued must wake the shell at once");
      const { start } = s.poll(now);
      assert.equal(start.length, 1);
      const st = start[0]!;
      assert.equal(st.lagMs, now - st.dueMs);
      assert.ok(s.inFlight <= 2);
      order.push(st);
      inFlight.push(st.key);
    }
    assert.deepEqual(
      order.map((x) => x.key),
      byDue,
    );
    s.checkInvariants();
  });

  it("orders the queue by due time, not arrival: an older round that joins later starts first", () => {
    const s = new Scheduler({ random: new SeededRandom(31), maxConcurrent: 1 });
    s.upsert("a", timing({ intervalMs: 1_000, jitter: 0 }), 0, "immediate");
    s.poll(0);
    s.upsert("b", timing({ intervalMs: 1_000, jitter: 0 }), 1_200, "immediate");
    assert.deepEqual(s.poll(1_200).start, [], "b queues behind a's slot");
    // a finishes late; its next round (due 1000) is older than b's (due 1200) though it queues later.
    s.complete("a", 1_900);
    assert.deepEqual(
      s.poll(1_900).start.map((x) => [x.key, x.dueMs, x.lagMs]),
      [["a", 1_000, 0]],
    );
    s.complete("a", 1_950);
    assert.deepEqual(
      s.poll(1_950).start.map((x) => [x.key, x.dueMs, x.lagMs]),
      [["b", 1_200, 750]],
    );
  });

  it("keeps the default cap from limits", () => {
    const s = new Scheduler({ random: new SeededRandom(5) });
    for (let i = 0; i < 600; i++) s.upsert(`k${i}`, timing(), 0, "immediate");
    assert.equal(s.poll(0).start.length, limits.maxConcurrentChecksDefault);
    assert.equal(s.queued, 600 - limits.maxConcurrentChecksDefault);
  });

  it("holds the cap through a long run with slow checks, and every due check eventually runs", () => {
    const s = new Scheduler({ random: new SeededRandom(6), maxConcurrent: 10 });
    for (let i = 0; i < 200; i++) s.upsert(`k${i}`, timing({ intervalMs: 1_000 }), 0);
    // 200 targets at 1/s with 40 ms checks need ~8 slots on average: the cap of 10 bites at peaks.
    let maxInFlight = 0;
    const finishing = new KeyedMinHeap<string>();
    let now = 0;
    const counts = new Map<string, number>();
    while (now < 60_000) {
      now = Math.min(s.nextDeadline() ?? Infinity, finishing.peekPriority() ?? Infinity);
      while ((finishing.peekPriority() ?? Infinity) <= now) s.complete(finishing.pop()!, now);
      for (const st of s.poll(now).start) {
        finishing.push(st.key, now + 40);
        counts.set(st.key, (counts.get(st.key) ?? 0) + 1);
      }
      maxInFlight = Math.max(maxInFlight, s.inFlight);
      assert.ok(s.inFlight <= 10);
    }
    assert.equal(maxInFlight, 10, "the load should have reached the cap");
    for (let i = 0; i < 200; i++) {
      const n = counts.get(`k${i}`) ?? 0;
      assert.ok(n >= 58 && n <= 61, `k${i} checked ${n} times in 60 s at 1/s`);
    }
  });
});

describe("Scheduler: one check in flight per target", () => {
  it("does not start a second check while a slow one runs, and reschedules from now when it fell behind", () => {
    const s = new Scheduler({ random: new SeededRandom(7) });
    s.upsert("slow", timing({ intervalMs: 1_000, jitter: 0 }), 0, "immediate");
    // Each check takes 2.5 intervals: the next due is already more than one interval past when
    // it finishes, so it is rescheduled one interval from the finish instead of firing at once.
    const started = simulate(s, 0, 20_000, () => 2_500);
    assert.deepEqual(
      started.slice(0, 4).map((x) => x.atMs),
      [0, 3_500, 7_000, 10_500],
    );
  });

  it("catches up at once when less than one interval behind, without counting the wait as lag", () => {
    const s = new Scheduler({ random: new SeededRandom(8) });
    s.upsert("slowish", timing({ intervalMs: 1_000, jitter: 0 }), 0, "immediate");
    const started = simulate(s, 0, 6_000, () => 1_500);
    assert.deepEqual(
      started.map((x) => [x.atMs, x.dueMs, x.lagMs]),
      [
        [0, 0, 0],
        [1_500, 1_000, 0], // due while the previous check ran: starts as it ends
        [3_000, 2_000, 0],
        [5_500, 5_500, 0], // finished at 4500, 1500 past due 3000: rescheduled from 4500
      ],
    );
  });

  it("does not burst after a long stall: one check, then the normal cadence", () => {
    const s = new Scheduler({ random: new SeededRandom(9) });
    s.upsert("a", timing({ jitter: 0 }), 0, "immediate");
    // The shell was stalled for a minute: six rounds missed.
    const first = s.poll(60_000).start;
    assert.deepEqual(
      first.map((x) => [x.dueMs, x.lagMs]),
      [[0, 60_000]],
    );
    s.complete("a", 60_000);
    assert.equal(s.dueOf("a"), 70_000);
    assert.deepEqual(s.poll(60_000).start, []);
  });
});

describe("Scheduler: intervals and jitter", () => {
  it("draws each interval within ±jitter and uses the whole range", () => {
    const s = new Scheduler({ random: new SeededRandom(10) });
    s.upsert("a", timing({ intervalMs: 10_000, jitter: 0.1 }), 0, "immediate");
    const started = simulate(s, 0, 10_000_000);
    assert.ok(started.length > 900);
    const gaps = started.slice(1).map((x, i) => x.dueMs - started[i]!.dueMs);
    assert.ok(Math.min(...gaps) >= 9_000 && Math.max(...gaps) <= 11_000, "a gap outside ±10%");
    assert.ok(Math.min(...gaps) < 9_100 && Math.max(...gaps) > 10_900, "jitter does not span its range");
  });

  it("keeps an exact cadence with jitter 0", () => {
    const s = new Scheduler({ random: new SeededRandom(11) });
    s.upsert("a", timing({ intervalMs: 1_000, jitter: 0 }), 0, "immediate");
    assert.deepEqual(
      simulate(s, 0, 5_000, () => 300).map((x) => x.atMs),
      [0, 1_000, 2_000, 3_000, 4_000, 5_000],
    );
  });

  it("does not drift: interval 10 s, jitter 0.1, one hour → 360 ± 5 checks, whatever the latency", () => {
    for (const seed of [12, 13, 14]) {
      for (const latency of [0, 3_000]) {
        const s = new Scheduler({ random: new SeededRandom(seed) });
        s.upsert("a", timing({ intervalMs: 10_000, jitter: 0.1 }), 0);
        const n = simulate(s, 0, 3_600_000, () => latency).length;
        assert.ok(n >= 355 && n <= 365, `seed ${seed}, latency ${latency}: ${n} checks`);
      }
    }
  });

  it("uses fastinter while transitioning and downinter while down", () => {
    const s = new Scheduler({ random: new SeededRandom(15) });
    const tm = timing({ intervalMs: 10_000, fastIntervalMs: 1_000, downIntervalMs: 60_000, jitter: 0 });
    s.upsert("a", tm, 0, "immediate");
    assert.equal(s.poll(0).start[0]?.mode, "normal");
    s.complete("a", 5, "transitioning");
    assert.equal(s.dueOf("a"), 1_000);
    assert.equal(s.poll(1_000).start[0]?.mode, "transitioning");
    s.complete("a", 1_005, "down");
    assert.equal(s.dueOf("a"), 61_000);
    assert.equal(s.poll(61_000).start[0]?.mode, "down");
    s.complete("a", 61_005, "normal");
    assert.equal(s.dueOf("a"), 71_000);
  });

  it("setMode after complete re-derives the round just scheduled, from the same due time", () => {
    const s = new Scheduler({ random: new SeededRandom(16) });
    const tm = timing({ intervalMs: 10_000, fastIntervalMs: 1_000, downIntervalMs: 60_000, jitter: 0.1 });
    s.upsert("a", tm, 0, "immediate");
    s.poll(0);
    s.complete("a", 400);
    const normalGap = s.dueOf("a")!;
    assert.ok(normalGap >= 9_000 && normalGap <= 11_000);
    assert.equal(s.setMode("a", "transitioning", 400), true);
    // The same jitter draw, scaled to the fast interval.
    assert.ok(Math.abs(s.dueOf("a")! - normalGap / 10) < 1e-6);
    s.setMode("a", "down", 400);
    assert.ok(Math.abs(s.dueOf("a")! - normalGap * 6) < 1e-6);
  });

  it("a mode change never puts a round in the past: a shorter interval that is already over fires now", () => {
    const s = new Scheduler({ random: new SeededRandom(17) });
    const tm = timing({ intervalMs: 10_000, fastIntervalMs: 1_000, jitter: 0 });
    s.upsert("a", tm, 0, "immediate");
    s.poll(0);
    s.complete("a", 0); // due 10_000
    s.setMode("a", "transitioning", 5_000); // by fastinter it was due at 1_000
    assert.equal(s.dueOf("a"), 5_000);
    assert.deepEqual(
      s.poll(5_000).start.map((x) => [x.dueMs, x.lagMs]),
      [[5_000, 0]],
    );
  });

  it("keeps the first round's phase over the normal interval when the mode changes, so a load stays spread", () => {
    const s = new Scheduler({ random: new SeededRandom(18) });
    s.upsert("a", timing(), 0);
    const due = s.dueOf("a");
    s.setMode("a", "transitioning", 0);
    assert.equal(s.dueOf("a"), due);
  });
});

describe("Scheduler: changes and removal", () => {
  it("upsert with the same timing leaves the schedule alone (a config reload does not reshuffle)", () => {
    const s = new Scheduler({ random: new SeededRandom(19) });
    for (let i = 0; i < 100; i++) s.upsert(`k${i}`, timing(), 0);
    const before = Array.from({ length: 100 }, (_, i) => s.dueOf(`k${i}`));
    for (let i = 0; i < 100; i++) s.upsert(`k${i}`, timing(), 3_000);
    assert.deepEqual(
      Array.from({ length: 100 }, (_, i) => s.dueOf(`k${i}`)),
      before,
    );
  });

  it("upsert of a waiting target re-derives its round from the new interval", () => {
    const s = new Scheduler({ random: new SeededRandom(20) });
    s.upsert("a", timing({ intervalMs: 10_000, jitter: 0 }), 0, "immediate");
    s.poll(0);
    s.complete("a", 0);
    assert.equal(s.dueOf("a"), 10_000);
    s.upsert("a", timing({ intervalMs: 20_000, jitter: 0 }), 1_000);
    assert.equal(s.dueOf("a"), 20_000);
    s.upsert("a", timing({ intervalMs: 5_000, jitter: 0 }), 1_000);
    assert.equal(s.dueOf("a"), 5_000);
  });

  it("upsert while in flight applies the new timing from the next round", () => {
    const s = new Scheduler({ random: new SeededRandom(21) });
    s.upsert("a", timing({ intervalMs: 10_000, jitter: 0 }), 0, "immediate");
    s.poll(0);
    s.upsert("a", timing({ intervalMs: 20_000, jitter: 0, timeoutMs: 5_000 }), 100);
    assert.equal(s.dueOf("a"), undefined, "in flight: no pending round");
    s.complete("a", 200);
    assert.equal(s.dueOf("a"), 20_000);
    assert.equal(s.poll(20_000).start[0]?.timeoutMs, 5_000);
  });

  it("removes a waiting target: never started, not counted, no deadline", () => {
    const s = new Scheduler({ random: new SeededRandom(22) });
    s.upsert("a", timing(), 0);
    assert.equal(s.remove("a", 0), true);
    assert.equal(s.remove("a", 0), false);
    assert.equal(s.has("a"), false);
    assert.equal(s.nextDeadline(), undefined);
    assert.deepEqual(s.poll(100_000).start, []);
    assert.deepEqual(s.stats(), { targets: 0, scheduled: 0, queued: 0, inFlight: 0 });
  });

  it("removes a queued target: it does not start when a slot frees", () => {
    const s = new Scheduler({ random: new SeededRandom(23), maxConcurrent: 1 });
    s.upsert("a", timing(), 0, "immediate");
    s.upsert("b", timing(), 0, "immediate");
    assert.deepEqual(
      s.poll(0).start.map((x) => x.key),
      ["a"],
    );
    assert.equal(s.queued, 1);
    s.remove("b", 1);
    assert.equal(s.queued, 0);
    s.complete("a", 2);
    assert.deepEqual(s.poll(2).start, []);
    s.checkInvariants();
  });

  it("removes a target in flight: the slot is held until it completes, then complete() does nothing", () => {
    const s = new Scheduler({ random: new SeededRandom(24), maxConcurrent: 1 });
    s.upsert("a", timing(), 0, "immediate");
    s.upsert("b", timing(), 0, "immediate");
    s.poll(0);
    assert.equal(s.remove("a", 10), true);
    assert.deepEqual(s.stats(), { targets: 1, scheduled: 0, queued: 1, inFlight: 1 });
    // The removed target's check is still running: b must wait for the slot.
    assert.deepEqual(s.poll(20).start, []);
    assert.equal(s.complete("a", 30), false);
    assert.equal(s.has("a"), false);
    assert.equal(s.complete("a", 30), false, "a second completion of a gone target is ignored");
    assert.deepEqual(
      s.poll(30).start.map((x) => x.key),
      ["b"],
    );
    s.complete("b", 31);
    // Only b remains: one round of it is all that is ever started.
    const keys = new Set(simulate(s, 31, 100_000).map((x) => x.key));
    assert.deepEqual([...keys], ["b"]);
  });

  it("a target removed and added back while its check runs is not started twice, and continues after", () => {
    const s = new Scheduler({ random: new SeededRandom(25) });
    s.upsert("a", timing({ jitter: 0 }), 0, "immediate");
    s.poll(0);
    s.remove("a", 10);
    s.upsert("a", timing({ jitter: 0 }), 20, "immediate");
    assert.equal(s.has("a"), true);
    assert.deepEqual(s.poll(20).start, [], "its check is still running");
    assert.equal(s.complete("a", 30), true);
    assert.equal(s.dueOf("a"), 10_000);
    s.checkInvariants();
  });

  it("ignores removal, mode changes and completion of unknown keys", () => {
    const s = new Scheduler({ random: new SeededRandom(26) });
    assert.equal(s.remove("nope", 0), false);
    assert.equal(s.setMode("nope", "down", 0), false);
    assert.equal(s.complete("nope", 0), false);
    assert.deepEqual(s.stats(), { targets: 0, scheduled: 0, queued: 0, inFlight: 0 });
  });
});

describe("Scheduler: nextDeadline", () => {
  it("is the earliest due time, undefined when empty, and follows removals", () => {
    const s = new Scheduler({ random: new SeededRandom(27) });
    assert.equal(s.nextDeadline(), undefined);
    for (let i = 0; i < 50; i++) s.upsert(`k${i}`, timing(), 1_000);
    const dues = Array.from({ length: 50 }, (_, i) => s.dueOf(`k${i}`)!);
    assert.equal(s.nextDeadline(), Math.min(...dues));
    const first = dues.indexOf(Math.min(...dues));
    s.remove(`k${first}`, 1_000);
    dues.splice(first, 1);
    assert.equal(s.nextDeadline(), Math.min(...dues));
    // Polling just before the deadline starts nothing; at it, exactly that check.
    const deadline = s.nextDeadline()!;
    assert.deepEqual(s.poll(deadline - 1).start, []);
    assert.equal(s.poll(deadline).start.length, 1);
  });
});

describe("Scheduler: programmer errors crash", () => {
  it("rejects timings outside their bounds", () => {
    const s = new Scheduler({ random: new SeededRandom(28) });
    assert.throws(() => s.upsert("a", timing({ intervalMs: limits.intervalMsMin - 1 }), 0), /intervalMs/);
    assert.throws(() => s.upsert("a", timing({ fastIntervalMs: Number.NaN }), 0), /fastIntervalMs/);
    assert.throws(
      () => s.upsert("a", timing({ downIntervalMs: limits.intervalMsMax + 1 }), 0),
      /downIntervalMs/,
    );
    assert.throws(() => s.upsert("a", timing({ timeoutMs: 0 }), 0), /timeoutMs/);
    assert.throws(() => s.upsert("a", timing({ jitter: jitterMax + 0.01 }), 0), /jitter/);
    assert.throws(() => s.upsert("a", timing({ jitter: -0.1 }), 0), /jitter/);
    assert.equal(s.has("a"), false, "a rejected upsert leaves nothing behind");
  });

  it("rejects a cap outside [1, ceiling]", () => {
    const random = new SeededRandom(29);
    assert.throws(() => new Scheduler({ random, maxConcurrent: 0 }), /maxConcurrent/);
    assert.throws(() => new Scheduler({ random, maxConcurrent: 1.5 }), /maxConcurrent/);
    assert.throws(
      () => new Scheduler({ random, maxConcurrent: limits.maxConcurrentChecksCeiling + 1 }),
      /maxConcurrent/,
    );
  });

  it("rejects time going backwards and a completion for a check that is not running", () => {
    const s = new Scheduler({ random: new SeededRandom(30) });
    s.upsert("a", timing(), 100);
    assert.throws(() => s.poll(99), /time went/);
    assert.throws(() => s.complete("a", 100), /not in flight/);
  });
});
