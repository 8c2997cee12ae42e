// Child process for the crash test (sqlite.test.ts): appends events and rollups as fast as it
// can from several concurrent writers, and prints one line per acknowledged batch. The test
// SIGKILLs it mid-write and checks that every acknowledged batch survived.
//
//   node test/store/crash-writer.ts <data_dir> [inline|thread]

import { LatencySketch } from "../../src/store/sketch.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { openSqliteThreadStore } from "../../src/store/sqlite-thread.ts";

export const EVENTS_PER_BATCH = 25;
const WRITERS = 4;

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write("usage: crash-writer.ts <data_dir> [inline|thread]\n");
  process.exit(2);
}

const open = process.argv[3] === "thread" ? openSqliteThreadStore : openSqliteStore;
const store = await open({ dataDir, node: "crash", batch: { flushIntervalMs: 1 } });
const sketch = LatencySketch.of([1, 2, 3]).encode();
let next = 0;

async function writer(): Promise<never> {
  for (;;) {
    const b = next++;
    const events = Array.from({ length: EVENTS_PER_BATCH }, (_, i) => ({
      id: `b${b}-e${i}`,
      ts: Date.now(),
      type: "crash.test",
      data: { b, i, pad: "x".repeat(200) },
    }));
    const rollups = [
      {
        node: "crash",
        pool: "p",
        target: `t${b % 7}`,
        minuteStartMs: b * 60_000,
        count: 3,
        failures: 1,
        latencyMsMin: 1,
        latencyMsMax: 3,
        latencyMsSum: 6,
        sketch,
      },
    ];
    await Promise.all([store.appendEvents(events), store.writeRollups(rollups)]);
    // A pipe write on Linux is synchronous: once this returns, the parent can read the line.
    process.stdout.write(`ack ${b} b${b}-e${EVENTS_PER_BATCH - 1}\n`);
  }
}

process.stdout.write("ready\n");
await Promise.all(Array.from({ length: WRITERS }, writer));
