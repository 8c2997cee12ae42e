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
  since?: number;
  limit?: number;
  pool?: string;
  target?: string;
  types?: ReadonlySet<string>;
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

  /** Events with seq > since, oldest first, filtered, at most `limit`. */
  query(q: EventQuery): { events: VigilEvent[]; next: number } {
    const limit = Math.min(q.limit ?? 100, limits.maxEventsPerPage);
    const since = q.since ?? 0;
    const out: VigilEvent[] = [];
    const n = this.ring.length;
    const full = n === this.capacity;
    // Sequence numbers are dense in the ring, so the start index is computed, not searched.
    const first = this.firstSeq;
    let offset = Math.max(0, since + 1 - first);
    let next = since;
    while (offset < n && out.length < limit) {
      const ev = this.ring[full ? (this.head + offset) % n : offset]!;
      offset++;
      next = ev.seq;
      if (q.pool !== undefined && ev.pool !== q.pool) continue;
      if (q.target !== undefined && ev.target !== q.target) continue;
      if (q.types !== undefined && !q.types.has(ev.type)) continue;
      out.push(ev);
    }
    return { events: out, next };
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
