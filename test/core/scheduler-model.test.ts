import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SeededRandom } from "../../src/core/random.ts";
import { type CheckMode, type CheckTiming, Scheduler } from "../../src/core/scheduler/scheduler.ts";

type Op =
  | { kind: "upsert"; key: string; timing: CheckTiming; immediate: boolean }
  | { kind: "remove"; key: string }
  | { kind: "setMode"; key: string; mode: CheckMode }
  | { kind: "poll"; advanceMs: number }
  | { kind: "complete"; pick: number; mode: CheckMode | undefined }
  | { kind: "completeUnknown"; key: string };

const keyArb = fc.integer({ min: 0, max: 7 }).map((i) => `k${i}`);
const modeArb = fc.constantFrom<CheckMode>("normal", "transitioning", "down");
const timingArb: fc.Arbitrary<CheckTiming> = fc.record({
  intervalMs: fc.constantFrom(100, 1_000, 5_000),
  fastIntervalMs: fc.constantFrom(100, 500),
  downIntervalMs: fc.constantFrom(1_000, 20_000),
  jitter: fc.constantFrom(0, 0.1, 0.5),
  timeoutMs: fc.constantFrom(10, 2_000),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("upsert" as const),
      key: keyArb,
      timing: timingArb,
      immediate: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("setMode" as const), key: keyArb, mode: modeArb }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("poll" as const),
      advanceMs: fc.integer({ min: 0, max: 3_000 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("complete" as const),
      pick: fc.nat(),
      mode: fc.option(modeArb, { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("completeUnknown" as const), key: fc.constant("never-added") }),
  },
);

/** The largest gap a waiting round can have from the moment it was (re)scheduled. */
function longestRoundMs(t: CheckTiming): number {
  return Math.max(t.intervalMs, t.fastIntervalMs, t.downIntervalMs) * (1 + t.jitter);
}

describe("Scheduler model", () => {
  it("keeps its invariants under any sequence of upserts, removals, mode changes, polls and completions", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer(),
        fc.array(opArb, { minLength: 1, maxLength: 150, size: "max" }),
        (cap, seed, ops) => {
          const s = new Scheduler({ random: new SeededRandom(seed), maxConcurrent: cap });
          let now = 0;
          // The model: which keys are scheduled, which checks run (a removed key may still run).
          const live = new Map<string, CheckTiming>();
          const running: string[] = [];
          for (const op of ops) {
            switch (op.kind) {
              case "upsert":
                s.upsert(op.key, op.timing, now, op.immediate ? "immediate" : "spread");
                live.set(op.key, op.timing);
                break;
              case "remove":
                assert.equal(s.remove(op.key, now), live.delete(op.key));
                break;
              case "setMode":
                assert.equal(s.setMode(op.key, op.mode, now), live.has(op.key));
                break;
              case "poll": {
                now += op.advanceMs;
                const { start } = s.poll(now);
                for (const [i, st] of start.entries()) {
                  assert.ok(live.has(st.key), `started ${st.key}, which is not scheduled`);
                  assert.ok(!running.includes(st.key), `started ${st.key} while its check runs`);
                  assert.ok(st.dueMs <= now, "started before due");
                  assert.ok(st.lagMs >= 0 && st.lagMs <= now - st.dueMs, "lag outside [0, now − due]");
                  assert.equal(st.timeoutMs, live.get(st.key)!.timeoutMs);
                  if (i > 0) assert.ok(start[i - 1]!.dueMs <= st.dueMs, "started out of due order");
                  running.push(st.key);
                }
                // Nothing older than what started is left waiting for a slot.
                const newest = start.at(-1)?.dueMs ?? Number.NEGATIVE_INFINITY;
                for (const key of live.keys()) {
                  const due = s.dueOf(key);
                  if (due !== undefined && due <= now)
                    assert.ok(due >= newest, `${key} (due ${due}) passed over`);
                }
                // Work conserving: with a slot free, nothing due is left behind.
                if (s.inFlight < cap)
                  assert.ok((s.nextDeadline() ?? Infinity) > now, "a due check was left unstarted");
                break;
              }
              case "complete": {
                if (running.length === 0) continue;
                const key = running.splice(op.pick % running.length, 1)[0]!;
                assert.equal(s.complete(key, now, op.mode), live.has(key));
                break;
              }
              case "completeUnknown":
                assert.equal(s.complete(op.key, now), false);
                break;
            }
            s.checkInvariants();
            const stats = s.stats();
            assert.ok(stats.inFlight <= cap, "more in flight than the cap");
            assert.equal(stats.inFlight, running.length);
            assert.equal(stats.targets, live.size);
            const liveRunning = running.filter((k) => live.has(k)).length;
            assert.equal(
              stats.scheduled + stats.queued + liveRunning,
              live.size,
              "a target lost or counted twice",
            );
            for (const [key, t] of live) {
              assert.equal(s.has(key), true);
              const due = s.dueOf(key);
              if (running.includes(key)) {
                assert.equal(due, undefined);
              } else {
                assert.ok(due !== undefined, `${key} is scheduled with no due time`);
                assert.ok(due <= now + longestRoundMs(t), `${key} due ${due - now} ms ahead: forgotten`);
              }
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
