// Placement: which members own (check) which targets. Weighted rendezvous, top k, optionally
// spread over zones, kept up to date incrementally as members and targets come and go.

export type { Hash64 } from "./hash.ts";
export { hash64, hashNodeName, hashTargetId, pairUnit, rendezvousScore } from "./hash.ts";
export type { OwnerChange, PlacementOptions, PlacementTarget } from "./placement.ts";
export { Placement, placementLimits } from "./placement.ts";
export type { PlacementMember } from "./reference.ts";
export { compareScored, computeOwners, rankMembers } from "./reference.ts";
