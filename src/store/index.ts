// The store's public surface.

import type { BatchOptions } from "./batch-writer.ts";
import { openPostgresStore } from "./postgres.ts";
import { openSqliteStore } from "./sqlite.ts";
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
}

/** The store a node runs with: PostgreSQL when a URL is configured, else SQLite in data_dir. */
export function openStore(opts: OpenStoreOptions): Promise<Store> {
  if (opts.postgresUrl !== undefined && opts.postgresUrl !== "") {
    return openPostgresStore({
      url: opts.postgresUrl,
      node: opts.node,
      ...(opts.batch === undefined ? {} : { batch: opts.batch }),
    });
  }
  return openSqliteStore({
    dataDir: opts.dataDir,
    node: opts.node,
    ...(opts.batch === undefined ? {} : { batch: opts.batch }),
  });
}
