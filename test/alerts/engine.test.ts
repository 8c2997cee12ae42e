// The alert rules on virtual time: no clock, no sleeps. Every test drives the engine with
// verdict changes and ticks at chosen instants and checks which notices come out.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type Alert,
  AlertEngine,
  alertId,
  type StormAlert,
  type TargetAlert,
} from "../../src/alerts/engine.ts";
import type { AlertRuleSpec, AlertStormSpec } from "../../src/config/types.ts";
import type { Health } from "../../src/core/verdict/verdict.ts";

const T0 = 1_700_000_000_000;
const S = 1_000;
const M = 60 * S;
const H = 60 * M;

function rule(over: Partial<AlertRuleSpec> = {}): AlertRuleSpec {
  return {
    name: "r",
    transitions: ["down"],
    forMs: 0,
    resolve: true,
    remindMs: 0,
    sinks: ["hook"],
    ...over,
  };
}

const noStorm: AlertStormSpec = { share: 1, windowMs: M, minTargets: 10, sampleSize: 5, sinks: ["hook"] };

/** An engine with a tiny driver: `at(ms).change(...)`, `at(ms).tick()`. */
function harness(rules: AlertRuleSpec[], storm: AlertStormSpec = noStorm, totalTargets = 100) {
  const engine = new AlertEngine({ rules, storm });
  const verdicts = new Map<string, Health>();
  const h = {
    engine,
    total: totalTargets,
    /** Moves `pool/target` to `to` at `atMs` (from whatever it was; unknown at first). */
    set(atMs: number, target: string, to: Health, pool = "web"): Alert[] {
      const key = `${pool}/${target}`;
      const from = verdicts.get(key) ?? "unknown";
      verdicts.set(key, to);
      return engine.verdictChanged(atMs, { pool, target, from, to, ts: atMs, cause: `now ${to}` }, h.total);
    },
    tick(atMs: number): Alert[] {
      return engine.tick(atMs);
    },
  };
  return h;
}

const kinds = (alerts: Alert[]) => alerts.map((a) => a.kind);
const only = (alerts: Alert[]): TargetAlert => {
  assert.equal(alerts.length, 1, `expected one notice, got ${JSON.stringify(kinds(alerts))}`);
  return alerts[0] as TargetAlert;
};

describe("alert engine: for-duration", () => {
  it("a flap shorter than `for` sends nothing, ever", () => {
    const h = harness([rule({ forMs: 30 * S })]);
    assert.deepEqual(h.set(T0, "a:1", "up"), []);
    assert.deepEqual(h.set(T0 + M, "a:1", "down"), []);
    assert.equal(h.engine.nextDeadline(), T0 + M + 30 * S);
    assert.deepEqual(h.set(T0 + M + 29 * S, "a:1", "up"), []);
    assert.equal(h.engine.nextDeadline(), Number.POSITIVE_INFINITY);
    assert.deepEqual(h.tick(T0 + 10 * H), []);
  });

  it("fires once the state has lasted `for`, not a millisecond earlier", () => {
    const h = harness([rule({ forMs: 30 * S })]);
    h.set(T0, "a:1", "up");
    h.set(T0 + M, "a:1", "down");
    assert.deepEqual(h.tick(T0 + M + 30 * S - 1), []);
    const a = only(h.tick(T0 + M + 30 * S));
    assert.equal(a.kind, "firing");
    assert.equal(a.state, "down");
    assert.equal(a.from, "up");
    assert.equal(a.sinceMs, T0 + M);
    assert.equal(a.atMs, T0 + M + 30 * S);
    assert.equal(a.cause, "now down");
    assert.deepEqual(a.sinks, ["hook"]);
    assert.deepEqual(h.tick(T0 + 2 * H), [], "fires once");
  });

  it("with for: 0 fires on the change itself", () => {
    const h = harness([rule()]);
    h.set(T0, "a:1", "up");
    assert.equal(only(h.set(T0 + S, "a:1", "down")).kind, "firing");
  });

  it("a target already down when the node learns of it fires; one already up says nothing", () => {
    const h = harness([rule({ transitions: ["down", "up"] })]);
    assert.equal(only(h.set(T0, "a:1", "down")).kind, "firing");
    assert.deepEqual(h.set(T0, "b:1", "up"), []);
  });
});

