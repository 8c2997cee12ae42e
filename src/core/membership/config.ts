// Membership timing profiles. The names and the numbers are hashicorp/memberlist's
// (DefaultLANConfig, DefaultWANConfig, DefaultLocalConfig), so operators who know memberlist,
// Consul or Serf can reason about them; DESIGN.md has the table. Every value can be overridden.

import { assert } from "../assert.ts";
import { limits } from "../limits.ts";

export type ProfileName = "lan" | "wan" | "local";

export interface MembershipConfig {
  /** How often a member is probed; one probe round per interval (scaled by local health). */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack before indirect probes start (scaled by local health). */
  probeTimeoutMs: number;
  /** Suspicion lasts at least `suspicionMult × max(1, log10(n)) × probeInterval`. */
  suspicionMult: number;
  /** Suspicion with no confirmations lasts `suspicionMaxTimeoutMult ×` the minimum. */
  suspicionMaxTimeoutMult: number;
  /** How often queued broadcasts are gossiped to `gossipNodes` random members. */
  gossipIntervalMs: number;
  gossipNodes: number;
  /** Full state sync with one random member; scaled up beyond 32 members (see pushPullScale). */
  pushPullIntervalMs: number;
  /** A broadcast is sent `retransmitMult × ceil(log10(n + 1))` times. */
  retransmitMult: number;
  /** Helpers asked to ping a member that did not ack a direct ping; also the suspicion's k. */
  indirectChecks: number;
  /** Lifeguard: the probe interval and timeout are multiplied by at most this (health score + 1). */
  awarenessMaxMultiplier: number;
  /** A dead member still receives gossip this long, so it hears that it was declared dead and refutes. */
  gossipToTheDeadMs: number;
  /**
   * A dead member's name may come back at a new address after this long; 0: only once reaped.
   * An address change of a live or recently dead name is a conflict and ignored.
   */
  deadNodeReclaimMs: number;
  /** A member that left gracefully is forgotten after this long (memberlist's reap of the dead). */
  leftReapMs: number;
  /**
   * A member declared dead is forgotten after this long. Until then it is a reconnect target,
   * which is what heals a partition: longer than partitions we mean to heal by ourselves.
   */
  deadReapMs: number;
  /** How often to try a push-pull with one dead member (Serf's reconnect), to heal partitions. */
  reconnectIntervalMs: number;
  /** A stream (push-pull, fallback ping) with no reply after this long has failed. */
  streamTimeoutMs: number;
  /** Also ping over TCP when UDP probes fail (memberlist's fallback; catches UDP-only breakage). */
  tcpFallbackPing: boolean;
  /** After leave(), stop waiting for the leave broadcast to be gossiped after this long. */
  leaveTimeoutMs: number;
  /** Bytes of a packet the core may fill; the rest is left to the transport (AEAD seal, label). */
  packetBudgetBytes: number;
  /** Queued membership broadcasts beyond this drop the oldest; push-pull repairs what is lost. */
  maxQueuedBroadcasts: number;
  /** Members beyond this are not admitted (counted); bounds memory and push-pull frames. */
  maxMembers: number;
}

/** Room kept for the transport: AES-256-GCM version byte, 12-byte nonce, 16-byte tag = 29, rounded up. */
export const TRANSPORT_RESERVE_BYTES = 32;

const common = {
  retransmitMult: 4,
  indirectChecks: 3,
  suspicionMaxTimeoutMult: 6,
  // memberlist's AwarenessMaxMultiplier: a node that keeps failing probes slows itself down to
  // 8× rather than accusing healthy peers.
  awarenessMaxMultiplier: 8,
  tcpFallbackPing: true,
  // Long enough for the leave message to be gossiped log(n) times at 200 ms intervals.
  leaveTimeoutMs: 5_000,
  packetBudgetBytes: limits.maxUdpPacketBytes - TRANSPORT_RESERVE_BYTES,
  maxQueuedBroadcasts: 4_096,
  maxMembers: 10_000,
} as const;

