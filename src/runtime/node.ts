import { channel } from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter } from "prom-client";
import type { CheckResult, Prober } from "../checkers/types.ts";
import { parsePoolDocument, poolToDocument } from "../config/load.ts";
import type { PoolSpec, TargetAddr, VigilConfig } from "../config/types.ts";
import type { Clock } from "../core/clock.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import {
  applyResult,
  checkMode,
  initialObservation,
  type Observation,
} from "../core/observation/observation.ts";
import type { Random } from "../core/random.ts";
import { Scheduler } from "../core/scheduler/scheduler.ts";
import {
  type AdminState,
  computeVerdict,
  type Effective,
  effectiveState,
  type Health,
} from "../core/verdict/verdict.ts";
import { type AgentServer, agentRequestOutcomes, startAgentServer } from "../serve/agent-server.ts";
import { type ApiBackend, type ApiServer, startApiServer } from "../serve/api/server.ts";
import { createNodeMetrics, type NodeMetrics } from "../serve/metrics.ts";
import { EventStreams } from "../serve/sse.ts";
import { VERSION } from "../version.ts";
import { EventLog, type EventQuery, type VigilEvent } from "./events.ts";
import type { Logger } from "./log.ts";

/** diagnostics_channel names for what benchmarks and tracers watch, free when unwatched. */
export const checkStartChannel = channel("vigil:check:start");
export const checkFinishChannel = channel("vigil:check:finish");

export interface NodeDeps {
  clock: Clock;
  random: Random;
  prober: Prober;
  logger: Logger;
}

interface RecentResult {
  ts: number;
  ok: boolean;
  latencyMs: number;
  reason: string;
}

/** Everything this node knows about one target. */
interface TargetState {
  id: string; // `<pool>/<host:port>`
  pool: string;
  addr: TargetAddr;
  /** This node's own observation (rise/fall state machine). */
  obs: Observation;
  recent: RecentResult[];
  verdict: Health;
  /** Wall-clock ms of the last verdict change. */
  verdictSinceMs: number;
  admin: AdminState;
  adminReason: string | undefined;
}

interface PoolState {
  spec: PoolSpec;
  doc: unknown;
  targets: Map<string, TargetState>; // by host:port key
}

/**
 * One Vigil node: the imperative shell around the sans-IO core. It owns the real sockets
 * (API server), the one timer driving the scheduler, the checkers, and the event log.
 */
export class VigilNode implements ApiBackend {
  readonly config: VigilConfig;
  readonly name: string;
  readonly events: EventLog;
  readonly metrics: NodeMetrics;
  private readonly deps: NodeDeps;
  private readonly log: Logger;
  private readonly pools = new Map<string, PoolState>();
  private readonly byId = new Map<string, TargetState>();
  private readonly scheduler: Scheduler;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private api: ApiServer | undefined;
  private agent: AgentServer | undefined;
  private stopping = false;
  private readonly startedWallMs: number;
  readonly streams: EventStreams;
  private readonly checkLabels = new Map<
    string,
    {
      ok: ReturnType<NodeMetrics["checksTotal"]["labels"]>;
      fail: ReturnType<NodeMetrics["checksTotal"]["labels"]>;
      dur: ReturnType<NodeMetrics["checkDuration"]["labels"]>;
    }
  >();

  constructor(config: VigilConfig, deps: NodeDeps) {
    this.config = config;
    this.name = config.node.name;
    this.deps = deps;
    this.log = deps.logger.child({ node: this.name });
    this.events = new EventLog();
    this.metrics = createNodeMetrics({
      targetCounts: () => this.countStates(this.byId.values()),
      checksInFlight: () => this.inFlight.size,
      checksQueued: () => this.scheduler.stats().queued,
    });
    this.scheduler = new Scheduler({ maxConcurrent: config.node.maxConcurrentChecks, random: deps.random });
    this.startedWallMs = deps.clock.wallMs();
    this.events.subscribe((e) => this.metrics.eventsTotal.labels(e.type).inc());
    this.streams = new EventStreams(this.events);
  }

