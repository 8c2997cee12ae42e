// The public shapes of the membership state machine: what goes in, what comes out.

import type { DecodeErrorReason } from "../codec/bytes.ts";
import type { MessageTypeName } from "../codec/membership-wire.ts";

/** A transport address, "host:port" (IPv6 as "[::1]:7946"). */
export type Addr = string;

export type MemberState = "alive" | "suspect" | "dead" | "left";
export const MEMBER_STATES: readonly MemberState[] = ["alive", "suspect", "dead", "left"];

/** A member as this node sees it. Read-only: a snapshot for events, a live view from `member()`. */
export interface MemberView {
  readonly name: string;
  readonly addr: Addr;
  /** Opaque application metadata (zone, weight, API address, version), at most limits.maxMetaBytes. */
  readonly meta: Uint8Array;
  readonly incarnation: number;
  readonly state: MemberState;
  /** `now` of the last state change, on this node's clock. */
  readonly stateChangeMs: number;
}

export type MemberEventType =
  | "member.joined"
  | "member.alive"
  | "member.suspect"
  | "member.dead"
  | "member.left"
  | "member.updated"
  | "member.reaped";

export type MembershipEvent =
  /**
   * joined: first seen, or back from dead/left. alive: a suspicion was refuted. updated: new
   * metadata. reaped: a dead or left member was forgotten (its per-member state may be dropped).
   */
  | { readonly type: MemberEventType; readonly member: MemberView }
  /** A join() finished: how many seeds answered, which did not. */
  | {
      readonly type: "join.done";
      readonly joinId: number;
      readonly contacted: number;
      readonly failed: Addr[];
    }
  /** The leave broadcast has been gossiped (or leaveTimeoutMs passed): the shell may stop. */
  | { readonly type: "leave.done" };

export type Output =
  /** Send one UDP packet, best effort. */
  | { readonly kind: "send"; readonly to: Addr; readonly bytes: Uint8Array }
  /**
   * Open a stream to `to`, send `bytes` as one request, read one reply, and hand it (or the
   * failure) back through `handleStreamReply(now, reqId, ...)`.
   */
  | { readonly kind: "stream"; readonly to: Addr; readonly bytes: Uint8Array; readonly reqId: number }
  | { readonly kind: "event"; readonly event: MembershipEvent };

/**
 * The application's share of gossip (the replicated state rides here). Called synchronously
 * from inside the state machine; must not call back into it.
 */
export interface AppDelegate {
  /**
   * Payloads to piggyback on an outgoing packet. Each costs its length plus `overheadBytes`;
   * together they must fit in `limitBytes` (exceeding it is a programmer error).
   */
  getBroadcasts(overheadBytes: number, limitBytes: number): Uint8Array[];
  /** A payload another node's getBroadcasts produced. */
  notifyMsg(from: Addr, payload: Uint8Array): void;
  /** The whole local state for a push-pull exchange (`join`: the exchange is a join). */
  localState(join: boolean): Uint8Array;
  /** A peer's whole state from a push-pull exchange. */
  mergeRemoteState(state: Uint8Array, join: boolean): void;
}

export interface TrafficCounter {
  messages: number;
  bytes: number;
}

/** Counters and gauges the runtime exports as metrics; all counters only grow. */
export interface MembershipStats {
  membersByState: Record<MemberState, number>;
  /** Lifeguard local health: 0 healthy .. awarenessMaxMultiplier - 1. */
  localHealthScore: number;
  /** Members this node put under suspicion (its probe failed, or it heard so first). */
  suspicionsRaised: number;
  /** Suspected members this node saw refute (suspect → alive). */
  suspicionsRefuted: number;
  /** Times this node refuted a suspicion or death notice about itself. */
  selfRefutations: number;
  /** Members this node declared dead itself, on its own suspicion timeout. */
  deathsDeclared: number;
  probes: { sent: number; ackedDirect: number; ackedIndirect: number; ackedTcpOnly: number; failed: number };
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Per message type; a compound packet counts each of its parts. */
  messagesIn: Record<MessageTypeName, TrafficCounter>;
  messagesOut: Record<MessageTypeName, TrafficCounter>;
  streamsOut: number;
  streamsIn: number;
  streamFailures: number;
  /** Packets and stream frames that failed to decode, by reason: dropped, never thrown. */
  droppedByReason: Record<DecodeErrorReason, number>;
  /** Pings addressed to another name (a restarted or re-addressed node); dropped. */
  misdirectedPings: number;
  /** Alive messages claiming a known live name at another address; ignored. */
  addressConflicts: number;
  /** Members not admitted because maxMembers was reached. */
  membersRefused: number;
  /** Membership broadcasts dropped because the queue was full. */
  broadcastsDropped: number;
  /** Relay (ping_req) requests refused because too many were in flight. */
  relaysRefused: number;
  /** Streams not opened because too many were in flight. */
  streamsRefused: number;
  /** Stream replies that came after their request had timed out. */
  lateStreamReplies: number;
  /** Senders of stale accusations answered with the member's current alive. */
  staleCorrections: number;
}
