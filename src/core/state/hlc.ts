// Hybrid logical clock (Kulkarni et al., 2014): wall time where clocks agree, a logical
// counter where they do not, and the node name as the final tie-break, so timestamps are
// totally ordered, never go backwards on one node, and follow causality across nodes even
// when a wall clock steps back. The wall time is passed in; this module never reads a clock.
// `receive` adopts any remote wall time, so callers refuse stamps implausibly far ahead of
// their own clock first (LwwMap does, with maxClockSkewMs).

import { assert } from "../assert.ts";

export interface Hlc {
  readonly wallMs: number;
  readonly logical: number;
  readonly node: string;
}

/** Total order: wall time, then logical counter, then node name. */
export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

export function isHlc(x: unknown): x is Hlc {
  if (typeof x !== "object" || x === null) return false;
  const h = x as Record<string, unknown>;
  return (
    Number.isSafeInteger(h.wallMs) &&
    (h.wallMs as number) >= 0 &&
    Number.isSafeInteger(h.logical) &&
    (h.logical as number) >= 0 &&
    typeof h.node === "string" &&
    h.node.length > 0
  );
}

export class HybridClock {
  readonly node: string;
  private wallMs: number;
  private logical: number;

  /** `last` restores the clock from persistence so a restart cannot reissue a timestamp. */
  constructor(node: string, last?: { wallMs: number; logical: number }) {
    assert(node.length > 0, "an HLC needs a node name");
    this.node = node;
    this.wallMs = last?.wallMs ?? 0;
    this.logical = last?.logical ?? 0;
  }

  /** The latest timestamp issued or received. */
  current(): Hlc {
    return { wallMs: this.wallMs, logical: this.logical, node: this.node };
  }

  /** A timestamp for a local event (a write), later than every earlier one. */
  tick(nowWallMs: number): Hlc {
    const pt = wall(nowWallMs);
    if (pt > this.wallMs) {
      this.wallMs = pt;
      this.logical = 0;
    } else {
      this.bumpLogical();
    }
    return this.current();
  }

  /** Takes in a timestamp seen from another node; later local ticks order after it. */
  receive(remote: Hlc, nowWallMs: number): Hlc {
    const pt = wall(nowWallMs);
    const l = Math.max(this.wallMs, remote.wallMs, pt);
    if (l === this.wallMs && l === remote.wallMs) {
      this.logical = Math.max(this.logical, remote.logical);
      this.bumpLogical();
    } else if (l === this.wallMs) {
      this.bumpLogical();
    } else if (l === remote.wallMs) {
      this.logical = remote.logical;
      this.bumpLogical();
    } else {
      this.logical = 0;
    }
    this.wallMs = l;
    return this.current();
  }

  private bumpLogical(): void {
    assert(this.logical < Number.MAX_SAFE_INTEGER, "HLC logical counter exhausted");
    this.logical++;
  }
}

function wall(nowWallMs: number): number {
  assert(Number.isFinite(nowWallMs), "wall time must be a finite number");
  return Math.max(0, Math.floor(nowWallMs));
}
