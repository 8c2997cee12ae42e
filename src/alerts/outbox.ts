// The durable outbox: `<data_dir>/alerts.db`, one SQLite file of its own (it does not share
// the store's file, so alerts work with or without the store and with PostgreSQL history).
//
// A notice is one row per sink, written (synchronous=FULL) before its first delivery attempt
// and deleted only after that sink answered 2xx, so a crash or restart at any moment loses
// nothing: the next start sends what is left (at-least-once). The open alerts the engine
// holds are kept here too, so a restart does not announce an old outage again.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { sqlite } from "../store/sqlite-module.ts";
import type { Alert, OpenAlertRecord } from "./engine.ts";
import { alertLimits } from "./limits.ts";

export const ALERTS_DB_FILE = "alerts.db";

/** Wait this long for a lock (another process on the same data_dir) before failing. */
const BUSY_TIMEOUT_MS = 5_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT NOT NULL,
  sink TEXT NOT NULL,
  alert TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  last_error TEXT,
  PRIMARY KEY (id, sink)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_ms);
CREATE TABLE IF NOT EXISTS open_alerts (
  rule TEXT NOT NULL,
  target_id TEXT NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (rule, target_id)
) WITHOUT ROWID;
`;

export interface OutboxRow {
  id: string;
  sink: string;
  alert: Alert;
  createdMs: number;
  /** Attempts made so far, this one not included. */
  attempts: number;
  nextAttemptMs: number;
}

interface RawRow {
  id: string;
  sink: string;
  alert: string;
  created_ms: number;
  attempts: number;
  next_attempt_ms: number;
}

export class Outbox {
  readonly file: string;
  private readonly db: DatabaseSync;
  private readonly stmt: {
    insert: StatementSync;
    count: StatementSync;
    due: StatementSync;
    next: StatementSync;
    claim: StatementSync;
    reschedule: StatementSync;
    remove: StatementSync;
    resetAll: StatementSync;
    putOpen: StatementSync;
    deleteOpen: StatementSync;
    listOpen: StatementSync;
  };
  private closed = false;
  private depth = 0;
  /** Rows in the table, kept in step with every insert and delete (a rollback re-counts). */
  private rows: number;

  private constructor(db: DatabaseSync, file: string) {
    this.db = db;
    this.file = file;
    this.stmt = {
      insert: db.prepare(
        "INSERT OR IGNORE INTO outbox (id, sink, alert, created_ms, attempts, next_attempt_ms) VALUES (?, ?, ?, ?, 0, ?)",
      ),
      count: db.prepare("SELECT COUNT(*) AS n FROM outbox"),
      due: db.prepare(
        "SELECT id, sink, alert, created_ms, attempts, next_attempt_ms FROM outbox WHERE next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?",
      ),
      next: db.prepare("SELECT MIN(next_attempt_ms) AS at FROM outbox"),
      claim: db.prepare(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ? WHERE id = ? AND sink = ?",
      ),
      reschedule: db.prepare(
        "UPDATE outbox SET next_attempt_ms = ?, last_error = ? WHERE id = ? AND sink = ?",
      ),
      remove: db.prepare("DELETE FROM outbox WHERE id = ? AND sink = ?"),
      resetAll: db.prepare("UPDATE outbox SET next_attempt_ms = ? WHERE next_attempt_ms > ?"),
      putOpen: db.prepare("INSERT OR REPLACE INTO open_alerts (rule, target_id, record) VALUES (?, ?, ?)"),
      deleteOpen: db.prepare("DELETE FROM open_alerts WHERE rule = ? AND target_id = ?"),
      listOpen: db.prepare("SELECT record FROM open_alerts"),
    };
    this.rows = this.count();
  }

  /** Opens (creating if needed) `<dataDir>/alerts.db`. */
  static open(dataDir: string): Outbox {
    const file = join(dataDir, ALERTS_DB_FILE);
    try {
      mkdirSync(dataDir, { recursive: true });
      const db = new (sqlite().DatabaseSync)(file, { timeout: BUSY_TIMEOUT_MS });
      try {
        db.exec("PRAGMA journal_mode = WAL");
        // FULL: a notice acknowledged as queued survives a power cut, not only a crash.
        db.exec("PRAGMA synchronous = FULL");
        db.exec(SCHEMA);
      } catch (e) {
        db.close();
        throw e;
      }
      return new Outbox(db, file);
    } catch (e) {
      throw new VigilError(ErrorCode.store, `cannot open the alert outbox ${file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  size(): number {
    return this.rows;
  }

  private count(): number {
    return (this.stmt.count.get() as { n: number }).n;
  }

  /**
   * Queues `alert` once per sink; a row already there (same id and sink) is left as it is.
   * Returns how many rows were added, or -1 when the outbox is full and nothing was added.
   */
  add(alert: Alert, sinks: readonly string[], nowMs: number): number {
    if (this.size() + sinks.length > alertLimits.maxOutboxRows) return -1;
    const json = JSON.stringify(alert);
    let added = 0;
    this.transaction(() => {
      for (const sink of sinks) {
        added += Number(this.stmt.insert.run(alert.id, sink, json, nowMs, nowMs).changes);
      }
    });
    this.rows += added;
    return added;
  }

  /** Rows due at `nowMs`, earliest first. */
  due(nowMs: number, limit: number): OutboxRow[] {
    const rows = this.stmt.due.all(nowMs, limit) as unknown as RawRow[];
    return rows.map((r) => ({
      id: r.id,
      sink: r.sink,
      alert: JSON.parse(r.alert) as Alert,
      createdMs: r.created_ms,
      attempts: r.attempts,
      nextAttemptMs: r.next_attempt_ms,
    }));
  }

  /** The earliest next attempt of any row; +Infinity when empty. */
  nextAttemptMs(): number {
    const at = (this.stmt.next.get() as { at: number | null }).at;
    return at === null ? Number.POSITIVE_INFINITY : at;
  }

  /**
   * Counts an attempt and leases the row until `leaseUntilMs`, so it is not picked again while
   * in flight; a crash mid-attempt leaves the lease to expire.
   */
  claim(id: string, sink: string, leaseUntilMs: number): void {
    this.stmt.claim.run(leaseUntilMs, id, sink);
  }

  reschedule(id: string, sink: string, nextAttemptMs: number, error: string): void {
    this.stmt.reschedule.run(nextAttemptMs, error.slice(0, alertLimits.maxErrorChars), id, sink);
  }

  remove(id: string, sink: string): void {
    this.rows -= Number(this.stmt.remove.run(id, sink).changes);
  }

  /** Makes every row due at `nowMs`: on start, what was left undelivered goes out at once. */
  dueAll(nowMs: number): void {
    this.stmt.resetAll.run(nowMs, nowMs);
  }

  putOpen(targetId: string, record: OpenAlertRecord): void {
    // JSON has no Infinity: "never" is stored as null.
    const stored = {
      ...record,
      nextRemindMs: Number.isFinite(record.nextRemindMs) ? record.nextRemindMs : null,
    };
    this.stmt.putOpen.run(record.rule, targetId, JSON.stringify(stored));
  }

  deleteOpen(rule: string, targetId: string): void {
    this.stmt.deleteOpen.run(rule, targetId);
  }

  listOpen(): OpenAlertRecord[] {
    const rows = this.stmt.listOpen.all() as { record: string }[];
    const out: OpenAlertRecord[] = [];
    for (const row of rows) {
      const r = JSON.parse(row.record) as Omit<OpenAlertRecord, "nextRemindMs"> & {
        nextRemindMs: number | null;
      };
      out.push({ ...r, nextRemindMs: r.nextRemindMs ?? Number.POSITIVE_INFINITY });
    }
    return out;
  }

  /** Runs `fn` in one transaction (one fsync for a batch of writes); nested calls join it. */
  transaction(fn: () => void): void {
    if (this.depth > 0) {
      fn();
      return;
    }
    this.db.exec("BEGIN IMMEDIATE");
    this.depth++;
    try {
      fn();
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      this.rows = this.count();
      throw e;
    } finally {
      this.depth--;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
