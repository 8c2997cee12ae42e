// The observation map: (target, observer) → the observer's latest observation, replicated to
// every node as a delta-state CRDT.
//
// Each register has exactly one writer, its observer, and carries the dot (observer,
// counter) of its latest write; one counter per observer runs across all its registers. Merge
// keeps the higher counter, so merging is commutative, associative and idempotent, and no
// wall clock decides anything.
//
// The version vector entry V[o] is the counter up to which this replica holds every register
// of o that still matters. A later write by o to the same register supersedes the earlier
// dot, so "holding every dot ≤ V[o]" means: for every register of o whose newest dot is ≤ V[o],
// this replica holds that newest version. Three consequences:
// - Deltas piggybacked on gossip are merged at once but never raise V: they arrive out of
//   order, and holding dot 9 says nothing about dot 8 of another register.
// - V rises from anti-entropy. The peer answers a request carrying our V with every register
//   newer than our entry for its observer, in canonical order (observer, then counter), plus
//   its own V. A complete reply lets us take the pointwise max. A reply cut short by the byte
//   or count budget is a page: the next request carries the last dot received as a cursor, so
//   a session always moves forward even through registers the peer holds but cannot vouch
//   for (gossiped past its own V). A page vouches for the observers it fully spans, and for
//   the last one up to the highest counter it sent, never for one it did not reach.
// - Once a removed target is forgotten, anti-entropy cannot bring its registers back: they
//   are at or below our entries, and peers only send what is above them.
//
// Merge is deliberately the plain per-register max (and pointwise max of vectors), a
// lattice join: a "drop what the vector covers but we lack" rule would keep stale deltas out a
// little longer, but makes the result depend on merge order. One exception, at a bound: a
// target keeps at most maxRegistersPerTarget registers. Past it a newcomer is refused, or with
// an `evict` choice takes another's slot; either way what a replica holds of that target then
// depends on arrival order, and a dropped register is not fetched again (the vector covers it).
//
// Removed targets are hidden, not erased, for a retention period: their registers keep
// merging and answering anti-entropy (so a target re-added in that window comes back whole on
// every node) but are invisible to readers. Reaped observers lose their registers at once and
// their deltas are refused while the marker lasts; V[o] stays as the floor until it expires.
//
// missingFor answers from a per-observer index of the same slots: an observer whose highest
// counter the peer's entry (or the paging cursor) already reaches is skipped without visiting
// its registers, so an exchange between replicas in step costs O(observers), not O(registers).
//
// The own entry V[self]: after a restart the node starts at `counterStart` without its older
// registers, which peers may still hold. V[self] then stays below the boot floor until an
// exchange shows a peer held everything up to it; from then on V[self] follows the counter.

import { assert } from "../assert.ts";
import { isCounter } from "./dots.ts";
import { stateLimits } from "./limits.ts";
import type { ReadonlyVersionVector, VectorEntries, VersionVector } from "./version-vector.ts";
import { vvToEntries } from "./version-vector.ts";

export interface Register<V> {
  readonly targetId: string;
  readonly observer: string;
  readonly counter: number;
  readonly value: V;
}

/** A delta is a set of registers; a local write produces one, deltas join by concatenation. */
export type ObservationDelta<V> = readonly Register<V>[];

/** Where a paged anti-entropy session resumes: strictly after this dot, in canonical order. */
export interface ExchangeCursor {
  readonly observer: string;
  readonly counter: number;
}

export interface ExchangeReply<V> {
  /** Registers newer than the requester's vector, canonical order: observer, then counter. */
  readonly registers: readonly Register<V>[];
  /** The responder's vector entries, without observers it has reaped. */
  readonly vector: VectorEntries;
  /** Whether every register newer than the requester's vector fit in the budget. */
  readonly complete: boolean;
}

export interface ExchangeBudget {
  /** At least 1; the reply always carries one register when there is one to send. */
  maxRegisters: number;
  maxBytes: number;
  /** Estimated encoded size of one register; default: JSON length of the value plus ids. */
  sizeOf?: (r: Register<unknown>) => number;
}

