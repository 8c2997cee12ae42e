import type { VerdictPolicy } from "../../config/types.ts";

export type Health = "up" | "down" | "unknown";
export type AdminState = "none" | "maint" | "drain";
/** What a load balancer acts on: the health verdict unless an admin state overrides it. */
export type Effective = Health | "maint" | "drain";

/**
 * The cluster's verdict from the observations of the voting observers. Only `up` and `down`
 * vote; `unknown` (no conclusive streak yet) abstains. No votes → `unknown`.
 *
 * The policy says how many down votes make the target down:
 * - `any`: one; `all`: every voter; `majority`: more than half, and an exact tie keeps the
 *   previous verdict (from `unknown`, a tie is `down`: we would rather drain an origin one
 *   vantage point cannot reach than send it traffic);
 * - a number n: n down votes, capped at the number of voters so that a target whose other
 *   observers died can still be declared down by the one that remains.
 */
export function computeVerdict(policy: VerdictPolicy, votes: Iterable<Health>, previous: Health): Health {
  let up = 0;
  let down = 0;
  for (const v of votes) {
    if (v === "up") up++;
    else if (v === "down") down++;
  }
  const voters = up + down;
  if (voters === 0) return "unknown";
  switch (policy) {
    case "any":
      return down >= 1 ? "down" : "up";
    case "all":
      return down === voters ? "down" : "up";
    case "majority":
      if (down * 2 > voters) return "down";
      if (down * 2 < voters) return "up";
      return previous === "unknown" ? "down" : previous;
    default:
      return down >= Math.min(policy, voters) ? "down" : "up";
  }
}

export function effectiveState(health: Health, admin: AdminState): Effective {
  return admin === "none" ? health : admin;
}

/** Whether a load balancer should send new traffic to a target in this state. */
export function isRoutable(state: Effective): boolean {
  return state === "up";
}
