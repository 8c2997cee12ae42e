import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatDurationMs, parseDurationMs } from "../../src/config/duration.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";

// Fixed seed: the same cases on every run (a failure prints the seed and the counterexample).
fc.configureGlobal({ seed: 20_240_601 });

describe("parseDurationMs", () => {
  const good: [string, number][] = [
    ["250ms", 250],
    ["0s", 0],
    ["10s", 10_000],
    ["1.5m", 90_000],
    ["2h", 7_200_000],
    ["1m30s", 90_000],
    ["1h2m3s4ms", 3_723_004],
    ["1.5s", 1_500],
    ["0.1h", 360_000],
    ["0.001s", 1],
    ["5ms", 5],
    ["5m", 300_000],
    ["1d", 86_400_000],
    ["90d", 7_776_000_000],
    ["1.5d", 129_600_000],
    ["1d12h", 129_600_000],
    ["400d", 34_560_000_000],
  ];
  for (const [text, ms] of good) {
    it(`reads ${JSON.stringify(text)} as ${ms} ms`, () => assert.equal(parseDurationMs(text), ms));
  }

  const bad: [string | number, RegExp][] = [
    [10, /expected a duration with a unit like "10s" or "250ms", got 10$/],
    ["10", /expected a duration like "10s", got "10"/],
    ["10 seconds", /expected a duration like "10s", got "10 seconds"/],
    ["", /expected a duration like "10s", got ""/],
    ["-1s", /got "-1s"/],
    ["30s1m", /got "30s1m"/], // components out of order
    ["1s1s", /got "1s1s"/],
    ["1h1d", /got "1h1d"/], // days come first
    ["1D", /got "1D"/],
    ["1.00000001d", /expected a whole number of milliseconds/],
    [".5s", /got ".5s"/],
    ["1.0005s", /expected a whole number of milliseconds, got "1.0005s"/],
    ["0.5ms", /expected a whole number of milliseconds/],
    ["99999999999999999h", /expected a duration of a sane length/],
    [`${"1".repeat(70)}s`, /expected a duration like "10s"/],
  ];
  for (const [input, message] of bad) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseDurationMs(input),
        (e: unknown) => e instanceof VigilError && e.code === ErrorCode.config && message.test(e.message),
      );
    });
  }
});

describe("formatDurationMs", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [5, "5ms"],
    [250, "250ms"],
    [500, "500ms"],
    [1_000, "1s"],
    [1_500, "1.5s"],
    [1_050, "1.05s"],
    [1_005, "1s5ms"],
    [61_250, "1m1.25s"],
    [10_000, "10s"],
    [60_000, "1m"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [3_600_500, "1h0.5s"],
    [3_600_007, "1h7ms"],
    [3_660_000, "1h1m"],
    [86_400_000, "24h"],
    [47 * 3_600_000, "47h"],
    [172_800_000, "2d"],
    [176_400_000, "2d1h"],
    [7_776_000_000, "90d"],
    [7_776_000_500, "90d0.5s"],
  ];
  for (const [ms, text] of cases) {
    it(`writes ${ms} ms as ${JSON.stringify(text)}`, () => assert.equal(formatDurationMs(ms), text));
  }

  it("refuses fractional and negative milliseconds as a programmer error", () => {
    assert.throws(() => formatDurationMs(1.5), /invariant/);
    assert.throws(() => formatDurationMs(-1), /invariant/);
  });

  it("parses back to the same number of milliseconds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 * 24 * 3_600_000 }), (ms) => {
        assert.equal(parseDurationMs(formatDurationMs(ms)), ms);
      }),
      { numRuns: 2_000 },
    );
  });

  it("writes units largest first, each at most once and never zero", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 * 24 * 3_600_000 }), (ms) => {
        assert.match(
          formatDurationMs(ms),
          /^(?:[1-9]\d*d)?(?:[1-9]\d*h)?(?:[1-9]\d*m(?!s))?(?:(?:0|[1-9]\d*)(?:\.\d*[1-9])?s)?(?:[1-9]\d*ms)?$/,
        );
      }),
    );
  });
});
