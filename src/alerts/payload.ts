// What a notice looks like on the wire (docs/alerts.md): Vigil's JSON for webhook sinks, a
// Slack-compatible `{"text", "blocks"}` for slack sinks, and the HMAC signature over it.

import { createHmac, timingSafeEqual } from "node:crypto";
import { formatDurationMs } from "../config/duration.ts";
import type { Health } from "../core/verdict/verdict.ts";
import { type Alert, isStormAlert, type StormAlert, type TargetAlert } from "./engine.ts";

export const PAYLOAD_VERSION = 1;

/** Header names, lowercase as node:http presents them. */
export const alertHeaders = {
  signature: "x-vigil-signature",
  timestamp: "x-vigil-timestamp",
  idempotencyKey: "x-vigil-idempotency-key",
  kind: "x-vigil-alert-kind",
} as const;

/** How far a receiver should accept a timestamp from its own clock (verifySignature's default). */
export const SIGNATURE_TOLERANCE_MS_DEFAULT = 5 * 60_000;

/**
 * `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"). The timestamp is Unix seconds,
 * sent in X-Vigil-Timestamp; signing it with the body stops a captured request from being
 * replayed later with a fresh timestamp.
 */
export function signBody(secret: string, timestampSec: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestampSec}.`).update(body).digest("hex");
  return `sha256=${mac}`;
}

/**
 * What a receiver runs: true when `signature` is the body's signature under `secret` and the
 * timestamp is within `toleranceMs` of `nowMs`. Constant-time in the signature.
 */
export function verifySignature(opts: {
  secret: string;
  body: string | Uint8Array;
  signature: string | undefined;
  timestamp: string | undefined;
  nowMs: number;
  toleranceMs?: number;
}): boolean {
  const { signature, timestamp } = opts;
  if (signature === undefined || timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return false;
  const timestampSec = Number(timestamp);
  const toleranceMs = opts.toleranceMs ?? SIGNATURE_TOLERANCE_MS_DEFAULT;
  if (Math.abs(opts.nowMs - timestampSec * 1000) > toleranceMs) return false;
  const body = typeof opts.body === "string" ? opts.body : Buffer.from(opts.body).toString("utf8");
  const expected = Buffer.from(signBody(opts.secret, timestampSec, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ── the generic webhook body ──

export interface ObserverVote {
  node: string;
  state: string;
}

function observersOf(s: string): ObserverVote[] {
  if (s === "") return [];
  return s.split(",").map((pair) => {
    const at = pair.lastIndexOf(":");
    return at < 0 ? { node: pair, state: "" } : { node: pair.slice(0, at), state: pair.slice(at + 1) };
  });
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Whole seconds, as people read a duration: "5m3s". */
function span(ms: number): string {
  return formatDurationMs(Math.max(0, Math.round(ms / 1000) * 1000));
}

/** One line a person reads first: the Slack text, the webhook `summary`. */
export function summaryOf(alert: Alert): string {
  if (isStormAlert(alert)) return stormSummary(alert);
  const name = `${alert.pool}/${alert.target}`;
  const because = alert.cause === "" ? "" : `: ${alert.cause}`;
  switch (alert.kind) {
    case "firing":
      return `${name} is ${alert.state}${because}`;
    case "recovered":
      return `${name} recovered: up again after being ${alert.from}`;
    case "resolved":
      return `${name} is up again after being ${alert.from} for ${span(alert.sinceMs - (alert.firedSinceMs ?? alert.sinceMs))}`;
    case "reminder":
      return `${name} is still ${alert.state} (since ${iso(alert.sinceMs)}, for ${span(alert.atMs - alert.sinceMs)})${because}`;
  }
}

function countsText(byState: Record<Health, number>): string {
  const parts = (["down", "unknown", "up"] as const)
    .filter((s) => byState[s] > 0)
    .map((s) => `${byState[s]} ${s}`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

function stormSummary(alert: StormAlert): string {
  if (alert.kind === "storm") {
    return (
      `Alert storm: ${alert.flipped} of ${alert.totalTargets} targets changed within ${span(alert.windowMs)} ` +
      `(now ${countsText(alert.byState)}); individual alerts are suppressed until it calms down`
    );
  }
  const notUp = alert.byState.down + alert.byState.unknown;
  return (
    `Alert storm over after ${span((alert.endedMs ?? alert.atMs) - alert.startedMs)}: ${alert.flipped} targets changed, ` +
    `${notUp === 0 ? "all up again" : `${countsText(alert.byState)} now`}; ${alert.suppressed ?? 0} individual alerts were suppressed`
  );
}

/** The JSON body of a webhook notice. `node` is the sender. */
export function webhookPayload(alert: Alert, node: string): Record<string, unknown> {
  const head = { version: PAYLOAD_VERSION, id: alert.id, kind: alert.kind, summary: summaryOf(alert) };
  const tail = { node, createdAt: iso(alert.atMs) };
  if (isStormAlert(alert)) {
    const storm: Record<string, unknown> = {
      startedAt: iso(alert.startedMs),
      windowSeconds: alert.windowMs / 1000,
      share: alert.share,
      totalTargets: alert.totalTargets,
      flipped: alert.flipped,
      byState: alert.byState,
      pools: alert.pools,
      otherPools: alert.otherPools,
      sample: alert.sample,
    };
    if (alert.endedMs !== undefined) storm.endedAt = iso(alert.endedMs);
    if (alert.suppressed !== undefined) storm.suppressed = alert.suppressed;
    return { ...head, storm, ...tail };
  }
  return { ...head, ...targetFields(alert), ...tail };
}

function targetFields(a: TargetAlert): Record<string, unknown> {
  const out: Record<string, unknown> = {
    rule: a.rule,
    pool: a.pool,
    target: a.target,
    targetId: `${a.pool}/${a.target}`,
    state: a.state,
    from: a.from,
    since: iso(a.sinceMs),
    cause: a.cause,
    observers: observersOf(a.observers),
  };
  if (a.firingId !== undefined) out.firingId = a.firingId;
  if (a.firedSinceMs !== undefined) {
    out.firedSince = iso(a.firedSinceMs);
    out.durationSeconds = Math.max(0, Math.round((a.sinceMs - a.firedSinceMs) / 1000));
  }
  if (a.reminder !== undefined) out.reminder = a.reminder;
  return out;
}

// ── Slack ──

/** Slack caps a section's text at 3000 characters. */
const SLACK_SECTION_CHARS_MAX = 3000;

const slackIcon: Record<Alert["kind"], string> = {
  firing: ":red_circle:",
  reminder: ":red_circle:",
  recovered: ":large_green_circle:",
  resolved: ":large_green_circle:",
  storm: ":rotating_light:",
  storm_resolved: ":white_check_mark:",
};

/** Slack's mrkdwn treats &, < and > as markup. */
function slackEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A Slack incoming-webhook body: `text` for notifications, `blocks` for the message itself. */
export function slackPayload(alert: Alert, node: string): Record<string, unknown> {
  const summary = summaryOf(alert);
  let detail = `${slackIcon[alert.kind]} ${slackEscape(summary)}`;
  let context: string;
  if (isStormAlert(alert)) {
    const lines = alert.sample.map(
      (s) => `• \`${slackEscape(`${s.pool}/${s.target}`)}\` ${s.from} → ${s.to}`,
    );
    if (lines.length > 0)
      detail += `\n${alert.kind === "storm" ? "Some of them" : "Still not up"}:\n${lines.join("\n")}`;
    context = `storm · node ${node} · id ${alert.id}`;
  } else {
    context = `rule ${alert.rule} · node ${node} · id ${alert.id}`;
  }
  return {
    text: summary,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: clip(detail, SLACK_SECTION_CHARS_MAX) } },
      { type: "context", elements: [{ type: "mrkdwn", text: slackEscape(context) }] },
    ],
  };
}
