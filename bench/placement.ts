// Placement at scale: owners for 1,000,000 targets × 100 members (k = 2) from scratch, then
// the incremental update after one join and one leave (the target: under 200 ms each).
// Writes bench/results/placement.json.
//
//   npx node bench/placement.ts [--targets=1000000 --members=100 --k=2] [--spread=zone]
//
// With --spread=zone the members are spread over 3 zones and every target asks for distinct
// zones; results go to bench/results/placement-zone.json.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Spread } from "../src/config/types.ts";
import { Placement } from "../src/core/placement/index.ts";
import { arg, progress, round, writeResults } from "./lib.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const targets = arg("targets", 1_000_000);
const members = arg("members", 100);
const k = arg("k", 2);
const spread: Spread = process.argv.includes("--spread=zone") ? "zone" : "none";

function memory(): { rssMiB: number; heapUsedMiB: number; arrayBuffersMiB: number } {
  gc();
  const m = process.memoryUsage();
  return {
    rssMiB: round(m.rss / 2 ** 20, 1),
    heapUsedMiB: round(m.heapUsed / 2 ** 20, 1),
    arrayBuffersMiB: round(m.arrayBuffers / 2 ** 20, 1),
  };
}

// Ids copied through a Buffer so they are flat strings up front, as decoded config would be:
// template literals make rope strings that shrink when first hashed and would skew memory.
const ids = Array.from({ length: targets }, (_, i) =>
  Buffer.from(`pool${i % 100}/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`).toString("latin1"),
);
const baseline = memory();

const p = new Placement();
for (let i = 0; i < members; i++) p.addMember({ name: `node-${i}`, weight: 1, zone: `z${i % 3}` });

progress(`placing ${targets} targets over ${members} members, k=${k}, spread=${spread}`);
let t0 = performance.now();
for (const id of ids) p.addTarget({ id, k, spread });
const scratchMs = performance.now() - t0;
const afterBuild = memory();

const owned = (name: string): number => {
  let n = 0;
  for (const _ of p.ownedBy(name)) n++;
  return n;
};

t0 = performance.now();
const joined = p.addMember({ name: "node-new", weight: 1, zone: "z0" });
const joinMs = performance.now() - t0;

const leaver = "node-42";
const leaverOwned = owned(leaver);
t0 = performance.now();
const left = p.removeMember(leaver);
const leaveMs = performance.now() - t0;

t0 = performance.now();
let lookups = 0;
for (let i = 0; i < ids.length; i += 10) lookups += p.owners(ids[i]!).length > 0 ? 1 : 0;
const lookupNs = ((performance.now() - t0) * 1e6) / lookups;

const result = {
  targets,
  members,
  k,
  spread,
  scratch: {
    ms: round(scratchMs, 0),
    scoresPerSecond: round((targets * members) / (scratchMs / 1000), 0),
  },
  join: {
    ms: round(joinMs, 1),
    targetsChanged: joined.length,
    expected: round((targets * k) / (members + 1), 0),
  },
  leave: { ms: round(leaveMs, 1), targetsChanged: left.length, leaverOwned },
  ownersLookupNs: round(lookupNs, 0),
  memory: {
    baseline,
    afterBuild,
    bytesPerTarget: round(
      ((afterBuild.heapUsedMiB +
        afterBuild.arrayBuffersMiB -
        baseline.heapUsedMiB -
        baseline.arrayBuffersMiB) *
        2 ** 20) /
        targets,
      0,
    ),
  },
  targetUpdateMs: 200,
  updatesUnderTarget: joinMs < 200 && leaveMs < 200,
};
const path = writeResults(spread === "zone" ? "placement-zone" : "placement", result);
console.log(JSON.stringify(result, null, 2));
progress(`wrote ${path}`);
