import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { CheckResult } from "../../src/checkers/types.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { limits } from "../../src/core/limits.ts";
import {
  type Applied,
  applyResult,
  checkMode,
  initialObservation,
  isTransitioning,
  type Observation,
  type ObservationState,
  parseObservation,
  type RiseFall,
  streakMax,
} from "../../src/core/observation/observation.ts";

const ok = (reason = "status 200", latencyMs = 12): CheckResult => ({ ok: true, latencyMs, reason });
const fail = (reason = "status 503", latencyMs = 30): CheckResult => ({ ok: false, latencyMs, reason });

/** Applies results one per second of wall time from 1000; returns every step. */
function run(rule: RiseFall, results: CheckResult[], from: Observation = initialObservation()): Applied[] {
  const steps: Applied[] = [];
  let obs = from;
  for (const [i, r] of results.entries()) {
    const step = applyResult(obs, r, rule, 1_000 * (i + 1));
    steps.push(step);
    obs = step.next;
  }
  return steps;
}

function states(steps: Applied[]): ObservationState[] {
  return steps.map((s) => s.next.state);
}

const rule23: RiseFall = { rise: 2, fall: 3 };

describe("observation: rise and fall", () => {
  it("starts unknown, with nothing checked", () => {
    assert.deepEqual(initialObservation(), {
      state: "unknown",
      streakOk: 0,
      streakFail: 0,
      sinceWallMs: null,
      lastReason: "",
      lastLatencyMs: null,
      lastCheckedWallMs: null,
      checks: 0,
    });
    assert.equal(initialObservation(1_234).sinceWallMs, 1_234);
  });

  it("becomes up after `rise` consecutive successes, with the last reason as the cause", () => {
    const steps = run(rule23, [ok("first"), ok("second")]);
    assert.deepEqual(states(steps), ["unknown", "up"]);
    assert.equal(steps[0]!.transition, undefined);
    assert.deepEqual(steps[1]!.transition, { from: "unknown", to: "up", cause: "second" });
    assert.deepEqual(steps[1]!.next, {
      state: "up",
      streakOk: 2,
      streakFail: 0,
      sinceWallMs: 2_000,
      lastReason: "second",
      lastLatencyMs: 12,
      lastCheckedWallMs: 2_000,
      checks: 2,
    });
  });

  it("becomes down from unknown after `fall` consecutive failures", () => {
    const steps = run(rule23, [fail(), fail(), fail("connect ECONNREFUSED")]);
    assert.deepEqual(states(steps), ["unknown", "unknown", "down"]);
    assert.deepEqual(steps[2]!.transition, { from: "unknown", to: "down", cause: "connect ECONNREFUSED" });
  });

  it("goes up → down after `fall` failures and back after `rise` successes", () => {
    const steps = run(rule23, [ok(), ok(), fail(), fail(), fail("timeout"), ok(), ok("recovered")]);
    assert.deepEqual(states(steps), ["unknown", "up", "up", "up", "down", "down", "up"]);
    assert.deepEqual(
      steps.filter((s) => s.transition !== undefined).map((s) => [s.transition, s.next.sinceWallMs]),
      [
        [{ from: "unknown", to: "up", cause: "status 200" }, 2_000],
        [{ from: "up", to: "down", cause: "timeout" }, 5_000],
        [{ from: "down", to: "up", cause: "recovered" }, 7_000],
      ],
    );
  });

  it("a success resets the failure streak and a failure the success streak", () => {
    const up = run(rule23, [ok(), ok()])[1]!.next;
    const flapping = run(rule23, [fail(), fail(), ok(), fail(), fail(), ok(), fail(), fail()], up);
    assert.ok(states(flapping).every((s) => s === "up"));
    assert.deepEqual(
      flapping.map((s) => [s.next.streakOk, s.next.streakFail]),
      [
        [0, 1],
        [0, 2],
        [1, 0],
        [0, 1],
        [0, 2],
        [1, 0],
        [0, 1],
        [0, 2],
      ],
    );
  });

  it("with rise = fall = 1 follows every result", () => {
    const steps = run({ rise: 1, fall: 1 }, [ok(), fail(), fail(), ok()]);
    assert.deepEqual(states(steps), ["up", "down", "down", "up"]);
    assert.equal(steps.filter((s) => s.transition !== undefined).length, 3);
  });

  it("keeps `since` while the state holds and records every check", () => {
    const steps = run(rule23, [ok(), ok(), ok("a", 5), fail("b", 7)]);
    const last = steps[3]!.next;
    assert.equal(last.sinceWallMs, 2_000);
    assert.equal(last.lastReason, "b");
    assert.equal(last.lastLatencyMs, 7);
    assert.equal(last.lastCheckedWallMs, 4_000);
    assert.equal(last.checks, 4);
  });

  it("does not change the observation it was given", () => {
    const prev = Object.freeze(initialObservation());
    applyResult(prev, ok(), rule23, 1);
    assert.deepEqual(prev, initialObservation());
  });

  it("applies a shortened rule at the next result, and a lengthened one counts the true streak", () => {
    const up = run(rule23, [ok(), ok(), fail(), fail()]).at(-1)!.next;
    assert.equal(up.streakFail, 2);
    // fall 3 → 2: already at 2, the next failure flips it.
    assert.equal(applyResult(up, fail(), { rise: 2, fall: 2 }, 9).next.state, "down");
    // fall 3 → 5: needs five in a row, counting the two already seen.
    const longer = run({ rise: 2, fall: 5 }, [fail(), fail(), fail()], up);
    assert.deepEqual(states(longer), ["up", "up", "down"]);
    // And the same toward up: rise 3 → 1 with two successes already seen while down.
    const down = run({ rise: 3, fall: 1 }, [fail(), ok(), ok()]).at(-1)!.next;
    assert.deepEqual([down.state, down.streakOk], ["down", 2]);
    assert.equal(applyResult(down, ok(), { rise: 1, fall: 1 }, 9).next.state, "up");
  });

  it("caps streaks at streakMax", () => {
    const steps = run(
      { rise: 1, fall: 1 },
      Array.from({ length: streakMax + 50 }, () => ok()),
    );
    assert.equal(steps.at(-1)!.next.streakOk, streakMax);
    assert.equal(streakMax, limits.riseFallMax);
  });

  it("cuts reasons to limits.maxReasonChars without splitting a surrogate pair", () => {
    const long = "x".repeat(limits.maxReasonChars + 10);
    assert.equal(
      applyResult(initialObservation(), fail(long), rule23, 1).next.lastReason.length,
      limits.maxReasonChars,
    );
    const emoji = `${"x".repeat(limits.maxReasonChars - 1)}😀tail`;
    const cut = applyResult(initialObservation(), fail(emoji), { rise: 1, fall: 1 }, 1);
    assert.equal(cut.next.lastReason, "x".repeat(limits.maxReasonChars - 1));
    assert.equal(cut.transition?.cause, cut.next.lastReason);
  });

  it("crashes on a programmer error: a rule or latency out of bounds", () => {
    const o = initialObservation();
    assert.throws(() => applyResult(o, ok(), { rise: 0, fall: 3 }, 1), /rise/);
    assert.throws(() => applyResult(o, ok(), { rise: 2, fall: limits.riseFallMax + 1 }, 1), /fall/);
    assert.throws(() => applyResult(o, ok(), { rise: 1.5, fall: 3 }, 1), /rise/);
    assert.throws(() => applyResult(o, ok("x", Number.NaN), rule23, 1), /latency/);
    assert.throws(() => applyResult(o, ok("x", -1), rule23, 1), /latency/);
    assert.throws(() => applyResult(o, ok(), rule23, Number.NaN), /time/);
  });
});

