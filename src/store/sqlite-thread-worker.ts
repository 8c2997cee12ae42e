// Worker thread that runs the SQLite store (sqlite.ts) for the node's side in sqlite-thread.ts.
//
// node:sqlite is synchronous: on the node's event loop a commit of 2,000 rows holds gossip,
// checks and the API for tens of milliseconds. Here the same store, unchanged, runs on this
// thread; the node's loop only sends calls and reads replies.
//
// Each call starts as soon as its message arrives, without waiting for the calls before it to
// settle: that is how a caller of the inline store calls it, so everything behaves alike. Appends
// still queue in the batch writer and group into one commit, a query sees what was committed
// before it arrived, compact() yields between its chunks, and flush() covers every call that
// arrived before it. The WAL checkpointer is this thread's own worker, as it is the node's inline.
//
// Messages in: ThreadCall { id, method, args }.
// Messages out: { type: "ready", file } | { type: "open-failed", error } once, then per call
// { id, value } or { id, error } (a WireError: a cloned Error would lose its class and code).

import "../runtime/warnings.ts";
import { parentPort, workerData } from "node:worker_threads";
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from "./sqlite.ts";
import { type ThreadCall, type ThreadMethod, type ThreadReport, toWireError } from "./sqlite-thread.ts";
import type {
  EventQuery,
  LwwKind,
  LwwRecord,
  Retention,
  RollupQuery,
  RollupRow,
  StoredEvent,
} from "./types.ts";

const port = parentPort;
if (port === null) throw new Error("invariant: sqlite-thread-worker runs as a worker");
const post = (m: ThreadReport): void => port.postMessage(m);

let store: SqliteStore;
try {
  store = await openSqliteStore(workerData as SqliteStoreOptions);
} catch (e) {
  post({ type: "open-failed", error: toWireError(e) });
  process.exit(0);
}

type Run = (store: SqliteStore, args: unknown[]) => Promise<unknown>;

// The inline store's methods are async (a bad call rejects, never throws); its synchronous extras
// are wrapped so they answer the same way.
const methods: Record<Exclude<ThreadMethod, "close" | "crashForTest">, Run> = {
  appendEvents: (s, a) => s.appendEvents(a[0] as readonly StoredEvent[]),
  queryEvents: (s, a) => s.queryEvents(a[0] as EventQuery),
  writeRollups: (s, a) => s.writeRollups(a[0] as readonly RollupRow[]),
  queryRollups: (s, a) => s.queryRollups(a[0] as RollupQuery),
  compact: (s, a) => s.compact(a[0] as number, a[1] as Partial<Retention> | undefined),
  getMeta: (s, a) => s.getMeta(a[0] as string),
  setMeta: (s, a) => s.setMeta(a[0] as string, a[1] as string),
  putDoc: (s, a) => s.putDoc(a[0] as string, a[1] as string, a[2], a[3] as string),
  getDoc: (s, a) => s.getDoc(a[0] as string, a[1] as string),
  listDocs: (s, a) => s.listDocs(a[0] as string),
  deleteDoc: (s, a) => s.deleteDoc(a[0] as string, a[1] as string),
  putLww: (s, a) => s.putLww(a[0] as readonly LwwRecord[]),
  listLww: (s, a) => s.listLww(a[0] as LwwKind | undefined),
  pruneLwwTombstones: (s, a) => s.pruneLwwTombstones(a[0] as number),
  flush: (s) => s.flush(),
  integrityCheck: async (s) => s.integrityCheck(),
  checkpoint: async (s) => s.checkpoint(),
  checkpointNow: (s) => s.checkpointNow(),
};

/** Calls started and not yet answered: close() answers after them, so none is left behind. */
const inFlight = new Set<Promise<void>>();

function reply(id: number, value: unknown): void {
  try {
    post({ id, value });
  } catch (e) {
    // A value that cannot be cloned would leave the call unanswered; say why instead.
    post({ id, error: toWireError(e) });
  }
}

function start(id: number, work: () => Promise<unknown>): Promise<void> {
  let p: Promise<unknown>;
  try {
    p = work();
  } catch (e) {
    p = Promise.reject(e);
  }
  return p.then(
    (value) => reply(id, value),
    (e: unknown) => post({ id, error: toWireError(e) }),
  );
}

async function close(id: number): Promise<void> {
  let error: unknown;
  try {
    await store.close();
  } catch (e) {
    error = e;
  }
  // A compact() between two chunks, say, rejects as closed at its next step: wait for it.
  while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  post(error === undefined ? { id, value: undefined } : { id, error: toWireError(error) });
  // The reply is queued on the port before the thread ends; the node's side reads it first.
  process.exit(0);
}

port.on("message", (m: ThreadCall) => {
  if (m.method === "close") {
    void close(m.id);
    return;
  }
  if (m.method === "crashForTest") {
    setImmediate(() => {
      throw new Error("crash requested by a test");
    });
    return;
  }
  const run = methods[m.method];
  const p = start(m.id, () =>
    run === undefined ? Promise.reject(new Error(`unknown store method ${m.method}`)) : run(store, m.args),
  );
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
});

// A call that cannot be read has no id to answer: end the thread, so the node's side rejects it
// (and every other) rather than wait forever.
port.on("messageerror", (e: Error) => {
  throw e;
});

post({ type: "ready", file: store.file });
