import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { historyDefaults } from "../../src/config/history.ts";
import { parsePoolDocument } from "../../src/config/load.ts";
import { ManualClock } from "../../src/core/clock.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";
import { NodeCore, type StateEntry } from "../../src/core/node/node-core.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { EventLog, type VigilEvent } from "../../src/runtime/events.ts";
import {
  History,
  type HistoryTuning,
  type ReplicatedState,
  recordsOnSharedStore,
  toLwwRecord,
} from "../../src/runtime/history.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import type { LwwRecord } from "../../src/store/types.ts";
import { eventually } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";

// History persisting the node core's pool specs and admin states: restored at start through the
// core's LWW merge, written back in batches off the caller's stack, retried when a write fails.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 5, 10);

const newDir = (): string => tmpDataDir("state");

function open(dir: string, clock: ManualClock, tuning: Partial<HistoryTuning> = {}): Promise<History> {
  return History.open({
    node: "n1",
    dataDir: dir,
    settings: historyDefaults,
    clock,
    logger: silentLogger,
    view: { owners: () => [], observedSinceMs: () => undefined, liveMembers: () => ["n1"] },
    tuning: { flushIntervalMs: HOUR, compactIntervalMs: HOUR, ...tuning },
  });
}

function core(name = "n1"): NodeCore {
  return new NodeCore({
    name,
    zone: "z",
    weight: 1,
    random: new SeededRandom(1),
    maxConcurrentChecks: 16,
    counterStart: 1,
    parsePool: (n, d) => parsePoolDocument(n, d),
    antiEntropyIntervalMs: 10_000,
    retransmitMult: 4,
  });
}

const doc = (port: number) => ({ check: { type: "tcp" }, interval: "1h", targets: [`127.0.0.1:${port}`] });
const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const byKey = (entries: readonly StateEntry[]) => new Map(entries.map((e) => [`${e.kind}/${e.key}`, e]));

