// The alerts shell: feeds verdict changes to the engine, keeps the notices this node must
// send in the durable outbox, and delivers them over HTTP with retries. One timer, set to
// the earlier of the engine's next deadline and the outbox's next attempt.

import type { AlertSinkSpec, AlertsSpec } from "../config/types.ts";
import type { Clock } from "../core/clock.ts";
import type { Random } from "../core/random.ts";
import type { Health } from "../core/verdict/verdict.ts";
import type { Logger } from "../runtime/log.ts";
import { VERSION } from "../version.ts";
import { type Alert, AlertEngine, isStormAlert, targetId, type VerdictChange } from "./engine.ts";
import { alertLimits } from "./limits.ts";
import { Outbox, type OutboxRow } from "./outbox.ts";
import { alertHeaders, signBody, slackPayload, webhookPayload } from "./payload.ts";

/** The outcomes counted in vigil_alerts_total{result}. */
export const alertResults = ["queued", "sent", "failed", "retried", "dropped", "suppressed"] as const;
export type AlertResult = (typeof alertResults)[number];

export interface AlertManagerOptions {
  spec: AlertsSpec;
  /** The node's data_dir: the outbox is `<dataDir>/alerts.db`. */
  dataDir: string;
  /** This node's name, written into every notice it sends. */
  node: string;
  clock: Pick<Clock, "wallMs">;
  /** Backoff jitter. */
  random: Random;
  logger: Logger;
  /** True when this node sends the alerts of `targetId` (`<pool>/<host:port>`). */
  isSender(targetId: string): boolean;
  /** True when this node sends storm notices (they belong to no target). */
  isStormSender(): boolean;
  /** How many targets the cluster has: storms are a share of it. */
  targetCount(): number;
  /** When given, open alerts of targets that no longer exist are dropped on pool changes. */
  targetExists?(pool: string, target: string): boolean;
}

/** The event fields the manager reads; the runtime's VigilEvent has them. */
export interface AlertInputEvent {
  type: string;
  ts: number;
  pool?: string;
  target?: string;
  from?: string;
  to?: string;
  cause?: string;
  observers?: unknown;
  /** The cluster-wide time of the verdict change (see NodeCore.recomputeVerdict). */
  episodeMs?: unknown;
}

/** setTimeout holds 32-bit delays; a far deadline is re-armed from an hourly wake-up. */
const TIMER_MS_MAX = 3_600_000;
/**
 * The shortest re-arm. A row that is due but cannot go yet (its lease outlived by a wall-clock
 * jump while it is still in flight) would otherwise spin the timer at 0 ms.
 */
const TIMER_MS_MIN = 10;
/** A claimed row is leased for its sink's timeout plus this, then is due again. */
const LEASE_SLACK_MS = 5_000;
/**
 * How often open alerts of targets that no longer exist are dropped, besides on pool events.
 * The first sweep waits as long, so that pools replicated from peers are known by then.
 */
const PRUNE_INTERVAL_MS = 10 * 60_000;

const healths: ReadonlySet<string> = new Set(["up", "down", "unknown"]);

export class AlertManager {
  readonly engine: AlertEngine;
  private readonly opts: AlertManagerOptions;
  private readonly log: Logger;
  private outbox: Outbox | undefined;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private nextPruneMs = Number.POSITIVE_INFINITY;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private readonly counts: Record<Exclude<AlertResult, "suppressed">, number> = {
    queued: 0,
    sent: 0,
    failed: 0,
    retried: 0,
    dropped: 0,
  };

