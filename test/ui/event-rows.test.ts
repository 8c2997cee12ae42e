import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VigilEvent } from "../../src/ui/app/api.ts";
import {
  eventKey,
  pageRows,
  withLiveAtEnd,
  withLiveOnTop,
  withOlderBelow,
} from "../../src/ui/app/event-rows.ts";

// The dashboard's merging of API pages with live events. A store's cursors and the stream's ids
// are different numberings: the same event must be recognized whatever its seq says.

const stored = (seq: number, n: number, over: Partial<VigilEvent> = {}): VigilEvent => ({
  seq,
  id: `id${n}`,
  ts: 1_000 + n,
  type: "verdict.changed",
  pool: "web",
  target: `10.0.0.${n}:80`,
  from: "up",
  to: "down",
  ...over,
});

/** The same event as the live stream sends it: the ring's seq, no id. */
const streamed = (seq: number, n: number): VigilEvent => {
  const { id: _id, ...rest } = stored(seq, n);
  return rest;
};

describe("event rows", () => {
  it("knows an event by its fields, not by its seq or id", () => {
    assert.equal(eventKey(stored(900, 1)), eventKey(streamed(3, 1)));
    assert.notEqual(eventKey(stored(900, 1)), eventKey(stored(900, 2)));
    assert.notEqual(eventKey(stored(1, 1)), eventKey(stored(1, 1, { to: "up" })));
    assert.notEqual(eventKey(stored(1, 1, { node: "n1" })), eventKey(stored(1, 1, { node: "n2" })));
    // absent is not the empty string
    assert.notEqual(eventKey(stored(1, 1, { pool: undefined })), eventKey(stored(1, 1, { pool: "" })));
  });

  it("puts a live event on top once, however often the stream repeats it", () => {
    const page = pageRows([stored(902, 3), stored(901, 2)]);
    assert.deepEqual(
      page.map((r) => [r.key, r.live]),
      [
        ["id3", false],
        ["id2", false],
      ],
    );
    const once = withLiveOnTop(page, streamed(7, 4));
    assert.deepEqual(
      once.map((r) => [r.seq, r.live]),
      [
        [7, true],
        [902, false],
        [901, false],
      ],
    );
    assert.equal(withLiveOnTop(once, streamed(7, 4)), once, "a replay after a reconnect");
    assert.equal(withLiveOnTop(once, streamed(5, 3)), once, "already on the page, under its store cursor");
    const keys = new Set(withLiveOnTop(once, streamed(902, 5)).map((r) => r.key));
    assert.equal(keys.size, 4, "a live seq equal to a store cursor still gets its own row key");
  });

  it("adds an older page below, leaving out what is already shown", () => {
    const rows = withLiveOnTop(pageRows([stored(902, 3), stored(901, 2)]), streamed(8, 1));
    const more = withOlderBelow(rows, [stored(900, 1), stored(899, 0)]);
    assert.deepEqual(
      more.map((r) => r.seq),
      [8, 902, 901, 899],
    );
    assert.deepEqual(pageRows([streamed(4, 1)])[0]!.key, "m4", "the ring's events have no id: keyed by seq");
  });

  it("appends a live event to an oldest-first list once, keeping at most max", () => {
    const list = [stored(1, 1), stored(2, 2)];
    const same = withLiveAtEnd(list, streamed(9, 2), 3);
    assert.equal(same, list);
    const grown = withLiveAtEnd(list, streamed(9, 3), 3);
    assert.deepEqual(
      grown.map((e) => e.seq),
      [1, 2, 9],
    );
    assert.deepEqual(
      withLiveAtEnd(grown, streamed(10, 4), 3).map((e) => e.seq),
      [2, 9, 10],
    );
  });
});
