import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { computeVerdict, type Health } from "../../src/core/verdict/verdict.ts";

const V = (s: string): Health[] => [...s].map((c) => (c === "u" ? "up" : c === "d" ? "down" : "unknown"));

describe("computeVerdict", () => {
  it("is unknown when nobody votes", () => {
    assert.equal(computeVerdict("majority", [], "up"), "unknown");
    assert.equal(computeVerdict("any", V("??"), "down"), "unknown");
  });
  it("majority: more than half down is down, a tie keeps the previous verdict", () => {
    assert.equal(computeVerdict("majority", V("ddu"), "up"), "down");
    assert.equal(computeVerdict("majority", V("duu"), "down"), "up");
    assert.equal(computeVerdict("majority", V("du"), "up"), "up");
    assert.equal(computeVerdict("majority", V("du"), "down"), "down");
    assert.equal(computeVerdict("majority", V("du"), "unknown"), "down");
    // an abstaining observer does not count toward the majority
    assert.equal(computeVerdict("majority", V("d??"), "up"), "down");
  });
  it("any: one down vote is enough", () => {
    assert.equal(computeVerdict("any", V("uuud"), "up"), "down");
    assert.equal(computeVerdict("any", V("uuu"), "down"), "up");
  });
  it("all: every voter must say down", () => {
    assert.equal(computeVerdict("all", V("ddu"), "down"), "up");
    assert.equal(computeVerdict("all", V("dd?"), "up"), "down");
  });
  it("a number counts down votes, capped at the voters", () => {
    assert.equal(computeVerdict(2, V("duu"), "up"), "up");
    assert.equal(computeVerdict(2, V("ddu"), "up"), "down");
    assert.equal(computeVerdict(3, V("d"), "up"), "down");
  });
  it("never says down when every voter says up, and never up when every voter says down", () => {
    const policy = fc.oneof(
      fc.constantFrom<"majority" | "any" | "all">("majority", "any", "all"),
      fc.integer({ min: 1, max: 5 }),
    );
    const prev = fc.constantFrom<Health>("up", "down", "unknown");
    fc.assert(
      fc.property(policy, fc.integer({ min: 1, max: 7 }), prev, (p, n, pr) => {
        assert.equal(computeVerdict(p, Array(n).fill("up"), pr), "up");
        assert.equal(computeVerdict(p, Array(n).fill("down"), pr), "down");
      }),
    );
  });
});