  constructor(opts: AlertManagerOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: "alerts" });
    this.engine = new AlertEngine({ rules: opts.spec.rules, storm: opts.spec.storm });
  }

  /** Counts since this manager started, by result. */
  get stats(): Record<AlertResult, number> {
    return { ...this.counts, suppressed: this.engine.stats.suppressed };
  }

  /** Notices (one per sink) waiting in the outbox. */
  outboxSize(): number {
    return this.outbox?.size() ?? 0;
  }

  /**
   * Opens the outbox, restores the open alerts and sends whatever the last run left
   * undelivered. Call before the first event: events before start are ignored.
   */
  start(): void {
    if (this.running) return;
    const outbox = Outbox.open(this.opts.dataDir);
    this.outbox = outbox;
    this.engine.restore(outbox.listOpen());
    const now = this.wall();
    this.commit([], now); // deletes what restore refused (rules removed or narrowed)
    outbox.dueAll(now);
    if (this.opts.targetExists !== undefined) this.nextPruneMs = now + PRUNE_INTERVAL_MS;
    this.running = true;
    const left = outbox.size();
    if (left > 0) this.log.info({ outbox: left }, "alerts: sending notices left from the last run");
    this.pump();
  }

  /** Stops the timer and in-flight deliveries; undelivered notices stay for the next start. */
  async stop(): Promise<void> {
    if (!this.running) {
      this.outbox?.close();
      return;
    }
    this.guarded("stop", () => this.commit([], this.wall()));
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
    await Promise.allSettled([...this.inFlight.values()]);
    this.outbox?.close();
  }

  /** Feed every event of the node's log here (EventLog.subscribe). Never throws. */
  handleEvent(e: AlertInputEvent): void {
    if (!this.running) return;
    const now = this.wall();
    let alerts: Alert[] = [];
    if (e.type === "verdict.changed") {
      const change = verdictChangeOf(e);
      if (change === undefined) return;
      alerts = this.engine.verdictChanged(now, change, this.opts.targetCount());
    } else if (e.type === "pool.deleted" || e.type === "pool.updated") {
      const exists = this.opts.targetExists;
      if (exists === undefined) return;
      this.engine.forget(exists);
    } else {
      return;
    }
    this.guarded("event", () => {
      this.commit(alerts, now);
      this.deliverDue(now);
    });
    this.arm(now);
  }

  /**
   * Runs outbox work, logging instead of throwing: a full disk must not take the node's
   * event loop down with it.
   */
  private guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.error({ err: e, during: what }, "alerts: outbox error");
    }
  }

  private wall(): number {
    return this.opts.clock.wallMs();
  }

  private pump(): void {
    if (!this.running) return;
    const now = this.wall();
    const exists = this.opts.targetExists;
    if (exists !== undefined && now >= this.nextPruneMs) {
      this.engine.forget(exists);
      this.nextPruneMs = now + PRUNE_INTERVAL_MS;
    }
    const alerts = this.engine.tick(now);
    this.guarded("timer", () => {
      this.commit(alerts, now);
      this.deliverDue(now);
    });
    this.arm(now);
  }

  private arm(now: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    let outboxAt = Number.POSITIVE_INFINITY;
    if (this.inFlight.size < alertLimits.maxConcurrentDeliveries) {
      this.guarded("arm", () => {
        outboxAt = this.outbox!.nextAttemptMs();
      });
    }
    const next = Math.min(this.engine.nextDeadline(), outboxAt, this.nextPruneMs);
    if (next === Number.POSITIVE_INFINITY) return;
    const delayMs = Math.min(TIMER_MS_MAX, Math.max(TIMER_MS_MIN, Math.ceil(next - now)));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, delayMs);
    // The node's sockets keep the process alive; a pending alert alone should not.
    this.timer.unref();
  }

  /**
   * Writes open-alert changes and this node's new notices in one transaction. If the write
   * fails (a full disk), the notices are counted as dropped and the error logged, not thrown.
   */
  private commit(alerts: readonly Alert[], now: number): void {
    const outbox = this.outbox!;
    const dirty = this.engine.takeDirty();
    const mine = alerts.filter((a) =>
      isStormAlert(a) ? this.opts.isStormSender() : this.opts.isSender(targetId(a.pool, a.target)),
    );
    if (mine.length === 0 && dirty.length === 0) return;
    let queued = 0;
    let full = 0;
    try {
      outbox.transaction(() => {
        for (const d of dirty) {
          const id = targetId(d.pool, d.target);
          if (d.record === undefined) outbox.deleteOpen(d.rule, id);
          else outbox.putOpen(id, d.record);
        }
        for (const alert of mine) {
          const added = outbox.add(alert, alert.sinks, now);
          if (added >= 0) {
            queued += added;
            continue;
          }
          full += alert.sinks.length;
          this.log.error(
            { id: alert.id, kind: alert.kind, outboxMax: alertLimits.maxOutboxRows },
            "alerts: outbox full, notice dropped",
          );
        }
      });
    } catch (e) {
      const lost = mine.reduce((n, a) => n + a.sinks.length, 0);
      this.counts.dropped += lost;
      this.log.error({ err: e, notices: lost }, "alerts: cannot write the outbox, notices dropped");
      return;
    }
    this.counts.queued += queued;
    this.counts.dropped += full;
    for (const alert of mine) {
      this.log.info({ id: alert.id, kind: alert.kind, sinks: alert.sinks }, "alerts: notice queued");
    }
  }

  private deliverDue(now: number): void {
    const outbox = this.outbox!;
    const free = alertLimits.maxConcurrentDeliveries - this.inFlight.size;
    if (free <= 0) return;
    for (const row of outbox.due(now, free)) {
      const key = `${row.id}\u0000${row.sink}`;
      if (this.inFlight.has(key)) continue;
      const sink = this.opts.spec.sinks.get(row.sink);
      if (sink === undefined) {
        outbox.remove(row.id, row.sink);
        this.counts.dropped++;
        this.log.warn({ id: row.id, sink: row.sink }, "alerts: sink no longer configured, notice dropped");
        continue;
      }
      if (now - row.createdMs >= this.opts.spec.delivery.maxAgeMs) {
        outbox.remove(row.id, row.sink);
        this.counts.dropped++;
        this.log.error(
          { id: row.id, sink: row.sink, attempts: row.attempts },
          "alerts: notice expired, dropped",
        );
        continue;
      }
      outbox.claim(row.id, row.sink, now + sink.timeoutMs + LEASE_SLACK_MS);
      const p = this.attempt(row, sink).finally(() => {
        this.inFlight.delete(key);
        this.pump();
      });
      this.inFlight.set(key, p);
    }
  }

  private async attempt(row: OutboxRow, sink: AlertSinkSpec): Promise<void> {
    const payload =
      sink.type === "slack"
        ? slackPayload(row.alert, this.opts.node)
        : webhookPayload(row.alert, this.opts.node);
    const body = JSON.stringify(payload);
    const timestampSec = Math.floor(this.wall() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": `vigil/${VERSION}`,
      [alertHeaders.idempotencyKey]: row.id,
      [alertHeaders.kind]: row.alert.kind,
      [alertHeaders.timestamp]: String(timestampSec),
    };
    if (sink.secret !== undefined)
      headers[alertHeaders.signature] = signBody(sink.secret, timestampSec, body);
    let error: string | undefined;
    let retryAfterMs: number | undefined;
    try {
      const res = await fetch(sink.url, {
        method: "POST",
        headers,
        body,
        // A redirect would carry a signed notice somewhere the operator did not configure.
        redirect: "manual",
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(sink.timeoutMs)]),
      });
      await res.body?.cancel().catch(() => {});
      if (res.status < 200 || res.status > 299) {
        error = `HTTP ${res.status}`;
        retryAfterMs = retryAfterOf(res.headers.get("retry-after"), this.wall());
      }
    } catch (e) {
      if (this.abort.signal.aborted) return; // stopping: the row stays for the next start
      error = describeFetchError(e, sink.timeoutMs);
    }
    if (!this.running) return;
    this.guarded("delivery", () => this.settle(row, sink, error, retryAfterMs));
  }

  private settle(
    row: OutboxRow,
    sink: AlertSinkSpec,
    error: string | undefined,
    retryAfterMs?: number,
  ): void {
    const outbox = this.outbox!;
    if (error === undefined) {
      outbox.remove(row.id, row.sink);
      this.counts.sent++;
      this.log.info({ id: row.id, sink: sink.name, attempts: row.attempts + 1 }, "alerts: notice delivered");
      return;
    }
    this.counts.failed++;
    const now = this.wall();
    const attempts = row.attempts + 1;
    const { maxAttempts, maxAgeMs } = this.opts.spec.delivery;
    if (attempts >= maxAttempts || now - row.createdMs >= maxAgeMs) {
      outbox.remove(row.id, row.sink);
      this.counts.dropped++;
      this.log.error(
        { id: row.id, sink: sink.name, attempts, error },
        "alerts: delivery failed, notice dropped",
      );
      return;
    }
    const delayMs = Math.max(this.backoffMs(attempts), retryAfterMs ?? 0);
    outbox.reschedule(row.id, row.sink, now + delayMs, error);
    this.counts.retried++;
    this.log.warn(
      { id: row.id, sink: sink.name, attempts, error, retryInMs: delayMs },
      "alerts: delivery failed",
    );
  }

  /** Exponential with equal jitter: half the step fixed, half random, so senders spread out. */
  private backoffMs(attempts: number): number {
    const { backoffMs, backoffMsMax } = this.opts.spec.delivery;
    const stepMs = Math.min(backoffMsMax, backoffMs * 2 ** Math.min(attempts - 1, 40));
    return Math.round(stepMs / 2 + (stepMs / 2) * this.opts.random.next());
  }
}