  get apiUrl(): string {
    if (this.api === undefined) throw new Error("invariant: node not started");
    return this.api.url;
  }

  async start(): Promise<void> {
    for (const [name, spec] of this.config.pools) {
      this.applyPool(spec, this.config.rawPools.get(name) ?? poolToDocument(spec), "config");
    }
    const [host, port] = splitHostPort(this.config.node.api);
    this.api = await startApiServer({
      host,
      port,
      backend: this,
      onRequest: (route, code) => this.metrics.httpRequests.labels(route, String(code)).inc(),
    });
    if (this.config.node.agent !== undefined) {
      const [ahost, aport] = splitHostPort(this.config.node.agent);
      this.agent = await startAgentServer({
        host: ahost,
        port: aport,
        lookup: (p, t) => this.lookupTarget(p, t),
      });
      this.registerAgentMetrics(this.agent);
    }
    this.log.info({ api: this.api.url, pools: this.pools.size, targets: this.byId.size }, "node started");
    this.pump();
  }

  /** Stop scheduling, let in-flight checks finish or time out, close the servers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = [...this.inFlight.values()];
    this.log.info({ inFlight: pending.length }, "stopping: waiting for in-flight checks");
    await Promise.allSettled(pending);
    this.streams.closeAll();
    await this.agent?.close();
    await this.api?.close();
    await this.deps.prober.close();
    this.log.info("node stopped");
  }

  // ── pools ────────────────────────────────────────────────────────────────

  private applyPool(spec: PoolSpec, doc: unknown, origin: "config" | "api"): { created: boolean } {
    const now = this.deps.clock.nowMs();
    const wall = this.deps.clock.wallMs();
    const existing = this.pools.get(spec.name);
    const ps: PoolState = existing ?? { spec, doc, targets: new Map() };
    ps.spec = spec;
    ps.doc = doc;
    const keep = new Set(spec.targets.map((t) => t.key));
    if (existing !== undefined) {
      for (const [key, t] of existing.targets) {
        if (!keep.has(key)) this.removeTarget(ps, t, now);
      }
    }
    for (const addr of spec.targets) {
      let t = ps.targets.get(addr.key);
      if (t === undefined) {
        t = {
          id: `${spec.name}/${addr.key}`,
          pool: spec.name,
          addr,
          obs: initialObservation(),
          recent: [],
          verdict: "unknown",
          verdictSinceMs: wall,
          admin: "none",
          adminReason: undefined,
        };
        ps.targets.set(addr.key, t);
        this.byId.set(t.id, t);
      }
      this.scheduler.upsert(t.id, timingOf(spec), now);
      this.scheduler.setMode(t.id, checkMode(t.obs), now);
    }
    this.pools.set(spec.name, ps);
    this.events.append(wall, {
      type: existing === undefined ? "pool.created" : "pool.updated",
      pool: spec.name,
      node: this.name,
      cause: origin,
      targets: spec.targets.length,
    });
    this.pump();
    return { created: existing === undefined };
  }

  private removeTarget(ps: PoolState, t: TargetState, now: number): void {
    this.scheduler.remove(t.id, now);
    ps.targets.delete(t.addr.key);
    this.byId.delete(t.id);
  }

  // ── the check loop ───────────────────────────────────────────────────────

  /** Start every check that is due, then re-arm the one timer at the next deadline. */
  private pump(): void {
    if (this.stopping) return;
    const now = this.deps.clock.nowMs();
    const { start } = this.scheduler.poll(now);
    for (const s of start) this.startCheck(s.key, s.lagMs);
    this.arm(now);
  }

