// A binary min-heap of keys ordered by a numeric priority, with removal and re-prioritising
// by key in O(log n). Equal priorities come out in the order they were pushed (or last
// re-prioritised): the scheduler relies on this for FIFO among checks due at the same moment.

import { assert } from "../assert.ts";

interface Entry<K> {
  readonly key: K;
  priority: number;
  /** Insertion order, the tie-break that makes equal priorities FIFO. */
  seq: number;
  /** Where the entry sits in `items`, kept current on every move so removal by key is O(log n). */
  pos: number;
}

export class KeyedMinHeap<K = string> {
  private readonly items: Entry<K>[] = [];
  private readonly byKey = new Map<K, Entry<K>>();
  private nextSeq = 0;

  get size(): number {
    return this.items.length;
  }

  has(key: K): boolean {
    return this.byKey.has(key);
  }

  priorityOf(key: K): number | undefined {
    return this.byKey.get(key)?.priority;
  }

  /** The key with the smallest priority, without removing it. */
  peekKey(): K | undefined {
    return this.items[0]?.key;
  }

  peekPriority(): number | undefined {
    return this.items[0]?.priority;
  }

  push(key: K, priority: number): void {
    assert(!Number.isNaN(priority), "heap priority is NaN");
    assert(!this.byKey.has(key), "heap key pushed twice");
    const entry: Entry<K> = { key, priority, seq: this.nextSeq++, pos: this.items.length };
    this.items.push(entry);
    this.byKey.set(key, entry);
    this.siftUp(entry.pos);
  }

  /** Gives a present key a new priority; it then ranks after equal priorities already queued. */
  update(key: K, priority: number): void {
    assert(!Number.isNaN(priority), "heap priority is NaN");
    const entry = this.byKey.get(key);
    assert(entry !== undefined, "heap update of an absent key");
    const up = priority < entry.priority;
    entry.priority = priority;
    entry.seq = this.nextSeq++;
    // A fresh seq only ever makes the entry rank later, so an equal priority sifts down.
    if (up) this.siftUp(entry.pos);
    else this.siftDown(entry.pos);
  }

  /** Removes the key; false when it was not there. */
  delete(key: K): boolean {
    const entry = this.byKey.get(key);
    if (entry === undefined) return false;
    this.byKey.delete(key);
    this.removeAt(entry.pos);
    return true;
  }

  /** Removes and returns the key with the smallest priority. */
  pop(): K | undefined {
    const top = this.items[0];
    if (top === undefined) return undefined;
    this.byKey.delete(top.key);
    this.removeAt(0);
    return top.key;
  }

  /** Crashes if the heap order or the key index is broken; for tests. */
  checkInvariants(): void {
    assert(this.items.length === this.byKey.size, "heap index size differs from heap size");
    for (let i = 0; i < this.items.length; i++) {
      const e = this.items[i]!;
      assert(e.pos === i, "heap entry position stale");
      assert(this.byKey.get(e.key) === e, "heap index points elsewhere");
      if (i > 0) assert(!this.less(i, (i - 1) >> 1), "heap order broken");
    }
  }

  private removeAt(pos: number): void {
    const last = this.items.pop()!;
    if (pos === this.items.length) return;
    this.items[pos] = last;
    last.pos = pos;
    // The moved entry came from the bottom: it may belong above or below its new place.
    if (pos > 0 && this.less(pos, (pos - 1) >> 1)) this.siftUp(pos);
    else this.siftDown(pos);
  }

  private less(i: number, j: number): boolean {
    const a = this.items[i]!;
    const b = this.items[j]!;
    return a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq);
  }

  private siftUp(pos: number): void {
    let i = pos;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(pos: number): void {
    const n = this.items.length;
    let i = pos;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(right, left) ? right : left;
      if (!this.less(child, i)) break;
      this.swap(i, child);
      i = child;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.items[i]!;
    const b = this.items[j]!;
    this.items[i] = b;
    this.items[j] = a;
    a.pos = j;
    b.pos = i;
  }
}