describe("History: pool specs and admin states", () => {
  it("writes each burst of changes in one durable call, off the caller's stack, and restores them", async (t) => {
    const dir = newDir();
    const clock = new ManualClock(0, T0);
    const h = await open(dir, clock);
    const c = core();
    assert.deepEqual(await h.restoreState(c), { applied: 0, superseded: 0, refused: 0, invalid: 0 });
    const put = t.mock.method(h.store, "putLww");

    c.putPool("web", doc(81), 1, T0 + 1);
    c.putPool("web", doc(82), 2, T0 + 2);
    c.setAdmin("web", "127.0.0.1:82", "maint", "disk", 3, T0 + 3);
    c.putPool("gone", doc(83), 4, T0 + 4);
    c.deletePool("gone", 5, T0 + 5);
    assert.equal(put.mock.callCount(), 0, "nothing on the caller's stack");
    assert.equal(h.pendingState, 3);
    await nextTurn();
    await h.flush();
    assert.equal(put.mock.callCount(), 1, "one write for the burst");
    assert.equal((put.mock.calls[0]!.arguments[0] as LwwRecord[]).length, 3, "the latest entry per key");
    assert.equal(h.pendingState, 0);
    assert.equal(h.stats.stateWritten, 3);
    await h.close();

    // A new process: a fresh core restored from the store holds the same entries, stamps and all.
    const h2 = await open(dir, new ManualClock(0, T0 + 10));
    const c2 = core();
    assert.deepEqual(await h2.restoreState(c2), { applied: 3, superseded: 0, refused: 0, invalid: 0 });
    assert.deepEqual(byKey(c2.exportState()), byKey(c.exportState()));
    assert.deepEqual(c2.poolNames(), ["web"]);
    assert.deepEqual(c2.admin("web/127.0.0.1:82"), { state: "maint", reason: "disk" });
    assert.equal(h2.pendingState, 0, "restored entries are not written back");
    await h2.close();
  });

  it("writes the last changes when closed, however recent", async () => {
    const dir = newDir();
    const h = await open(dir, new ManualClock(0, T0));
    const c = core();
    await h.restoreState(c);
    c.putPool("web", doc(81), 1, T0 + 1);
    await h.close();
    const h2 = await open(dir, new ManualClock(0, T0));
    assert.deepEqual(
      (await h2.store.listLww()).map((r) => r.key),
      ["web"],
    );
    await h2.close();
  });

  it("keeps entries whose write failed and writes them again, the newest per key, on the flush timer", async (t) => {
    const dir = newDir();
    const h = await open(dir, new ManualClock(0, T0), { flushIntervalMs: 20 });
    t.after(() => h.close());
    const c = core();
    await h.restoreState(c);
    h.start(new EventLog());
    const real = h.store.putLww.bind(h.store);
    let failing = true;
    t.mock.method(h.store, "putLww", (records: readonly LwwRecord[]) =>
      failing ? Promise.reject(new VigilError(ErrorCode.store, "database went away")) : real(records),
    );
    c.putPool("web", doc(81), 1, T0 + 1);
    c.putPool("api", doc(90), 2, T0 + 2);
    await eventually(() => h.stats.stateWriteErrors >= 1, "the write to fail");
    assert.equal(h.pendingState, 2, "still pending: not durable");
    // A newer change of a failed key replaces it in the next try.
    c.putPool("web", doc(82), 3, T0 + 3);
    const errors = h.stats.stateWriteErrors;
    await eventually(() => h.stats.stateWriteErrors > errors, "the next tries to fail too");
    assert.equal(h.pendingState, 2);
    // Nothing changes any more: the flush timer tries again.
    failing = false;
    await eventually(() => h.pendingState === 0, "the retry to succeed");
    assert.equal(h.stats.stateWritten, 2);
    const stored = await h.store.listLww();
    assert.deepEqual(
      stored.map((r) => [r.key, r.value]),
      [
        ["api", doc(90)],
        ["web", doc(82)],
      ],
    );
  });

  it("counts an entry the store refuses and writes the rest", async (t) => {
    const h = await open(newDir(), new ManualClock(0, T0));
    t.after(() => h.close());
    const ts = { wallMs: T0, logical: 0, node: "n1" };
    let changes: StateEntry[] = [];
    let wake: () => void = () => {};
    const fake: ReplicatedState = {
      restoreState: () => ({ applied: 0, superseded: 0, refused: 0, invalid: 0 }),
      watchState: (f) => {
        wake = f;
      },
      takeStateChanges: () => changes.splice(0),
      get pendingStateChanges() {
        return changes.length;
      },
      stateTombstoneRetentionMs: DAY,
    };
    await h.restoreState(fake);
    changes = [
      { kind: "pool", key: "k".repeat(2_000), ts, value: { a: 1 }, deleted: false },
      { kind: "pool", key: "big", ts, value: { s: "x".repeat(6 * 1024 * 1024) }, deleted: false },
      { kind: "pool", key: "web", ts, value: { a: 1 }, deleted: false },
    ];
    wake();
    await nextTurn();
    await h.flush();
    assert.equal(h.stats.stateRefused, 2);
    assert.equal(h.stats.stateWriteErrors, 0);
    assert.deepEqual(
      (await h.store.listLww()).map((r) => r.key),
      ["web"],
    );
    await assert.rejects(h.restoreState(fake), /restoreState called twice/);
  });

  it("prunes tombstones past the core's retention at start and when compacting", async () => {
    const dir = newDir();
    const clock = new ManualClock(0, T0);
    const h = await open(dir, clock);
    const rec = (key: string, value: unknown, wallMs: number): LwwRecord => ({
      kind: "pool",
      key,
      value,
      wallMs,
      logical: 0,
      origin: "n2",
    });
    await h.store.putLww([
      rec("old-gone", null, T0 - 2 * DAY),
      rec("recent-gone", null, T0 - HOUR),
      rec("old-live", doc(81), T0 - 3 * DAY),
    ]);
    const c = core();
    assert.deepEqual(await h.restoreState(c), { applied: 2, superseded: 0, refused: 0, invalid: 0 });
    assert.deepEqual(c.poolNames(), ["old-live"]);
    assert.deepEqual(
      (await h.store.listLww()).map((r) => r.key),
      ["old-live", "recent-gone"],
    );
    clock.advance(DAY);
    await h.compact();
    assert.deepEqual(
      (await h.store.listLww()).map((r) => r.key),
      ["old-live"],
    );
    await h.close();
  });

  it("refuses to start half-restored when the store cannot be read", async (t) => {
    const h = await open(newDir(), new ManualClock(0, T0));
    t.after(() => h.close());
    t.mock.method(h.store, "listLww", () => Promise.reject(new VigilError(ErrorCode.store, "read failed")));
    const c = core();
    await assert.rejects(
      h.restoreState(c),
      (e: unknown) => e instanceof VigilError && e.code === ErrorCode.store,
    );
    assert.deepEqual(c.poolNames(), []);
  });

  it("stores a tombstone as a null value and reads it back as a delete", () => {
    const e: StateEntry = {
      kind: "admin",
      key: "web/a:1",
      ts: { wallMs: 5, logical: 2, node: "n3" },
      value: undefined,
      deleted: true,
    };
    assert.deepEqual(toLwwRecord(e), {
      kind: "admin",
      key: "web/a:1",
      value: null,
      wallMs: 5,
      logical: 2,
      origin: "n3",
    });
  });
});

describe("recordsOnSharedStore: restored state", () => {
  const v = { owners: () => [], liveMembers: () => ["n1", "n2"] };
  it("leaves pool and admin events of a restore to the node that made the change", () => {
    const e = (over: Partial<VigilEvent>): VigilEvent => ({
      seq: 1,
      ts: T0,
      type: "pool.created",
      pool: "web",
      ...over,
    });
    assert.equal(recordsOnSharedStore(e({ cause: "restored" }), "n1", v), false);
    assert.equal(recordsOnSharedStore(e({ cause: "replicated" }), "n1", v), false);
    assert.equal(recordsOnSharedStore(e({ cause: "api" }), "n1", v), true);
    assert.equal(recordsOnSharedStore(e({ cause: "config" }), "n1", v), true);
    assert.equal(recordsOnSharedStore(e({ type: "pool.updated", cause: "restored" }), "n1", v), false);
    assert.equal(recordsOnSharedStore(e({ type: "target.admin", node: "restored" }), "n1", v), false);
    assert.equal(recordsOnSharedStore(e({ type: "target.admin", node: "n1" }), "n1", v), true);
  });
});
