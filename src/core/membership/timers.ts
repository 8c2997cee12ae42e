// The core's timers as plain data: deadlines in a heap, fired by `runDue(now)`. The shell
// keeps one real timer set to `next()`; the simulator jumps straight to it.

import { assert } from "../assert.ts";
import { KeyedMinHeap } from "../scheduler/heap.ts";

export interface Timer {
  readonly atMs: number;
  readonly fire: (now: number) => void;
}

export class TimerQueue {
  private readonly heap = new KeyedMinHeap<Timer>();

  get size(): number {
    return this.heap.size;
  }

  schedule(atMs: number, fire: (now: number) => void): Timer {
    assert(Number.isFinite(atMs), "timer deadline must be finite");
    const t: Timer = { atMs, fire };
    this.heap.push(t, atMs);
    return t;
  }

  /** Cancelling a timer that already fired or was cancelled is harmless. */
  cancel(t: Timer | undefined): void {
    if (t !== undefined) this.heap.delete(t);
  }

  next(): number | undefined {
    return this.heap.peekPriority();
  }

  /** Fires timers due at `now` in deadline order (FIFO among equals); at most `max` of them. */
  runDue(now: number, max: number): number {
    let fired = 0;
    while (fired < max) {
      const at = this.heap.peekPriority();
      if (at === undefined || at > now) break;
      const t = this.heap.pop()!;
      fired++;
      t.fire(now);
    }
    return fired;
  }
}
