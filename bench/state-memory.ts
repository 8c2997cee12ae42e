// Memory of the observation map: a replica holding 100k targets × 2 observers with a typical
// small observation value, built from decoded wire deltas as a real replica would be (so every
// value and string is its own copy). Prints bytes per target (goal: under 1 KiB) and writes
// bench/results/state-memory.json.
//
//   npx node bench/state-memory.ts [--targets=100000 --observers=2]
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  anyJsonValue,
  decodeDelta,
  encodeDelta,
  type JsonValue,
  ObservationMap,
} from "../src/core/state/index.ts";
import { arg, round, writeResults } from "./lib.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const targets = arg("targets", 100_000);
const observers = arg("observers", 2);

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const replica = new ObservationMap<JsonValue>({ self: "replica" });
const writers = Array.from(
  { length: observers },
  (_, i) => new ObservationMap<JsonValue>({ self: `vigil-node-${i}` }),
);
const before = heapUsed();

const batch = 1000;
for (let start = 0; start < targets; start += batch) {
  for (const w of writers) {
    const regs = [];
    for (let i = start; i < Math.min(targets, start + batch); i++) {
      const value = {
        state: i % 17 === 0 ? "down" : "up",
        since: 1_700_000_000_000 + i * 1000,
        streak: (i % 5) + 1,
        reason: i % 17 === 0 ? "connect ECONNREFUSED" : `HTTP 200 in ${i % 300}ms`,
      };
      regs.push(
        ...w.localWrite(`pool${i % 50}/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`, value),
      );
    }
    // Through JSON text, as gossip would deliver it.
    const decoded = decodeDelta(JSON.parse(JSON.stringify(encodeDelta(regs))), anyJsonValue);
    if (!decoded.ok) throw decoded.error;
    replica.applyDelta(decoded.value);
  }
}
// Only the replica stays reachable: the writers' own copies are not part of the figure.
writers.length = 0;
const after = heapUsed();
const stats = replica.stats();
const bytesPerTarget = (after - before) / targets;

const result = {
  targets,
  observers,
  registers: stats.registers,
  heapBytes: after - before,
  bytesPerTarget: round(bytesPerTarget, 0),
  bytesPerRegister: round((after - before) / stats.registers, 0),
  goalBytesPerTarget: 1024,
  underGoal: bytesPerTarget < 1024,
};
console.log(JSON.stringify(result, null, 2));
writeResults("state-memory", result);
