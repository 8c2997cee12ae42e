// Micro-benchmark of the check scheduler on virtual time: 100k targets at a 10 s interval
// (10k checks/s of virtual load, twice what a node is sized for), checks lasting 5–95 ms so
// that the default cap of 512 in flight is reached at peaks, driven for 1M checks the way the
// shell drives it (one timer at nextDeadline, poll after every wake and completion).
// Prints real-time throughput; not part of the test run.
//
//   npx node bench/scheduler-micro.ts [targets] [checks]

import { SeededRandom } from "../src/core/random.ts";
import { KeyedMinHeap } from "../src/core/scheduler/heap.ts";
import { Scheduler } from "../src/core/scheduler/scheduler.ts";

const targets = Number(process.argv[2] ?? 100_000);
const checks = Number(process.argv[3] ?? 1_000_000);
const timing = {
  intervalMs: 10_000,
  fastIntervalMs: 2_000,
  downIntervalMs: 30_000,
  jitter: 0.1,
  timeoutMs: 2_000,
};

const random = new SeededRandom(42);
const latency = new SeededRandom(43);
const s = new Scheduler({ random });

let t0 = performance.now();
for (let i = 0; i < targets; i++)
  s.upsert(`pool${i % 100}/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:80`, timing, 0);
const upsertMs = performance.now() - t0;

// Warm up over one interval so the measured part is the steady state, not the first-run spread.
const finishing = new KeyedMinHeap<string>();
let now = 0;
let started = 0;
let polls = 0;
let lagSumMs = 0;
let lagMaxMs = 0;
let maxInFlight = 0;

function drive(untilChecks: number): void {
  while (started < untilChecks) {
    now = Math.max(now, Math.min(s.nextDeadline() ?? Infinity, finishing.peekPriority() ?? Infinity));
    while ((finishing.peekPriority() ?? Infinity) <= now) s.complete(finishing.pop()!, now);
    const { start } = s.poll(now);
    polls++;
    for (const st of start) {
      finishing.push(st.key, now + 5 + latency.next() * 90);
      lagSumMs += st.lagMs;
      if (st.lagMs > lagMaxMs) lagMaxMs = st.lagMs;
    }
    started += start.length;
    if (s.inFlight > maxInFlight) maxInFlight = s.inFlight;
  }
}

drive(targets);
const warmStarted = started;
const warmNow = now;
lagSumMs = 0;
t0 = performance.now();
drive(warmStarted + checks);
const driveMs = performance.now() - t0;
const measured = started - warmStarted;

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
console.log(`scheduler micro-benchmark (node ${process.version})`);
console.log(
  `  upsert ${fmt(targets)} targets: ${upsertMs.toFixed(0)} ms (${fmt((targets / upsertMs) * 1000)} upserts/s)`,
);
console.log(
  `  ${fmt(measured)} checks (poll + complete) in ${driveMs.toFixed(0)} ms: ${fmt((measured / driveMs) * 1000)} checks/s, ` +
    `${fmt(((polls + measured) / driveMs) * 1000)} scheduler calls/s`,
);
console.log(
  `  virtual time ${((now - warmNow) / 1000).toFixed(1)} s, ${fmt(measured / ((now - warmNow) / 1000))} checks/s virtual; ` +
    `max in flight ${maxInFlight}; lag mean ${(lagSumMs / measured).toFixed(2)} ms, max ${lagMaxMs.toFixed(1)} ms`,
);
console.log(`  ${JSON.stringify(s.stats())}`);
