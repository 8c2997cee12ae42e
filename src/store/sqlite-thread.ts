// The SQLite store on a worker thread of its own: the node's side.
//
// node:sqlite is synchronous, so the inline store (sqlite.ts) runs every statement on the
// caller's event loop: a commit of 2,000 rows holds it for tens of milliseconds (p99 62-105 ms
// while writing flat out, bench/results/store.json), and gossip, checks and the API wait. Here
// the same store runs in a worker (sqlite-thread-worker.ts); this side implements Store by
// sending each call as a message with an id and settling its promise with the reply.
//
// Order: one thread, one message port, so the thread receives calls in the order they were made
// and starts each as it arrives, as the inline store does when called: a query sees what was
// committed before it, appends group into one commit, flush() covers every call made before it.
//
// What crosses the thread is a structured clone. Plain JSON-like values, Uint8Array, bigint and
// undefined fields survive it as they are. Two things are converted here, in writeRollups and in
// a rare fallback: a sketch that is a view into a larger buffer (a pooled Buffer, a subarray) is
// copied, because a clone carries the whole buffer behind a view; and a call whose arguments
// cannot be cloned (a function or a URL inside an event's data, a doc or an LWW value) is checked
// here with the inline store's own validation and sent with those values as the JSON the store
// would have written, so it is stored, or refused, as the inline store does. One difference is
// left: an object whose class has a toJSON method (other than Date) crosses as its own fields,
// and is stored as those; Vigil's callers pass plain JSON values.
//
// If the thread dies (an uncaught error there, or it is terminated), every pending call and every
// later one rejects with VIGIL_ERR_STORE saying so; the node's side never crashes and never
// waits forever. The thread is not started again: a death means a bug or a state nobody planned
// for, the batches that were in flight may or may not have committed (the callers were told
// they failed, and rollups are not idempotent, so nothing is replayed), and reopening the
// database is what a restart of the node does, through the path the crash tests cover. History
// keeps the node running, counting and logging the failed writes, until it is restarted.

import { Worker } from "node:worker_threads";
import { ErrorCode, VigilError } from "../core/errors.ts";
import type { SqliteStoreOptions, WalCheckpoint } from "./sqlite.ts";
import type {
  CompactReport,
  DocRecord,
  EventPage,
  EventQuery,
  LwwKind,
  LwwRecord,
  Retention,
  RollupBucket,
  RollupQuery,
  RollupRow,
  Store,
  StoredEvent,
} from "./types.ts";
import { checkDocKey, closedError, encodeDoc, validateEvents, validateLww } from "./validate.ts";

/** What the thread runs: the Store's methods, the inline store's extras, and a test's crash. */
export type ThreadMethod =
  | "appendEvents"
  | "queryEvents"
  | "writeRollups"
  | "queryRollups"
  | "compact"
  | "getMeta"
  | "setMeta"
  | "putDoc"
  | "getDoc"
  | "listDocs"
  | "deleteDoc"
  | "putLww"
  | "listLww"
  | "pruneLwwTombstones"
  | "flush"
  | "close"
  | "integrityCheck"
  | "checkpoint"
  | "checkpointNow"
  | "crashForTest";

/** A call, to the thread. */
export interface ThreadCall {
  id: number;
  method: ThreadMethod;
  args: unknown[];
}

/** An error as it crosses: a clone of an Error keeps its message but not its class or code. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  path?: string;
  file?: string;
  stack?: string;
  cause?: { name: string; message: string };
}

/** From the thread: once, whether the store opened; then a reply per call. */
export type ThreadReport =
  | { type: "ready"; file: string }
  | { type: "open-failed"; error: WireError }
  | { id: number; value?: unknown; error?: WireError };

