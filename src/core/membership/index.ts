// The membership module's public surface. Everything else in this directory is internal.

export { Awareness } from "./awareness.ts";
export {
  type BroadcastEnd,
  BroadcastQueue,
  type BroadcastQueueOptions,
  retransmitLimit,
} from "./broadcast-queue.ts";
export {
  type MembershipConfig,
  membershipConfig,
  type ProfileName,
  profiles,
  pushPullIntervalScaledMs,
  TRANSPORT_RESERVE_BYTES,
} from "./config.ts";
export {
  APP_MESSAGE_OVERHEAD_BYTES,
  MAX_JOIN_SEEDS,
  MAX_PENDING_RELAYS,
  MAX_PENDING_STREAMS,
  MAX_RTT_SAMPLES,
  Membership,
  type MembershipOptions,
} from "./membership.ts";
export {
  expectedConfirmations,
  remainingSuspicionTimeMs,
  suspicionTimeoutMs,
  suspicionTimeoutMsMax,
} from "./suspicion.ts";
export {
  type Addr,
  type AppDelegate,
  MEMBER_STATES,
  type MemberEventType,
  type MemberState,
  type MembershipEvent,
  type MembershipStats,
  type MemberView,
  type Output,
  type TrafficCounter,
} from "./types.ts";