  private arm(now: number): void {
    const next = this.scheduler.nextDeadline();
    if (next === undefined) return;
    // Keep the armed timer when it already fires no later than needed.
    if (this.timer !== undefined && this.timerAtMs <= next) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAtMs = next;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAtMs = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, Math.ceil(next - now)),
    );
  }

  private startCheck(id: string, lagMs: number): void {
    const t = this.byId.get(id);
    const ps = t === undefined ? undefined : this.pools.get(t.pool);
    if (t === undefined || ps === undefined) {
      this.scheduler.complete(id, this.deps.clock.nowMs());
      return;
    }
    this.metrics.schedulerLag.observe(lagMs / 1000);
    if (checkStartChannel.hasSubscribers) checkStartChannel.publish({ node: this.name, id, lagMs });
    const spec = ps.spec;
    const p = this.deps.prober
      .check({ spec: spec.check, target: t.addr, timeoutMs: spec.timeoutMs, signal: this.abort.signal })
      .then(
        (r) => this.finishCheck(id, spec, r),
        (err: unknown) =>
          this.finishCheck(id, spec, {
            ok: false,
            latencyMs: 0,
            reason: `checker error: ${(err as Error).message}`,
          }),
      );
    this.inFlight.set(id, p);
  }

  private finishCheck(id: string, spec: PoolSpec, r: CheckResult): void {
    this.inFlight.delete(id);
    const now = this.deps.clock.nowMs();
    let lbl = this.checkLabels.get(spec.name);
    if (lbl === undefined) {
      lbl = {
        ok: this.metrics.checksTotal.labels(spec.name, "ok"),
        fail: this.metrics.checksTotal.labels(spec.name, "fail"),
        dur: this.metrics.checkDuration.labels(spec.name),
      };
      this.checkLabels.set(spec.name, lbl);
    }
    (r.ok ? lbl.ok : lbl.fail).inc();
    if (checkFinishChannel.hasSubscribers) checkFinishChannel.publish({ node: this.name, id, result: r });
    lbl.dur.observe(r.latencyMs / 1000);

    const t = this.byId.get(id);
    // The pool changed or the target left while the check ran: its result no longer counts.
    if (t !== undefined && this.pools.get(t.pool)?.spec === spec) {
      const wall = this.deps.clock.wallMs();
      t.recent.push({ ts: wall, ok: r.ok, latencyMs: r.latencyMs, reason: r.reason });
      if (t.recent.length > limits.recentResultsPerTarget) t.recent.shift();
      const { next, transition } = applyResult(t.obs, r, spec, wall);
      t.obs = next;
      if (transition !== undefined) {
        this.events.append(wall, {
          type: "observation.changed",
          pool: t.pool,
          target: t.addr.key,
          node: this.name,
          from: transition.from,
          to: transition.to,
          cause: transition.cause,
        });
        this.recomputeVerdict(t, spec, wall);
      }
      this.scheduler.complete(id, now, checkMode(t.obs));
    } else {
      this.scheduler.complete(id, now);
    }
    this.pump();
  }

  /** The observations that vote on a target. One node for now: its own. */
  private votes(t: TargetState): Health[] {
    return [t.obs.state];
  }

  private recomputeVerdict(t: TargetState, spec: PoolSpec, wall: number): void {
    const v = computeVerdict(spec.verdict, this.votes(t), t.verdict);
    if (v === t.verdict) return;
    const from = t.verdict;
    t.verdict = v;
    t.verdictSinceMs = wall;
    this.events.append(wall, {
      type: "verdict.changed",
      pool: t.pool,
      target: t.addr.key,
      node: this.name,
      from,
      to: v,
      cause: t.obs.lastReason,
    });
  }

  // ── fast local lookups (agent-check, DNS) ───────────────────────────────

  /** The effective state of one target, for HAProxy's agent-check; undefined when unknown. */
  lookupTarget(
    pool: string,
    target: string,
  ): { state: Effective; reason: string; health: Health } | undefined {
    const t = this.pools.get(pool)?.targets.get(target);
    if (t === undefined) return undefined;
    const state = effectiveState(t.verdict, t.admin);
    return {
      state,
      reason: t.admin !== "none" ? (t.adminReason ?? t.admin) : t.obs.lastReason,
      health: t.verdict,
    };
  }

  /** The agent-check server's address, when it runs. */
  get agentPort(): number | undefined {
    return this.agent?.port;
  }

  private registerAgentMetrics(agent: AgentServer): void {
    new Counter({
      name: "vigil_agent_requests_total",
      help: "HAProxy agent-check connections by outcome (up, down, maint, drain, unknown, unknown_target, bad_request, idle_timeout, rejected, error).",
      labelNames: ["result"] as const,
      registers: [this.metrics.registry],
      collect() {
        // The server keeps the counts; a scrape copies them.
        this.reset();
        for (const o of agentRequestOutcomes) this.labels(o).inc(agent.stats.requests[o]);
      },
    });
  }

  /** The addresses to route to in a pool (after fail_open); undefined when there is no such pool. */
  healthyTargets(pool: string): TargetAddr[] | undefined {
    const ps = this.pools.get(pool);
    if (ps === undefined) return undefined;
    const keys = new Set(healthyOf(ps));
    return ps.spec.targets.filter((a) => keys.has(a.key));
  }

  // ── ApiBackend ───────────────────────────────────────────────────────────

  health(): unknown {
    const wall = this.deps.clock.wallMs();
    return {
      name: this.name,
      version: VERSION,
      uptimeSeconds: Math.round((wall - this.startedWallMs) / 1000),
      startedAt: new Date(this.startedWallMs).toISOString(),
      pools: this.pools.size,
      targets: this.byId.size,
    };
  }

  members(): unknown[] {
    const n = this.config.node;
    return [
      {
        name: n.name,
        state: "alive",
        incarnation: 0,
        zone: n.zone,
        gossip: n.gossip,
        api: n.api,
        self: true,
      },
    ];
  }

  listPools(): unknown[] {
    return [...this.pools.values()]
      .sort((a, b) => (a.spec.name < b.spec.name ? -1 : 1))
      .map((ps) => {
        const counts = this.countStates(ps.targets.values());
        return { name: ps.spec.name, type: ps.spec.check.type, targets: ps.targets.size, counts };
      });
  }

  getPool(name: string): unknown | undefined {
    const ps = this.pools.get(name);
    if (ps === undefined) return undefined;
    const targets = [...ps.targets.values()].map((t) => this.targetView(t, false));
    return { name, spec: ps.doc, targets, healthy: healthyOf(ps), failOpenActive: failOpenActive(ps) };
  }

  putPool(name: string, doc: unknown): { created: boolean; pool: unknown } {
    const spec = parsePoolDocument(name, doc);
    const { created } = this.applyPool(spec, poolToDocument(spec), "api");
    return { created, pool: this.getPool(name) };
  }

  deletePool(name: string): boolean {
    const ps = this.pools.get(name);
    if (ps === undefined) return false;
    const now = this.deps.clock.nowMs();
    for (const t of [...ps.targets.values()]) this.removeTarget(ps, t, now);
    this.pools.delete(name);
    this.events.append(this.deps.clock.wallMs(), {
      type: "pool.deleted",
      pool: name,
      node: this.name,
      cause: "api",
    });
    return true;
  }

  getTarget(pool: string, target: string): unknown | undefined {
    const t = this.pools.get(pool)?.targets.get(target);
    return t === undefined ? undefined : this.targetView(t, true);
  }

  setAdmin(pool: string, target: string, body: unknown): unknown {
    const t = this.pools.get(pool)?.targets.get(target);
    if (t === undefined) {
      throw new VigilError(
        ErrorCode.notFound,
        this.pools.has(pool) ? `pool "${pool}" has no target "${target}"` : `no pool named "${pool}"`,
      );
    }
    const { state, reason } = parseAdminBody(body);
    if (state !== t.admin || reason !== t.adminReason) {
      const from = t.admin;
      t.admin = state;
      t.adminReason = reason;
      this.events.append(this.deps.clock.wallMs(), {
        type: "target.admin",
        pool,
        target,
        node: this.name,
        from,
        to: state,
        ...(reason === undefined ? {} : { cause: reason }),
      });
    }
    return this.targetView(t, true);
  }

  queryEvents(q: EventQuery): { events: VigilEvent[]; next: number } {
    return this.events.query(q);
  }

  async metricsText(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() };
  }

  extraRoute(req: IncomingMessage, res: ServerResponse, segments: string[], url: URL): boolean {
    if (
      segments.length === 3 &&
      segments[0] === "v1" &&
      segments[1] === "events" &&
      segments[2] === "stream"
    ) {
      if (req.method !== "GET")
        throw new VigilError(ErrorCode.methodNotAllowed, "method not allowed; use GET");
      this.streams.open(req, res, url);
      return true;
    }
    return false;
  }

  private countStates(targets: Iterable<TargetState>): Record<Effective, number> {
    const counts: Record<Effective, number> = { up: 0, down: 0, unknown: 0, maint: 0, drain: 0 };
    for (const t of targets) counts[effectiveState(t.verdict, t.admin)]++;
    return counts;
  }

  private targetView(t: TargetState, detail: boolean): unknown {
    const state = effectiveState(t.verdict, t.admin);
    const view: Record<string, unknown> = {
      target: t.addr.key,
      state,
      verdict: t.verdict,
      since: t.verdictSinceMs,
      admin: t.admin,
      reason: t.admin !== "none" ? (t.adminReason ?? t.admin) : t.obs.lastReason,
      observers: [
        {
          node: this.name,
          state: t.obs.state,
          since: t.obs.sinceWallMs,
          reason: t.obs.lastReason,
          latencyMs: t.obs.lastLatencyMs,
          checkedAt: t.obs.lastCheckedWallMs,
        },
      ],
    };
    if (t.admin !== "none" && t.adminReason !== undefined) view.adminReason = t.adminReason;
    if (detail) view.recent = t.recent;
    return view;
  }
}

