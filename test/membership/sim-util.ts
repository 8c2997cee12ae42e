// Shared helpers for the simulated-cluster tests.

import type { SimCluster, SimNode } from "../../sim/cluster.ts";
import type { MemberState } from "../../src/core/membership/types.ts";

/** Every observer sees every target in `state`. */
export function allSee(c: SimCluster, observers: SimNode[], targets: SimNode[], state: MemberState): boolean {
  return observers.every((o) => targets.every((t) => c.view(o, t) === state));
}

/** Starts `n` nodes joining through the first and waits until all see all alive; fails if they do not. */
export function convergedCluster(c: SimCluster, n: number, maxMs = 30_000): SimNode[] {
  const nodes = c.addNodes(n, { staggerMs: 1_000 });
  const t = c.runUntil(() => allSee(c, nodes, nodes, "alive"), maxMs);
  if (t === undefined) throw new Error(`${n} nodes did not converge in ${maxMs} ms: ${describeViews(nodes)}`);
  return nodes;
}

/** For failure messages: how many alive members each node sees. */
export function describeViews(nodes: SimNode[]): string {
  return nodes
    .map((n) => `${n.name}:${n.core === undefined ? "down" : n.core.countByState().alive}`)
    .join(" ");
}

export interface Death {
  observer: string;
  target: string;
  atMs: number;
}

/** Records every member.dead event: who declared whom, when. */
export function recordDeaths(c: SimCluster): Death[] {
  const deaths: Death[] = [];
  c.onEvent((node, ev, now) => {
    if (ev.type === "member.dead") deaths.push({ observer: node.name, target: ev.member.name, atMs: now });
  });
  return deaths;
}
