// A node's history (docs/storage.md): the event log, per-minute rollups of its own checks, the
// observation counter, and the replicated pool specs and admin states (LWW entries with their
// HLC stamps), kept in the Store (SQLite in data_dir, or a shared PostgreSQL).
//
// Nothing here runs on the check path's critical section: an event or a result is a few
// in-memory operations; writing happens later, batched (events at the next turn of the event
// loop, a target's minute once the minute is over), and the store commits off the caller's stack.
// History never takes the node down: a failed or refused write is counted, logged (throttled)
// and dropped.
//
// On a shared store (PostgreSQL) every fact has a designated recorder, so the log holds it once
// without every node writing everything: an observation change is written by its observer and
// by the first other owner (from the replicated register: it also sees states an owner inherited
// at a handoff without a transition of its own), a verdict change by the target's first owner
// (every node computes the same owners), a pool or admin change by the node where it was made, a
// membership change by the first live member by name other than its subject. Ids are
// deterministic (an observation change's is computed from the register, alike on every node), so
// two recorders of one fact, or a retried batch, store it once.

import { createHash } from "node:crypto";
import { Counter, Gauge, type Registry } from "prom-client";
import type { CheckResult } from "../checkers/types.ts";
import type { HistorySettings } from "../config/history.ts";
import type { Clock } from "../core/clock.ts";
import { isVigilError } from "../core/errors.ts";
import type { RestoreReport, StateEntry } from "../core/node/node-core.ts";
import {
  type BatchOptions,
  type EventPage,
  type EventQuery,
  eventId,
  LatencySketch,
  type LwwRecord,
  lwwProblem,
  openPostgresStore,
  openStore,
  ROLLUP_STEP_MS,
  type RollupBucket,
  type RollupRow,
  type Store,
  type StoredEvent,
  storeLimits,
} from "../store/index.ts";
import type { EventLog, VigilEvent } from "./events.ts";
import type { Logger } from "./log.ts";

const MINUTE_MS = ROLLUP_STEP_MS.minute;
const HOUR_MS = ROLLUP_STEP_MS.hour;

/** Named bounds of the history runtime. */
export const historyLimits = {
  /** Events waiting to be handed to the store; beyond it new events are dropped and counted. */
  maxPendingEvents: 50_000,
  /** Events per appendEvents call. */
  eventsPerAppend: 1_000,
  /** Check results journaled before they are folded into their minutes (at the latest next loop turn). */
  journalEntries: 4_096,
  /** Rollup rows per writeRollups call. */
  rollupsPerWrite: 2_000,
  /** Finished minutes the periodic flush turns into rows and commits at a time, the next slice
   * once that commit is done. Building the rows (their latency sketches encoded) and handing
   * them to the store is the event loop's work even with SQLite on its own thread
   * (bench/history-flush.ts, 2026-12-08: 10,000 minutes at once held the loop 115-195 ms, in
   * slices 10-25 ms). */
  minutesPerSlice: 500,
  /** Targets with a minute open in memory; past it, results of further targets are not rolled up (counted). */
  maxOpenMinutes: 1_000_000,
  /** compact() calls per compaction run; each call is bounded by the store. */
  compactCallsPerRun: 4,
  /** Observation counters reserved by one durable write of the counter. */
  counterReserve: 1_000_000,
  /** A new reservation is written when fewer than this many remain. */
  counterLowWater: 500_000,
  /** At most one warning per this long about failing writes. */
  warnEveryMs: 10_000,
  /** Rollup rows one history query reads per node and resolution (the store's own ceiling). */
  maxRollupRowsPerQuery: storeLimits.maxRollupsPerQuery,
} as const;

/** The node core's replicated LWW state, as History persists it (NodeCore implements it). */
export interface ReplicatedState {
  restoreState(entries: readonly StateEntry[], nowMs: number, wallMs: number): RestoreReport;
  watchState(onChange: () => void): void;
  takeStateChanges(): StateEntry[];
  readonly pendingStateChanges: number;
  readonly stateTombstoneRetentionMs: number;
}

/** Tuning for tests and benchmarks; the defaults are what a node runs with. */
export interface HistoryTuning {
  /** How often finished minutes are written. Default 5 s. */
  flushIntervalMs: number;
  /** Also write the minute still open at each flush (rows merge on write): tests, short-lived nodes. */
  flushOpenMinutes: boolean;
  /** How often compaction and retention run. Default 5 min; the first run is one interval after start. */
  compactIntervalMs: number;
  batch: Partial<BatchOptions>;
}

export const defaultHistoryTuning: Readonly<HistoryTuning> = {
  flushIntervalMs: 5_000,
  flushOpenMinutes: false,
  // Compaction needs an hour to end plus 5 minutes; every few minutes is plenty.
  compactIntervalMs: 5 * 60_000,
  batch: {},
};