function healthyOf(ps: PoolState): string[] {
  const up = [...ps.targets.values()]
    .filter((t) => effectiveState(t.verdict, t.admin) === "up")
    .map((t) => t.addr.key);
  if (up.length > 0 || !ps.spec.failOpen) return up;
  // Envoy's panic mode: when nothing is up, route to everything not under maintenance.
  return [...ps.targets.values()].filter((t) => t.admin === "none").map((t) => t.addr.key);
}

function failOpenActive(ps: PoolState): boolean {
  return (
    ps.spec.failOpen && ![...ps.targets.values()].some((t) => effectiveState(t.verdict, t.admin) === "up")
  );
}

function timingOf(spec: PoolSpec) {
  return {
    intervalMs: spec.intervalMs,
    fastIntervalMs: spec.fastIntervalMs,
    downIntervalMs: spec.downIntervalMs,
    jitter: spec.jitter,
    timeoutMs: spec.timeoutMs,
  };
}

function parseAdminBody(body: unknown): { state: AdminState; reason: string | undefined } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new VigilError(
      ErrorCode.badRequest,
      'expected a JSON object like {"state": "maint", "reason": "..."}',
    );
  }
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== "state" && k !== "reason")
      throw new VigilError(ErrorCode.badRequest, `unknown key "${k}"`, { path: k });
  }
  const state = o.state;
  if (state !== "maint" && state !== "drain" && state !== "none") {
    throw new VigilError(
      ErrorCode.badRequest,
      `expected "maint", "drain" or "none", got ${JSON.stringify(state)}`,
      {
        path: "state",
      },
    );
  }
  const reason = o.reason;
  if (reason !== undefined && (typeof reason !== "string" || reason.length > limits.maxReasonChars)) {
    throw new VigilError(
      ErrorCode.badRequest,
      `expected a string of at most ${limits.maxReasonChars} characters`,
      {
        path: "reason",
      },
    );
  }
  return { state, reason: reason as string | undefined };
}

export function splitHostPort(s: string): [string, number] {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (m === null) throw new VigilError(ErrorCode.config, `expected host:port, got "${s}"`);
  return [m[1]!, Number(m[2])];
}
