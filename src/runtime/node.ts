import { channel } from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { availableParallelism, networkInterfaces } from "node:os";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { AlertManager, firstLiveMember, registerAlertMetrics } from "../alerts/index.ts";
import type { CheckResult, Prober } from "../checkers/types.ts";
import { historySettingsOf } from "../config/history.ts";
import { parsePoolDocument, poolToDocument } from "../config/load.ts";
import type { PoolSpec, TargetAddr, VigilConfig } from "../config/types.ts";
import type { Clock } from "../core/clock.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { membershipConfig } from "../core/membership/config.ts";
import { Membership } from "../core/membership/membership.ts";
import type { MembershipEvent, MemberView } from "../core/membership/types.ts";
import { type CoreOutput, NodeCore } from "../core/node/node-core.ts";
import type { Random } from "../core/random.ts";
import type { AdminState, Effective, Health } from "../core/verdict/verdict.ts";
import { type AgentServer, type AgentServerStats, startAgentServer } from "../serve/agent-server.ts";
import { nodeRouteContext, serveHistoryRoute } from "../serve/api/history-routes.ts";
import {
  type ApiBackend,
  type ApiHandler,
  type ApiServer,
  apiServerOver,
  apiTimeoutsDefault,
  createApiHandler,
  startApiServer,
} from "../serve/api/server.ts";
import { targetsRoute } from "../serve/api/targets-route.ts";
import { type DnsServer, type DnsTarget, startDnsServer } from "../serve/dns-server.ts";
import {
  type AgentTableEntry,
  type HttpTableEntry,
  type LookupThread,
  startLookupThread,
} from "../serve/lookup-thread.ts";
import { createNodeMetrics, type NodeMetrics } from "../serve/metrics.ts";
import { createNodeSecurity, type NodeSecurity } from "../serve/security.ts";
import { EventStreams } from "../serve/sse.ts";
import { serveUi } from "../serve/ui-static.ts";
import { VERSION } from "../version.ts";
import { advertiseHost } from "./advertise.ts";
import { EventLog, type EventQuery, type EventType, type VigilEvent } from "./events.ts";
import { History, type HistoryTuning } from "./history.ts";
import type { Logger } from "./log.ts";
import { type ConfigLoader, ConfigReloader, type ReloadResult } from "./reload.ts";
import { Keyring } from "./transport/keyring.ts";
import { bracketHost, joinHostPort, splitAddr, UdpTcpTransport } from "./transport/udp-tcp.ts";

/** diagnostics_channel names for what benchmarks and tracers watch, free when unwatched. */
export const checkStartChannel = channel("vigil:check:start");
export const checkFinishChannel = channel("vigil:check:finish");

export interface NodeDeps {
  clock: Clock;
  random: Random;
  prober: Prober;
  logger: Logger;
  /** History timing for tests and benchmarks (src/runtime/history.ts); defaults otherwise. */
  history?: Partial<HistoryTuning>;
  /** false: the agent-check and DNS servers run on the node's own event loop, not on the
   * lookup thread (src/serve/lookup-thread.ts); for comparison in bench/lookup.ts. */
  lookupThread?: boolean;
  /** The chrt that sets node.lookup_rt_priority (tests point it at one that is not there). */
  chrtPath?: string;
  /** The machine's cores as the node counts them (os.availableParallelism); tests set it. */
  cores?: number;
}

/** A counter whose value is read at scrape time from something that keeps the count. */
function liveCounter(registers: Registry[], name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge whose value is read at scrape time. */
function liveGauge(registers: Registry[], name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read());
    },
  });
}

/** liveCounter for counts kept by one label's value: a series per key of what `read` gives. */
function liveCounterBy(
  registers: Registry[],
  name: string,
  help: string,
  label: string,
  read: () => Readonly<Record<string, number>>,
): Counter {
  return new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [value, n] of Object.entries(read())) this.labels(value).inc(n);
    },
  });
}

/** A target id (`pool/host:port`, the core's) as its pool and target key. */
function splitTargetId(id: string): [pool: string, target: string] {
  const slash = id.indexOf("/");
  return [id.slice(0, slash), id.slice(slash + 1)];
}

/** Stream frames are multiplexed by their first byte. */
const CHANNEL_MEMBERSHIP = 0x4d; // "M"
const CHANNEL_REPLICATION = 0x52; // "R"
/** Past the membership's own leave bound (leaveTimeoutMs: the announcement gossiped, or that
 * long), how long stop() waits for it anyway: the core's timer runs on this loop, so a starved
 * machine may fire it late. */
const LEAVE_BACKSTOP_MS = 1_000;
/** DNS table changes reach the lookup servers at most this often (feedDnsSoon). */
const DNS_FEED_EVERY_MS = 50;
/** How often, at most, target views whose verdict did not move (a check's latency and time, an
 * observer's register) reach the lookup processes' HTTP table (`node.lookup_api`); a verdict,
 * reason or admin change goes at once. */
const HTTP_FEED_EVERY_MS = 100;
/** Replication sync streams time out after this. */
const SYNC_TIMEOUT_MS = 10_000;

/** What a node says about itself in gossip metadata (≤ limits.maxMetaBytes). */
interface NodeMeta {
  zone: string;
  weight: number;
  api: string;
  version: string;
}

function encodeMeta(m: NodeMeta): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify({ z: m.zone, w: m.weight, a: m.api, v: m.version }));
  if (bytes.length > limits.maxMetaBytes)
    throw new VigilError(ErrorCode.config, "node metadata exceeds 512 bytes");
  return bytes;
}

function decodeMeta(b: Uint8Array): NodeMeta {
  try {
    const o = JSON.parse(new TextDecoder().decode(b)) as {
      z?: unknown;
      w?: unknown;
      a?: unknown;
      v?: unknown;
    };
    return {
      zone: typeof o.z === "string" ? o.z : "default",
      weight: typeof o.w === "number" && o.w > 0 ? o.w : 1,
      api: typeof o.a === "string" ? o.a : "",
      version: typeof o.v === "string" ? o.v : "",
    };
  } catch {
    return { zone: "default", weight: 1, api: "", version: "" };
  }
}