export interface ObservationMapOptions<V = unknown> {
  /** This node's name: the observer of its own writes. */
  self: string;
  /** The last counter this node used before this boot (persisted, or a boot epoch); default 0. */
  counterStart?: number;
  /** How long removed targets and reaped observers are remembered; default 24 h. */
  retentionMs?: number;
  maxRemovedTargets?: number;
  maxReapedObservers?: number;
  /** Registers kept per target; default stateLimits.maxRegistersPerTarget. */
  maxRegistersPerTarget?: number;
  /**
   * A register from a new observer arrives for a target that is full: the observer whose
   * register gives way, one of `held` or `incoming.observer`. Default: the incoming one (it
   * is refused). The map knows nothing of who owns a target; the node does, and the
   * registers that decide verdicts must not be the ones a flood of stale ones keeps out.
   */
  evict?: (targetId: string, held: readonly Register<V>[], incoming: Register<V>) => string;
}

export interface ObservationStats {
  /** Visible targets and registers. */
  targets: number;
  registers: number;
  /** Removed targets still remembered, and their hidden registers. */
  removedTargets: number;
  hiddenRegisters: number;
  reapedObservers: number;
  /** Registers that met a full target (maxRegistersPerTarget): refused, or evicted one held. */
  droppedOverLimit: number;
}

interface Slot<V> {
  readonly observer: string;
  readonly targetId: string;
  counter: number;
  value: V;
  /** Where the slot sits in its observer's index, for removal in O(1). */
  pos: number;
}

interface Entry<V> {
  /** The map's key, kept so every slot of the target shares this one string. */
  readonly targetId: string;
  readonly slots: Slot<V>[];
  /** The target was removed: its registers are kept (and merged) but not shown. */
  hidden: boolean;
}

/**
 * One observer's registers, for anti-entropy: a peer whose vector entry reaches `maxCounter`
 * lacks none of them, so the scan skips the observer without visiting its registers. The
 * slots are the same objects as in the entries, so merges update both at once.
 */
interface ObserverIndex<V> {
  /** At least the highest counter among `slots` (forgetting a target may leave it above). */
  maxCounter: number;
  /** This observer's slot in every entry it has one in, in no particular order. */
  readonly slots: Slot<V>[];
}

function defaultSizeOf(r: Register<unknown>): number {
  return r.targetId.length + r.observer.length + 16 + (JSON.stringify(r.value)?.length ?? 4);
}

export class ObservationMap<V> {
  readonly self: string;
  private readonly retentionMs: number;
  private readonly maxRemovedTargets: number;
  private readonly maxReapedObservers: number;
  private readonly maxRegistersPerTarget: number;
  private readonly evict: ObservationMapOptions<V>["evict"];

  private ownCounter: number;
  /** V[self] only follows the counter once it reaches this (see the header). */
  private bootFloor: number;
  private readonly vv: VersionVector = new Map();
  private readonly entries = new Map<string, Entry<V>>();
  /** The same slots by observer; kept in step with `entries` by addSlot and dropSlots. */
  private readonly byObserver = new Map<string, ObserverIndex<V>>();
  /** Removed targets by removal time (insertion order), for gc. */
  private readonly removed = new Map<string, number>();
  /** Reaped observers by reap time (insertion order). */
  private readonly reaped = new Map<string, number>();
  /** One string per observer name, so a million registers do not hold a million copies. */
  private readonly names = new Map<string, string>();
  private droppedOverLimit = 0;

  constructor(opts: ObservationMapOptions<V>) {
    assert(opts.self.length > 0 && opts.self.length <= stateLimits.maxIdChars, "self must be a valid name");
    const start = opts.counterStart ?? 0;
    assert(start === 0 || isCounter(start), "counterStart must be a non-negative safe integer");
    this.self = opts.self;
    this.retentionMs = opts.retentionMs ?? stateLimits.retentionMsDefault;
    this.maxRemovedTargets = opts.maxRemovedTargets ?? stateLimits.maxRemovedTargetsDefault;
    this.maxReapedObservers = opts.maxReapedObservers ?? stateLimits.maxReapedObserversDefault;
    this.maxRegistersPerTarget = opts.maxRegistersPerTarget ?? stateLimits.maxRegistersPerTarget;
    assert(this.maxRegistersPerTarget >= 1, "maxRegistersPerTarget must be >= 1");
    this.evict = opts.evict;
    assert(
      this.retentionMs >= 0 && this.maxRemovedTargets >= 0 && this.maxReapedObservers >= 0,
      "bad bounds",
    );
    this.ownCounter = start;
    this.bootFloor = start;
    this.names.set(this.self, this.self);
  }

