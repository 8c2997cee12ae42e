// The definition of placement, computed from scratch: every member scored for one target.
// Placement (placement.ts) must always agree with this; the property tests and the simulator
// use it as the oracle, and it is the readable statement of the rules.

import type { Spread } from "../../config/types.ts";
import { hashNodeName, hashTargetId, pairUnit, rendezvousScore } from "./hash.ts";

export interface PlacementMember {
  readonly name: string;
  /** Share of the checking work; finite and > 0. */
  readonly weight: number;
  /** Failure domain; "" when the node has none. */
  readonly zone: string;
}

interface Scored {
  readonly name: string;
  readonly zone: string;
  readonly score: number;
}

/** Higher score first; equal scores (practically never) go to the smaller name. */
export function compareScored(
  a: { score: number; name: string },
  b: { score: number; name: string },
): number {
  if (a.score !== b.score) return a.score > b.score ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Members in placement order for one target. `none`: by score. `zone`: the best member of
 * each zone (zone leaders) by score, then everyone else by score.
 */
export function rankMembers(members: readonly PlacementMember[], targetId: string, spread: Spread): string[] {
  const t = hashTargetId(targetId);
  const scored: Scored[] = members.map((m) => {
    const n = hashNodeName(m.name);
    return { name: m.name, zone: m.zone, score: rendezvousScore(m.weight, pairUnit(n.hi, n.lo, t.hi, t.lo)) };
  });
  scored.sort(compareScored);
  if (spread === "none") return scored.map((s) => s.name);
  const seen = new Set<string>();
  const leaders: string[] = [];
  const rest: string[] = [];
  for (const s of scored) {
    if (seen.has(s.zone)) {
      rest.push(s.name);
    } else {
      seen.add(s.zone);
      leaders.push(s.name);
    }
  }
  return leaders.concat(rest);
}

/** The owners of a target: the first `k` members in placement order. */
export function computeOwners(
  members: readonly PlacementMember[],
  targetId: string,
  k: number,
  spread: Spread,
): string[] {
  return rankMembers(members, targetId, spread).slice(0, k);
}