const memberEventTypes: Partial<Record<string, EventType>> = {
  "member.joined": "member.joined",
  "member.alive": "member.alive",
  "member.suspect": "member.suspect",
  "member.dead": "member.dead",
  "member.left": "member.left",
  "member.updated": "member.updated",
};

/**
 * One Vigil node: the imperative shell around the sans-IO cores (membership and the node
 * core). It owns the sockets, the one timer, the checkers and the servers, and carries out
 * what the cores ask for.
 */
export class VigilNode implements ApiBackend {
  readonly config: VigilConfig;
  readonly name: string;
  readonly events: EventLog;
  readonly metrics: NodeMetrics;
  readonly streams: EventStreams;
  /** Replaced once, at the start of start(), when the store's counter is past the boot epoch. */
  core: NodeCore;
  /** The durable history (node.store), open from start() to stop(); undefined with `store: none`. */
  history: History | undefined;
  /** The observation counter this boot starts from unless the store holds a higher one. */
  private readonly bootCounter: number;
  private membership: Membership | undefined;
  private transport: UdpTcpTransport | undefined;
  private readonly deps: NodeDeps;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private api: ApiServer | undefined;
  /** Tokens and TLS for the API, the peer client, the targets_allow guard (docs/security.md). */
  readonly security: NodeSecurity;
  private agent: AgentServer | undefined;
  private lookups: LookupThread | undefined;
  private lookupFeedQueued = false;
  /** Pools whose DNS answer may have changed, waiting for the next DNS feed (feedDnsSoon). */
  private readonly dnsFeedPools = new Set<string>();
  private dnsFeedTimer: NodeJS.Timeout | undefined;
  /** Target ids whose HTTP body the lookup processes have not had yet (`node.lookup_api`). */
  private readonly httpFeedTargets = new Set<string>();
  private httpFeedTimer: NodeJS.Timeout | undefined;
  /** Lookup-process answers already added to vigil_http_requests_total. */
  private lookupAnswersCounted = 0;
  private dnsFedAtMs = Number.NEGATIVE_INFINITY;
  private dns: DnsServer | undefined;
  /** Alerts (the config's `alerts:`), running from start() to stop(); docs/alerts.md. */
  readonly alerts: AlertManager | undefined;
  private stopping = false;
  private pumping = false;
  /** A pump is queued for the end of this event-loop turn (see pumpSoon). */
  private pumpQueued = false;
  private leaveDone: (() => void) | undefined;
  private readonly startedWallMs: number;
  /** Made by the first reloadConfig. */
  private reloader: ConfigReloader | undefined;
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
    // A boot epoch: the counter only grows across restarts without reading anything back.
    this.bootCounter = Math.floor(deps.clock.wallMs()) * 1000;
    this.core = this.newCore(this.bootCounter);
    this.metrics = createNodeMetrics({
      targetCounts: () => this.countStates(this.core.allTargets()),
      checksInFlight: () => this.inFlight.size,
      checksQueued: () => this.core.scheduler.stats().queued,
    });
    this.startedWallMs = deps.clock.wallMs();
    this.metrics.configLastReloadSuccess.set(this.startedWallMs / 1000);
    this.events.subscribe((e) => this.metrics.eventsTotal.labels(e.type).inc());
    this.streams = new EventStreams(this.events);
    this.registerClusterMetrics();
    this.security = createNodeSecurity(config.node, { logger: this.log, registry: this.metrics.registry });
    if (config.alerts !== undefined) {
      const alerts = new AlertManager({
        spec: config.alerts,
        dataDir: config.node.dataDir,
        node: this.name,
        clock: deps.clock,
        random: deps.random,
        logger: this.log,
        // One node sends a target's alerts: its first rendezvous owner among live members.
        isSender: (id) => this.core.owners(id)[0] === this.name,
        isStormSender: () => firstLiveMember(this.core.memberList()) === this.name,
        targetCount: () => this.core.targetCount(),
        targetExists: (pool, target) => this.core.target(pool, target) !== undefined,
      });
      this.events.subscribe((e) => alerts.handleEvent(e));
      registerAlertMetrics(this.metrics.registry, () => alerts);
      this.alerts = alerts;
    }
  }

  private newCore(counterStart: number): NodeCore {
    const config = this.config;
    const profile = membershipConfig(config.node.profile);
    return new NodeCore({
      name: this.name,
      zone: config.node.zone,
      weight: config.node.weight,
      random: this.deps.random,
      maxConcurrentChecks: config.node.maxConcurrentChecks,
      counterStart,
      parsePool: (name, doc) => parsePoolDocument(name, doc),
      antiEntropyIntervalMs: Math.min(profile.pushPullIntervalMs, 10_000),
      retransmitMult: profile.retransmitMult,
    });
  }

  get apiUrl(): string {
    if (this.api === undefined) throw new Error("invariant: node not started");
    return this.api.url;
  }

  /** The gossip address actually bound (port 0 in the config picks one). */
  get gossipAddr(): string {
    if (this.transport === undefined) throw new Error("invariant: node not started");
    return this.transport.localAddr;
  }

  get agentPort(): number | undefined {
    return this.agent?.port;
  }

  /** The agent-check server's counters (its thread's, read from shared memory). */
  get agentStats(): AgentServerStats | undefined {
    return this.agent?.stats;
  }

  get dnsPort(): number | undefined {
    return this.dns?.port;
  }

  private now(): number {
    return this.deps.clock.nowMs();
  }

  private wall(): number {
    return this.deps.clock.wallMs();
  }

  async start(): Promise<void> {
    const n = this.config.node;
    // First, before binding anything: a bad data_dir or an unreachable database stops the node
    // with one clear VIGIL_ERR_STORE, not half a node or a crash loop.
    await this.openHistory();
    // Before any pool is loaded: the first verdicts are alert inputs too.
    this.alerts?.start();
    const [ghost, gport] = splitAddr(n.gossip);
    const keyring = n.encryptKeys.length > 0 ? new Keyring(n.encryptKeys, "vigil") : undefined;
    this.transport = await UdpTcpTransport.listen({
      host: ghost,
      port: gport,
      ...(keyring === undefined ? {} : { keyring }),
      handlers: {
        onPacket: (from, bytes) => {
          this.membership?.handlePacket(this.now(), from, bytes);
          this.pump();
        },
        onStream: (from, bytes) => {
          const reply = this.handleStream(from, bytes);
          this.pump();
          return reply;
        },
      },
    });
    const [ahost, aport] = splitAddr(n.api);
    const apiOptions = {
      backend: this,
      onRequest: (route: string, code: number) => this.metrics.httpRequests.labels(route, String(code)).inc(),
      auth: () => this.security.auth, // asked per request: a config reload may change it
    };
    // node.lookup_api: the lookup processes listen on the API's port (and hand this node every
    // connection they do not keep), so they start before anything needs its address.
    const apiInLookups = n.lookupApi === true && this.deps.lookupThread !== false;
    if (apiInLookups) {
      const handler = createApiHandler(apiOptions);
      await this.startLookupServers({ host: ahost, port: aport, handler });
      const at = this.lookups!.http!;
      this.api = apiServerOver(handler, at.host, at.port);
    } else {
      this.api = await startApiServer({
        host: ahost,
        port: aport,
        ...apiOptions,
        ...(this.security.tls === undefined ? {} : { tls: this.security.tls }),
      });
    }
    // Peers need an address they can reach, not the 0.0.0.0 a node may bind (advertise.ts).
    const interfaces = networkInterfaces();
    const [gossipBind, gossipPort] = splitAddr(this.transport.localAddr);
    const gossipHost = advertiseHost(gossipBind, n.advertise, interfaces);
    const apiUrl = new URL(this.api.url);
    apiUrl.hostname = bracketHost(advertiseHost(ahost, n.advertise, interfaces));
    this.membership = new Membership({
      name: this.name,
      addr: joinHostPort(gossipHost, gossipPort),
      now: this.now(),
      random: this.deps.random,
      config: membershipConfig(n.profile),
      meta: encodeMeta({ zone: n.zone, weight: n.weight, api: apiUrl.origin, version: VERSION }),
      delegate: {
        getBroadcasts: (overhead, limit) => this.core.getBroadcasts(overhead, limit),
        notifyMsg: (_from, payload) => this.core.notifyMsg(payload, this.now(), this.wall()),
        localState: () => new Uint8Array(0),
        mergeRemoteState: () => {},
      },
    });
    for (const [name, spec] of this.config.pools) {
      this.core.putPool(name, this.config.rawPools.get(name) ?? spec, this.now(), this.wall(), "config");
    }
    if (!apiInLookups) await this.startLookupServers(undefined);
    if (n.join.length > 0) {
      // Hold checks until the join completes (or fails): alone, this node would own and
      // check every target only to hand most of them over a moment later.
      this.core.holdChecks(true);
      this.membership.join(this.now(), n.join);
    }
    this.log.info(
      {
        api: this.api.url,
        gossip: this.transport.localAddr,
        pools: this.core.poolNames().length,
        join: n.join,
      },
      "node started",
    );
    this.pump();
  }

  /** Opens the store, takes the observation counter past the persisted one, follows the event log. */
  private async openHistory(): Promise<void> {
    const settings = historySettingsOf(this.config.node);
    if (settings.store.kind === "none") return;
    const history = await History.open({
      node: this.name,
      dataDir: this.config.node.dataDir,
      settings,
      clock: this.deps.clock,
      logger: this.log,
      view: {
        owners: (id) => this.core.owners(id),
        observedSinceMs: (id, observer) => this.core.observations.get(id, observer)?.value.sinceWallMs,
        liveMembers: () =>
          this.core
            .memberList()
            .filter((m) => m.state === "alive" || m.state === "suspect")
            .map((m) => m.name),
      },
      ...(this.deps.history === undefined ? {} : { tuning: this.deps.history }),
    });
    try {
      const counterStart = await history.startCounter(this.bootCounter);
      // The clock is behind counters a previous run used: the core must start past them.
      if (counterStart > this.bootCounter) this.core = this.newCore(counterStart);
      // Pools and admin states as last stored, merged before the config's pools and before
      // anything is served; from here on their changes are written back (docs/storage.md).
      await history.restoreState(this.core);
    } catch (e) {
      await history.close().catch(() => {});
      throw e;
    }
    history.registerMetrics(this.metrics.registry);
    history.start(this.events);
    this.history = history;
  }

  /** Leave the cluster, stop scheduling, let in-flight checks finish or time out, close servers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    if (this.membership !== undefined && this.transport !== undefined) {
      const left = new Promise<void>((resolve) => {
        this.leaveDone = resolve;
      });
      this.membership.leave(this.now());
      this.pump();
      // The membership says when its leave has been gossiped enough (or its profile's
      // leaveTimeoutMs passed: 2 s local, 5 s lan, 15 s wan); cutting it shorter could stop
      // before the others heard, and they would then take the node for failed, not left.
      const bound = this.membership.config.leaveTimeoutMs + LEAVE_BACKSTOP_MS;
      await Promise.race([left, new Promise((r) => setTimeout(r, bound).unref())]);
    }
    this.stopping = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dnsFeedTimer !== undefined) clearTimeout(this.dnsFeedTimer);
    this.dnsFeedTimer = undefined;
    if (this.httpFeedTimer !== undefined) clearTimeout(this.httpFeedTimer);
    this.httpFeedTimer = undefined;
    const pending = [...this.inFlight.values()];
    this.log.info({ inFlight: pending.length }, "stopping: waiting for in-flight checks");
    await Promise.allSettled(pending);
    this.streams.closeAll();
    await this.alerts?.stop();
    await Promise.all([
      this.agent?.close(),
      this.dns?.close(),
      this.lookups?.close(), // the agent's and DNS's close, and the only one with the API alone
      this.api?.close(),
      this.transport?.close(),
    ]);
    await this.deps.prober.close();
    // Last: the checks that were in flight are in the final minute it writes.
    await this.history?.close();
    this.log.info("node stopped");
  }

  // ── the loop: one timer at the earliest deadline of either core ─────────

  private handleStream(from: string, bytes: Uint8Array): Uint8Array | undefined {
    if (bytes.length === 0) return undefined;
    const body = bytes.subarray(1);
    if (bytes[0] === CHANNEL_MEMBERSHIP) {
      const reply = this.membership?.handleStream(this.now(), from, body);
      return reply === undefined ? undefined : prefixed(CHANNEL_MEMBERSHIP, reply);
    }
    if (bytes[0] === CHANNEL_REPLICATION) {
      const reply = this.core.handleSync(body, this.now(), this.wall());
      return reply === undefined ? undefined : prefixed(CHANNEL_REPLICATION, reply);
    }
    return undefined;
  }

  /** Runs both cores until they have nothing more to say, then re-arms the timer. */
  private pump(): void {
    if (this.stopping || this.pumping) return;
    this.pumping = true;
    try {
      const m = this.membership;
      if (m !== undefined) {
        m.tick(this.now());
        for (let o = m.poll(); o !== undefined; o = m.poll()) this.membershipOutput(o);
      }
      // Read the clock again: handling membership output advanced the core already.
      this.core.tick(this.now(), this.wall());
      for (const o of this.core.drain()) this.coreOutput(o);
      this.arm(this.now());
    } finally {
      this.pumping = false;
    }
  }

  private arm(now: number): void {
    const next = Math.min(
      this.core.nextDeadline(),
      this.membership?.nextDeadline() ?? Number.POSITIVE_INFINITY,
    );
    if (!Number.isFinite(next)) return;
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

  private membershipOutput(o: ReturnType<Membership["poll"]> & object): void {
    const t = this.transport!;
    switch (o.kind) {
      case "send":
        t.send(o.to, o.bytes);
        return;
      case "stream":
        t.request(o.to, prefixed(CHANNEL_MEMBERSHIP, o.bytes), SYNC_TIMEOUT_MS).then(
          (reply) => {
            this.membership?.handleStreamReply(this.now(), o.reqId, unprefixed(CHANNEL_MEMBERSHIP, reply));
            this.pump();
          },
          (err: Error) => {
            this.membership?.handleStreamReply(this.now(), o.reqId, err);
            this.pump();
          },
        );
        return;
      case "event":
        this.membershipEvent(o.event);
        return;
    }
  }

  private membershipEvent(e: MembershipEvent): void {
    if (e.type === "leave.done") {
      this.leaveDone?.();
      return;
    }
    if (e.type === "join.done") {
      if (e.contacted === 0)
        this.log.warn({ failed: e.failed }, "join: no seed answered; checking alone until one does");
      else this.log.info({ contacted: e.contacted }, "joined");
      this.core.holdChecks(false);
      this.core.syncSoon();
      return;
    }
    const m = e.member;
    if (e.type === "member.reaped") {
      this.core.memberReaped(m.name, this.now(), this.wall());
      return;
    }
    const meta = decodeMeta(m.meta);
    this.core.memberUpdate(
      { name: m.name, zone: meta.zone, weight: meta.weight, state: m.state },
      this.now(),
      this.wall(),
    );
    const type = memberEventTypes[e.type];
    if (type !== undefined) {
      this.events.append(this.wall(), { type, node: m.name, incarnation: m.incarnation, cause: m.state });
      this.log.info({ member: m.name, state: m.state, incarnation: m.incarnation }, e.type);
    }
  }

  private coreOutput(o: CoreOutput): void {
    switch (o.kind) {
      case "check":
        this.startCheck(o.id, o.spec, o.target, o.lagMs);
        return;
      case "event": {
        const { ts, ...rest } = o.event;
        this.events.append(ts, rest as Omit<VigilEvent, "seq" | "ts">);
        return;
      }
      case "sync": {
        const addr = this.membership?.member(o.to)?.addr;
        if (addr === undefined) {
          this.core.handleSyncReply(o.reqId, new Error(`no address for ${o.to}`), this.now(), this.wall());
          return;
        }
        this.transport!.request(addr, prefixed(CHANNEL_REPLICATION, o.bytes), SYNC_TIMEOUT_MS).then(
          (reply) => {
            this.core.handleSyncReply(
              o.reqId,
              unprefixed(CHANNEL_REPLICATION, reply),
              this.now(),
              this.wall(),
            );
            this.pump();
          },
          (err: Error) => {
            this.core.handleSyncReply(o.reqId, err, this.now(), this.wall());
            this.pump();
          },
        );
        return;
      }
      case "counter":
        this.history?.noteCounter(o.value); // boot epochs cover restarts without a store
        return;
    }
  }

  private startCheck(id: string, spec: PoolSpec, target: TargetAddr, lagMs: number): void {
    if (this.security.guard !== undefined && !this.security.guard.mayCheck(spec.name, target)) {
      // Outside this node's targets_allow (a pool written elsewhere): never probed, no
      // observation written; the slot is freed and the target comes round again as usual.
      this.core.scheduler.complete(id, this.now(), "normal");
      this.pumpSoon();
      return;
    }
    this.metrics.schedulerLag.observe(lagMs / 1000);
    if (checkStartChannel.hasSubscribers) checkStartChannel.publish({ node: this.name, id, lagMs });
    const p = this.deps.prober
      .check({ spec: spec.check, target, timeoutMs: spec.timeoutMs, signal: this.abort.signal })
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
    lbl.dur.observe(r.latencyMs / 1000);
    if (checkFinishChannel.hasSubscribers) checkFinishChannel.publish({ node: this.name, id, result: r });
    this.history?.recordCheck(id, r, this.wall());
    if (this.stopping) return;
    this.core.checkDone(id, spec, r, this.now(), this.wall());
    this.pumpSoon();
  }

  /**
   * One pump for all the checks that finished in this event-loop turn: at thousands of checks a
   * second many complete in the same turn, and each pump ticks both cores and re-arms the timer.
   * The result is already in the core, so only the start of the next due checks waits, by less
   * than a turn.
   */
  private pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  // ── config reload (SIGHUP) ───────────────────────────────────────────────

  /**
   * Loads the config again with `load` (`vigil agent`: its file, as at start) and applies what
   * can change without a restart: the file's pools (cause "config"), API tokens, the API
   * certificate, targets_allow; other changed settings are warned about (src/runtime/reload.ts).
   * A config that does not load changes nothing, and is logged and counted. One reload at a
   * time: those asked for meanwhile run once more after it. Never rejects.
   */
  reloadConfig(load: ConfigLoader): Promise<ReloadResult> {
    this.reloader ??= new ConfigReloader({
      config: this.config,
      security: this.security,
      log: this.log,
      metrics: this.metrics,
      wallMs: () => this.wall(),
      putPool: (name, doc) => {
        this.core.putPool(name, doc, this.now(), this.wall(), "config");
      },
      deletePool: (name) => this.core.deletePool(name, this.now(), this.wall(), "config"),
      poolsChanged: () => this.pump(),
      replaceApiTls: (tls) => this.api?.replaceTls(tls),
      securityChanged: ({ tokens, tokensChanged, allowChanged }) => {
        if (tokensChanged) {
          this.streams.closeAll();
          if (this.lookups?.http !== undefined) this.lookups.setTokens(tokens);
        }
        // targets_allow shows in each target's view (a check refused): every body again.
        if (allowChanged) this.refreshHttpTable();
      },
    });
    return this.reloader.request(load);
  }

  // ── fast local lookups (agent-check, DNS) ───────────────────────────────

  lookupTarget(
    pool: string,
    target: string,
  ): { state: Effective; reason: string; health: Health } | undefined {
    const t = this.core.target(pool, target);
    if (t === undefined) return undefined;
    const admin = this.core.admin(t.id);
    const state = this.core.effective(t);
    let reason = admin.state !== "none" ? (admin.reason ?? admin.state) : "";
    if (reason === "") {
      const v = this.core.view(t);
      reason = v.reason;
    }
    return { state, reason, health: t.verdict };
  }

  /**
   * The agent server's lookup: lookupTarget's answer, except that the reason is worked out only
   * for a target whose health is down, the only one whose reply carries it (`down ready #why`,
   * `down drain #why`). Every other reply is the same without it, and skips the full target view.
   */
  agentVerdict(
    pool: string,
    target: string,
  ): { state: Effective; reason: string; health: Health } | undefined {
    const t = this.core.target(pool, target);
    if (t === undefined) return undefined;
    if (t.verdict === "down") return this.lookupTarget(pool, target);
    return { state: this.core.effective(t), reason: "", health: t.verdict };
  }

  /**
   * The agent-check and DNS servers, on the lookup thread (src/serve/lookup-thread.ts) unless
   * deps.lookupThread is false, in which case they answer on this event loop. `api`: the API's
   * port for the lookup processes too (node.lookup_api), and the handler that serves the
   * connections they hand over.
   */
  private async startLookupServers(
    api: { host: string; port: number; handler: ApiHandler } | undefined,
  ): Promise<void> {
    const n = this.config.node;
    const agentAt = n.agent === undefined ? undefined : splitAddr(n.agent);
    const dnsAt = n.dns === undefined ? undefined : splitAddr(n.dns);
    if (agentAt === undefined && dnsAt === undefined && api === undefined) return;
    if (this.deps.lookupThread === false) {
      if (agentAt !== undefined)
        this.agent = await startAgentServer({
          host: agentAt[0],
          port: agentAt[1],
          lookup: (pool, t) => this.agentVerdict(pool, t),
        });
      if (dnsAt !== undefined)
        this.dns = await startDnsServer({
          host: dnsAt[0],
          port: dnsAt[1],
          lookup: (pool) => this.dnsAnswer(pool),
        });
    } else {
      // Real-time lookup processes on every core could, under a flood of lookups, leave the
      // node's own event loop (checks, gossip) only what the kernel's RT throttling spares.
      const rt = n.lookupRtPriority;
      const cores = this.deps.cores ?? availableParallelism();
      if (rt !== undefined && (n.lookupThreads ?? 1) >= cores)
        this.log.warn(
          { lookupThreads: n.lookupThreads ?? 1, cores },
          "node.lookup_rt_priority with as many lookup processes as cores: a flood of lookups can starve the node's checks and gossip; keep lookup_threads below the core count",
        );
      // Measured on 2 cores with the load generated on the same host (bench/results/
      // lookup-checking-api-rt.json): the node's event loop held up to 1.1 s.
      if (rt !== undefined && api !== undefined)
        this.log.warn(
          { lookupThreads: n.lookupThreads ?? 1, cores },
          "node.lookup_rt_priority with node.lookup_api: the API's target lookups are answered at real-time priority too, and anyone who can reach the API's port can send them; a flood can starve the node's checks and gossip",
        );
      // Record changes from here on, then hand the thread the whole tables: nothing falls
      // between the two.
      this.core.watchLookups(() => this.feedLookupsSoon(), { views: api !== undefined });
      const thread = await startLookupThread({
        threads: n.lookupThreads ?? 1,
        ...(n.lookupIsolation === undefined ? {} : { isolation: n.lookupIsolation }),
        ...(rt === undefined
          ? {}
          : {
              rtPriority: rt,
              onRtPriority: (pid: number, error: string | undefined) => this.logRtPriority(pid, rt, error),
              ...(this.deps.chrtPath === undefined ? {} : { chrtPath: this.deps.chrtPath }),
            }),
        ...(agentAt === undefined ? {} : { agent: { host: agentAt[0], port: agentAt[1] } }),
        ...(dnsAt === undefined ? {} : { dns: { host: dnsAt[0], port: dnsAt[1] } }),
        agentEntries:
          agentAt === undefined
            ? []
            : [...this.core.allTargets()].map((t) => [
                t.pool,
                t.addr.key,
                this.agentVerdict(t.pool, t.addr.key),
              ]),
        dnsEntries:
          dnsAt === undefined ? [] : this.core.poolNames().map((p) => [p, this.dnsAnswer(p)?.targets]),
        ...(api === undefined
          ? {}
          : {
              http: {
                host: api.host,
                port: api.port,
                keepAliveTimeoutMs: apiTimeoutsDefault.keepAliveTimeoutMs,
                headersTimeoutMs: apiTimeoutsDefault.headersTimeoutMs,
                ...(n.apiTokens === undefined ? {} : { tokens: n.apiTokens }),
              },
              httpEntries: [...this.core.allTargets()].map((t) => this.httpEntry(t.id)),
              onConnection: (socket: Socket, rest: Buffer) => {
                // As the node's own listener would have it (api/tls.ts): a peer that has sent
                // its request and shut down its side still gets the answer.
                socket.allowHalfOpen = true;
                api.handler.adopt(socket, rest);
              },
            }),
        onRestart: (err) => {
          if (err === undefined) this.log.warn("lookup thread died; a new one serves the same addresses");
          else this.log.error({ err: err.message }, "lookup thread died and could not be started again");
        },
        onDnsInternalError: (message) => this.log.error({ err: message }, "dns: query answered SERVFAIL"),
        onHung: (pid, silentMs) =>
          this.log.error(
            { pid, silentMs },
            "lookup thread stopped answering the node: stopped, and a new one serves the same addresses",
          ),
      });
      this.lookups = thread;
      this.agent = thread.agent;
      this.dns = thread.dns;
      this.feedLookups(); // what changed while the thread started
      liveCounter(
        [this.metrics.registry],
        "vigil_lookup_thread_restarts_total",
        "Lookup threads (agent-check, DNS) started again because one died; each is logged.",
        () => thread.restarts,
      );
      liveCounter(
        [this.metrics.registry],
        "vigil_lookup_thread_hangs_total",
        "Lookup threads stopped (and replaced) because they did not answer the node's pings for 5 s: a stuck event loop; each is logged.",
        () => thread.hangs,
      );
      if (rt !== undefined)
        liveGauge(
          [this.metrics.registry],
          "vigil_lookup_realtime_processes",
          "Lookup processes running at node.lookup_rt_priority (SCHED_FIFO); fewer than vigil_lookup_threads means the priority could not be set (logged).",
          () => thread.realtime,
        );
      liveGauge(
        [this.metrics.registry],
        "vigil_lookup_threads",
        "Threads answering agent-check and DNS (node.lookup_threads).",
        () => thread.threads,
      );
      const http = thread.http;
      if (http !== undefined) {
        liveCounter(
          [this.metrics.registry],
          "vigil_lookup_api_handovers_total",
          "API connections the lookup processes handed to the node (node.lookup_api): every route but target lookups, targets not in their table, credentials they do not pass.",
          () => http.stats.handedOver,
        );
        liveCounter(
          [this.metrics.registry],
          "vigil_lookup_api_cutoffs_total",
          "API connections the lookup processes closed because the client had not read the answers they wrote before a hand-over within the head timeout (10 s).",
          () => http.stats.cutOff,
        );
      }
    }
    if (this.agent !== undefined) this.registerAgentMetrics(this.agent);
    if (this.dns !== undefined) this.registerDnsMetrics(this.dns);
  }

  /** How node.lookup_rt_priority went for one lookup process. */
  private logRtPriority(pid: number, priority: number, error: string | undefined): void {
    if (error === undefined)
      this.log.info({ pid, priority }, "lookup process runs at real-time priority (SCHED_FIFO)");
    else
      this.log.warn(
        { pid, priority, err: error },
        "lookup process could not be given real-time priority; it runs at normal priority",
      );
  }

  /** A pool's DNS answer: its healthy targets (fail_open included), undefined for no pool. */
  private dnsAnswer(pool: string): { targets: DnsTarget[] } | undefined {
    const targets = this.core.healthy(pool);
    return targets === undefined
      ? undefined
      : { targets: targets.map((t) => ({ host: t.host, port: t.port })) };
  }

  /**
   * An API write's changes reach the lookup tables before its answer is written: a client that
   * sets a target to maint and then asks (on another connection, which a lookup process may
   * answer) sees maint. The message is on its way before the answer, and the lookup process
   * reads it first.
   */
  private feedLookupsNow(): void {
    if (this.lookupFeedQueued) this.feedLookups();
  }

  /** Changed lookups reach the lookup thread once per event-loop turn, in one message each. */
  private feedLookupsSoon(): void {
    if (this.lookupFeedQueued) return;
    this.lookupFeedQueued = true;
    setImmediate(() => this.feedLookups());
  }

  private feedLookups(): void {
    this.lookupFeedQueued = false;
    const thread = this.lookups;
    if (thread === undefined) return;
    const { targets, pools, views } = this.core.takeLookupChanges();
    if (thread.http !== undefined) {
      // A verdict, reason or admin state (and a target added or gone) at once, as the agent
      // table; every other change of a view within HTTP_FEED_EVERY_MS.
      if (targets.length > 0) thread.updateHttp(targets.map((id) => this.httpEntry(id)));
      for (const id of views) this.httpFeedTargets.add(id);
      for (const id of targets) this.httpFeedTargets.delete(id); // sent just now
      this.feedHttpSoon();
    }
    if (thread.agent !== undefined && targets.length > 0) {
      const entries: AgentTableEntry[] = [];
      for (const id of targets) {
        const [pool, target] = splitTargetId(id);
        entries.push([pool, target, this.agentVerdict(pool, target)]);
      }
      thread.updateAgent(entries);
    }
    if (thread.dns !== undefined && pools.length > 0) {
      for (const p of pools) this.dnsFeedPools.add(p);
      this.feedDnsSoon();
    }
  }

  /** Every target's HTTP body again, within HTTP_FEED_EVERY_MS. */
  private refreshHttpTable(): void {
    if (this.lookups?.http === undefined) return;
    for (const t of this.core.allTargets()) this.httpFeedTargets.add(t.id);
    this.feedHttpSoon();
  }

  /** The views waiting go out at the end of the window (one timer at a time). */
  private feedHttpSoon(): void {
    if (this.httpFeedTargets.size === 0 || this.stopping) return;
    this.httpFeedTimer ??= setTimeout(() => this.feedHttp(), HTTP_FEED_EVERY_MS).unref();
  }

  /** Views that changed within the window reach the HTTP table, rendered now. */
  private feedHttp(): void {
    this.httpFeedTimer = undefined;
    const thread = this.lookups;
    if (thread?.http === undefined || this.stopping) return;
    const ids = [...this.httpFeedTargets];
    this.httpFeedTargets.clear();
    if (ids.length > 0) thread.updateHttp(ids.map((id) => this.httpEntry(id)));
  }

  /** A target's row of the HTTP table: its body as `GET /v1/pools/{pool}/targets/{target}` sends
   * it with status 200 (the same bytes: targetAnswer), or undefined for a target that is gone. */
  private httpEntry(id: string): HttpTableEntry {
    const [pool, target] = splitTargetId(id);
    const view = this.getTarget(pool, target);
    return [pool, target, view === undefined ? undefined : JSON.stringify(view)];
  }

  /**
   * A DNS answer is a pool's whole healthy list (up to thousands of targets), so its changes go
   * out at most every DNS_FEED_EVERY_MS: the first at once, those within the window together at
   * its end. While many verdicts move (a node's first checks, a pool flapping), that is one
   * message per window instead of one per event-loop turn, each carrying the whole list; a
   * resolver's TTL is seconds.
   */
  private feedDnsSoon(): void {
    if (this.dnsFeedTimer !== undefined) return;
    const waitMs = this.dnsFedAtMs + DNS_FEED_EVERY_MS - this.now();
    if (waitMs <= 0) this.feedDns();
    // Asked again when it fires: a timer counts from the loop's cached time, which a long
    // callback leaves behind, so it may fire early by as much.
    else
      this.dnsFeedTimer = setTimeout(() => {
        this.dnsFeedTimer = undefined;
        this.feedDnsSoon();
      }, Math.ceil(waitMs)).unref();
  }

  private feedDns(): void {
    const pools = [...this.dnsFeedPools];
    this.dnsFeedPools.clear();
    const thread = this.lookups;
    if (thread?.dns === undefined || pools.length === 0 || this.stopping) return;
    thread.updateDns(pools.map((p) => [p, this.dnsAnswer(p)?.targets]));
    // The window starts when the message has gone: a pause while building it (a GC on a busy
    // machine) must not shorten the wait before the next one.
    this.dnsFedAtMs = this.now();
  }

  healthyTargets(pool: string): TargetAddr[] | undefined {
    return this.core.healthy(pool);
  }

  // ── metrics ──────────────────────────────────────────────────────────────

  private registerClusterMetrics(): void {
    const reg = [this.metrics.registry];
    const self = this;
    new Gauge({
      name: "vigil_members",
      help: "Cluster members as this node sees them, by state.",
      labelNames: ["state"] as const,
      registers: reg,
      collect() {
        const c = self.membership?.countByState();
        if (c !== undefined) for (const [k, v] of Object.entries(c)) this.labels(k).set(v);
      },
    });
    liveGauge(
      reg,
      "vigil_local_health_score",
      "Lifeguard local health score (0 healthy; higher = this node is slow or losing packets).",
      () => self.membership?.stats().localHealthScore ?? 0,
    );
    liveGauge(reg, "vigil_targets_owned", "Targets this node checks (it is one of their owners).", () =>
      self.core.ownedCount(),
    );
    liveCounter(
      reg,
      "vigil_suspicions_raised_total",
      "Members this node suspected.",
      () => self.membership?.stats().suspicionsRaised ?? 0,
    );
    liveCounter(
      reg,
      "vigil_suspicions_refuted_total",
      "Suspected members seen to refute.",
      () => self.membership?.stats().suspicionsRefuted ?? 0,
    );
    new Counter({
      name: "vigil_gossip_dropped_total",
      help: "Gossip packets and frames dropped (never thrown), by reason.",
      labelNames: ["reason"] as const,
      registers: reg,
      collect() {
        this.reset();
        const s = self.membership?.stats();
        if (s !== undefined) for (const [k, v] of Object.entries(s.droppedByReason)) this.labels(k).inc(v);
        const t = self.transport?.stats;
        if (t !== undefined) for (const [k, v] of Object.entries(t.dropped)) this.labels(k).inc(v);
        for (const [k, v] of Object.entries(self.core.stats.wireDropped))
          this.labels(`replication_${k}`).inc(v);
      },
    });
    // Messages and their bytes, by direction and type: one collector shape for both.
    const traffic = (name: string, help: string, field: "messages" | "bytes") =>
      new Counter({
        name,
        help,
        labelNames: ["direction", "type"] as const,
        registers: reg,
        collect() {
          this.reset();
          const s = self.membership?.stats();
          if (s === undefined) return;
          for (const [k, v] of Object.entries(s.messagesIn)) this.labels("in", k).inc(v[field]);
          for (const [k, v] of Object.entries(s.messagesOut)) this.labels("out", k).inc(v[field]);
        },
      });
    traffic("vigil_gossip_messages_total", "Membership messages by direction and type.", "messages");
    traffic(
      "vigil_gossip_message_bytes_total",
      "Membership message bytes by direction and type (before encryption).",
      "bytes",
    );
    new Counter({
      name: "vigil_gossip_bytes_total",
      help: "Gossip bytes on the wire by direction (UDP and TCP, after encryption).",
      labelNames: ["direction"] as const,
      registers: reg,
      collect() {
        this.reset();
        const t = self.transport?.stats;
        if (t === undefined) return;
        this.labels("in").inc(t.bytesIn);
        this.labels("out").inc(t.bytesOut);
      },
    });
    const rtt = new Histogram({
      name: "vigil_probe_rtt_seconds",
      help: "Round-trip time of membership probes (direct acks).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: reg,
      collect() {
        for (const ms of self.membership?.drainProbeRttSamplesMs() ?? []) rtt.observe(ms / 1000);
      },
    });
  }

  private registerAgentMetrics(agent: AgentServer): void {
    // The server keeps the counts (one per outcome, zeros included); a scrape copies them.
    liveCounterBy(
      [this.metrics.registry],
      "vigil_agent_requests_total",
      "HAProxy agent-check connections by outcome (up, down, maint, drain, unknown, unknown_target, bad_request, idle_timeout, rejected, error).",
      "result",
      () => agent.stats.requests,
    );
  }

  private registerDnsMetrics(dns: DnsServer): void {
    const reg = [this.metrics.registry];
    // The server keeps the counts; a scrape copies them.
    new Counter({
      name: "vigil_dns_responses_total",
      help: "DNS responses sent, by transport (udp, tcp) and rcode.",
      labelNames: ["transport", "rcode"] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const [transport, byRcode] of Object.entries(dns.stats.responses))
          for (const [rcode, n] of Object.entries(byRcode)) if (n > 0) this.labels(transport, rcode).inc(n);
      },
    });
    liveCounterBy(
      reg,
      "vigil_dns_truncated_total",
      "DNS responses sent with TC set (the answer did not fit), by transport.",
      "transport",
      () => dns.stats.truncated,
    );
    liveCounterBy(
      reg,
      "vigil_dns_dropped_total",
      "DNS messages or connections not answered, by reason (short, response, too_large, tcp_connection_limit, tcp_partial, udp_send_error).",
      "reason",
      () => dns.stats.dropped,
    );
    liveCounter(
      reg,
      "vigil_dns_internal_errors_total",
      "DNS queries answered SERVFAIL because answering them failed (a bug; should stay 0).",
      () => dns.stats.internalErrors,
    );
    liveCounter(
      reg,
      "vigil_dns_tcp_connections_accepted_total",
      "DNS TCP connections accepted.",
      () => dns.stats.tcp.accepted,
    );
    liveCounter(
      reg,
      "vigil_dns_tcp_idle_closed_total",
      "DNS TCP connections closed for sitting idle.",
      () => dns.stats.tcp.idleClosed,
    );
    liveGauge(reg, "vigil_dns_tcp_connections", "DNS TCP connections open now.", () => dns.stats.tcp.open);
  }

  private countStates(targets: Iterable<{ id: string; verdict: Health }>): Record<Effective, number> {
    const counts: Record<Effective, number> = { up: 0, down: 0, unknown: 0, maint: 0, drain: 0 };
    for (const t of targets) counts[this.core.effective(t as never)]++;
    return counts;
  }

  // ── ApiBackend ───────────────────────────────────────────────────────────

  health(): unknown {
    const wall = this.wall();
    return {
      name: this.name,
      version: VERSION,
      uptimeSeconds: Math.round((wall - this.startedWallMs) / 1000),
      startedAt: new Date(this.startedWallMs).toISOString(),
      pools: this.core.poolNames().length,
      targets: this.core.targetCount(),
      owned: this.core.ownedCount(),
    };
  }

  members(): unknown[] {
    const ms = this.membership?.members() ?? [];
    return ms
      .map((m: MemberView) => {
        const meta = decodeMeta(m.meta);
        return {
          name: m.name,
          state: m.state,
          incarnation: m.incarnation,
          zone: meta.zone,
          weight: meta.weight,
          gossip: m.addr,
          api: meta.api,
          version: meta.version,
          owned: this.core.ownedCount(m.name),
          ...(m.name === this.name
            ? { self: true, localHealth: this.membership?.stats().localHealthScore ?? 0 }
            : {}),
        };
      })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  listPools(): unknown[] {
    return this.core.poolNames().map((name) => {
      const targets = this.core.targetsOf(name) ?? [];
      return {
        name,
        type: this.core.poolSpec(name)!.spec.check.type,
        targets: targets.length,
        counts: this.countStates(targets),
      };
    });
  }

  getPool(name: string): unknown | undefined {
    const p = this.core.poolSpec(name);
    if (p === undefined) return undefined;
    const guard = this.security.guard;
    const targets = (this.core.targetsOf(name) ?? []).map((t) => {
      const v = this.core.view(t);
      guard?.annotate(v, this.name);
      return v;
    });
    return {
      name,
      spec: poolToDocument(p.spec),
      targets,
      healthy: (this.core.healthy(name) ?? []).map((a) => a.key),
      failOpenActive: this.core.failOpenActive(name),
    };
  }

  putPool(name: string, doc: unknown): { created: boolean; pool: unknown } {
    this.security.guard?.assertPoolDocument(name, doc);
    const { created } = this.core.putPool(name, doc, this.now(), this.wall(), "api");
    this.pump();
    this.feedLookupsNow();
    return { created, pool: this.getPool(name) };
  }

  deletePool(name: string): boolean {
    const ok = this.core.deletePool(name, this.now(), this.wall(), "api");
    this.pump();
    this.feedLookupsNow();
    return ok;
  }

  hasPool(name: string): boolean {
    return this.core.poolSpec(name) !== undefined;
  }

  getTarget(pool: string, target: string): unknown | undefined {
    const t = this.core.target(pool, target);
    if (t === undefined) return undefined;
    const v = { ...this.core.view(t), recent: t.recent };
    this.security.guard?.annotate(v, this.name);
    return v;
  }

  setAdmin(pool: string, target: string, body: unknown): unknown {
    const t = this.core.target(pool, target);
    if (t === undefined) {
      throw new VigilError(
        ErrorCode.notFound,
        this.core.poolSpec(pool) !== undefined
          ? `pool "${pool}" has no target "${target}"`
          : `no pool named "${pool}"`,
      );
    }
    const { state, reason } = parseAdminBody(body);
    this.core.setAdmin(pool, target, state, reason, this.now(), this.wall());
    this.pump();
    this.feedLookupsNow();
    return this.core.view(t);
  }

  queryEvents(q: EventQuery): { events: VigilEvent[]; next: number } {
    return this.events.query(q);
  }

  async metricsText(): Promise<{ contentType: string; text: string }> {
    // Target lookups the lookup processes answered (node.lookup_api) count as the node's own.
    const answered = this.lookups?.http?.stats.answered;
    if (answered !== undefined && answered > this.lookupAnswersCounted) {
      this.metrics.httpRequests.labels("target", "200").inc(answered - this.lookupAnswersCounted);
      this.lookupAnswersCounted = answered;
    }
    return { contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() };
  }

  private historyRoutes: ReturnType<typeof nodeRouteContext> | undefined;

  extraRoute(
    req: IncomingMessage,
    res: ServerResponse,
    segments: string[],
    url: URL,
  ): boolean | Promise<boolean> {
    this.historyRoutes ??= nodeRouteContext(
      this,
      () => this.history,
      () => this.wall(),
      this.security.peers,
    );
    const history = serveHistoryRoute(this.historyRoutes, req, res, segments, url);
    if (history !== false) return history;
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
    if (targetsRoute(this.core, req, res, segments, url)) return true;
    if ((req.method === "GET" || req.method === "HEAD") && serveUi(req, res, segments)) return true;
    return false;
  }
}

function prefixed(ch: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out[0] = ch;
  out.set(bytes, 1);
  return out;
}

function unprefixed(ch: number, bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0 || bytes[0] !== ch) return new Uint8Array(0);
  return bytes.subarray(1);
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