export function toWireError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: "Error", message: String(e) };
  const w: WireError = { name: e.name, message: e.message };
  if (e.stack !== undefined) w.stack = e.stack;
  if (e instanceof VigilError) {
    w.code = e.code;
    if (e.path !== undefined) w.path = e.path;
    if (e.file !== undefined) w.file = e.file;
  }
  if (e.cause instanceof Error) w.cause = { name: e.cause.name, message: e.cause.message };
  return w;
}

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/** The error the inline store would have thrown: a VigilError with its code, or a plain Error. */
export function fromWireError(w: WireError): Error {
  let cause: Error | undefined;
  if (w.cause !== undefined) {
    cause = new Error(w.cause.message);
    cause.name = w.cause.name;
  }
  let e: Error;
  if (w.code !== undefined && ERROR_CODES.has(w.code)) {
    e = new VigilError(w.code as ErrorCode, w.message, {
      ...(w.path === undefined ? {} : { path: w.path }),
      ...(w.file === undefined ? {} : { file: w.file }),
      ...(cause === undefined ? {} : { cause }),
    });
  } else {
    e = new Error(w.message, cause === undefined ? undefined : { cause });
    e.name = w.name;
  }
  // The thread's stack says where it failed; this side's would only name the message handler.
  if (w.stack !== undefined) e.stack = w.stack;
  return e;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** Opens the SQLite store on a thread of its own; rejects as openSqliteStore does (VIGIL_ERR_STORE). */
export function openSqliteThreadStore(opts: SqliteStoreOptions): Promise<SqliteThreadStore> {
  return SqliteThreadStore.open(opts);
}

export class SqliteThreadStore implements Store {
  readonly kind = "sqlite" as const;
  readonly node: string;
  private readonly worker: Worker;
  /** Settles once the thread has opened the database, or failed to. */
  private readonly opened: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private readonly exited: Promise<void>;
  private nextId = 1;
  private dbFile = "";
  private ready = false;
  private closing = false;
  /** The id of the close() call: the exit after its reply is the end, not a death. */
  private closeId = -1;
  private closeReplied = false;
  private closeOnce: Promise<void> | undefined;
  private exitCode: number | undefined;
  /** Set when the thread ended other than by close(): every call rejects with it. */
  private death: { code: number; cause: Error | undefined } | undefined;
  private lastError: Error | undefined;

  static async open(opts: SqliteStoreOptions): Promise<SqliteThreadStore> {
    let worker: Worker;
    try {
      worker = new Worker(new URL("./sqlite-thread-worker.ts", import.meta.url), {
        workerData: opts,
        name: "vigil-store",
      });
    } catch (e) {
      throw new VigilError(ErrorCode.store, `cannot start the SQLite store thread: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const store = new SqliteThreadStore(worker, opts.node);
    try {
      await store.opened;
    } catch (e) {
      // Opening failed in the thread, which ends by itself: resolve only once it has.
      await store.exited;
      throw e;
    }
    return store;
  }

  private constructor(worker: Worker, node: string) {
    this.worker = worker;
    this.node = node;
    let openSettle: { resolve: () => void; reject: (e: unknown) => void } | undefined;
    this.opened = new Promise<void>((resolve, reject) => {
      openSettle = { resolve, reject };
    });
    let exitedResolve: () => void = () => {};
    this.exited = new Promise<void>((resolve) => {
      exitedResolve = resolve;
    });
    worker.on("message", (m: ThreadReport) => {
      if (!("type" in m)) {
        this.onReply(m);
        return;
      }
      if (m.type === "ready") {
        this.dbFile = m.file;
        this.ready = true;
        // A store that is never closed must not keep the process alive through this thread; a
        // call in flight refs it until its reply.
        worker.unref();
        openSettle?.resolve();
      } else {
        openSettle?.reject(fromWireError(m.error));
      }
    });
    // Without a listener, an uncaught error in the thread would be thrown on this one.
    worker.on("error", (e: Error) => {
      this.lastError = e;
    });
    // A reply that cannot be read leaves a call without its answer: end the thread, so that call
    // and the rest reject instead of waiting forever.
    worker.on("messageerror", (e: Error) => {
      this.lastError = e;
      void worker.terminate();
    });
    worker.once("exit", (code: number) => {
      this.exitCode = code;
      if (!this.ready) {
        openSettle?.reject(
          new VigilError(
            ErrorCode.store,
            `cannot start the SQLite store thread: ${this.lastError?.message ?? `it exited with code ${code}`}`,
            this.lastError === undefined ? {} : { cause: this.lastError },
          ),
        );
      }
      if (!this.closeReplied) this.death = { code, cause: this.lastError };
      const calls = [...this.pending.values()];
      this.pending.clear();
      for (const p of calls) p.reject(this.deathError());
      exitedResolve();
    });
  }

  /** The database file. */
  get file(): string {
    return this.dbFile;
  }

  /** The thread's exit code once it has ended (0 after close()), else undefined. */
  get threadExitCode(): number | undefined {
    return this.exitCode;
  }

  appendEvents(events: readonly StoredEvent[]): Promise<void> {
    return this.call("appendEvents", [events]);
  }

  queryEvents(q: EventQuery): Promise<EventPage> {
    return this.call("queryEvents", [q]);
  }

  writeRollups(rows: readonly RollupRow[]): Promise<void> {
    return this.call("writeRollups", [ownSketches(rows)]);
  }

  queryRollups(q: RollupQuery): Promise<RollupBucket[]> {
    return this.call("queryRollups", [q]);
  }

  compact(nowMs: number, retention?: Partial<Retention>): Promise<CompactReport> {
    return this.call("compact", [nowMs, retention]);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.call("getMeta", [key]);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.call("setMeta", [key, value]);
  }

  putDoc(namespace: string, key: string, value: unknown, hlc: string): Promise<void> {
    return this.call("putDoc", [namespace, key, value, hlc]);
  }

  getDoc(namespace: string, key: string): Promise<DocRecord | undefined> {
    return this.call("getDoc", [namespace, key]);
  }

  listDocs(namespace: string): Promise<DocRecord[]> {
    return this.call("listDocs", [namespace]);
  }

  deleteDoc(namespace: string, key: string): Promise<void> {
    return this.call("deleteDoc", [namespace, key]);
  }

  putLww(records: readonly LwwRecord[]): Promise<number> {
    return this.call("putLww", [records]);
  }

  listLww(kind?: LwwKind): Promise<LwwRecord[]> {
    return this.call("listLww", [kind]);
  }

  pruneLwwTombstones(beforeWallMs: number): Promise<number> {
    return this.call("pruneLwwTombstones", [beforeWallMs]);
  }

  /** Resolves once every write made before the call has committed (or failed), as inline. */
  flush(): Promise<void> {
    return this.call("flush", []);
  }

  /**
   * Commits what is queued, closes the database and ends the thread; resolves once the thread
   * has exited. Calls made before it are answered first; calls after it reject as closed.
   */
  close(): Promise<void> {
    this.closeOnce ??= this.closeThread();
    return this.closeOnce;
  }

  /** `PRAGMA integrity_check` on the thread (slow: reads and cross-checks everything). */
  integrityCheck(): Promise<string[]> {
    return this.call("integrityCheck", []);
  }

  /** Moves the WAL into the database file and truncates it, e.g. before measuring the file. */
  checkpoint(): Promise<void> {
    return this.call("checkpoint", []);
  }

  /** A PASSIVE checkpoint now, on the checkpointer thread when there is one (SqliteStore.checkpointNow). */
  checkpointNow(): Promise<WalCheckpoint> {
    return this.call("checkpointNow", []);
  }

  /** For tests: ends the thread at once, as a crash would. */
  async terminateThreadForTest(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  /** For tests: makes the thread throw an uncaught error from its event loop, as a bug would. */
  crashThreadForTest(): void {
    this.worker.postMessage({ id: 0, method: "crashForTest", args: [] } satisfies ThreadCall);
  }

  private async closeThread(): Promise<void> {
    this.closing = true;
    if (this.death !== undefined) return; // already gone; every call since has said so
    this.worker.ref();
    let failure: unknown;
    try {
      await this.send("close", []);
    } catch (e) {
      failure = e;
    }
    await this.exited;
    if (failure !== undefined) throw failure;
  }

  private call<T>(method: ThreadMethod, args: unknown[]): Promise<T> {
    if (this.closing) return Promise.reject(closedError());
    if (this.death !== undefined) return Promise.reject(this.deathError());
    return this.send(method, args);
  }

  private send<T>(method: ThreadMethod, args: unknown[]): Promise<T> {
    const id = this.nextId++;
    try {
      this.post({ id, method, args });
    } catch (e) {
      return Promise.reject(e);
    }
    if (method === "close") this.closeId = id;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (this.pending.size === 1) this.worker.ref();
    });
  }

  private onReply(m: { id: number; value?: unknown; error?: WireError }): void {
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    if (m.id === this.closeId) this.closeReplied = true;
    if (this.pending.size === 0 && !this.closing) this.worker.unref();
    if (m.error !== undefined) p.reject(fromWireError(m.error));
    else p.resolve(m.value);
  }

  /** Posts a call; when an argument cannot be cloned, sends what the inline store would store. */
  private post(call: ThreadCall): void {
    try {
      this.worker.postMessage(call);
      return;
    } catch (e) {
      if (!isDataCloneError(e)) throw e;
      call.args = jsonArgs(call.method, call.args, e as Error);
    }
    try {
      this.worker.postMessage(call);
    } catch (e) {
      throw cannotSend(call.method, e as Error);
    }
  }

  private deathError(): VigilError {
    const d = this.death;
    const how =
      d === undefined ? "" : ` (exit code ${d.code}${d.cause === undefined ? "" : `: ${d.cause.message}`})`;
    return new VigilError(
      ErrorCode.store,
      `the SQLite store thread for ${this.dbFile} died${how}: the store is unavailable until it is opened again (restart the node)`,
      d?.cause === undefined ? {} : { cause: d.cause },
    );
  }
}

function isDataCloneError(e: unknown): boolean {
  return e instanceof Error && e.name === "DataCloneError";
}

function cannotSend(method: string, e: Error): VigilError {
  return new VigilError(
    ErrorCode.badRequest,
    `${method}: an argument cannot be sent to the store thread: ${e.message}`,
  );
}

/**
 * A sketch that is a view into a larger buffer (a pooled Buffer, a subarray) copied to its own,
 * and one on shared memory copied too (the thread must not read bytes the caller changes
 * later). Rows are copied only when one of their sketches is.
 */
function ownSketches(rows: readonly RollupRow[]): readonly RollupRow[] {
  if (!Array.isArray(rows)) return rows;
  let out: RollupRow[] | undefined;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as RollupRow | null | undefined;
    const s = r?.sketch;
    if (!(s instanceof Uint8Array)) continue;
    if (s.byteOffset === 0 && s.byteLength === s.buffer.byteLength && s.buffer instanceof ArrayBuffer) {
      continue;
    }
    out ??= rows.slice();
    out[i] = { ...r!, sketch: new Uint8Array(s) };
  }
  return out ?? rows;
}

const EVENT_FIELDS = ["id", "ts", "type", "pool", "target", "node", "from", "to", "cause"] as const;

/**
 * The arguments of a call that could not be cloned, as the inline store would see them: checked
 * by its own validation (which throws its own error for a bad call), then with the JSON-valued
 * fields (event data, doc and LWW values) replaced by the JSON the store writes, which clones.
 */
function jsonArgs(method: ThreadMethod, args: unknown[], cloneError: Error): unknown[] {
  const viaJson = (v: unknown): unknown => {
    const json = JSON.stringify(v);
    return json === undefined ? undefined : JSON.parse(json);
  };
  switch (method) {
    case "appendEvents": {
      const events = args[0] as readonly StoredEvent[];
      validateEvents(events);
      // Only the fields the store keeps: an extra property (a function, say) is ignored inline.
      const plain = events.map((e) => {
        const out: Record<string, unknown> = {};
        for (const k of EVENT_FIELDS) if (e[k] !== undefined) out[k] = e[k];
        if (e.data !== undefined) out.data = viaJson(e.data);
        return out;
      });
      return [plain];
    }
    case "putDoc": {
      const [namespace, key, value, hlc] = args as [string, string, unknown, string];
      checkDocKey(namespace, key);
      return [namespace, key, JSON.parse(encodeDoc(value, hlc)), hlc];
    }
    case "putLww": {
      const records = args[0] as readonly LwwRecord[];
      validateLww(records);
      return [
        records.map((r) => ({
          kind: r.kind,
          key: r.key,
          value: r.value === null ? null : viaJson(r.value),
          wallMs: r.wallMs,
          logical: r.logical,
          origin: r.origin,
        })),
      ];
    }
    default:
      throw cannotSend(method, cloneError);
  }
}