  /** The last counter used by this node; persist it (or derive a boot epoch) for the next start. */
  get counter(): number {
    return this.ownCounter;
  }

  // ── writes ──

  /** Records this node's observation of a target; returns the delta to disseminate. */
  localWrite(targetId: string, value: V): ObservationDelta<V> {
    assert(targetId.length > 0 && targetId.length <= stateLimits.maxIdChars, "target id must be a valid id");
    assert(this.ownCounter < Number.MAX_SAFE_INTEGER, "observation counter exhausted");
    const counter = ++this.ownCounter;
    let entry = this.entries.get(targetId);
    if (entry === undefined) {
      entry = { targetId, slots: [], hidden: false };
      this.entries.set(targetId, entry);
    }
    const slot = findSlot(entry, this.self);
    if (slot === undefined) this.addSlot(entry, this.self, counter, value);
    else {
      slot.counter = counter;
      slot.value = value;
      this.raiseIndex(this.self, counter);
    }
    this.followCounter();
    return [{ targetId, observer: this.self, counter, value }];
  }

  /**
   * Merges a delta (gossip). Idempotent and order-insensitive. Returns the registers that
   * changed and are visible (not hidden by a removal).
   */
  applyDelta(delta: ObservationDelta<V>): Register<V>[] {
    const changed: Register<V>[] = [];
    for (const r of delta) this.mergeOne(r, changed);
    return changed;
  }

  // ── anti-entropy ──

  /** A copy of the version vector, to send with an anti-entropy request. */
  vector(): VersionVector {
    return new Map(this.vv);
  }

  vectorEntries(): [string, number][] {
    return vvToEntries(this.vv);
  }

  /**
   * The answer to a peer's request: registers whose counter exceeds the peer's entry for
   * their observer, in canonical order, after `after` when paging, cut to the budget, plus
   * our vector. Hidden registers of removed targets are included; reaped observers' are gone.
   */
  missingFor(
    peerVector: ReadonlyVersionVector,
    budget: ExchangeBudget,
    after?: ExchangeCursor,
  ): ExchangeReply<V> {
    assert(budget.maxRegisters >= 1, "an exchange must be able to carry one register");
    // Observers whose registers all lie at or below the floor (the peer's entry, or the
    // cursor) have nothing to send: skipped on their index alone. Only observers in canonical
    // order up to the page's end are visited register by register.
    const observers: string[] = [];
    for (const [o, index] of this.byObserver) {
      if (index.maxCounter <= floorFor(o, peerVector, after)) continue;
      observers.push(o);
    }
    observers.sort(compareStrings);
    const sizeOf = budget.sizeOf ?? defaultSizeOf;
    const out: Register<V>[] = [];
    let bytes = 0;
    let complete = true;
    const pending: Slot<V>[] = [];
    outer: for (const o of observers) {
      const index = this.byObserver.get(o)!;
      const floor = floorFor(o, peerVector, after);
      pending.length = 0;
      let max = 0;
      for (const slot of index.slots) {
        if (slot.counter > max) max = slot.counter;
        if (slot.counter > floor) pending.push(slot);
      }
      // Every slot was visited: tighten the bound a forgotten target may have left high.
      index.maxCounter = max;
      pending.sort(byCounterThenTarget);
      for (const p of pending) {
        const r: Register<V> = { targetId: p.targetId, observer: o, counter: p.counter, value: p.value };
        const size = sizeOf(r);
        if (out.length > 0 && (out.length >= budget.maxRegisters || bytes + size > budget.maxBytes)) {
          complete = false;
          break outer;
        }
        out.push(r);
        bytes += size;
      }
    }
    const vector = vvToEntries(this.vv).filter(([o]) => !this.reaped.has(o));
    return { registers: out, vector, complete };
  }