function verdictChangeOf(e: AlertInputEvent): VerdictChange | undefined {
  const { pool, target, from, to } = e;
  if (typeof pool !== "string" || typeof target !== "string") return undefined;
  if (typeof from !== "string" || !healths.has(from) || typeof to !== "string" || !healths.has(to))
    return undefined;
  // The cluster-wide episode time when the node provides it: every node then derives the same
  // idempotency key for the same episode, whichever of them sends.
  const ts = typeof e.episodeMs === "number" && Number.isFinite(e.episodeMs) ? e.episodeMs : e.ts;
  const change: VerdictChange = { pool, target, from: from as Health, to: to as Health, ts };
  if (typeof e.cause === "string") change.cause = e.cause;
  if (typeof e.observers === "string") change.observers = e.observers;
  return change;
}

/** Retry-After in seconds or as an HTTP date, capped; undefined when absent or unreadable. */
export function retryAfterOf(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  let ms: number;
  if (/^\d{1,10}$/.test(value.trim())) ms = Number(value.trim()) * 1000;
  else {
    const at = Date.parse(value);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(alertLimits.retryAfterMsMax, Math.max(0, ms));
}

function describeFetchError(e: unknown, timeoutMs: number): string {
  if (e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError")) {
    return `no answer within ${timeoutMs}ms`;
  }
  const cause = e instanceof Error ? (e.cause as { code?: string; message?: string } | undefined) : undefined;
  const base = e instanceof Error ? e.message : String(e);
  const detail = cause?.code ?? cause?.message;
  return (detail === undefined ? base : `${base}: ${detail}`).slice(0, alertLimits.maxErrorChars);
}

/**
 * The node that sends storm notices: the live (alive or suspect) member whose name sorts
 * first. Every node computes the same one from the same membership.
 */
export function firstLiveMember(members: Iterable<{ name: string; state: string }>): string | undefined {
  let first: string | undefined;
  for (const m of members) {
    if (m.state !== "alive" && m.state !== "suspect") continue;
    if (first === undefined || m.name < first) first = m.name;
  }
  return first;
}