describe("alert engine: resolve", () => {
  it("sends a resolved notice naming the firing it closes", () => {
    const h = harness([rule({ forMs: 10 * S })]);
    h.set(T0, "a:1", "up");
    h.set(T0 + S, "a:1", "down");
    const firing = only(h.tick(T0 + 11 * S));
    const resolved = only(h.set(T0 + 5 * M, "a:1", "up"));
    assert.equal(resolved.kind, "resolved");
    assert.equal(resolved.state, "up");
    assert.equal(resolved.from, "down");
    assert.equal(resolved.firingId, firing.id);
    assert.equal(resolved.firedSinceMs, T0 + S);
    assert.equal(resolved.sinceMs, T0 + 5 * M);
    assert.notEqual(resolved.id, firing.id);
  });

  it("resolve: false closes the alert quietly", () => {
    const h = harness([rule({ resolve: false })]);
    h.set(T0, "a:1", "up");
    only(h.set(T0 + S, "a:1", "down"));
    assert.deepEqual(h.set(T0 + M, "a:1", "up"), []);
    assert.equal(h.engine.openCount(), 0);
  });

  it("nothing is resolved that never fired", () => {
    const h = harness([rule({ forMs: M })]);
    h.set(T0, "a:1", "up");
    h.set(T0 + S, "a:1", "down");
    assert.deepEqual(h.set(T0 + 2 * S, "a:1", "up"), []);
  });

  it("an open alert stays open and quiet while the target moves between down and unknown", () => {
    const h = harness([rule({ transitions: ["down", "unknown"] })]);
    h.set(T0, "a:1", "up");
    const firing = only(h.set(T0 + S, "a:1", "down"));
    assert.deepEqual(h.set(T0 + 2 * S, "a:1", "unknown"), []);
    assert.deepEqual(h.set(T0 + 3 * S, "a:1", "down"), []);
    assert.equal(only(h.set(T0 + 4 * S, "a:1", "up")).firingId, firing.id);
  });
});

describe("alert engine: reminders", () => {
  it("repeats every `remind` while the target is not up, and stops when it is", () => {
    const h = harness([rule({ remindMs: H })]);
    h.set(T0, "a:1", "up");
    const firing = only(h.set(T0 + S, "a:1", "down"));
    assert.equal(h.engine.nextDeadline(), T0 + S + H);
    assert.deepEqual(h.tick(T0 + S + H - 1), []);
    const r1 = only(h.tick(T0 + S + H));
    assert.equal(r1.kind, "reminder");
    assert.equal(r1.reminder, 1);
    assert.equal(r1.firingId, firing.id);
    assert.equal(r1.sinceMs, T0 + S);
    h.set(T0 + S + H + M, "a:1", "unknown");
    const r2 = only(h.tick(T0 + S + 2 * H));
    assert.equal(r2.reminder, 2);
    assert.equal(r2.state, "unknown", "a reminder says what the target is now");
    assert.notEqual(r2.id, r1.id);
    assert.equal(only(h.set(T0 + S + 2 * H + M, "a:1", "up")).kind, "resolved");
    assert.deepEqual(h.tick(T0 + 10 * H), []);
    assert.equal(h.engine.nextDeadline(), Number.POSITIVE_INFINITY);
  });

  it("after a long pause reminds once, not once per missed period", () => {
    const h = harness([rule({ remindMs: H })]);
    h.set(T0, "a:1", "down");
    assert.equal(only(h.tick(T0 + 5 * H)).reminder, 1);
    assert.equal(h.engine.nextDeadline(), T0 + 6 * H);
  });
});