  /**
   * Merges a peer's anti-entropy reply to a request made with our vector and, when paging,
   * the cursor `after`. Raises our vector only as far as the reply provably covers (see the
   * header). Returns the visible registers that changed.
   */
  mergeExchange(
    registers: readonly Register<V>[],
    peerVector: VectorEntries | ReadonlyVersionVector,
    complete: boolean,
    after?: ExchangeCursor,
  ): Register<V>[] {
    const changed: Register<V>[] = [];
    for (const r of registers) this.mergeOne(r, changed);
    const ordered =
      isCanonical(registers) &&
      (after === undefined ||
        registers.length === 0 ||
        isAfter(registers[0]!.observer, registers[0]!.counter, after));
    if (ordered && (complete || registers.length > 0)) {
      const last = complete ? undefined : registers[registers.length - 1]!;
      const entries: Iterable<readonly [string, number]> =
        peerVector instanceof Map ? peerVector.entries() : peerVector;
      for (const [o, c] of entries) {
        if (after !== undefined) {
          // Observers before the cursor were settled by earlier pages. The cursor's own
          // observer is spanned by this page only if our vector already reaches the cursor.
          if (o < after.observer) continue;
          if (o === after.observer && (this.vv.get(o) ?? 0) < after.counter) continue;
        }
        if (last === undefined || o < last.observer) this.raise(o, c);
        else if (o === last.observer) this.raise(o, Math.min(c, last.counter));
      }
    }
    this.followCounter();
    return changed;
  }

  /** The cursor for the next page after `reply`, or undefined when the session is done. */
  static nextCursor<V>(reply: ExchangeReply<V>): ExchangeCursor | undefined {
    if (reply.complete || reply.registers.length === 0) return undefined;
    const last = reply.registers[reply.registers.length - 1]!;
    return { observer: last.observer, counter: last.counter };
  }

  // ── removal, reaping, gc ──

  /**
   * Hides a target's registers; later deltas for it are kept hidden. Returns the registers
   * that stopped being visible.
   */
  removeTarget(targetId: string, nowMs: number): Register<V>[] {
    assert(Number.isFinite(nowMs), "nowMs must be finite");
    let entry = this.entries.get(targetId);
    if (entry === undefined) {
      entry = { targetId, slots: [], hidden: false };
      this.entries.set(targetId, entry);
    }
    const hidden = entry.hidden ? [] : this.visibleOf(targetId, entry);
    entry.hidden = true;
    this.removed.delete(targetId);
    this.removed.set(targetId, nowMs);
    while (this.removed.size > this.maxRemovedTargets) {
      const oldest = this.removed.keys().next().value!;
      this.forgetTarget(oldest);
    }
    return hidden;
  }

  /** Makes a removed target visible again (it is back in a pool); returns what reappeared. */
  restoreTarget(targetId: string): Register<V>[] {
    const entry = this.entries.get(targetId);
    if (entry === undefined || !entry.hidden) return [];
    entry.hidden = false;
    this.removed.delete(targetId);
    if (entry.slots.length === 0) {
      this.entries.delete(targetId);
      return [];
    }
    return this.visibleOf(targetId, entry);
  }

  isRemoved(targetId: string): boolean {
    return this.removed.has(targetId);
  }

  /**
   * Drops every register of an observer that has been dead past the reap time, and refuses
   * its deltas until the marker expires or it is admitted again. Returns the visible
   * registers dropped.
   */
  reapObserver(name: string, nowMs: number): Register<V>[] {
    assert(name !== this.self, "a node does not reap itself");
    assert(Number.isFinite(nowMs), "nowMs must be finite");
    if (this.reaped.has(name)) return [];
    const dropped: Register<V>[] = [];
    for (const [targetId, entry] of this.entries) {
      const i = entry.slots.findIndex((s) => s.observer === name);
      if (i < 0) continue;
      const s = entry.slots[i]!;
      if (!entry.hidden) dropped.push({ targetId, observer: name, counter: s.counter, value: s.value });
      entry.slots.splice(i, 1);
      if (entry.slots.length === 0 && !entry.hidden) this.entries.delete(targetId);
    }
    this.byObserver.delete(name);
    this.reaped.set(name, nowMs);
    while (this.reaped.size > this.maxReapedObservers) this.forgetObserver(this.reaped.keys().next().value!);
    return dropped;
  }

  /**
   * An observer reaped earlier is alive again: accept its deltas, and forget its vector entry
   * so anti-entropy fetches whatever of it survives on other nodes.
   */
  admitObserver(name: string): void {
    if (!this.reaped.delete(name)) return;
    this.vv.delete(name);
  }

  isReaped(name: string): boolean {
    return this.reaped.has(name);
  }

  /** Forgets removed targets and reaped observers older than the retention. */
  gc(nowMs: number): { targets: number; observers: number } {
    let targets = 0;
    let observers = 0;
    for (const [id, at] of this.removed) {
      if (at + this.retentionMs > nowMs) break;
      this.forgetTarget(id);
      targets++;
    }
    for (const [o, at] of this.reaped) {
      if (at + this.retentionMs > nowMs) break;
      this.forgetObserver(o);
      observers++;
    }
    return { targets, observers };
  }

