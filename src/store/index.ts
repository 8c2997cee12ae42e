// The store's public surface.

import type { BatchOptions } from "./batch-writer.ts";
import { openPostgresStore } from "./postgres.ts";
import { openSqliteStore } from "./sqlite.ts";
import { openSqliteThreadStore } from "./sqlite-thread.ts";
import type { Store } from "./types.ts";

export type { BatchOptions } from "./batch-writer.ts";
export { type EventIdentity, eventId } from "./event-id.ts";
export { openPostgresStore, type PostgresStore, type PostgresStoreOptions, redactUrl } from "./postgres.ts";
export {
  LatencySketch,
  SKETCH_MAX_BUCKETS,
  SKETCH_MAX_TRACKED_MS,
  SKETCH_MIN_TRACKED_MS,
  SKETCH_RELATIVE_ACCURACY,
  type SketchDecodeResult,
} from "./sketch.ts";
export { openSqliteStore, SQLITE_FILE, type SqliteStore, type SqliteStoreOptions } from "./sqlite.ts";
export { openSqliteThreadStore, SqliteThreadStore } from "./sqlite-thread.ts";
export {
  type CompactReport,
  type Cursor,
  DocNamespace,
  type DocRecord,
  defaultRetention,
  type EventPage,
  type EventQuery,
  type EventRecord,
  LWW_KINDS,
  type LwwKind,
  type LwwRecord,
  type Retention,
  ROLLUP_STEP_MS,
  type RollupBucket,
  type RollupQuery,
  type RollupResolution,
  type RollupRow,
  type Store,
  type StoredEvent,
  storeLimits,
} from "./types.ts";

export { lwwProblem } from "./validate.ts";

export interface OpenStoreOptions {
  node: string;
  dataDir: string;
  /** When set, history goes to this shared PostgreSQL database instead of data_dir. */
  postgresUrl?: string;
  batch?: Partial<BatchOptions>;
  /**
   * SQLite on a worker thread of its own (default true), so its commits never hold the caller's
   * event loop; false runs it inline, on the caller's thread (benchmarks, tests). PostgreSQL's
   * driver is asynchronous already and ignores this.
   */
  thread?: boolean;
}

/**
 * The store a node runs with: PostgreSQL when a URL is configured, else SQLite in data_dir, on its
 * own thread unless `thread: false`.
 */
export function openStore(opts: OpenStoreOptions): Promise<Store> {
  if (opts.postgresUrl !== undefined && opts.postgresUrl !== "") {
    return openPostgresStore({
      url: opts.postgresUrl,
      node: opts.node,
      ...(opts.batch === undefined ? {} : { batch: opts.batch }),
    });
  }
  const sqlite = {
    dataDir: opts.dataDir,
    node: opts.node,
    ...(opts.batch === undefined ? {} : { batch: opts.batch }),
  };
  return opts.thread === false ? openSqliteStore(sqlite) : openSqliteThreadStore(sqlite);
}