describe("alert engine: filters", () => {
  it("a rule with pools watches only those pools", () => {
    const h = harness([rule({ pools: ["web"] })]);
    assert.deepEqual(h.set(T0, "a:1", "down", "api"), []);
    assert.equal(only(h.set(T0, "a:1", "down", "web")).pool, "web");
  });

  it("transitions choose the states that fire", () => {
    const h = harness([rule({ name: "unknowns", transitions: ["unknown"] })]);
    h.set(T0, "a:1", "up");
    assert.deepEqual(h.set(T0 + S, "a:1", "down"), [], "down is not watched");
    const a = only(h.set(T0 + 2 * S, "a:1", "unknown"));
    assert.equal(a.rule, "unknowns");
    assert.equal(a.state, "unknown");
    assert.equal(a.from, "down");
  });

  it("up fires a recovered notice on a recovery from down only, and honours `for`", () => {
    const h = harness([rule({ name: "recoveries", transitions: ["up"], forMs: 10 * S })]);
    h.set(T0, "a:1", "up"); // learning a target is up is not a recovery
    assert.deepEqual(h.tick(T0 + M), []);
    h.set(T0 + M, "a:1", "down");
    h.set(T0 + 2 * M, "a:1", "up");
    h.set(T0 + 2 * M + 5 * S, "a:1", "down"); // a blip of up shorter than `for`
    assert.deepEqual(h.tick(T0 + 3 * M), []);
    h.set(T0 + 3 * M, "a:1", "unknown");
    h.set(T0 + 4 * M, "a:1", "up"); // down → unknown → up is still a recovery from down
    const a = only(h.tick(T0 + 4 * M + 10 * S));
    assert.equal(a.kind, "recovered");
    assert.equal(a.state, "up");
    assert.equal(h.engine.openCount(), 0, "a recovery notice leaves nothing open");
  });

  it("down and up with resolve send the resolved notice, not a second recovered one", () => {
    const h = harness([rule({ transitions: ["down", "up"] })]);
    h.set(T0, "a:1", "down");
    assert.deepEqual(kinds(h.set(T0 + M, "a:1", "up")), ["resolved"]);
    const quiet = harness([rule({ transitions: ["down", "up"], resolve: false })]);
    quiet.set(T0, "a:1", "down");
    assert.deepEqual(kinds(quiet.set(T0 + M, "a:1", "up")), ["recovered"]);
  });

  it("each rule decides alone: one change can fire several rules, to their own sinks", () => {
    const h = harness([
      rule({ name: "fast", sinks: ["chat"] }),
      rule({ name: "slow", forMs: M, sinks: ["pager"] }),
    ]);
    h.set(T0, "a:1", "up");
    const fast = only(h.set(T0 + S, "a:1", "down"));
    assert.equal(fast.rule, "fast");
    assert.deepEqual(fast.sinks, ["chat"]);
    const slow = only(h.tick(T0 + S + M));
    assert.equal(slow.rule, "slow");
    assert.deepEqual(slow.sinks, ["pager"]);
    assert.notEqual(fast.id, slow.id);
  });
});

describe("alert engine: idempotency keys", () => {
  it("are the same for the same episode in any engine, and differ between episodes", () => {
    const run = (downAtMs: number) => {
      const h = harness([rule({ remindMs: H })]);
      h.set(T0, "a:1", "up");
      const f = only(h.set(downAtMs, "a:1", "down"));
      const r = only(h.tick(downAtMs + H));
      const res = only(h.set(downAtMs + 2 * H - 1, "a:1", "up"));
      return [f.id, r.id, res.id];
    };
    assert.deepEqual(run(T0 + S), run(T0 + S));
    assert.notDeepEqual(run(T0 + S), run(T0 + 2 * S));
    assert.equal(run(T0 + S)[0], alertId(["firing", "r", "web", "a:1", "down", T0 + S]));
    assert.equal(new Set(run(T0 + S)).size, 3);
  });
});

