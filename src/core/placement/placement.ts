// Incremental weighted rendezvous placement: which members own which targets.
//
// Each target keeps a short ranked candidate list: a prefix of its placement order
// (reference.ts) holding up to k + margin members, with their scores. The owners are the
// list's first k entries. A join scores every target once for the newcomer and splices it in
// where it ranks inside the list; a leave removes the leaver from the lists that hold it and
// rescans all members for a target only when its list falls below k entries while more
// members exist. Nothing here ever recomputes targets × members.
//
// A leave finds the leaver's entries by a linear scan of the arena (a few integer compares
// per target, stopping once all its entries are found) rather than through a per-member
// index, which would cost more memory than the lists themselves at a million targets.
//
// With spread "zone" the order is: each zone's best member (its leader) by score, then
// everyone else by score. A list stays a prefix of that order through joins and leaves; when
// a leader leaves and its zone's next member is not in the list, only that zone is scored.
//
// Memory is kept flat for the million-target case: per target a handful of typed-array slots
// and its list in a shared arena (member slot and score per entry), no per-target objects.

import type { Spread } from "../../config/types.ts";
import { assert } from "../assert.ts";
import { limits } from "../limits.ts";
import { hashNodeName, hashTargetId, pairUnit } from "./hash.ts";
import type { PlacementMember } from "./reference.ts";

export type { PlacementMember } from "./reference.ts";

export const placementLimits = {
  /** Extra candidates kept past k so a leave rarely needs a rescan. */
  candidateMarginDefault: 2,
  candidateMarginMax: 16,
  /** Owners per target; the pool's `observers`. */
  ownersMax: limits.observersMax,
  /** Longest member name or target id accepted. */
  maxNameChars: 1024,
} as const;

export interface PlacementTarget {
  readonly id: string;
  /** How many owners the target wants (the pool's `observers`). */
  readonly k: number;
  readonly spread: Spread;
}

/** One target whose owners changed through a mutation. */
export interface OwnerChange {
  readonly targetId: string;
  readonly before: readonly string[];
  readonly after: readonly string[];
}

export interface PlacementOptions {
  /** Candidates kept beyond k per target; default 2. */
  candidateMargin?: number;
}

const SPREAD_NONE = 0;
const SPREAD_ZONE = 1;

// A skip test that avoids Math.log: since -ln h ≥ 1 - h, score = w / -ln h ≤ w / (1 - h). When
// that bound is clearly below the list's last score, the exact score would lose too. The
// margin dwarfs the few ulps of rounding, so the test never disagrees with the exact path.
const BOUND_MARGIN = 1 - 1e-9;

/** Collects per-target changes over a multi-step mutation, keeping the first before and last after. */
class ChangeLog {
  private readonly byTarget = new Map<string, { before: readonly string[]; after: readonly string[] }>();

  record(targetId: string, before: readonly string[], after: readonly string[]): void {
    const seen = this.byTarget.get(targetId);
    if (seen === undefined) this.byTarget.set(targetId, { before, after });
    else seen.after = after;
  }