/** What History asks of its node: who owns what, what the replicated registers say, who is alive. */
export interface HistoryView {
  /** Owners of a target id (`pool/host:port`) in placement order. */
  owners(targetId: string): readonly string[];
  /** When `observer`'s replicated observation of the target entered its state (its own wall clock). */
  observedSinceMs(targetId: string, observer: string): number | null | undefined;
  /** Names of the alive and suspect members, this node included. */
  liveMembers(): readonly string[];
}

export interface HistoryOptions {
  node: string;
  dataDir: string;
  settings: HistorySettings;
  clock: Clock;
  logger: Logger;
  view: HistoryView;
  tuning?: Partial<HistoryTuning>;
}

/** Tries at writing the last state changes when the node stops (each waits for the one before). */
const STATE_FLUSH_ATTEMPTS = 3;

/** The meta key of the observation counter reservation. */
export const COUNTER_META_KEY = "observation_counter";

/** One target's open minute of this node's checks. */
interface OpenMinute {
  pool: string;
  target: string;
  minuteStartMs: number;
  count: number;
  failures: number;
  latencyMsMin: number;
  latencyMsMax: number;
  latencyMsSum: number;
  /**
   * The minute's latencies not yet in `sketch`. Adding to a sketch per check touches its bucket
   * map wherever it lies in memory; a short array of numbers is one cache line or two, and it is
   * folded into the sketch in a tight loop (measured: ~1.5 µs less per check at 40,000 targets).
   */
  latenciesMs: number[];
  sketch: LatencySketch | undefined;
}

/** Latencies an open minute holds before they are folded into its sketch. */
const LATENCIES_PER_FOLD = 64;

export interface HistoryStats {
  eventsQueued: number;
  eventsWritten: number;
  /** Not written: the pending buffer or the store's queue was full, or the commit failed. */
  eventsDropped: number;
  /** Skipped on a shared store: another node records them. */
  eventsLeftToOthers: number;
  checksRecorded: number;
  /** Results not rolled up: too many open minutes. */
  checksDropped: number;
  rollupRowsWritten: number;
  rollupRowsDropped: number;
  compactRuns: number;
  compactErrors: number;
  counterWrites: number;
  /** The counter passed its reservation before the next one was durable (the clock then covers it). */
  counterOverruns: number;
  /** Pool spec and admin state entries committed to the store (each change of a key once). */
  stateWritten: number;
  /** Writes of state entries that failed; their entries are written again with the next write. */
  stateWriteErrors: number;
  /** State entries the store refuses (a key or value past its bounds): never written. */
  stateRefused: number;
}

/**
 * The node's history: opens the store, records events and check results, persists the
 * observation counter, compacts. Owned by VigilNode: open before the node starts anything
 * (a bad data_dir stops the node with a clear error), close after the last check settled.
 */
export class History {
  readonly store: Store;
  readonly node: string;
  /** PostgreSQL: every node writes and reads one database. */
  readonly shared: boolean;
  readonly settings: HistorySettings;
  readonly stats: HistoryStats = {
    eventsQueued: 0,
    eventsWritten: 0,
    eventsDropped: 0,
    eventsLeftToOthers: 0,
    checksRecorded: 0,
    checksDropped: 0,
    rollupRowsWritten: 0,
    rollupRowsDropped: 0,
    compactRuns: 0,
    compactErrors: 0,
    counterWrites: 0,
    counterOverruns: 0,
    stateWritten: 0,
    stateWriteErrors: 0,
    stateRefused: 0,
  };
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly view: HistoryView;
  private readonly tuning: HistoryTuning;
  /** Distinguishes this process's local event ids from a previous run's. */
  private readonly bootId: string;
  private pending: StoredEvent[] = [];
  /** Minutes closed by a later result, written together at the next turn of the loop. */
  private pendingRows: RollupRow[] = [];
  /** Targets whose minute was over at the last flush, not yet turned into rows (a slice at a
   * time); `dueBeforeMs` is the end a minute must have had by then. */
  private due: string[] = [];
  private dueAt = 0;
  private dueBeforeMs = 0;
  private dueScheduled = false;
  private flushScheduled = false;
  private readonly open = new Map<string, OpenMinute>();
  // Results are journaled (sequential writes) and folded into their minutes in a batch: folding
  // touches a per-target entry and sketch scattered over memory, which in a tight loop stays warm
  // in the cache but between checks costs a cache miss each (measured: ~10x).
  private readonly journalIds: string[] = new Array(historyLimits.journalEntries);
  private readonly journalLatencyMs = new Float64Array(historyLimits.journalEntries);
  private readonly journalWallMs = new Float64Array(historyLimits.journalEntries);
  private readonly journalOk = new Uint8Array(historyLimits.journalEntries);
  private journalLength = 0;
  private foldScheduled = false;
  private readonly writes = new Set<Promise<void>>();
  private flushTimer: NodeJS.Timeout | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  private compacting: Promise<void> | undefined;
  private counterReserved = 0;
  private counterWrite: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  /** The core whose pools and admin states are persisted, from restoreState on. */
  private state: ReplicatedState | undefined;
  /** Entries whose write failed, by kind and key: written again with the next write. */
  private readonly stateRetry = new Map<string, StateEntry>();
  private stateWriting: Promise<void> | undefined;
  private stateInFlight = 0;
  private stateScheduled = false;
  private lastWarnMs = Number.NEGATIVE_INFINITY;
  private closed = false;

