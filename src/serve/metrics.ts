import { Counter, Gauge, Registry } from "prom-client";
import { HotCounter, HotHistogram } from "./hot-metrics.ts";

// One registry per node (not prom-client's global one) so several nodes can live in one
// process (the demo, tests) without their series colliding. What changes per check or per API
// request is a Hot* metric (hot-metrics.ts): same exposition, a fraction of the cost.

export interface NodeMetrics {
  registry: Registry;
  checksTotal: HotCounter<"pool" | "result">;
  checkDuration: HotHistogram<"pool">;
  schedulerLag: HotHistogram;
  targets: Gauge<"state">;
  checksInFlight: Gauge;
  checksQueued: Gauge;
  eventsTotal: Counter<"type">;
  httpRequests: HotCounter<"route" | "code">;
  /** Config reloads (SIGHUP, src/runtime/reload.ts) by result: ok | error. */
  configReloads: Counter<"result">;
  /** Wall time (s) the running config was last loaded: at start, then at each good reload. */
  configLastReloadSuccess: Gauge;
}

/** Values read at scrape time rather than kept up to date on every change. */
export interface ScrapeSources {
  targetCounts(): Record<string, number>;
  checksInFlight(): number;
  checksQueued(): number;
}

export function createNodeMetrics(sources: ScrapeSources): NodeMetrics {
  const registry = new Registry();
  const m: NodeMetrics = {
    registry,
    checksTotal: new HotCounter({
      name: "vigil_checks_total",
      help: "Checks this node ran, by pool and result (ok|fail).",
      labelNames: ["pool", "result"] as const,
      registers: [registry],
    }),
    checkDuration: new HotHistogram({
      name: "vigil_check_duration_seconds",
      help: "Latency of the checks this node ran, connect to verdict.",
      labelNames: ["pool"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    schedulerLag: new HotHistogram({
      name: "vigil_scheduler_lag_seconds",
      help: "Time from a check being due to it starting; grows when the concurrency cap or the event loop is saturated.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    targets: new Gauge({
      name: "vigil_targets",
      help: "Targets known to this node, by effective state (up|down|unknown|maint|drain).",
      labelNames: ["state"] as const,
      registers: [registry],
      collect() {
        for (const [k, v] of Object.entries(sources.targetCounts())) this.labels(k).set(v);
      },
    }),
    checksInFlight: new Gauge({
      name: "vigil_checks_in_flight",
      help: "Checks currently running on this node.",
      registers: [registry],
      collect() {
        this.set(sources.checksInFlight());
      },
    }),
    checksQueued: new Gauge({
      name: "vigil_checks_queued",
      help: "Due checks waiting for a free slot under max_concurrent_checks.",
      registers: [registry],
      collect() {
        this.set(sources.checksQueued());
      },
    }),
    eventsTotal: new Counter({
      name: "vigil_events_total",
      help: "Events appended to this node's event log, by type.",
      labelNames: ["type"] as const,
      registers: [registry],
    }),
    httpRequests: new HotCounter({
      name: "vigil_http_requests_total",
      help: "HTTP API requests, by route and status code.",
      labelNames: ["route", "code"] as const,
      registers: [registry],
    }),
    configReloads: new Counter({
      name: "vigil_config_reloads_total",
      help: "Config reloads (SIGHUP) by result: ok (applied), error (did not load; the running config was kept).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    configLastReloadSuccess: new Gauge({
      name: "vigil_config_last_reload_success_timestamp_seconds",
      help: "When the running config was loaded (Unix seconds): the start, then each reload that succeeded.",
      registers: [registry],
    }),
  };
  // Both results from the first scrape, so increase() and absent-series alerts work.
  m.configReloads.labels("ok").inc(0);
  m.configReloads.labels("error").inc(0);
  return m;
}
