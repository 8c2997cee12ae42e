// Time is an input. The core takes `now` (milliseconds on a monotonic clock) as an argument;
// only the shell reads a clock. Wall time appears only in events shown to people.

export interface Clock {
  /** Monotonic milliseconds; only differences mean anything. */
  nowMs(): number;
  /** Wall-clock milliseconds since the Unix epoch, for timestamps shown to people. */
  wallMs(): number;
}

/** A clock the test or simulator moves by hand. */
export class ManualClock implements Clock {
  private t: number;
  private readonly wallOffsetMs: number;
  constructor(startMs = 0, wallOffsetMs = 1_700_000_000_000) {
    this.t = startMs;
    this.wallOffsetMs = wallOffsetMs;
  }
  nowMs(): number {
    return this.t;
  }
  wallMs(): number {
    return this.wallOffsetMs + this.t;
  }
  set(ms: number): void {
    if (ms < this.t) throw new Error(`invariant: clock moved backwards ${this.t} -> ${ms}`);
    this.t = ms;
  }
  advance(ms: number): void {
    this.set(this.t + ms);
  }
}
