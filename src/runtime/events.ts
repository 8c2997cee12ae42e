import { limits } from "../core/limits.ts";

// The event log: an append-only record of transitions and changes. In memory here (a bounded
// ring); the store keeps it durably. Cursors are this node's sequence numbers.

export type EventType =
  | "observation.changed"
  | "verdict.changed"
  | "pool.created"
  | "pool.updated"
  | "pool.deleted"
  | "target.admin"
  | "member.joined"
  | "member.suspect"
  | "member.alive"
  | "member.dead"
  | "member.left"
  | "member.updated";

export interface VigilEvent {
  /** This node's sequence number: the cursor for `?since=`. */
  seq: number;
  /** Wall-clock time in ms since the epoch, for people. */
  ts: number;
  type: EventType;
  pool?: string;
  /** `host:port` inside the pool. */
  target?: string;
  /** The node the fact is about or comes from (an observer, a member). */
  node?: string;
  from?: string;
  to?: string;
  /** Why: the last check reason, the admin reason, the membership cause. */
  cause?: string;
  [k: string]: unknown;
}

export interface EventQuery {
  /** "asc" (default): oldest first, after `since`. "desc": newest first, before `before`. */
  order?: "asc" | "desc";
  /** Only events with seq > since. */
  since?: number;
  /** Only events with seq < before. */
  before?: number;
  limit?: number;
  pool?: string;
  target?: string;
  types?: ReadonlySet<string>;
  /** ts >= fromMs */
  fromMs?: number;
  /** ts < toMs */
  toMs?: number;
}

type Listener = (e: VigilEvent) => void;

export class EventLog {
  private readonly ring: VigilEvent[] = [];
  private head = 0; // index of the oldest element once the ring is full
  private nextSeq = 1;
  private readonly capacity: number;
  private readonly listeners = new Set<Listener>();

  constructor(capacity: number = limits.maxEventsInMemory) {
    this.capacity = capacity;
  }

  append(wallMs: number, e: Omit<VigilEvent, "seq" | "ts">): VigilEvent {
    const ev = { seq: this.nextSeq++, ts: wallMs, ...e } as VigilEvent;
    if (this.ring.length < this.capacity) {
      this.ring.push(ev);
    } else {
      this.ring[this.head] = ev;
      this.head = (this.head + 1) % this.capacity;
    }
    for (const l of this.listeners) l(ev);
    return ev;
  }

  /** The newest sequence number written, 0 when empty. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** The oldest sequence number still held. */
  get firstSeq(): number {
    const first = this.ring.length < this.capacity ? this.ring[0] : this.ring[this.head];
    return first?.seq ?? this.nextSeq;
  }

  /**
   * Events with since < seq < before, filtered, at most `limit`: oldest first, or newest first
   * for order "desc". `next` continues the walk (as `since`, or as `before` for "desc"): the seq
   * of the last event examined, matching or not, so a filter that skips many is not re-scanned;
   * the bound passed in (0 for none) when nothing was examined.
   */
  query(q: EventQuery): { events: VigilEvent[]; next: number } {
    const limit = Math.min(q.limit ?? 100, limits.maxEventsPerPage);
    const since = q.since ?? 0;
    const before = q.before ?? Number.POSITIVE_INFINITY;
    const desc = q.order === "desc";
    const out: VigilEvent[] = [];
    const n = this.ring.length;
    const full = n === this.capacity;
    // Sequence numbers are dense in the ring, so the end offsets are computed, not searched.
    const first = this.firstSeq;
    const lo = Math.max(0, since + 1 - first); // first offset in range
    const hi = Math.min(n, before - first); // one past the last offset in range
    let next = desc ? (q.before ?? 0) : since;
    const step = desc ? -1 : 1;
    for (let offset = desc ? hi - 1 : lo; offset >= lo && offset < hi && out.length < limit; offset += step) {
      const ev = this.ring[full ? (this.head + offset) % n : offset]!;
      next = ev.seq;
      if (q.pool !== undefined && ev.pool !== q.pool) continue;
      if (q.target !== undefined && ev.target !== q.target) continue;
      if (q.types !== undefined && !q.types.has(ev.type)) continue;
      if (q.fromMs !== undefined && ev.ts < q.fromMs) continue;
      if (q.toMs !== undefined && ev.ts >= q.toMs) continue;
      out.push(ev);
    }
    return { events: out, next };
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