  private constructor(store: Store, opts: HistoryOptions) {
    this.store = store;
    this.node = opts.node;
    this.shared = store.kind === "postgres";
    this.settings = opts.settings;
    this.clock = opts.clock;
    this.log = opts.logger.child({ component: "history" });
    this.view = opts.view;
    this.tuning = { ...defaultHistoryTuning, ...opts.tuning };
    this.bootId = `${opts.clock.wallMs()}:${process.pid}`;
  }

  /**
   * Opens the configured store. Rejects with VIGIL_ERR_STORE naming the path (or the redacted
   * URL) and the problem: an unwritable or corrupt data_dir, an unreachable database.
   */
  static async open(opts: HistoryOptions): Promise<History> {
    const s = opts.settings.store;
    if (s.kind === "none") throw new Error("invariant: History.open with store none");
    const batch = opts.tuning?.batch;
    const store: Store =
      s.kind === "postgres"
        ? await openPostgresStore({
            url: s.url,
            node: opts.node,
            ...(s.schema === undefined ? {} : { schema: s.schema }),
            ...(batch === undefined ? {} : { batch }),
          })
        : await openStore({
            node: opts.node,
            dataDir: opts.dataDir,
            ...(batch === undefined ? {} : { batch }),
          });
    return new History(store, opts);
  }

  /** Starts the timers and follows the node's event log. */
  start(events: EventLog): void {
    this.unsubscribe = events.subscribe((e) => this.recordEvent(e));
    this.flushTimer = setInterval(() => {
      this.flushMinutes(false);
      // A failed state write is tried again here, not at once: the store may be down a while.
      if (this.stateRetry.size > 0) this.stateSoon();
    }, this.tuning.flushIntervalMs);
    this.flushTimer.unref();
    this.compactTimer = setInterval(() => void this.compact(), this.tuning.compactIntervalMs);
    this.compactTimer.unref();
  }

  // ── the observation counter ──────────────────────────────────────────────

  /**
   * The counter this boot starts from: past every counter a previous run used (the persisted
   * reservation) and past the boot epoch (wall ms × 1000), whichever is higher, so a clock that
   * went backwards cannot make this observer reuse a counter. A reservation beyond it is made
   * durable before the node writes anything.
   */
  async startCounter(bootEpoch: number): Promise<number> {
    const raw = await this.store.getMeta(COUNTER_META_KEY);
    const parsed = raw !== undefined && /^\d{1,16}$/.test(raw) ? Number(raw) : 0;
    // Beyond 2^53 the value is damage, not a counter this observer could have used.
    const persisted = Number.isSafeInteger(parsed) ? parsed : 0;
    if (raw !== undefined && persisted === 0 && raw !== "0") {
      this.log.warn({ value: raw.slice(0, 40) }, "ignoring an unreadable persisted observation counter");
    }
    const start = Math.max(persisted, bootEpoch);
    await this.reserveCounter(start);
    return start;
  }

  /** The core's counter moved (CoreOutput "counter"): reserve more before it runs out. */
  noteCounter(value: number): void {
    if (value >= this.counterReserved) this.stats.counterOverruns++;
    if (this.counterWrite !== undefined || this.closed) return;
    if (value < this.counterReserved - historyLimits.counterLowWater) return;
    this.counterWrite = this.reserveCounter(value).then(
      () => {
        this.counterWrite = undefined;
      },
      (err: unknown) => {
        this.counterWrite = undefined;
        this.warn(err, "cannot persist the observation counter");
      },
    );
  }

  private async reserveCounter(from: number): Promise<void> {
    const upTo = Math.min(from + historyLimits.counterReserve, Number.MAX_SAFE_INTEGER);
    await this.store.setMeta(COUNTER_META_KEY, String(upTo));
    this.stats.counterWrites++;
    this.counterReserved = Math.max(this.counterReserved, upTo);
  }

  // ── pool specs and admin states ─────────────────────────────────────────

