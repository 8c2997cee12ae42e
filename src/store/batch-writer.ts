// Group commit in front of a store: appends queue in memory and commit together, so the check
// path never waits on a disk sync per event and a burst of N rows costs one transaction.
//
// A batch commits when `flushRows` rows are queued, or `flushIntervalMs` after the first row
// came, or at once after the previous commit when rows arrived meanwhile; it takes whole calls,
// up to `flushRows` rows. One commit is in flight at a time, so batches commit in queue order.
// Each append's promise settles with its batch's commit: resolved means committed (the
// acknowledgement), rejected means none of that batch was written. The queue is bounded; past
// the bound appends reject at once.

import { ErrorCode, isVigilError, VigilError } from "../core/errors.ts";
import { type RollupRow, type StoredEvent, storeLimits } from "./types.ts";
import { closedError, storeError } from "./validate.ts";

export interface BatchOptions {
  flushRows: number;
  flushIntervalMs: number;
  maxQueuedRows: number;
}

export const defaultBatchOptions: Readonly<BatchOptions> = {
  flushRows: storeLimits.flushRowsDefault,
  flushIntervalMs: storeLimits.flushIntervalMsDefault,
  maxQueuedRows: storeLimits.maxQueuedRows,
};

export interface Batch {
  events: StoredEvent[];
  rollups: RollupRow[];
}

export type CommitFn = (batch: Batch) => void | Promise<void>;

type Settle = (err: unknown) => void;

/** One append call (or a flush marker, with no rows): committed whole, in one transaction. */
interface Entry {
  events: readonly StoredEvent[] | undefined;
  rollups: readonly RollupRow[] | undefined;
  rows: number;
  settle: Settle;
}

interface InFlight {
  rows: number;
  settles: Settle[];
}

export class BatchWriter {
  private readonly commit: CommitFn;
  private readonly opts: BatchOptions;
  private queue: Entry[] = [];
  private queueRows = 0;
  private inflight: InFlight | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private closed = false;
  /** Batches committed and failed, for tests and metrics. */
  commits = 0;
  failures = 0;

  constructor(commit: CommitFn, opts: Partial<BatchOptions> = {}) {
    this.commit = commit;
    this.opts = {
      flushRows: opts.flushRows ?? defaultBatchOptions.flushRows,
      flushIntervalMs: opts.flushIntervalMs ?? defaultBatchOptions.flushIntervalMs,
      maxQueuedRows: opts.maxQueuedRows ?? defaultBatchOptions.maxQueuedRows,
    };
  }

  /** Rows waiting or being committed. */
  get queuedRows(): number {
    return this.queueRows + (this.inflight?.rows ?? 0);
  }

  appendEvents(events: readonly StoredEvent[]): Promise<void> {
    return this.enqueue(events.length, [...events], undefined);
  }

  appendRollups(rows: readonly RollupRow[]): Promise<void> {
    return this.enqueue(rows.length, undefined, [...rows]);
  }

  /** Resolves when everything queued before the call has been committed or has failed. */
  flush(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.queue.length > 0) {
        this.queue.push({ events: undefined, rollups: undefined, rows: 0, settle: () => resolve() });
        this.kickSoon();
      } else if (this.inflight !== undefined) {
        this.inflight.settles.push(() => resolve());
      } else {
        resolve();
      }
    });
  }

  /** Refuses new rows, then commits what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private enqueue(
    n: number,
    events: StoredEvent[] | undefined,
    rollups: RollupRow[] | undefined,
  ): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (n === 0) return Promise.resolve();
    if (this.queuedRows + n > this.opts.maxQueuedRows) {
      return Promise.reject(
        new VigilError(
          ErrorCode.unavailable,
          `store write queue is full: ${this.queuedRows} rows queued, ${n} more would pass the limit of ${this.opts.maxQueuedRows}`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        events,
        rollups,
        rows: n,
        settle: (err) => (err === undefined ? resolve() : reject(err)),
      });
      this.queueRows += n;
      if (this.queueRows >= this.opts.flushRows) this.kickSoon();
      else if (this.timer === undefined && this.inflight === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick();
        }, this.opts.flushIntervalMs);
      }
    });
  }

  /** Off the caller's stack: an append never runs a transaction inside the check path. */
  private kickSoon(): void {
    if (this.immediate !== undefined || this.inflight !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.kick();
    });
  }

  /**
   * Commits the oldest calls, whole, up to flushRows rows (at least one call): a transaction's
   * length, and so how long SQLite holds the event loop, stays bounded however deep the queue.
   */
  private kick(): void {
    if (this.inflight !== undefined || this.queue.length === 0) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    let take = 0;
    let rows = 0;
    while (take < this.queue.length) {
      const next = this.queue[take]!;
      if (take > 0 && rows + next.rows > this.opts.flushRows) break;
      rows += next.rows;
      take++;
    }
    const entries = this.queue.splice(0, take);
    this.queueRows -= rows;
    const batch: Batch = { events: [], rollups: [] };
    for (const e of entries) {
      if (e.events !== undefined) for (const x of e.events) batch.events.push(x);
      if (e.rollups !== undefined) for (const x of e.rollups) batch.rollups.push(x);
    }
    const inflight: InFlight = { rows, settles: entries.map((e) => e.settle) };
    this.inflight = inflight;
    void this.run(batch, inflight);
  }

  private async run(batch: Batch, inflight: InFlight): Promise<void> {
    let err: unknown;
    try {
      if (inflight.rows > 0) await this.commit(batch);
      this.commits++;
    } catch (e) {
      this.failures++;
      err = isVigilError(e) ? e : storeError("write failed", e);
    }
    this.inflight = undefined;
    for (const settle of inflight.settles) settle(err);
    // Calls that arrived during the commit have waited a commit already: group them now.
    if (this.queue.length > 0) this.kickSoon();
  }
}
