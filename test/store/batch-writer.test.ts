import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/core/errors.ts";
import { type Batch, BatchWriter } from "../../src/store/batch-writer.ts";
import type { StoredEvent } from "../../src/store/types.ts";
import { isCode } from "./contract.ts";

const ev = (id: string): StoredEvent => ({ id, ts: 1, type: "x" });
const ids = (b: Batch): string[] => b.events.map((e) => e.id);

/** A commit the test completes by hand, to see what is in flight. */
function manualCommit() {
  const calls: { batch: Batch; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let waiter: (() => void) | undefined;
  const commit = (batch: Batch): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      calls.push({ batch, resolve, reject });
      waiter?.();
    });
  const nextCall = async (n: number) => {
    while (calls.length < n) {
      await new Promise<void>((r) => {
        waiter = r;
      });
    }
    return calls[n - 1]!;
  };
  return { commit, calls, nextCall };
}

describe("BatchWriter", () => {
  it("groups appends made together into one commit", async () => {
    const batches: Batch[] = [];
    const w = new BatchWriter((b) => void batches.push(b), { flushIntervalMs: 1 });
    await Promise.all([
      w.appendEvents([ev("a")]),
      w.appendEvents([ev("b"), ev("c")]),
      w.appendEvents([ev("d")]),
    ]);
    assert.deepEqual(batches.map(ids), [["a", "b", "c", "d"]]);
    assert.equal(w.commits, 1);
  });

  it("commits at flushRows without waiting for the interval", { timeout: 5_000 }, async () => {
    const batches: Batch[] = [];
    const w = new BatchWriter((b) => void batches.push(b), { flushIntervalMs: 3_600_000, flushRows: 3 });
    await w.appendEvents([ev("a"), ev("b"), ev("c")]);
    assert.deepEqual(batches.map(ids), [["a", "b", "c"]]);
    await w.close();
  });

  it("caps a commit at flushRows rows of whole calls, however deep the queue", async () => {
    const batches: Batch[] = [];
    const w = new BatchWriter((b) => void batches.push(b), { flushIntervalMs: 1, flushRows: 4 });
    await Promise.all([
      w.appendEvents([ev("a1"), ev("a2")]),
      w.appendEvents([ev("b1"), ev("b2")]),
      w.appendEvents([ev("c1"), ev("c2")]),
      w.appendEvents([ev("d1"), ev("d2"), ev("d3"), ev("d4"), ev("d5")]),
      w.appendEvents([ev("e1")]),
    ]);
    assert.deepEqual(batches.map(ids), [
      ["a1", "a2", "b1", "b2"],
      ["c1", "c2"],
      ["d1", "d2", "d3", "d4", "d5"],
      ["e1"],
    ]);
  });

  it("runs one commit at a time, in order, grouping what arrived meanwhile", async () => {
    const m = manualCommit();
    const w = new BatchWriter(m.commit, { flushIntervalMs: 1 });
    const settled: string[] = [];
    const p1 = w.appendEvents([ev("a")]).then(() => settled.push("a"));
    const first = await m.nextCall(1);
    const p2 = w.appendEvents([ev("b")]).then(() => settled.push("b"));
    const p3 = w.appendEvents([ev("c")]).then(() => settled.push("c"));
    // Give the writer every chance to start a second commit early.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(m.calls.length, 1, "second commit started while the first was in flight");
    assert.equal(w.queuedRows, 3);
    first.resolve();
    await p1;
    const second = await m.nextCall(2);
    assert.deepEqual(ids(second.batch), ["b", "c"]);
    assert.deepEqual(settled, ["a"]);
    second.resolve();
    await Promise.all([p2, p3]);
    assert.deepEqual(settled, ["a", "b", "c"]);
  });

  it("rejects exactly the appends of a failed batch, and goes on", async () => {
    let fail = true;
    const w = new BatchWriter(
      () => {
        if (fail) throw new Error("disk I/O error");
      },
      { flushIntervalMs: 1 },
    );
    const a = w.appendEvents([ev("a")]);
    const b = w.appendRollups([]);
    await assert.rejects(
      a,
      (e: unknown) => isCode(ErrorCode.store)(e) && /write failed: disk I\/O error/.test(String(e)),
    );
    await b;
    fail = false;
    await w.appendEvents([ev("c")]);
    assert.equal(w.failures, 1);
    assert.equal(w.commits, 1);
  });

  it("bounds the queue, counting rows in flight, and rejects past it at once", async () => {
    const m = manualCommit();
    const w = new BatchWriter(m.commit, { flushIntervalMs: 1, maxQueuedRows: 5 });
    const inflight = w.appendEvents([ev("a"), ev("b"), ev("c")]);
    const first = await m.nextCall(1);
    const queued = w.appendEvents([ev("d"), ev("e")]);
    await assert.rejects(w.appendEvents([ev("f")]), isCode(ErrorCode.unavailable));
    await assert.rejects(
      new BatchWriter(() => {}, { maxQueuedRows: 2 }).appendEvents([ev("x"), ev("y"), ev("z")]),
      isCode(ErrorCode.unavailable),
    );
    first.resolve();
    await inflight;
    (await m.nextCall(2)).resolve();
    await queued;
    assert.equal(w.queuedRows, 0);
    const f = w.appendEvents([ev("f")]);
    (await m.nextCall(3)).resolve();
    await f;
  });

  it("flush and close commit what is queued; close refuses later appends", async () => {
    const batches: Batch[] = [];
    const w = new BatchWriter((b) => void batches.push(b), { flushIntervalMs: 3_600_000 });
    await w.flush();
    const a = w.appendEvents([ev("a")]);
    await w.flush();
    await a;
    const b = w.appendEvents([ev("b")]);
    await w.close();
    await b;
    assert.deepEqual(batches.map(ids), [["a"], ["b"]]);
    await assert.rejects(w.appendEvents([ev("c")]), isCode(ErrorCode.store));
    await w.close();
  });
});
