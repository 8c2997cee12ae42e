// How long the history's periodic minute flush holds the event loop when thousands of targets'
// minutes end together (a long check interval, or checks stopped): every such minute becomes a
// rollup row (its latency sketch encoded) and is committed to SQLite, all on the node's event
// loop. The flush turns `historyLimits.minutesPerSlice` minutes into rows per loop turn; this
// compares that with all of them at once (the behaviour before 2026-12-07), in alternating
// rounds on the same store.
//
// Per round: 10,000 targets (--targets) with 30 checks each in one minute, then the minute ends
// and flushMinutes runs as the node's 5 s timer would. Measured meanwhile by a 1 ms timer: the
// longest gap between its callbacks (the longest the loop was held, plus ~1 ms), and the time
// until every row was committed. Writes bench/results/history-flush.json.
//
//   npx node bench/history-flush.ts [--targets=10000 --rounds=3]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { historyDefaults } from "../src/config/history.ts";
import { ManualClock } from "../src/core/clock.ts";
import { History, type HistoryView, historyLimits } from "../src/runtime/history.ts";
import { silentLogger } from "../src/runtime/log.ts";
import { arg, progress, round, writeResults } from "./lib.ts";

const targets = arg("targets", 10_000);
const rounds = arg("rounds", 3);
const checksPerMinute = 30;
const MIN = 60_000;
const view: HistoryView = {
  owners: () => ["bench"],
  observedSinceMs: () => null,
  liveMembers: () => ["bench"],
};
const sliced = historyLimits.minutesPerSlice;
const limits = historyLimits as { minutesPerSlice: number };

interface Round {
  mode: "sliced" | "at-once";
  minutesPerSlice: number;
  /** Longest gap between the 1 ms timer's callbacks, minus its 1 ms. */
  loopHeldMsMax: number;
  /** From flushMinutes until every row was committed. */
  writtenMs: number;
  rows: number;
}

const t0 = Date.UTC(2026, 11, 7, 12, 0, 0);
const clock = new ManualClock(0, t0);
const h = await History.open({
  node: "bench",
  dataDir: mkdtempSync(join(tmpdir(), "vigil-history-flush-")),
  settings: historyDefaults,
  clock,
  logger: silentLogger,
  view,
  tuning: { flushIntervalMs: 3_600_000, compactIntervalMs: 3_600_000 },
});

const tick = () => new Promise((r) => setImmediate(r));
const results: Round[] = [];
for (let r = 0; r < rounds * 2; r++) {
  const mode = r % 2 === 0 ? "sliced" : "at-once";
  limits.minutesPerSlice = mode === "sliced" ? sliced : Number.POSITIVE_INFINITY;
  const minuteStart = t0 + r * MIN;
  for (let k = 0; k < checksPerMinute; k++) {
    for (let i = 0; i < targets; i++)
      h.recordCheck(
        `p${i % 10}/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:80`,
        { ok: i % 20 !== 0, latencyMs: 1 + ((i * 7 + k) % 50) / 10, reason: "" },
        minuteStart + k * 2_000 + (i % 2_000),
      );
    await tick(); // folded as the node folds, a turn at a time
  }
  clock.advance(MIN);
  const written0 = h.stats.rollupRowsWritten;
  // The 1 ms timer runs before, during and after the flush.
  let last = performance.now();
  let held = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    held = Math.max(held, now - last - 1);
    last = now;
  }, 1);
  await new Promise((res) => setTimeout(res, 20));
  held = 0;
  const start = performance.now();
  h.flushMinutes(false);
  while (h.stats.rollupRowsWritten - written0 < targets) await new Promise((res) => setTimeout(res, 1));
  const writtenMs = performance.now() - start;
  await new Promise((res) => setTimeout(res, 20));
  clearInterval(timer);
  const row: Round = {
    mode,
    minutesPerSlice: limits.minutesPerSlice,
    loopHeldMsMax: round(held, 1),
    writtenMs: round(writtenMs, 1),
    rows: h.stats.rollupRowsWritten - written0,
  };
  results.push(row);
  progress(
    `round ${r} ${mode}: loop held at most ${row.loopHeldMsMax} ms, all ${row.rows} rows written in ${row.writtenMs} ms`,
  );
}
limits.minutesPerSlice = sliced;
await h.close();

const of = (mode: Round["mode"]) => results.filter((x) => x.mode === mode);
const summary = {
  slicedLoopHeldMsMax: of("sliced").map((x) => x.loopHeldMsMax),
  atOnceLoopHeldMsMax: of("at-once").map((x) => x.loopHeldMsMax),
  slicedWrittenMs: of("sliced").map((x) => x.writtenMs),
  atOnceWrittenMs: of("at-once").map((x) => x.writtenMs),
};
console.log(JSON.stringify(summary));
const path = writeResults("history-flush", {
  targets,
  checksPerMinute,
  minutesPerSlice: sliced,
  notes:
    "SQLite store (node:sqlite, the default), one node; per round every target's minute ends together and flushMinutes runs " +
    "once, as the node's 5 s timer would. loopHeldMsMax: the longest gap between a 1 ms timer's callbacks minus 1 ms " +
    "(how long the event loop could not answer a lookup or a gossip probe); writtenMs: until every row was committed. " +
    "Rounds alternate between the sliced flush and all minutes at once (the behaviour before 2026-12-07).",
  summary,
  rounds: results,
});
progress(`wrote ${path}`);