  /**
   * Gives up on own registers from before this boot that no peer has shown us: V[self]
   * follows the counter from now on. For the shell to call once push-pull has reached the
   * cluster (or after a time bound); until then peers keep re-sending our newer registers.
   */
  closeBootGap(): void {
    this.bootFloor = 0;
    this.followCounter();
  }

  // ── reads (visible registers only) ──

  get(targetId: string, observer: string): Register<V> | undefined {
    const entry = this.entries.get(targetId);
    if (entry === undefined || entry.hidden) return undefined;
    const s = findSlot(entry, observer);
    return s === undefined ? undefined : { targetId, observer, counter: s.counter, value: s.value };
  }

  /** The visible registers of one target, in no particular order. */
  observationsOf(targetId: string): Register<V>[] {
    const entry = this.entries.get(targetId);
    if (entry === undefined || entry.hidden) return [];
    return this.visibleOf(targetId, entry);
  }

  *registers(): IterableIterator<Register<V>> {
    for (const [targetId, entry] of this.entries) {
      if (entry.hidden) continue;
      for (const s of entry.slots)
        yield { targetId, observer: s.observer, counter: s.counter, value: s.value };
    }
  }

  stats(): ObservationStats {
    let targets = 0;
    let registers = 0;
    let hiddenRegisters = 0;
    for (const entry of this.entries.values()) {
      if (!entry.hidden) {
        targets++;
        registers += entry.slots.length;
      } else {
        hiddenRegisters += entry.slots.length;
      }
    }
    return {
      targets,
      registers,
      removedTargets: this.removed.size,
      hiddenRegisters,
      reapedObservers: this.reaped.size,
      droppedOverLimit: this.droppedOverLimit,
    };
  }

  /** Everything held (hidden registers too) in canonical order, with the vector: for tests. */
  snapshot(): { vector: [string, number][]; registers: Register<V>[] } {
    const registers: Register<V>[] = [];
    for (const [targetId, entry] of this.entries) {
      for (const s of entry.slots)
        registers.push({ targetId, observer: s.observer, counter: s.counter, value: s.value });
    }
    registers.sort((a, b) => compareStrings(a.observer, b.observer) || a.counter - b.counter);
    return { vector: vvToEntries(this.vv), registers };
  }

  // ── internals ──

  private mergeOne(r: Register<V>, changed: Register<V>[]): void {
    if (r.observer === this.self && r.counter > this.ownCounter) {
      // Our own write from before a restart whose counter we did not keep: never reuse it.
      this.ownCounter = r.counter;
      this.bootFloor = Math.max(this.bootFloor, r.counter);
    }
    if (this.reaped.has(r.observer)) return;
    let entry = this.entries.get(r.targetId);
    const slot = entry === undefined ? undefined : findSlot(entry, r.observer);
    if (entry !== undefined && slot !== undefined) {
      if (r.counter <= slot.counter) return;
      slot.counter = r.counter;
      slot.value = r.value;
      this.raiseIndex(slot.observer, r.counter);
    } else {
      if (entry === undefined) {
        entry = { targetId: r.targetId, slots: [], hidden: false };
        this.entries.set(r.targetId, entry);
      } else if (entry.slots.length >= this.maxRegistersPerTarget) {
        this.droppedOverLimit++;
        if (!this.evictFor(entry, r)) return;
      }
      this.addSlot(entry, this.intern(r.observer), r.counter, r.value);
    }
    if (!entry.hidden) changed.push(r);
  }

  /**
   * A full target and a register from a new observer: asks `evict` which gives way. Returns
   * whether the incoming register may take a slot (another observer's was dropped for it).
   * Our own register never gives way. The dropped register is not fetched again by
   * anti-entropy once our vector covers it; a newer write by its observer is a new arrival.
   */
  private evictFor(entry: Entry<V>, incoming: Register<V>): boolean {
    if (this.evict === undefined) return false;
    const held = entry.slots
      .filter((s) => s.observer !== this.self)
      .map((s) => ({ targetId: entry.targetId, observer: s.observer, counter: s.counter, value: s.value }));
    const victim = this.evict(entry.targetId, held, incoming);
    const i = entry.slots.findIndex((s) => s.observer === victim && s.observer !== this.self);
    if (victim === incoming.observer || i < 0) return false;
    this.dropSlots({ targetId: entry.targetId, slots: [entry.slots[i]!], hidden: entry.hidden });
    entry.slots.splice(i, 1);
    return true;
  }

