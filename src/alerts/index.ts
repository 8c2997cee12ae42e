// The alerts module's public surface (docs/alerts.md).

export {
  type Alert,
  AlertEngine,
  type AlertEngineOptions,
  type AlertEngineStats,
  alertId,
  type DirtyOpenAlert,
  isStormAlert,
  type OpenAlertRecord,
  type StormAlert,
  type StormSampleEntry,
  type TargetAlert,
  type TargetAlertKind,
  targetId,
  type VerdictChange,
} from "./engine.ts";
export { alertLimits } from "./limits.ts";
export {
  type AlertInputEvent,
  AlertManager,
  type AlertManagerOptions,
  type AlertResult,
  alertResults,
  firstLiveMember,
  retryAfterOf,
} from "./manager.ts";
export { registerAlertMetrics } from "./metrics.ts";
export { ALERTS_DB_FILE, Outbox, type OutboxRow } from "./outbox.ts";
export {
  alertHeaders,
  PAYLOAD_VERSION,
  SIGNATURE_TOLERANCE_MS_DEFAULT,
  signBody,
  slackPayload,
  summaryOf,
  verifySignature,
  webhookPayload,
} from "./payload.ts";