export const profiles: Readonly<Record<ProfileName, MembershipConfig>> = {
  // memberlist DefaultLANConfig.
  lan: {
    ...common,
    probeIntervalMs: 1_000,
    probeTimeoutMs: 500,
    suspicionMult: 4,
    gossipIntervalMs: 200,
    gossipNodes: 3,
    pushPullIntervalMs: 30_000,
    gossipToTheDeadMs: 30_000,
    // memberlist forgets a dead member after GossipToTheDeadTime, and its name may then return
    // at any address; we keep dead members longer (reconnects) but allow the same reclaim.
    deadNodeReclaimMs: 30_000,
    // memberlist forgets dead members at the next probe wrap after GossipToTheDeadTime (30 s);
    // we keep that for members that left on purpose.
    leftReapMs: 30_000,
    // Serf keeps failed members 24 h for reconnects; we keep them 10 min so a partition of a
    // few minutes heals by itself while short-lived names from churn do not pile up.
    deadReapMs: 10 * 60_000,
    // Serf's ReconnectInterval.
    reconnectIntervalMs: 30_000,
    // memberlist TCPTimeout.
    streamTimeoutMs: 10_000,
  },
  // memberlist DefaultWANConfig: higher latency and loss, so slower and more patient.
  wan: {
    ...common,
    probeIntervalMs: 5_000,
    probeTimeoutMs: 3_000,
    suspicionMult: 6,
    gossipIntervalMs: 500,
    gossipNodes: 4,
    pushPullIntervalMs: 60_000,
    gossipToTheDeadMs: 60_000,
    deadNodeReclaimMs: 60_000,
    leftReapMs: 60_000,
    deadReapMs: 30 * 60_000,
    reconnectIntervalMs: 60_000,
    streamTimeoutMs: 30_000,
    leaveTimeoutMs: 15_000,
  },
  // memberlist DefaultLocalConfig: loopback or one rack; fast and lean.
  local: {
    ...common,
    probeIntervalMs: 1_000,
    probeTimeoutMs: 200,
    suspicionMult: 3,
    gossipIntervalMs: 100,
    gossipNodes: 3,
    pushPullIntervalMs: 15_000,
    retransmitMult: 2,
    indirectChecks: 1,
    gossipToTheDeadMs: 15_000,
    deadNodeReclaimMs: 15_000,
    leftReapMs: 15_000,
    deadReapMs: 2 * 60_000,
    reconnectIntervalMs: 10_000,
    streamTimeoutMs: 1_000,
    leaveTimeoutMs: 2_000,
  },
};

/** A profile with overrides applied, checked: a nonsensical timing is a programmer error. */
export function membershipConfig(
  profile: ProfileName = "lan",
  overrides: Partial<MembershipConfig> = {},
): MembershipConfig {
  const c: MembershipConfig = { ...profiles[profile], ...overrides };
  const positive: (keyof MembershipConfig)[] = [
    "probeIntervalMs",
    "probeTimeoutMs",
    "suspicionMult",
    "suspicionMaxTimeoutMult",
    "gossipIntervalMs",
    "pushPullIntervalMs",
    "retransmitMult",
    "awarenessMaxMultiplier",
    "leftReapMs",
    "deadReapMs",
    "reconnectIntervalMs",
    "streamTimeoutMs",
    "leaveTimeoutMs",
    "maxQueuedBroadcasts",
    "maxMembers",
  ];
  for (const k of positive) assert(typeof c[k] === "number" && (c[k] as number) > 0, `${k} must be > 0`);
  assert(c.probeTimeoutMs < c.probeIntervalMs, "probeTimeoutMs must be below probeIntervalMs");
  assert(c.suspicionMaxTimeoutMult >= 1, "suspicionMaxTimeoutMult must be >= 1");
  assert(Number.isInteger(c.gossipNodes) && c.gossipNodes >= 0, "gossipNodes must be an integer >= 0");
  assert(
    Number.isInteger(c.indirectChecks) && c.indirectChecks >= 0,
    "indirectChecks must be an integer >= 0",
  );
  assert(Number.isInteger(c.awarenessMaxMultiplier), "awarenessMaxMultiplier must be an integer");
  assert(c.gossipToTheDeadMs >= 0 && c.deadNodeReclaimMs >= 0, "durations must be >= 0");
  assert(
    c.packetBudgetBytes >= 256 && c.packetBudgetBytes <= limits.maxUdpPacketBytes,
    `packetBudgetBytes must be in [256, ${limits.maxUdpPacketBytes}]`,
  );
  assert(c.maxMembers <= 10_000, "maxMembers must be <= 10000 (push-pull frame bound)");
  return c;
}

/** Push-pull traffic grows with n; memberlist stretches the interval beyond this many members. */
export const PUSH_PULL_SCALE_THRESHOLD = 32;

/** memberlist's pushPullScale: one more interval for each doubling beyond 32 members. */
export function pushPullIntervalScaledMs(intervalMs: number, n: number): number {
  if (n <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const mult = Math.ceil(Math.log2(n) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return intervalMs * mult;
}