describe("alert engine: storms", () => {
  const storm: AlertStormSpec = { share: 0.2, windowMs: M, minTargets: 10, sampleSize: 5, sinks: ["pager"] };

  /** 100 targets, all up and known. */
  function fleet(rules: AlertRuleSpec[]) {
    const h = harness(rules, storm, 100);
    for (let i = 0; i < 100; i++) assert.deepEqual(h.set(T0, `t:${i}`, "up"), []);
    return h;
  }

  it("learning 100 verdicts at boot is not a storm", () => {
    const h = harness([rule()], storm, 100);
    for (let i = 0; i < 100; i++) h.set(T0, `t:${i}`, i < 50 ? "up" : "down");
    assert.equal(h.engine.stormActive, false);
  });

  it("more than share × targets flipping within the window sends one grouped notice instead", () => {
    const h = fleet([rule()]);
    const individual: Alert[] = [];
    for (let i = 0; i < 20; i++) individual.push(...h.set(T0 + M + i * S, `t:${i}`, "down"));
    assert.equal(individual.length, 20, "20 of 100 is not more than 20%");
    assert.equal(h.engine.stormActive, false);
    const crossing = h.set(T0 + M + 20 * S, "t:20", "down");
    assert.deepEqual(kinds(crossing), ["storm"], "the flip that crosses the threshold is part of the storm");
    const s = crossing[0] as StormAlert;
    assert.equal(s.flipped, 21);
    assert.equal(s.totalTargets, 100);
    assert.deepEqual(s.byState, { up: 0, down: 21, unknown: 0 });
    assert.deepEqual(s.pools, { web: 21 });
    assert.equal(s.sample.length, 5, "the sample is bounded");
    assert.equal(s.sample[0]?.target, "t:20", "newest first");
    assert.deepEqual(s.sinks, ["pager"]);

    // The rest of the storm: a thousand notices would have gone out; none does.
    const during: Alert[] = [];
    for (let i = 21; i < 80; i++) during.push(...h.set(T0 + M + 21 * S + i * 100, `t:${i}`, "down"));
    during.push(...h.set(T0 + M + 40 * S, "t:0", "up")); // a resolve, covered too
    assert.deepEqual(during, []);
    // t:20 (the crossing flip), t:21..t:79, and t:0's resolve.
    assert.equal(h.engine.stats.suppressed, 61);

    // Calm: once the window holds no more than the threshold the storm ends, with a summary.
    const lastFlipMs = T0 + M + 40 * S;
    assert.equal(h.engine.nextDeadline() <= lastFlipMs + M, true);
    let end: Alert[] = [];
    for (let t = T0 + M + 41 * S; t <= lastFlipMs + M && end.length === 0; t += S) end = h.tick(t);
    assert.deepEqual(kinds(end), ["storm_resolved"]);
    const r = end[0] as StormAlert;
    assert.equal(r.flipped, 80);
    assert.deepEqual(r.byState, { up: 1, down: 79, unknown: 0 });
    assert.equal(r.suppressed, 61);
    assert.equal(r.startedMs, s.startedMs);
    assert.equal(
      r.sample.every((e) => e.to === "down"),
      true,
      "the sample lists what is still not up",
    );
    assert.equal(h.engine.stormActive, false);

    // After the storm, a single flip is an ordinary alert again.
    assert.equal(only(h.set(lastFlipMs + 2 * M, "t:99", "down")).kind, "firing");
  });

  it("alerts waiting on `for` when the storm starts never fire, even after it ends", () => {
    const h = fleet([rule({ forMs: 5 * M })]);
    for (let i = 0; i < 30; i++) h.set(T0 + M + i * 100, `t:${i}`, "down");
    assert.equal(h.engine.stormActive, true);
    const later: Alert[] = [];
    for (let t = T0 + M; t <= T0 + 20 * M; t += 10 * S) later.push(...h.tick(t));
    assert.deepEqual(kinds(later), ["storm_resolved"]);
    assert.equal(h.engine.openCount(), 30, "the engine still knows they are down");
    // Their recoveries resolve nothing: no one was told they were down.
    assert.deepEqual(h.set(T0 + 30 * M, "t:0", "up"), []);
  });

  it("a few flips in a small cluster are not a storm (min_targets)", () => {
    const h = harness([rule()], storm, 5);
    for (let i = 0; i < 5; i++) h.set(T0, `t:${i}`, "up");
    const out: Alert[] = [];
    for (let i = 0; i < 5; i++) out.push(...h.set(T0 + M + i, `t:${i}`, "down"));
    assert.deepEqual(kinds(out), ["firing", "firing", "firing", "firing", "firing"]);
  });

  it("counts each target once however often it flaps", () => {
    const h = fleet([rule()]);
    for (let i = 0; i < 50; i++) h.set(T0 + M + i * 100, "t:1", i % 2 === 0 ? "down" : "up");
    assert.equal(h.engine.stormActive, false);
  });
});

