// Lifeguard's local health awareness. A node whose own probes keep failing, or that keeps
// hearing it is suspected, is more likely sick itself (overloaded, paused, losing packets)
// than surrounded by dead peers. It raises its score and stretches its probe interval and
// timeout, so it accuses others more slowly while it is unwell.
//
// The score lives in [0, maxMultiplier - 1], so the scale `score + 1` is at most maxMultiplier
// (memberlist's AwarenessMaxMultiplier semantics: 8 means "at most 8× slower").

import { assert } from "../assert.ts";

export class Awareness {
  private readonly maxMultiplier: number;
  private current = 0;

  constructor(maxMultiplier: number) {
    assert(Number.isInteger(maxMultiplier) && maxMultiplier >= 1, "awareness multiplier must be >= 1");
    this.maxMultiplier = maxMultiplier;
  }

  /** The health score: 0 is healthy, maxMultiplier - 1 the worst. */
  get score(): number {
    return this.current;
  }

  /** +1 for a failed probe or each missing nack or refuting a suspicion of ourselves; -1 for a good probe. */
  applyDelta(delta: number): void {
    this.current = Math.min(this.maxMultiplier - 1, Math.max(0, this.current + delta));
  }

  scaleTimeout(timeoutMs: number): number {
    return timeoutMs * (this.current + 1);
  }
}