describe("observation: transitioning and check mode", () => {
  it("is transitioning while unknown or with a streak toward the other state", () => {
    const steps = run(rule23, [ok(), ok(), fail(), fail(), fail(), ok(), ok()]);
    const seen = [initialObservation(), ...steps.map((s) => s.next)].map((o) => [
      o.state,
      isTransitioning(o),
      checkMode(o),
    ]);
    assert.deepEqual(seen, [
      ["unknown", true, "transitioning"],
      ["unknown", true, "transitioning"],
      ["up", false, "normal"],
      ["up", true, "transitioning"],
      ["up", true, "transitioning"],
      ["down", false, "down"],
      ["down", true, "transitioning"],
      ["up", false, "normal"],
    ]);
  });
});

describe("observation: replicated form", () => {
  it("round-trips through JSON and validates", () => {
    const obs = run(rule23, [ok(), ok(), fail("boom")]).at(-1)!.next;
    const back = parseObservation(JSON.parse(JSON.stringify(obs)));
    assert.deepEqual(back, obs);
    assert.deepEqual(parseObservation(initialObservation()), initialObservation());
  });

  const good = (): Record<string, unknown> => ({ ...run(rule23, [ok(), ok()]).at(-1)!.next });
  const bad: Array<[string, unknown, string]> = [
    ["null", null, ""],
    ["an array", [], ""],
    ["a string", "up", ""],
    ["an unknown field", { ...good(), extra: 1 }, "extra"],
    ["a bad state", { ...good(), state: "UP" }, "state"],
    ["a missing state", { ...good(), state: undefined }, "state"],
    ["a negative streak", { ...good(), streakOk: -1 }, "streakOk"],
    ["a fractional streak", { ...good(), streakFail: 0.5 }, "streakFail"],
    ["a streak past streakMax", { ...good(), streakOk: streakMax + 1 }, "streakOk"],
    ["both streaks under way", { ...good(), streakOk: 1, streakFail: 1 }, "streakFail"],
    ["a reason not a string", { ...good(), lastReason: 5 }, "lastReason"],
    ["a reason too long", { ...good(), lastReason: "x".repeat(limits.maxReasonChars + 1) }, "lastReason"],
    ["a negative latency", { ...good(), lastLatencyMs: -3 }, "lastLatencyMs"],
    ["an infinite time", { ...good(), sinceWallMs: Infinity }, "sinceWallMs"],
    ["a time as a string", { ...good(), lastCheckedWallMs: "1700000000000" }, "lastCheckedWallMs"],
    ["a missing count", { ...good(), checks: undefined }, "checks"],
    ["a negative count", { ...good(), checks: -1 }, "checks"],
  ];
  for (const [what, value, path] of bad) {
    it(`rejects ${what} with a decode error at "${path}"`, () => {
      assert.throws(
        () => parseObservation(value),
        (e: unknown) =>
          e instanceof VigilError &&
          e.code === ErrorCode.decode &&
          (e.path ?? "") === path &&
          /observation/.test(e.message),
      );
    });
  }
});