describe("alert engine: restart and removal", () => {
  it("an open alert restored after a restart is neither repeated nor forgotten", () => {
    const before = harness([rule({ remindMs: H })]);
    before.set(T0, "a:1", "up");
    const firing = only(before.set(T0 + S, "a:1", "down"));
    const saved = before.engine.takeDirty().flatMap((d) => (d.record === undefined ? [] : [d.record]));
    assert.equal(saved.length, 1);

    const after = harness([rule({ remindMs: H })]);
    after.engine.restore(saved);
    // The restarted node re-learns the verdict from the cluster: unknown → down is no news.
    assert.deepEqual(after.set(T0 + 10 * M, "a:1", "down"), []);
    assert.equal(only(after.tick(T0 + S + H)).firingId, firing.id);
    const resolved = only(after.set(T0 + 2 * H, "a:1", "up"));
    assert.equal(resolved.kind, "resolved");
    assert.equal(resolved.firingId, firing.id);
    assert.deepEqual(
      after.engine.takeDirty().map((d) => d.record),
      [undefined],
      "and it is deleted on disk",
    );
  });

  it("a restored alert waits for its target's verdict before reminding", () => {
    const h = harness([rule({ remindMs: H })]);
    h.engine.restore([
      {
        rule: "r",
        pool: "web",
        target: "a:1",
        state: "down",
        from: "up",
        sinceMs: T0,
        told: true,
        reminders: 0,
        nextRemindMs: T0 + H,
        cause: "x",
      },
    ]);
    assert.deepEqual(h.tick(T0 + H), []);
    h.set(T0 + H + 1, "a:1", "down");
    assert.equal(only(h.tick(T0 + 2 * H)).reminder, 1);
  });

  it("restoring an alert of a rule no longer configured, or no longer watching its pool, drops it", () => {
    const h = harness([rule({ name: "narrowed", pools: ["api"] })]);
    const saved = {
      pool: "web",
      target: "a:1",
      state: "down" as const,
      from: "up" as const,
      sinceMs: T0,
      told: true,
      reminders: 0,
      nextRemindMs: Number.POSITIVE_INFINITY,
      cause: "",
    };
    h.engine.restore([
      { rule: "gone", ...saved },
      { rule: "narrowed", ...saved },
    ]);
    assert.equal(h.engine.openCount(), 0);
    assert.deepEqual(
      h.engine.takeDirty().map((d) => [d.rule, d.record]),
      [
        ["gone", undefined],
        ["narrowed", undefined],
      ],
      "and deletes them on disk",
    );
  });

  it("forget drops the alerts of removed targets, silently", () => {
    const h = harness([rule({ remindMs: H })]);
    h.set(T0, "a:1", "down");
    h.set(T0, "b:1", "down");
    h.engine.takeDirty();
    assert.equal(
      h.engine.forget((_pool, target) => target !== "a:1"),
      1,
    );
    assert.deepEqual(
      h.engine.takeDirty().map((d) => [d.target, d.record]),
      [["a:1", undefined]],
    );
    assert.deepEqual(kinds(h.tick(T0 + H)), ["reminder"], "only b:1 still reminds");
  });
});

// ── a model check: whatever the sequence, what comes out makes sense ──

describe("alert engine: properties", () => {
  it("fires only after `for` in the state, resolves only what fired, never repeats an id", () => {
    const targets = ["a:1", "b:1", "c:1"];
    const step = fc.record({
      gapMs: fc.integer({ min: 0, max: 90 * S }),
      target: fc.constantFrom(...targets),
      to: fc.constantFrom<Health>("up", "down", "unknown"),
    });
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 60 }),
        fc.constantFrom(0, 10 * S, M),
        fc.boolean(),
        (steps, forMs, resolve) => {
          const h = harness([
            rule({ forMs, resolve, remindMs: 2 * M, transitions: ["down", "unknown", "up"] }),
          ]);
          /** Each target's verdict history: [atMs, verdict]. */
          const history = new Map<string, [number, Health][]>();
          const open = new Map<string, string>(); // target → firing id
          const ids = new Set<string>();
          let now = T0;
          const check = (alerts: Alert[]) => {
            for (const a of alerts) {
              assert.ok(!ids.has(a.id), `id repeated: ${a.kind}`);
              ids.add(a.id);
              const t = a as TargetAlert;
              const hist = history.get(t.target) ?? [];
              const [lastAt, lastState] = hist[hist.length - 1] ?? [0, "unknown"];
              if (t.kind === "firing" || t.kind === "recovered") {
                assert.equal(lastState, t.state, "fires for the state the target is in");
                assert.equal(lastAt, t.sinceMs, "since the change that started it");
                assert.ok(t.atMs - t.sinceMs >= forMs, "only after `for`");
              }
              if (t.kind === "firing") {
                assert.ok(!open.has(t.target), "no second firing while one is open");
                open.set(t.target, t.id);
              }
              if (t.kind === "resolved") {
                assert.ok(resolve);
                assert.equal(open.get(t.target), t.firingId, "resolves the open firing");
                assert.equal(lastState, "up");
              }
              if (t.kind === "resolved" || (t.kind === "recovered" && !resolve)) open.delete(t.target);
              if (t.kind === "reminder") assert.equal(open.get(t.target), t.firingId);
            }
          };
          for (const s of steps) {
            now += s.gapMs;
            check(h.tick(now));
            const hist = history.get(s.target) ?? [];
            const last = hist[hist.length - 1]?.[1] ?? "unknown";
            if (last === s.to) continue;
            hist.push([now, s.to]);
            history.set(s.target, hist);
            if (s.to === "up" && !resolve) open.delete(s.target);
            check(h.set(now, s.target, s.to));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