  /**
   * Merges the persisted pool specs and admin states into `core` (an LWW merge: nothing older
   * than what it holds wins), then follows its changes. Call at start, before the config's pools
   * are written and before the node serves or joins. Tombstones past their retention are pruned
   * first. A store that cannot be read rejects (the node does not start half-restored).
   */
  async restoreState(core: ReplicatedState): Promise<RestoreReport> {
    if (this.state !== undefined) throw new Error("invariant: restoreState called twice");
    const wallMs = this.clock.wallMs();
    await this.store.pruneLwwTombstones(Math.max(0, Math.floor(wallMs - core.stateTombstoneRetentionMs)));
    const records = await this.store.listLww();
    const report = core.restoreState(records.map(toStateEntry), this.clock.nowMs(), this.clock.wallMs());
    if (records.length > 0)
      this.log.info({ entries: records.length, ...report }, "restored pool specs and admin states");
    if (report.invalid > 0 || report.refused > 0) {
      this.log.warn(
        { invalid: report.invalid, refused: report.refused },
        "some stored pool specs or admin states were not restored (damaged, or stamped far ahead of this clock)",
      );
    }
    this.state = core;
    core.watchState(() => this.stateSoon());
    return report;
  }

  /** Entries changed in the core but not yet committed (or waiting to be tried again). */
  get pendingState(): number {
    return (this.state?.pendingStateChanges ?? 0) + this.stateInFlight + this.stateRetry.size;
  }

  private stateSoon(): void {
    if (this.stateScheduled || this.closed) return;
    this.stateScheduled = true;
    setImmediate(() => {
      this.stateScheduled = false;
      if (!this.closed) void this.writeState();
    });
  }

  /**
   * Writes what changed since the last write, the latest entry per key, in one durable call (or
   * a few, past storeLimits.maxLwwPerPut). One write at a time: changes that arrive meanwhile
   * go together in the next, right after it.
   */
  private writeState(): Promise<void> {
    const core = this.state;
    if (core === undefined) return Promise.resolve();
    if (this.stateWriting !== undefined) return this.stateWriting;
    const batch = new Map(this.stateRetry);
    this.stateRetry.clear();
    for (const e of core.takeStateChanges()) batch.set(stateKey(e), e);
    if (batch.size === 0) return Promise.resolve();
    this.stateInFlight = batch.size;
    const write = this.putState([...batch.values()]).finally(() => {
      this.stateInFlight = 0;
      this.stateWriting = undefined;
      if (core.pendingStateChanges > 0) this.stateSoon();
    });
    this.stateWriting = write;
    return write;
  }

  private async putState(batch: StateEntry[]): Promise<void> {
    const records: LwwRecord[] = [];
    for (const e of batch) {
      const r = toLwwRecord(e);
      const problem = lwwProblem(r);
      if (problem === undefined) records.push(r);
      else {
        this.stats.stateRefused++;
        this.warn(
          new Error(`${e.kind} ${e.key.slice(0, 80)}: ${problem}`),
          "a pool spec or admin state cannot be stored",
        );
      }
    }
    try {
      for (let i = 0; i < records.length; i += storeLimits.maxLwwPerPut) {
        const chunk = records.slice(i, i + storeLimits.maxLwwPerPut);
        await this.store.putLww(chunk);
        this.stats.stateWritten += chunk.length;
      }
    } catch (err) {
      // Written again with the next write; a newer change of a key taken meanwhile replaces it.
      // Chunks already committed are written again too: harmless, the store keeps the newest.
      this.stats.stateWriteErrors++;
      for (const e of batch) {
        const k = stateKey(e);
        if (!this.stateRetry.has(k)) this.stateRetry.set(k, e);
      }
      this.warn(err, "pool specs and admin states not stored yet (will retry)");
    }
  }

  /** Waits for the state write in flight, then writes what is left (a bounded number of tries). */
  private async flushState(): Promise<void> {
    const core = this.state;
    if (core === undefined) return;
    for (let attempt = 0; attempt < STATE_FLUSH_ATTEMPTS; attempt++) {
      await this.stateWriting;
      if (core.pendingStateChanges === 0 && this.stateRetry.size === 0) return;
      await this.writeState();
    }
  }

  // ── events ──────────────────────────────────────────────────────────────