describe("observation: properties", () => {
  const ruleArb = fc.record({ rise: fc.integer({ min: 1, max: 6 }), fall: fc.integer({ min: 1, max: 6 }) });
  const resultsArb = fc.array(
    fc.record({
      ok: fc.boolean(),
      latencyMs: fc.integer({ min: 0, max: 5_000 }),
      reason: fc.constantFrom("status 200", "status 503", "timeout", ""),
    }),
    { maxLength: 200, size: "max" },
  );

  it("matches a reference: up once the trailing successes reach rise, down once the failures reach fall, else as before", () => {
    fc.assert(
      fc.property(ruleArb, resultsArb, (rule, results) => {
        const steps = run(rule, results);
        let expected: ObservationState = "unknown";
        let trailingOk = 0;
        let trailingFail = 0;
        for (const [i, r] of results.entries()) {
          trailingOk = r.ok ? trailingOk + 1 : 0;
          trailingFail = r.ok ? 0 : trailingFail + 1;
          const before: ObservationState = expected;
          if (trailingOk >= rule.rise) expected = "up";
          if (trailingFail >= rule.fall) expected = "down";
          const step = steps[i]!;
          assert.equal(step.next.state, expected);
          // A transition exactly when the state changes, caused by this result.
          if (before === expected) {
            assert.equal(step.transition, undefined);
          } else {
            assert.deepEqual(step.transition, { from: before, to: expected, cause: r.reason });
            assert.equal(step.next.sinceWallMs, 1_000 * (i + 1));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never flips without rise or fall consecutive results, and never returns to unknown", () => {
    fc.assert(
      fc.property(ruleArb, resultsArb, (rule, results) => {
        const steps = run(rule, results);
        let leftUnknown = false;
        for (const [i, step] of steps.entries()) {
          if (leftUnknown) assert.notEqual(step.next.state, "unknown");
          if (step.next.state !== "unknown") leftUnknown = true;
          const t = step.transition;
          if (t === undefined) continue;
          const need = t.to === "up" ? rule.rise : rule.fall;
          const window = results.slice(i + 1 - need, i + 1);
          assert.equal(window.length, need, "flipped before enough results");
          assert.ok(
            window.every((r) => r.ok === (t.to === "up")),
            "flipped on a broken streak",
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it("ends up after a long run of successes, whatever came before", () => {
    fc.assert(
      fc.property(ruleArb, resultsArb, fc.integer({ min: 0, max: 20 }), (rule, before, extra) => {
        const prefix = run(rule, before).at(-1)?.next ?? initialObservation();
        const tail = run(
          rule,
          Array.from({ length: rule.rise + extra }, () => ok()),
          prefix,
        );
        assert.equal(tail.at(-1)!.next.state, "up");
        assert.equal(isTransitioning(tail.at(-1)!.next), false);
      }),
    );
  });

  it("keeps streaks bounded and exclusive, counts every check, and stays a valid plain value", () => {
    fc.assert(
      fc.property(ruleArb, resultsArb, (rule, results) => {
        const steps = run(rule, results);
        for (const [i, { next }] of steps.entries()) {
          assert.ok(next.streakOk >= 0 && next.streakOk <= streakMax);
          assert.ok(next.streakFail >= 0 && next.streakFail <= streakMax);
          assert.equal(Math.min(next.streakOk, next.streakFail), 0);
          assert.equal(next.streakOk + next.streakFail > 0, true);
          assert.equal(next.checks, i + 1);
          if (next.state === "up") assert.ok(next.streakFail < rule.fall);
          if (next.state === "down") assert.ok(next.streakOk < rule.rise);
          assert.deepEqual(parseObservation(JSON.parse(JSON.stringify(next))), next);
        }
      }),
      { numRuns: 200 },
    );
  });
});
