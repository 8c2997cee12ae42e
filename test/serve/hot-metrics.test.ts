import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Counter, Histogram, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "../../src/serve/hot-metrics.ts";

// The per-check metrics (src/serve/hot-metrics.ts) must scrape exactly as prom-client's own
// Counter and Histogram would after the same events: dashboards and alerts read these series.

const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const pools = ["web", "api", 'we"ird\\pool'];

describe("hot metrics", () => {
  it("scrape byte for byte as prom-client's Counter and Histogram after the same events", async () => {
    const event = fc.record({
      pool: fc.constantFrom(...pools),
      ok: fc.boolean(),
      // Bucket bounds themselves, values between them, past the last one, zero.
      seconds: fc.oneof(fc.constantFrom(0, ...buckets, 11), fc.double({ min: 0, max: 20, noNaN: true })),
      lag: fc.double({ min: 0, max: 6, noNaN: true }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(event, { maxLength: 60 }), async (events) => {
        // The same three metrics and the same events on each side; only the classes differ.
        const side = (
          CounterOf: typeof Counter | typeof HotCounter,
          HistogramOf: typeof Histogram | typeof HotHistogram,
        ) => {
          const registry = new Registry();
          const registers = [registry];
          const count = new CounterOf({
            name: "x_total",
            help: "h",
            labelNames: ["pool", "result"],
            registers,
          });
          const hist = new HistogramOf({
            name: "x_seconds",
            help: "h",
            labelNames: ["pool"],
            buckets,
            registers,
          });
          const lag = new HistogramOf({ name: "lag_seconds", help: "l", buckets: [0.5, 1, 5], registers });
          for (const e of events) {
            count.labels(e.pool, e.ok ? "ok" : "fail").inc();
            hist.labels(e.pool).observe(e.seconds);
            lag.observe(e.lag);
          }
          return registry;
        };
        const ref = side(Counter, Histogram);
        const hot = side(HotCounter, HotHistogram);
        assert.equal(await hot.metrics(), await ref.metrics());
      }),
      { numRuns: 300 },
    );
  });

  it("keeps one child per label values, and reset() forgets them", async () => {
    const r = new Registry();
    const c = new HotCounter({ name: "c_total", help: "h", labelNames: ["a"], registers: [r] });
    assert.equal(c.labels("x"), c.labels("x"));
    c.labels("x").inc(2);
    c.labels("y").inc();
    assert.match(await r.metrics(), /c_total\{a="x"\} 2\nc_total\{a="y"\} 1/);
    c.reset();
    assert.doesNotMatch(await r.metrics(), /c_total\{/);
  });

  it("does not count a value that is not a finite number", async () => {
    const r = new Registry();
    const h = new HotHistogram({ name: "h_seconds", help: "h", buckets: [1], registers: [r] });
    h.observe(Number.NaN);
    h.observe(Number.POSITIVE_INFINITY);
    h.observe(0.5);
    const text = await r.metrics();
    assert.match(text, /h_seconds_count 1\n/);
    assert.match(text, /h_seconds_sum 0.5\n/);
  });

  it("refuses the wrong number of label values, and buckets that do not increase", () => {
    const r = new Registry();
    const c = new HotCounter({ name: "c_total", help: "h", labelNames: ["a", "b"], registers: [r] });
    assert.throws(() => c.labels("only-one"), /expected 2 label values, got 1/);
    assert.throws(
      () => new HotHistogram({ name: "bad", help: "h", buckets: [1, 1], registers: [r] }),
      /bad: buckets must increase/,
    );
  });
});