  result(): OwnerChange[] {
    const out: OwnerChange[] = [];
    for (const [targetId, c] of this.byTarget) {
      if (!sameNames(c.before, c.after)) out.push({ targetId, before: c.before, after: c.after });
    }
    return out;
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function growU32(a: Uint32Array, n: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
function growI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}
function growU8(a: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
function growF64(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}

export class Placement {
  private readonly margin: number;

  // ── members, by slot ──
  private mName: string[] = [];
  private mWeight = new Float64Array(16);
  private mZone = new Int32Array(16);
  private mHi = new Uint32Array(16);
  private mLo = new Uint32Array(16);
  /** Candidate-list entries that name this member: lets a leave stop scanning early. */
  private mEntries = new Int32Array(16);
  private readonly memberSlot = new Map<string, number>();
  private readonly freeMemberSlots: number[] = [];
  /** Active member slots, dense, for scoring loops; `mPos` is each slot's index here. */
  private active: number[] = [];
  private mPos = new Int32Array(16);

  // ── zones, interned and reference-counted ──
  private readonly zoneIds = new Map<string, number>();
  private zoneRefs: number[] = [];
  private zoneNames: string[] = [];
  private readonly freeZoneIds: number[] = [];
  private zoneStamp = new Int32Array(16);
  private stamp = 0;
  /** Active members of each zone; `mZonePos` is each member's index in its zone's list. */
  private zoneMembers: number[][] = [];
  private mZonePos = new Int32Array(16);
  /** Rescan scratch: each zone's best member and its score, and every member's score. */
  private zBestMem = new Int32Array(16);
  private zBestScore = new Float64Array(16);
  private rScore = new Float64Array(16);

  // ── targets, by slot ──
  private tId: string[] = [];
  private tHi = new Uint32Array(1024);
  private tLo = new Uint32Array(1024);
  private tK = new Uint8Array(1024);
  private tSpread = new Uint8Array(1024);
  private tLen = new Uint8Array(1024);
  private tCap = new Uint8Array(1024);
  private tOff = new Uint32Array(1024);
  private tUsed = new Uint8Array(1024);
  private readonly targetSlot = new Map<string, number>();
  private readonly freeTargetSlots: number[] = [];
  private targetHigh = 0;

  // ── candidate arena: entry i of target t is at tOff[t] + i ──
  private cMem = new Int32Array(4096);
  private cScore = new Float64Array(4096);
  private arenaTop = 0;
  private readonly freeRuns = new Map<number, number[]>();

  // ── scratch for reordering one list (sized for the largest cap) ──
  private readonly sMem: Int32Array;
  private readonly sScore: Float64Array;
  private readonly sMem2: Int32Array;
  private readonly sScore2: Float64Array;
  private readonly ownersBefore: Int32Array;

  constructor(opts: PlacementOptions = {}) {
    const margin = opts.candidateMargin ?? placementLimits.candidateMarginDefault;
    assert(
      Number.isInteger(margin) && margin >= 0 && margin <= placementLimits.candidateMarginMax,
      `candidateMargin must be an integer in [0, ${placementLimits.candidateMarginMax}]`,
    );
    this.margin = margin;
    const capMax = placementLimits.ownersMax + margin + 1;
    this.sMem = new Int32Array(capMax);
    this.sScore = new Float64Array(capMax);
    this.sMem2 = new Int32Array(capMax);
    this.sScore2 = new Float64Array(capMax);
    this.ownersBefore = new Int32Array(capMax);
  }

  get memberCount(): number {
    return this.active.length;
  }

  get targetCount(): number {
    return this.targetSlot.size;
  }

  hasMember(name: string): boolean {
    return this.memberSlot.has(name);
  }

  hasTarget(id: string): boolean {
    return this.targetSlot.has(id);
  }

  /** The members as given, in no particular order. */
  members(): PlacementMember[] {
    return this.active.map((m) => ({
      name: this.mName[m]!,
      weight: this.mWeight[m]!,
      zone: this.zoneName(m),
    }));
  }

  /** The owners of a target, best first; empty for an unknown target. A fresh array each call:
   * the caller may keep it. */
  owners(targetId: string): string[] {
    const t = this.targetSlot.get(targetId);
    return t === undefined ? [] : this.ownerNames(t);
  }

  isOwner(targetId: string, node: string): boolean {
    const t = this.targetSlot.get(targetId);
    const m = this.memberSlot.get(node);
    if (t === undefined || m === undefined) return false;
    const off = this.tOff[t]!;
    const n = Math.min(this.tK[t]!, this.tLen[t]!);
    for (let i = 0; i < n; i++) if (this.cMem[off + i] === m) return true;
    return false;
  }

  /** Targets owned by `node`; a scan over all targets' owner slots, run lazily. */
  *ownedBy(node: string): Iterable<string> {
    const m = this.memberSlot.get(node);
    if (m === undefined) return;
    for (let t = 0; t < this.targetHigh; t++) {
      if (this.tUsed[t] === 0) continue;
      const off = this.tOff[t]!;
      const n = Math.min(this.tK[t]!, this.tLen[t]!);
      for (let i = 0; i < n; i++) {
        if (this.cMem[off + i] === m) {
          yield this.tId[t]!;
          break;
        }
      }
    }
  }

  // ── members ──

  /**
   * Adds a member, or updates one whose weight or zone changed (a leave then a join, with
   * the changes merged). Scores every target once for it.
   */
  addMember(member: PlacementMember): OwnerChange[] {
    checkMember(member);
    const existing = this.memberSlot.get(member.name);
    if (existing !== undefined) {
      if (this.mWeight[existing] === member.weight && this.zoneName(existing) === member.zone) return [];
      const log = new ChangeLog();
      this.leave(existing, log);
      this.join(member, log);
      return log.result();
    }
    const log = new ChangeLog();
    this.join(member, log);
    return log.result();
  }

  /** Removes a member; only the targets it owned change owners. */
  removeMember(name: string): OwnerChange[] {
    const m = this.memberSlot.get(name);
    if (m === undefined) return [];
    const log = new ChangeLog();
    this.leave(m, log);
    return log.result();
  }

  /** Makes the member set equal to `members` (alive + suspect), with one merged change list. */
  syncMembers(members: Iterable<PlacementMember>): OwnerChange[] {
    const wanted = new Map<string, PlacementMember>();
    for (const m of members) {
      checkMember(m);
      wanted.set(m.name, m);
    }
    const log = new ChangeLog();
    for (const name of [...this.memberSlot.keys()]) {
      const want = wanted.get(name);
      const m = this.memberSlot.get(name)!;
      if (want === undefined || want.weight !== this.mWeight[m] || want.zone !== this.zoneName(m)) {
        this.leave(m, log);
      }
    }
    for (const m of wanted.values()) {
      if (!this.memberSlot.has(m.name)) this.join(m, log);
    }
    return log.result();
  }

  // ── targets ──

  /** Adds a target (or changes its k / spread); scores every member once for it. */
  addTarget(target: PlacementTarget): OwnerChange[] {
    checkTarget(target);
    const spread = target.spread === "zone" ? SPREAD_ZONE : SPREAD_NONE;
    let t = this.targetSlot.get(target.id);
    let before: readonly string[] = [];
    if (t !== undefined) {
      if (this.tK[t] === target.k && this.tSpread[t] === spread) return [];
      before = this.ownerNames(t);
      this.releaseList(t);
    } else {
      t = this.allocTargetSlot(target.id);
      const h = hashTargetId(target.id);
      this.tHi[t] = h.hi;
      this.tLo[t] = h.lo;
    }
    this.tK[t] = target.k;
    this.tSpread[t] = spread;
    const cap = target.k + this.margin;
    this.tCap[t] = cap;
    this.tOff[t] = this.allocRun(cap);
    this.tLen[t] = 0;
    this.rescan(t);
    const after = this.ownerNames(t);
    return sameNames(before, after) ? [] : [{ targetId: target.id, before, after }];
  }

  removeTarget(id: string): OwnerChange[] {
    const t = this.targetSlot.get(id);
    if (t === undefined) return [];
    const before = this.ownerNames(t);
    this.releaseList(t);
    this.targetSlot.delete(id);
    this.tUsed[t] = 0;
    this.tId[t] = "";
    this.freeTargetSlots.push(t);
    return before.length === 0 ? [] : [{ targetId: id, before, after: [] }];
  }

  // ── internals: members ──

  private zoneName(m: number): string {
    return this.zoneNames[this.mZone[m]!]!;
  }

  private internZone(zone: string): number {
    let id = this.zoneIds.get(zone);
    if (id === undefined) {
      id = this.freeZoneIds.pop() ?? this.zoneRefs.length;
      this.zoneIds.set(zone, id);
      this.zoneRefs[id] = 0;
      this.zoneNames[id] = zone;
      this.zoneMembers[id] = [];
      if (id >= this.zoneStamp.length) {
        const n = this.zoneStamp.length * 2;
        this.zoneStamp = growI32(this.zoneStamp, n);
        this.zBestMem = growI32(this.zBestMem, n);
        this.zBestScore = growF64(this.zBestScore, n);
      }
    }
    this.zoneRefs[id]! += 1;
    return id;
  }

  private releaseZone(id: number): void {
    this.zoneRefs[id]! -= 1;
    if (this.zoneRefs[id] === 0) {
      this.zoneIds.delete(this.zoneNames[id]!);
      this.zoneNames[id] = "";
      this.freeZoneIds.push(id);
    }
  }

  private allocMemberSlot(member: PlacementMember): number {
    let m = this.freeMemberSlots.pop();
    if (m === undefined) {
      m = this.mName.length;
      this.mName.push("");
      if (m >= this.mWeight.length) {
        const n = this.mWeight.length * 2;
        this.mWeight = growF64(this.mWeight, n);
        this.mZone = growI32(this.mZone, n);
        this.mHi = growU32(this.mHi, n);
        this.mLo = growU32(this.mLo, n);
        this.mEntries = growI32(this.mEntries, n);
        this.mPos = growI32(this.mPos, n);
        this.mZonePos = growI32(this.mZonePos, n);
        this.rScore = growF64(this.rScore, n);
      }
    }
    const h = hashNodeName(member.name);
    this.mName[m] = member.name;
    this.mWeight[m] = member.weight;
    this.mZone[m] = this.internZone(member.zone);
    this.mHi[m] = h.hi;
    this.mLo[m] = h.lo;
    this.mEntries[m] = 0;
    this.memberSlot.set(member.name, m);
    return m;
  }

  private join(member: PlacementMember, log: ChangeLog): void {
    const countBefore = this.active.length;
    const m = this.allocMemberSlot(member);
    const w = member.weight;
    const mHi = this.mHi[m]!;
    const mLo = this.mLo[m]!;
    const zone = this.mZone[m]!;
    // The hot loop of a join: one pair hash per target, typed arrays in locals (nothing in
    // the loop reallocates them), and Math.log only for targets the skip test cannot rule out.
    const { tUsed, tHi, tLo, tLen, tCap, tOff, tSpread, cScore } = this;
    const high = this.targetHigh;
    for (let t = 0; t < high; t++) {
      if (tUsed[t] === 0) continue;
      const len = tLen[t]!;
      const h = pairUnit(mHi, mLo, tHi[t]!, tLo[t]!);
      if (tSpread[t] === SPREAD_NONE) {
        // Zone lists get no skip test: a newcomer from a new zone ranks among the leaders
        // whatever its score.
        if (len === tCap[t] && w < cScore[tOff[t]! + len - 1]! * BOUND_MARGIN * (1 - h)) continue;
        this.joinRanked(t, m, -w / Math.log(h), len === countBefore, log);
      } else {
        if (len === tCap[t] && len !== countBefore) {
          const below = this.zoneSkipBelow(t, zone);
          if (w < below * BOUND_MARGIN * (1 - h)) continue;
        }
        this.joinZoned(t, m, -w / Math.log(h), len === countBefore, log);
      }
    }
    this.mPos[m] = this.active.length;
    this.active.push(m);
    const members = this.zoneMembers[zone]!;
    this.mZonePos[m] = members.length;
    members.push(m);
  }

  /**
   * For a full zone-spread list that is not the whole membership: the score a newcomer of
   * `zone` must reach to change it. Below its zone's leader and the list's end, it is a
   * non-leader past the known prefix; in a list that ends inside the leaders, it must pass
   * the end. A newcomer whose zone is absent from a list holding every leader starts a new
   * zone and always counts (-Infinity).
   */
  private zoneSkipBelow(t: number, zone: number): number {
    const off = this.tOff[t]!;
    const len = this.tLen[t]!;
    const last = this.cScore[off + len - 1]!;
    const stamp = this.nextStamps(1);
    let hasRest = false;
    for (let i = 0; i < len; i++) {
      const z = this.mZone[this.cMem[off + i]!]!;
      if (this.zoneStamp[z] === stamp) {
        hasRest = true;
        break;
      }
      this.zoneStamp[z] = stamp;
      if (z === zone) return Math.min(this.cScore[off + i]!, last);
    }
    return hasRest ? Number.NEGATIVE_INFINITY : last;
  }

  private leave(m: number, log: ChangeLog): void {
    const countBefore = this.active.length;
    // Out of the active set first, so rescans below no longer see the leaver.
    const pos = this.mPos[m]!;
    const last = this.active.pop()!;
    if (last !== m) {
      this.active[pos] = last;
      this.mPos[last] = pos;
    }
    const zoneList = this.zoneMembers[this.mZone[m]!]!;
    const zpos = this.mZonePos[m]!;
    const zlast = zoneList.pop()!;
    if (zlast !== m) {
      zoneList[zpos] = zlast;
      this.mZonePos[zlast] = zpos;
    }
    let remaining = this.mEntries[m]!;
    const { tUsed, tOff, tLen, cMem } = this;
    const high = this.targetHigh;
    for (let t = 0; t < high && remaining > 0; t++) {
      if (tUsed[t] === 0) continue;
      const off = tOff[t]!;
      const len = tLen[t]!;
      let i = 0;
      while (i < len && cMem[off + i] !== m) i++;
      if (i === len) continue;
      remaining--;
      const k = this.tK[t]!;
      const wasOwner = i < k;
      const before = wasOwner ? this.ownerNames(t) : [];
      if (this.tSpread[t] === SPREAD_NONE) this.removeAt(t, i);
      else this.leaveZoned(t, i, countBefore);
      if (tLen[t]! < Math.min(k, countBefore - 1)) this.rescan(t);
      if (wasOwner) log.record(this.tId[t]!, before, this.ownerNames(t));
    }
    assert(remaining === 0, "candidate entry count out of step with the lists");
    this.memberSlot.delete(this.mName[m]!);
    this.releaseZone(this.mZone[m]!);
    this.mName[m] = "";
    this.freeMemberSlots.push(m);
  }

  // ── internals: lists ──

  /**
   * Fresh marks for zoneStamp, `n` consecutive values. Marks only need to differ from what is
   * stored, so when they would leave the int32 range the array is cleared and they restart.
   */
  private nextStamps(n: number): number {
    if (this.stamp + n >= 0x7fffffff) {
      this.zoneStamp.fill(0);
      this.stamp = 0;
    }
    const first = this.stamp + 1;
    this.stamp += n;
    return first;
  }

  /** a ranks before b: higher score, then smaller name. */
  private better(sa: number, ma: number, sb: number, mb: number): boolean {
    return sa > sb || (sa === sb && this.mName[ma]! < this.mName[mb]!);
  }

  private ownerNames(t: number): string[] {
    const off = this.tOff[t]!;
    const n = Math.min(this.tK[t]!, this.tLen[t]!);
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = this.mName[this.cMem[off + i]!]!;
    return out;
  }

  private removeAt(t: number, i: number): void {
    const off = this.tOff[t]!;
    const len = this.tLen[t]!;
    this.mEntries[this.cMem[off + i]!]! -= 1;
    for (let j = i; j < len - 1; j++) {
      this.cMem[off + j] = this.cMem[off + j + 1]!;
      this.cScore[off + j] = this.cScore[off + j + 1]!;
    }
    this.tLen[t] = len - 1;
  }

  private joinRanked(t: number, m: number, s: number, complete: boolean, log: ChangeLog): void {
    const off = this.tOff[t]!;
    const len = this.tLen[t]!;
    const cap = this.tCap[t]!;
    let i = len;
    while (i > 0 && this.better(s, m, this.cScore[off + i - 1]!, this.cMem[off + i - 1]!)) i--;
    // Past the end of a list that is not the whole membership: members we do not hold rank
    // between the list's last entry and the newcomer, so it cannot be placed.
    if (i === len && (len === cap || !complete)) return;
    const k = this.tK[t]!;
    const before = i < k ? this.ownerNames(t) : undefined;
    let n = len;
    if (len === cap) {
      this.mEntries[this.cMem[off + len - 1]!]! -= 1;
      n = len - 1;
    }
    for (let j = n; j > i; j--) {
      this.cMem[off + j] = this.cMem[off + j - 1]!;
      this.cScore[off + j] = this.cScore[off + j - 1]!;
    }
    this.cMem[off + i] = m;
    this.cScore[off + i] = s;
    this.mEntries[m]! += 1;
    this.tLen[t] = n + 1;
    if (before !== undefined) log.record(this.tId[t]!, before, this.ownerNames(t));
  }

  /**
   * Where the zone leaders end in target t's list: a prefix of the zone order holds leaders
   * first, so the first entry whose zone was already seen starts the rest.
   */
  private leaderEnd(t: number): number {
    const off = this.tOff[t]!;
    const len = this.tLen[t]!;
    const stamp = this.nextStamps(1);
    for (let i = 0; i < len; i++) {
      const z = this.mZone[this.cMem[off + i]!]!;
      if (this.zoneStamp[z] === stamp) return i;
      this.zoneStamp[z] = stamp;
    }
    return len;
  }

  /** Sorted insert into scratch (sMem, sScore)[0, n); returns the new length. */
  private scratchInsert(n: number, m: number, s: number): number {
    let i = n;
    while (i > 0 && this.better(s, m, this.sScore[i - 1]!, this.sMem[i - 1]!)) {
      this.sMem[i] = this.sMem[i - 1]!;
      this.sScore[i] = this.sScore[i - 1]!;
      i--;
    }
    this.sMem[i] = m;
    this.sScore[i] = s;
    return n + 1;
  }

  /**
   * Rebuilds target t's list as leaders (scratch sMem/sScore[0, nl)) followed by the rest
   * (sMem2/sScore2[0, nr)), cut to the list's capacity, and logs an owner change.
   */
  private writeZoned(t: number, nl: number, nr: number, log: ChangeLog | undefined): void {
    const off = this.tOff[t]!;
    const cap = this.tCap[t]!;
    const k = this.tK[t]!;
    const oldLen = this.tLen[t]!;
    const nBefore = Math.min(k, oldLen);
    for (let i = 0; i < nBefore; i++) this.ownersBefore[i] = this.cMem[off + i]!;
    for (let i = 0; i < oldLen; i++) this.mEntries[this.cMem[off + i]!]! -= 1;
    let len = 0;
    for (let i = 0; i < nl && len < cap; i++, len++) {
      this.cMem[off + len] = this.sMem[i]!;
      this.cScore[off + len] = this.sScore[i]!;
    }
    for (let i = 0; i < nr && len < cap; i++, len++) {
      this.cMem[off + len] = this.sMem2[i]!;
      this.cScore[off + len] = this.sScore2[i]!;
    }
    for (let i = 0; i < len; i++) this.mEntries[this.cMem[off + i]!]! += 1;
    this.tLen[t] = len;
    if (log === undefined) return;
    const nAfter = Math.min(k, len);
    let same = nAfter === nBefore;
    for (let i = 0; same && i < nAfter; i++) same = this.ownersBefore[i] === this.cMem[off + i];
    if (same) return;
    const before = new Array<string>(nBefore);
    for (let i = 0; i < nBefore; i++) before[i] = this.mName[this.ownersBefore[i]!]!;
    log.record(this.tId[t]!, before, this.ownerNames(t));
  }

  /** Splits t's list into scratch: leaders to sMem/sScore, the rest to sMem2/sScore2. */
  private splitZoned(t: number, leaderEnd: number): void {
    const off = this.tOff[t]!;
    const len = this.tLen[t]!;
    for (let i = 0; i < leaderEnd; i++) {
      this.sMem[i] = this.cMem[off + i]!;
      this.sScore[i] = this.cScore[off + i]!;
    }
    for (let i = leaderEnd; i < len; i++) {
      this.sMem2[i - leaderEnd] = this.cMem[off + i]!;
      this.sScore2[i - leaderEnd] = this.cScore[off + i]!;
    }
  }

  /** Inserts into the rest section if it ranks inside the known prefix; returns the new length. */
  private restInsert(nr: number, m: number, s: number, restKnownToEnd: boolean): number {
    if (nr > 0 && !restKnownToEnd && !this.better(s, m, this.sScore2[nr - 1]!, this.sMem2[nr - 1]!))
      return nr;
    let i = nr;
    while (i > 0 && this.better(s, m, this.sScore2[i - 1]!, this.sMem2[i - 1]!)) {
      this.sMem2[i] = this.sMem2[i - 1]!;
      this.sScore2[i] = this.sScore2[i - 1]!;
      i--;
    }
    this.sMem2[i] = m;
    this.sScore2[i] = s;
    return nr + 1;
  }

  private removeScratch(n: number, i: number): number {
    for (let j = i; j < n - 1; j++) {
      this.sMem[j] = this.sMem[j + 1]!;
      this.sScore[j] = this.sScore[j + 1]!;
    }
    return n - 1;
  }

  // The list is a prefix of the zone order: leaders by score, then the rest by score. A
  // join or leave can move a member between the two sections; each case below keeps the list
  // a prefix of the new order, cutting it short where the next entry is not known.
  private joinZoned(t: number, y: number, s: number, complete: boolean, log: ChangeLog): void {
    const len = this.tLen[t]!;
    const le = this.leaderEnd(t);
    const hasRest = le < len;
    const allLeadersIn = hasRest || complete;
    const off = this.tOff[t]!;
    const z = this.mZone[y]!;
    let zl = -1;
    for (let i = 0; i < le; i++) {
      if (this.mZone[this.cMem[off + i]!] === z) {
        zl = i;
        break;
      }
    }
    this.splitZoned(t, le);
    let nl = le;
    let nr = len - le;
    if (zl >= 0) {
      const x = this.sMem[zl]!;
      const sx = this.sScore[zl]!;
      if (this.better(s, y, sx, x)) {
        // y takes over its zone; x joins the rest, if the rest is known that far.
        nl = this.removeScratch(nl, zl);
        nl = this.scratchInsert(nl, y, s);
        if (hasRest || complete) nr = this.restInsert(nr, x, sx, complete);
      } else if (hasRest || complete) {
        nr = this.restInsert(nr, y, s, complete);
      } else {
        return;
      }
    } else if (allLeadersIn) {
      // Every leader is in the list and none is in y's zone: y starts a new zone.
      nl = this.scratchInsert(nl, y, s);
    } else if (le > 0 && this.better(s, y, this.sScore[le - 1]!, this.sMem[le - 1]!)) {
      // The list ends inside the leaders; y outranks its end, so also its zone's old leader.
      nl = this.scratchInsert(nl, y, s);
    } else {
      return;
    }
    this.writeZoned(t, nl, nr, log);
  }

  private leaveZoned(t: number, i: number, countBefore: number): void {
    const len = this.tLen[t]!;
    const le = this.leaderEnd(t);
    if (i >= le) {
      this.removeAt(t, i);
      return;
    }
    const off = this.tOff[t]!;
    const z = this.mZone[this.cMem[off + i]!]!;
    this.splitZoned(t, le);
    let nl = this.removeScratch(le, i);
    let nr = len - le;
    let w = -1;
    for (let j = 0; j < nr; j++) {
      if (this.mZone[this.sMem2[j]!] === z) {
        w = j;
        break;
      }
    }
    if (w >= 0) {
      // The zone's next member was in the rest: it becomes the leader.
      const wm = this.sMem2[w]!;
      const ws = this.sScore2[w]!;
      for (let j = w; j < nr - 1; j++) {
        this.sMem2[j] = this.sMem2[j + 1]!;
        this.sScore2[j] = this.sScore2[j + 1]!;
      }
      nr--;
      nl = this.scratchInsert(nl, wm, ws);
    } else if (len !== countBefore) {
      // The zone's next member is not in the list: find it among the zone's members. With
      // every leader in the list it takes its place among them; in a list that ends inside
      // the leaders, only if it outranks the list's (new) end, since leaders outside the
      // list are only known to rank below the old end.
      const next = this.bestOfZone(t, z);
      if (next >= 0) {
        const ns = this.rScore[0]!;
        if (le < len || (nl > 0 && this.better(ns, next, this.sScore[nl - 1]!, this.sMem[nl - 1]!))) {
          nl = this.scratchInsert(nl, next, ns);
        }
      }
    }
    this.writeZoned(t, nl, nr, undefined);
  }

  /** The best active member of zone z for target t (-1 if none); its score in rScore[0]. */
  private bestOfZone(t: number, z: number): number {
    const tHi = this.tHi[t]!;
    const tLo = this.tLo[t]!;
    let best = -1;
    let bestScore = 0;
    for (const m of this.zoneMembers[z]!) {
      const s = -this.mWeight[m]! / Math.log(pairUnit(this.mHi[m]!, this.mLo[m]!, tHi, tLo));
      if (best < 0 || this.better(s, m, bestScore, best)) {
        best = m;
        bestScore = s;
      }
    }
    this.rScore[0] = bestScore;
    return best;
  }

  /** Recomputes target t's list from all active members. */
  private rescan(t: number): void {
    const off = this.tOff[t]!;
    for (let i = 0; i < this.tLen[t]!; i++) this.mEntries[this.cMem[off + i]!]! -= 1;
    this.tLen[t] = 0;
    const tHi = this.tHi[t]!;
    const tLo = this.tLo[t]!;
    if (this.tSpread[t] === SPREAD_NONE) {
      // The hot loop of a from-scratch placement: typed arrays in locals, and the skip test
      // as a multiplication against the list end's score.
      const cap = this.tCap[t]!;
      const active = this.active;
      const mHi = this.mHi;
      const mLo = this.mLo;
      const mWeight = this.mWeight;
      const cMem = this.cMem;
      const cScore = this.cScore;
      let len = 0;
      let skipBelow = Number.NEGATIVE_INFINITY;
      for (let a = 0; a < active.length; a++) {
        const m = active[a]!;
        const w = mWeight[m]!;
        const h = pairUnit(mHi[m]!, mLo[m]!, tHi, tLo);
        if (w < skipBelow * (1 - h)) continue;
        const s = -w / Math.log(h);
        let i = len;
        while (i > 0 && this.better(s, m, cScore[off + i - 1]!, cMem[off + i - 1]!)) i--;
        if (i === cap) continue;
        if (len < cap) len++;
        for (let j = len - 1; j > i; j--) {
          cMem[off + j] = cMem[off + j - 1]!;
          cScore[off + j] = cScore[off + j - 1]!;
        }
        cMem[off + i] = m;
        cScore[off + i] = s;
        if (len === cap) skipBelow = cScore[off + cap - 1]! * BOUND_MARGIN;
      }
      this.tLen[t] = len;
      for (let i = 0; i < len; i++) this.mEntries[cMem[off + i]!]! += 1;
      return;
    }
    // Zone spread: each zone's best are the leaders, the rest is the best of everyone else.
    // Every member gets its pair hash; the exact score (a Math.log) only when the skip test
    // cannot rule it out as its zone's best. rScore holds the exact score or NaN.
    const active = this.active;
    const rScore = this.rScore;
    const stamp = this.nextStamps(2);
    const taken = stamp + 1;
    const cap = this.tCap[t]!;
    let nl = 0;
    for (let a = 0; a < active.length; a++) {
      const m = active[a]!;
      const w = this.mWeight[m]!;
      const h = pairUnit(this.mHi[m]!, this.mLo[m]!, tHi, tLo);
      const z = this.mZone[m]!;
      const known = this.zoneStamp[z] === stamp;
      if (known && w < this.zBestScore[z]! * BOUND_MARGIN * (1 - h)) {
        rScore[a] = Number.NaN;
        continue;
      }
      const s = -w / Math.log(h);
      rScore[a] = s;
      if (!known) {
        this.zoneStamp[z] = stamp;
        this.zBestMem[z] = m;
        this.zBestScore[z] = s;
      } else if (this.better(s, m, this.zBestScore[z]!, this.zBestMem[z]!)) {
        this.zBestMem[z] = m;
        this.zBestScore[z] = s;
      }
    }
    // Leaders: insert each zone's best once (the stamp is cleared as it is taken).
    for (let a = 0; a < active.length; a++) {
      const z = this.mZone[active[a]!]!;
      if (this.zoneStamp[z] !== stamp) continue;
      this.zoneStamp[z] = taken;
      nl = this.boundedInsert(this.sMem, this.sScore, nl, cap, this.zBestMem[z]!, this.zBestScore[z]!);
    }
    let nr = 0;
    const restCap = cap - nl;
    for (let a = 0; restCap > 0 && a < active.length; a++) {
      const m = active[a]!;
      if (this.zBestMem[this.mZone[m]!] === m) continue;
      let s = rScore[a]!;
      if (Number.isNaN(s)) {
        const w = this.mWeight[m]!;
        const h = pairUnit(this.mHi[m]!, this.mLo[m]!, tHi, tLo);
        if (nr === restCap && w < this.sScore2[nr - 1]! * BOUND_MARGIN * (1 - h)) continue;
        s = -w / Math.log(h);
      }
      nr = this.boundedInsert(this.sMem2, this.sScore2, nr, restCap, m, s);
    }
    this.writeZoned(t, nl, nr, undefined);
  }

  /** Sorted insert keeping at most `cap` entries; returns the new length. */
  private boundedInsert(
    mem: Int32Array,
    score: Float64Array,
    n: number,
    cap: number,
    m: number,
    s: number,
  ): number {
    if (n === cap && !this.better(s, m, score[n - 1]!, mem[n - 1]!)) return n;
    let i = n === cap ? n - 1 : n;
    while (i > 0 && this.better(s, m, score[i - 1]!, mem[i - 1]!)) {
      mem[i] = mem[i - 1]!;
      score[i] = score[i - 1]!;
      i--;
    }
    mem[i] = m;
    score[i] = s;
    return n === cap ? n : n + 1;
  }

  // ── internals: target slots and the arena ──

  private allocTargetSlot(id: string): number {
    let t = this.freeTargetSlots.pop();
    if (t === undefined) {
      t = this.targetHigh++;
      if (t >= this.tHi.length) {
        const n = this.tHi.length * 2;
        this.tHi = growU32(this.tHi, n);
        this.tLo = growU32(this.tLo, n);
        this.tK = growU8(this.tK, n);
        this.tSpread = growU8(this.tSpread, n);
        this.tLen = growU8(this.tLen, n);
        this.tCap = growU8(this.tCap, n);
        this.tOff = growU32(this.tOff, n);
        this.tUsed = growU8(this.tUsed, n);
      }
    }
    this.tId[t] = id;
    this.tUsed[t] = 1;
    this.tLen[t] = 0;
    this.targetSlot.set(id, t);
    return t;
  }

  private allocRun(cap: number): number {
    const free = this.freeRuns.get(cap);
    const reused = free?.pop();
    if (reused !== undefined) return reused;
    const off = this.arenaTop;
    this.arenaTop += cap;
    if (this.arenaTop > this.cMem.length) {
      let n = this.cMem.length * 2;
      while (n < this.arenaTop) n *= 2;
      this.cMem = growI32(this.cMem, n);
      this.cScore = growF64(this.cScore, n);
    }
    return off;
  }

  private releaseList(t: number): void {
    const off = this.tOff[t]!;
    for (let i = 0; i < this.tLen[t]!; i++) this.mEntries[this.cMem[off + i]!]! -= 1;
    this.tLen[t] = 0;
    const cap = this.tCap[t]!;
    let free = this.freeRuns.get(cap);
    if (free === undefined) {
      free = [];
      this.freeRuns.set(cap, free);
    }
    free.push(off);
  }
}

function checkMember(m: PlacementMember): void {
  assert(
    typeof m.name === "string" && m.name.length > 0 && m.name.length <= placementLimits.maxNameChars,
    "member name must be a non-empty string",
  );
  assert(Number.isFinite(m.weight) && m.weight > 0, `member ${m.name}: weight must be finite and > 0`);
  assert(typeof m.zone === "string", `member ${m.name}: zone must be a string`);
}

function checkTarget(t: PlacementTarget): void {
  assert(
    typeof t.id === "string" && t.id.length > 0 && t.id.length <= placementLimits.maxNameChars,
    "target id must be a non-empty string",
  );
  assert(
    Number.isInteger(t.k) && t.k >= 1 && t.k <= placementLimits.ownersMax,
    `target ${t.id}: k must be an integer in [1, ${placementLimits.ownersMax}]`,
  );
  assert(t.spread === "none" || t.spread === "zone", `target ${t.id}: spread must be none or zone`);
}
