// Prometheus series for alerts, read from the manager's counts at scrape time.

import { Counter, Gauge, type Registry } from "prom-client";
import { type AlertManager, alertResults } from "./manager.ts";

/**
 * Registers vigil_alerts_total{result} and vigil_alert_outbox on `registry`. `source` returns
 * the node's manager, or undefined when alerts are not configured (the series then read 0).
 */
export function registerAlertMetrics(registry: Registry, source: () => AlertManager | undefined): void {
  new Counter({
    name: "vigil_alerts_total",
    help: "Alert notices by result: queued (written to the outbox, one per sink), sent (2xx), failed (an attempt that did not get 2xx), retried (a retry scheduled), dropped (given up or refused), suppressed (covered by a storm notice).",
    labelNames: ["result"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const stats = source()?.stats;
      for (const r of alertResults) this.labels(r).inc(stats?.[r] ?? 0);
    },
  });
  new Gauge({
    name: "vigil_alert_outbox",
    help: "Alert notices (one per sink) waiting in this node's outbox for delivery.",
    registers: [registry],
    collect() {
      this.set(source()?.outboxSize() ?? 0);
    },
  });
}
