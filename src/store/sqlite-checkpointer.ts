// Worker thread that checkpoints the SQLite WAL on its own connection.
//
// A checkpoint copies the WAL into the database file and fsyncs both. SQLite's automatic
// checkpoint runs inside whichever commit crosses the threshold, on the event loop thread:
// measured at 100-400 ms stalls under sustained writes. Here it runs on another thread with
// PASSIVE mode, which never blocks writers; the main connection turns its autocheckpoint off
// while this worker is alive and back on if it dies.
//
// Messages in: { type: "checkpoint", id } (now, and answer) | { type: "stop" }.
// Messages out: { type: "ready" } | { type: "checkpointed", id, log, checkpointed } | { type: "error", message }.

import type { DatabaseSync } from "node:sqlite";
import "../runtime/warnings.ts";
import { parentPort, workerData } from "node:worker_threads";
import { sqlite } from "./sqlite-module.ts";

interface Init {
  file: string;
  intervalMs: number;
  busyTimeoutMs: number;
}

type Inbound = { type: "checkpoint"; id: number } | { type: "stop" };

const port = parentPort;
if (port === null) throw new Error("invariant: sqlite-checkpointer runs as a worker");
const init = workerData as Init;

let db: DatabaseSync | undefined;
try {
  db = new (sqlite().DatabaseSync)(init.file, { timeout: init.busyTimeoutMs });
  port.postMessage({ type: "ready" });
} catch (e) {
  port.postMessage({ type: "error", message: (e as Error).message });
  process.exit(1);
}

function checkpoint(): { log: number; checkpointed: number } {
  const r = db!.prepare("PRAGMA wal_checkpoint(PASSIVE)").get() as { log: number; checkpointed: number };
  return { log: r.log, checkpointed: r.checkpointed };
}

const timer = setInterval(() => {
  try {
    checkpoint();
  } catch (e) {
    port.postMessage({ type: "error", message: (e as Error).message });
  }
}, init.intervalMs);

port.on("message", (m: Inbound) => {
  if (m.type === "stop") {
    clearInterval(timer);
    db?.close();
    port.close();
    return;
  }
  try {
    port.postMessage({ type: "checkpointed", id: m.id, ...checkpoint() });
  } catch (e) {
    port.postMessage({
      type: "checkpointed",
      id: m.id,
      log: -1,
      checkpointed: -1,
      error: (e as Error).message,
    });
  }
});