  private addSlot(entry: Entry<V>, observer: string, counter: number, value: V): void {
    let index = this.byObserver.get(observer);
    if (index === undefined) {
      index = { maxCounter: 0, slots: [] };
      this.byObserver.set(observer, index);
    }
    const slot: Slot<V> = { observer, targetId: entry.targetId, counter, value, pos: index.slots.length };
    entry.slots.push(slot);
    index.slots.push(slot);
    if (counter > index.maxCounter) index.maxCounter = counter;
  }

  private raiseIndex(observer: string, counter: number): void {
    const index = this.byObserver.get(observer)!;
    if (counter > index.maxCounter) index.maxCounter = counter;
  }

  /** Takes an entry's slots out of the observer index (the entry is being deleted). */
  private dropSlots(entry: Entry<V>): void {
    for (const s of entry.slots) {
      const index = this.byObserver.get(s.observer)!;
      const last = index.slots.pop()!;
      if (last !== s) {
        index.slots[s.pos] = last;
        last.pos = s.pos;
      }
      if (index.slots.length === 0) this.byObserver.delete(s.observer);
    }
  }

  private raise(o: string, c: number): void {
    if (this.reaped.has(o)) return;
    if (o === this.self && c > this.ownCounter) {
      this.ownCounter = c;
      this.bootFloor = Math.max(this.bootFloor, c);
    }
    if (c > (this.vv.get(o) ?? 0)) this.vv.set(this.intern(o), c);
  }

  private followCounter(): void {
    if (this.ownCounter > 0 && (this.vv.get(this.self) ?? 0) >= this.bootFloor) {
      this.vv.set(this.self, this.ownCounter);
    }
  }

  private intern(name: string): string {
    const known = this.names.get(name);
    if (known !== undefined) return known;
    this.names.set(name, name);
    return name;
  }

  private visibleOf(targetId: string, entry: Entry<V>): Register<V>[] {
    return entry.slots.map((s) => ({ targetId, observer: s.observer, counter: s.counter, value: s.value }));
  }

  private forgetObserver(name: string): void {
    this.reaped.delete(name);
    this.vv.delete(name);
    this.names.delete(name);
  }

  private forgetTarget(targetId: string): void {
    this.removed.delete(targetId);
    const entry = this.entries.get(targetId);
    if (entry?.hidden) {
      this.dropSlots(entry);
      this.entries.delete(targetId);
    }
  }
}

function findSlot<V>(entry: Entry<V>, observer: string): Slot<V> | undefined {
  for (const s of entry.slots) if (s.observer === observer) return s;
  return undefined;
}

/** The counter at or below which a peer lacks nothing of `observer`; +∞ for one before the cursor. */
function floorFor(
  observer: string,
  peerVector: ReadonlyVersionVector,
  after: ExchangeCursor | undefined,
): number {
  const entry = peerVector.get(observer) ?? 0;
  if (after === undefined || observer > after.observer) return entry;
  if (observer < after.observer) return Number.POSITIVE_INFINITY;
  return Math.max(entry, after.counter);
}

/**
 * Canonical order within one observer. Its counter is unique across its registers (one
 * counter per observer, never reused across restarts), so the target id only settles order
 * between forged duplicates, deterministically.
 */
function byCounterThenTarget(
  a: { targetId: string; counter: number },
  b: { targetId: string; counter: number },
): number {
  return a.counter - b.counter || compareStrings(a.targetId, b.targetId);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** (observer, counter) comes strictly after the cursor in canonical order. */
function isAfter(observer: string, counter: number, after: ExchangeCursor): boolean {
  return observer > after.observer || (observer === after.observer && counter > after.counter);
}

/** Sorted by observer then counter, strictly: the order missingFor produces. */
function isCanonical<V>(registers: readonly Register<V>[]): boolean {
  for (let i = 1; i < registers.length; i++) {
    const a = registers[i - 1]!;
    const b = registers[i]!;
    if (a.observer > b.observer || (a.observer === b.observer && a.counter >= b.counter)) return false;
  }
  return true;
}