  /** Queues an event of the node's log for the store (a listener of EventLog). */
  recordEvent(e: VigilEvent): void {
    if (this.closed) return;
    if (this.shared && !recordsOnSharedStore(e, this.node, this.view)) {
      this.stats.eventsLeftToOthers++;
      return;
    }
    if (this.pending.length >= historyLimits.maxPendingEvents) {
      this.stats.eventsDropped++;
      return;
    }
    this.pending.push(this.toStored(e));
    this.stats.eventsQueued++;
    this.flushSoon();
  }

  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushEvents();
      const rows = this.pendingRows;
      this.pendingRows = [];
      this.queueRollups(rows);
    });
  }

  /** The stored form: a deterministic id, the observer's own time for replicated observations. */
  toStored(e: VigilEvent): StoredEvent {
    const { seq, ts, type, pool, target, node, from, to, cause, ...rest } = e;
    let storedTs = ts;
    let id: string;
    if (type === "observation.changed" && node !== undefined) {
      // A replicated copy arrives later than the change happened: its time is the observer's.
      // Without `from` (a replicated register does not say), the identity is (observer, target,
      // new state, since), the same wherever it is computed.
      if (rest.replicated === true && pool !== undefined && target !== undefined) {
        const since = this.view.observedSinceMs(`${pool}/${target}`, node);
        if (typeof since === "number" && Number.isSafeInteger(since) && since >= 0) storedTs = since;
      }
      id = eventId({ type, ts: storedTs, pool, target, node, to });
    } else {
      id = createHash("sha256")
        .update(JSON.stringify([this.node, this.bootId, seq]))
        .digest()
        .subarray(0, 16)
        .toString("base64url");
    }
    const out: StoredEvent = { id, ts: Math.max(0, Math.round(storedTs)), type };
    if (pool !== undefined) out.pool = clip(pool, storeLimits.maxNameChars);
    if (target !== undefined) out.target = clip(target, storeLimits.maxNameChars);
    if (node !== undefined && node !== "") out.node = clip(node, storeLimits.maxEventFieldChars);
    if (from !== undefined && from !== "") out.from = clip(from, storeLimits.maxEventFieldChars);
    if (to !== undefined && to !== "") out.to = clip(to, storeLimits.maxEventFieldChars);
    if (cause !== undefined && cause !== "") out.cause = clip(cause, storeLimits.maxCauseChars);
    if (type === "observation.changed" && storedTs !== ts) rest.seenAt = ts;
    if (Object.keys(rest).length > 0) {
      const data = jsonData(rest);
      if (data !== undefined) out.data = data;
    }
    return out;
  }

  private flushEvents(): void {
    while (this.pending.length > 0) {
      const chunk = this.pending.splice(0, historyLimits.eventsPerAppend);
      this.track(
        this.store.appendEvents(chunk).then(
          () => {
            this.stats.eventsWritten += chunk.length;
          },
          (err: unknown) => {
            this.stats.eventsDropped += chunk.length;
            this.warn(err, "events not stored");
          },
        ),
      );
    }
  }

  // ── rollups ─────────────────────────────────────────────────────────────

  /** A finished check of this node's (`id` is `pool/host:port`): journaled, no I/O. */
  recordCheck(id: string, r: CheckResult, wallMs: number): void {
    if (this.closed) return;
    const i = this.journalLength++;
    this.journalIds[i] = id;
    // A checker's latency is never negative or NaN; a broken one must not break history.
    this.journalLatencyMs[i] = r.latencyMs >= 0 && r.latencyMs < Number.POSITIVE_INFINITY ? r.latencyMs : 0;
    this.journalWallMs[i] = wallMs;
    this.journalOk[i] = r.ok ? 1 : 0;
    if (this.journalLength === historyLimits.journalEntries) this.foldJournal();
    else if (!this.foldScheduled) {
      this.foldScheduled = true;
      setImmediate(() => this.foldJournal());
    }
  }

  /** Folds the journaled results into their targets' open minutes. */
  private foldJournal(): void {
    this.foldScheduled = false;
    const n = this.journalLength;
    this.journalLength = 0;
    for (let i = 0; i < n; i++) {
      this.fold(
        this.journalIds[i]!,
        this.journalOk[i] === 1,
        this.journalLatencyMs[i]!,
        this.journalWallMs[i]!,
      );
      this.journalIds[i] = "";
    }
  }

  private fold(id: string, ok: boolean, ms: number, wallMs: number): void {
    let m = this.open.get(id);
    if (m !== undefined && (wallMs >= m.minuteStartMs + MINUTE_MS || wallMs < m.minuteStartMs)) {
      this.pendingRows.push(toRow(this.node, m));
      this.flushSoon();
      m = undefined;
    }
    if (m === undefined) {
      const minute = wallMs - (((wallMs % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
      if (this.open.size >= historyLimits.maxOpenMinutes) {
        this.stats.checksDropped++;
        return;
      }
      const slash = id.indexOf("/");
      if (slash <= 0) {
        this.stats.checksDropped++;
        return;
      }
      m = {
        pool: id.slice(0, slash),
        target: id.slice(slash + 1),
        minuteStartMs: minute,
        count: 0,
        failures: 0,
        latencyMsMin: Number.POSITIVE_INFINITY,
        latencyMsMax: 0,
        latencyMsSum: 0,
        latenciesMs: [],
        sketch: undefined,
      };
      this.open.set(id, m);
    }
    m.count++;
    if (!ok) m.failures++;
    if (ms < m.latencyMsMin) m.latencyMsMin = ms;
    if (ms > m.latencyMsMax) m.latencyMsMax = ms;
    m.latencyMsSum += ms;
    if (m.latenciesMs.push(ms) >= LATENCIES_PER_FOLD) sketchOf(m);
    this.stats.checksRecorded++;
  }

  /**
   * Writes the minutes that are over (all of them with `all`, or with flushOpenMinutes). With
   * `all` at once; otherwise the first `minutesPerSlice` now and each further slice once the one
   * before is committed, so thousands of targets whose minutes end together (a long check
   * interval, checks stopped) do not hold the loop for one long transaction. A target checked
   * again meanwhile rolls its minute over itself (fold).
   */
  flushMinutes(all: boolean): void {
    this.foldJournal();
    const everything = all || this.tuning.flushOpenMinutes;
    // A sliced pass still under way goes on; the next flush picks up what ended since.
    if (!everything && this.dueAt < this.due.length) return;
    // Every open minute counts as over when all are asked for.
    const overBy = everything ? Number.POSITIVE_INFINITY : this.clock.wallMs();
    const due: string[] = [];
    for (const [id, m] of this.open) if (m.minuteStartMs + MINUTE_MS <= overBy) due.push(id);
    this.due = due;
    this.dueAt = 0;
    this.dueBeforeMs = overBy;
    this.flushDue(everything ? Number.POSITIVE_INFINITY : historyLimits.minutesPerSlice);
  }

  /** Turns up to `limit` of the due minutes into rows and queues them; the next slice follows
   * their commit. */
  private flushDue(limit: number): void {
    const rows: RollupRow[] = [];
    const end = Math.min(this.due.length, this.dueAt + limit);
    for (; this.dueAt < end; this.dueAt++) {
      const id = this.due[this.dueAt]!;
      const m = this.open.get(id);
      // Gone (rolled over by a newer check, which opened the next minute) or not over then.
      if (m === undefined || m.minuteStartMs + MINUTE_MS > this.dueBeforeMs) continue;
      rows.push(toRow(this.node, m));
      this.open.delete(id);
    }
    const written = this.queueRollups(rows);
    if (this.dueAt >= this.due.length) {
      this.due = [];
      this.dueAt = 0;
      return;
    }
    if (this.dueScheduled) return;
    this.dueScheduled = true;
    // Failed or not, the commit is over: the next slice goes (a failure is counted and warned).
    void written.then(() => {
      this.dueScheduled = false;
      if (!this.closed) this.flushDue(historyLimits.minutesPerSlice);
    });
  }

  /** Hands `rows` to the store; settles (never rejects) once every part is committed or failed. */
  private queueRollups(rows: RollupRow[]): Promise<unknown> {
    const parts: Promise<void>[] = [];
    for (let i = 0; i < rows.length; i += historyLimits.rollupsPerWrite) {
      const chunk = rows.slice(i, i + historyLimits.rollupsPerWrite);
      const p = this.store.writeRollups(chunk).then(
        () => {
          this.stats.rollupRowsWritten += chunk.length;
        },
        (err: unknown) => {
          this.stats.rollupRowsDropped += chunk.length;
          this.warn(err, "rollups not stored");
        },
      );
      this.track(p);
      parts.push(p);
    }
    return Promise.all(parts);
  }

  /** This node's open (not yet written) minutes of a target within [fromMs, toMs), as buckets. */
  openBuckets(pool: string, target: string, fromMs: number, toMs: number): RollupBucket[] {
    this.foldJournal();
    const m = this.open.get(`${pool}/${target}`);
    if (m === undefined || m.minuteStartMs < fromMs || m.minuteStartMs >= toMs) return [];
    const row = toRow(this.node, m);
    return [
      {
        node: row.node,
        pool: row.pool,
        target: row.target,
        startMs: row.minuteStartMs,
        stepMs: MINUTE_MS,
        count: row.count,
        failures: row.failures,
        latencyMsMin: row.latencyMsMin,
        latencyMsMax: row.latencyMsMax,
        latencyMsSum: row.latencyMsSum,
        sketch: row.sketch,
      },
    ];
  }

  /**
   * Rollups of a target in [fromMs, toMs): this node's only (`node`), or every node's (a shared
   * store). With `hourly`, hour rows where they exist and minute rows for the hours not rolled
   * up yet (never both for one node's hour); otherwise minute rows. This node's open minute is
   * included. `truncated` when a read hit its row bound.
   */
  async rollups(q: {
    pool: string;
    target: string;
    fromMs: number;
    toMs: number;
    hourly: boolean;
    node?: string;
  }): Promise<{ rows: RollupBucket[]; truncated: boolean }> {
    const base = {
      pool: q.pool,
      target: q.target,
      fromMs: q.fromMs,
      toMs: q.toMs,
      limit: historyLimits.maxRollupRowsPerQuery,
      ...(q.node === undefined ? {} : { node: q.node }),
    };
    const minutes = await this.store.queryRollups({ ...base, resolution: "minute" });
    let truncated = minutes.length >= historyLimits.maxRollupRowsPerQuery;
    let rows = minutes;
    if (q.hourly) {
      const hours = await this.store.queryRollups({ ...base, resolution: "hour" });
      truncated ||= hours.length >= historyLimits.maxRollupRowsPerQuery;
      const rolled = new Set(hours.map((h) => `${h.node}\u0000${h.startMs}`));
      rows = [
        ...hours,
        ...minutes.filter((m) => !rolled.has(`${m.node}\u0000${m.startMs - (m.startMs % HOUR_MS)}`)),
      ];
    }
    if (q.node === undefined || q.node === this.node)
      rows.push(...this.openBuckets(q.pool, q.target, q.fromMs, q.toMs));
    return { rows, truncated };
  }

  queryEvents(q: EventQuery): Promise<EventPage> {
    return this.store.queryEvents(q);
  }

  // ── compaction ──────────────────────────────────────────────────────────

  /** One bounded compaction run: rolls finished hours up and applies retention. */
  compact(): Promise<void> {
    if (this.compacting !== undefined || this.closed) return this.compacting ?? Promise.resolve();
    const r = this.settings.retention;
    const run = async (): Promise<void> => {
      this.stats.compactRuns++;
      for (let i = 0; i < historyLimits.compactCallsPerRun && !this.closed; i++) {
        const report = await this.store.compact(this.clock.wallMs(), {
          eventsMs: r.eventsMs,
          minuteRollupsMs: r.minuteRollupsMs,
          hourRollupsMs: r.hourRollupsMs,
        });
        if (report.done) break;
      }
      const core = this.state;
      if (core !== undefined && !this.closed) {
        const cut = this.clock.wallMs() - core.stateTombstoneRetentionMs;
        await this.store.pruneLwwTombstones(Math.max(0, Math.floor(cut)));
      }
    };
    this.compacting = run()
      .catch((err: unknown) => {
        this.stats.compactErrors++;
        this.warn(err, "compaction failed");
      })
      .finally(() => {
        this.compacting = undefined;
      });
    return this.compacting;
  }

  // ── lifecycle ───────────────────────────────────────────────────────────

  /** Everything recorded so far handed to the store and committed (or failed). */
  async flush(): Promise<void> {
    this.foldJournal();
    this.flushDue(Number.POSITIVE_INFINITY);
    this.flushEvents();
    this.queueRollups(this.pendingRows.splice(0));
    await Promise.allSettled([...this.writes, this.flushState()]);
    await this.store.flush();
  }

  /** Writes what is open (the current minutes, pending events), then closes the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.unsubscribe?.();
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer);
    if (this.compactTimer !== undefined) clearInterval(this.compactTimer);
    this.flushMinutes(true);
    this.flushEvents();
    this.queueRollups(this.pendingRows.splice(0));
    // Before `closed`: the last pool and admin changes (the API is closed by now) are written.
    const state = this.flushState();
    this.closed = true;
    await Promise.allSettled([...this.writes, this.compacting, this.counterWrite, state]);
    // A store that fails to close (a database gone away) must not fail the node's stop.
    await this.store.close().catch((err: unknown) => this.warn(err, "closing the store failed"));
  }

  /** Metrics of the history runtime, read at scrape time. */
  registerMetrics(registry: Registry): void {
    const self = this;
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    counter(
      "vigil_history_events_written_total",
      "Events committed to the store.",
      () => self.stats.eventsWritten,
    );
    counter(
      "vigil_history_events_dropped_total",
      "Events not stored: buffer or store queue full, or the commit failed.",
      () => self.stats.eventsDropped,
    );
    counter(
      "vigil_history_rollup_rows_written_total",
      "Minute rollup rows committed to the store.",
      () => self.stats.rollupRowsWritten,
    );
    counter(
      "vigil_history_rollup_rows_dropped_total",
      "Minute rollup rows not stored.",
      () => self.stats.rollupRowsDropped,
    );
    counter(
      "vigil_history_compact_errors_total",
      "Compaction runs that failed.",
      () => self.stats.compactErrors,
    );
    counter(
      "vigil_history_state_written_total",
      "Pool spec and admin state entries committed to the store.",
      () => self.stats.stateWritten,
    );
    counter(
      "vigil_history_state_write_errors_total",
      "Writes of pool specs and admin states that failed (retried).",
      () => self.stats.stateWriteErrors,
    );
    new Gauge({
      name: "vigil_history_state_pending",
      help: "Pool spec and admin state changes not yet committed to the store (0: all durable).",
      registers: [registry],
      collect() {
        this.set(self.pendingState);
      },
    });
    new Gauge({
      name: "vigil_history_open_minutes",
      help: "Targets with a minute of checks not yet written.",
      registers: [registry],
      collect() {
        this.set(self.open.size);
      },
    });
  }

  private track(p: Promise<void>): void {
    this.writes.add(p);
    void p.finally(() => this.writes.delete(p));
  }

  private warn(err: unknown, what: string): void {
    const now = this.clock.nowMs();
    if (now - this.lastWarnMs < historyLimits.warnEveryMs) return;
    this.lastWarnMs = now;
    const message = isVigilError(err) ? err.message : err instanceof Error ? err.message : String(err);
    this.log.warn({ err: message, stats: this.stats }, what);
  }
}

/**
 * Whether node `self` records event `e` on a shared store: each fact has one designated recorder
 * (see the header), which every node determines alike from the same membership and placement.
 */
export function recordsOnSharedStore(
  e: VigilEvent,
  self: string,
  view: Pick<HistoryView, "owners" | "liveMembers">,
): boolean {
  const firstLive = (except: string | undefined): boolean => {
    let first: string | undefined;
    for (const m of view.liveMembers()) if (m !== except && (first === undefined || m < first)) first = m;
    return first === undefined || first === self;
  };
  switch (e.type) {
    case "observation.changed": {
      if (e.replicated !== true) return true;
      // The observer writes its own transitions; one other node writes what it learns of the
      // observer's register (a state inherited at handoff is no transition of the observer's),
      // under the same id, so a transition seen both ways is stored once.
      if (e.pool === undefined || e.target === undefined) return false;
      const first = view.owners(`${e.pool}/${e.target}`).find((o) => o !== e.node);
      return first === undefined ? firstLive(e.node) : first === self;
    }
    case "verdict.changed": {
      if (e.pool === undefined || e.target === undefined) return firstLive(undefined);
      const first = view.owners(`${e.pool}/${e.target}`)[0];
      return first === undefined ? firstLive(undefined) : first === self;
    }
    case "pool.created":
    case "pool.updated":
    case "pool.deleted":
      // Not copies learned by gossip, nor state read back from the store at a start.
      return e.cause !== "replicated" && e.cause !== "restored";
    case "target.admin":
      return e.node !== "replicated" && e.node !== "restored";
    default:
      // Membership: the first live member other than the subject (a member cannot record its own death).
      if (e.type.startsWith("member.")) return firstLive(e.node);
      return true;
  }
}

const stateKey = (e: StateEntry): string => `${e.kind}\u0000${e.key}`;

/** The store's form of a state entry: a tombstone is a null value, the stamp's node the origin. */
export function toLwwRecord(e: StateEntry): LwwRecord {
  return {
    kind: e.kind,
    key: e.key,
    value: e.deleted ? null : e.value,
    wallMs: e.ts.wallMs,
    logical: e.ts.logical,
    origin: e.ts.node,
  };
}

export function toStateEntry(r: LwwRecord): StateEntry {
  const deleted = r.value === null;
  return {
    kind: r.kind,
    key: r.key,
    ts: { wallMs: r.wallMs, logical: r.logical, node: r.origin },
    value: deleted ? undefined : r.value,
    deleted,
  };
}

function toRow(node: string, m: OpenMinute): RollupRow {
  return {
    node,
    pool: m.pool,
    target: m.target,
    minuteStartMs: m.minuteStartMs,
    count: m.count,
    failures: m.failures,
    latencyMsMin: m.latencyMsMin,
    latencyMsMax: m.latencyMsMax,
    latencyMsSum: m.latencyMsSum,
    sketch: sketchOf(m).encode(),
  };
}

/** The open minute's sketch with every latency so far in it. */
function sketchOf(m: OpenMinute): LatencySketch {
  const s = m.sketch ?? new LatencySketch();
  m.sketch = s;
  for (const ms of m.latenciesMs) s.add(ms);
  m.latenciesMs.length = 0;
  return s;
}

/**
 * Fits a string into the store's bounds: NUL (which PostgreSQL text cannot hold, and which the
 * store refuses) replaced, cut to `max` characters without splitting a surrogate pair.
 */
function clip(input: string, max: number): string {
  const s = input.includes("\u0000") ? input.replaceAll("\u0000", "\ufffd") : input;
  if (s.length <= max) return s;
  const high = s.charCodeAt(max - 1);
  return s.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max);
}

/** Extra event fields as a JSON object within the store's bound, or undefined. */
function jsonData(rest: Record<string, unknown>): Record<string, unknown> | undefined {
  try {
    const json = JSON.stringify(rest);
    if (json === undefined || Buffer.byteLength(json) > storeLimits.maxEventDataBytes) return undefined;
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
