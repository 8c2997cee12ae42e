// The node's history settings (`node.store`, `node.retention`; docs/storage.md). The schema in
// schema.ts reads them; they ride on the NodeSpec as optional keys until src/config/types.ts
// carries them, and `historySettingsOf` fills in the defaults.

import type { NodeSpec } from "./types.ts";

/** Where a node keeps its history. */
export type StoreSetting =
  /** `<data_dir>/vigil.db`: the default, nothing to run. */
  | { kind: "sqlite" }
  /** One PostgreSQL database shared by every node. `url` has no `schema` parameter left in it. */
  | { kind: "postgres"; url: string; schema?: string }
  /** No history: events in memory only, the observation counter from boot epochs. */
  | { kind: "none" };

/** How long each kind of history is kept. */
export interface RetentionSetting {
  eventsMs: number;
  minuteRollupsMs: number;
  hourRollupsMs: number;
}

export interface HistorySettings {
  store: StoreSetting;
  retention: RetentionSetting;
}

const DAY_MS = 86_400_000;

/** Defaults: what an operator asks about (last quarter's incidents, last week in detail, last year in hours). */
export const historyDefaults: Readonly<HistorySettings> = {
  store: { kind: "sqlite" },
  retention: {
    /** A quarter of incidents, for "how often did it go down this quarter?". */
    eventsMs: 90 * DAY_MS,
    /** A week of minutes: last week's incident in detail; ~106 KiB per target per day on SQLite. */
    minuteRollupsMs: 7 * DAY_MS,
    /** Over a year of hours: year-on-year comparisons; ~5 KiB per target per day. */
    hourRollupsMs: 400 * DAY_MS,
  },
};

export const historyConfigLimits = {
  /** Shorter retention would drop history before an hour is rolled up. */
  retentionMsMin: 3_600_000,
  /** A century: longer is a typo. */
  retentionMsMax: 36_500 * DAY_MS,
  maxStoreUrlChars: 2048,
} as const;

/** The optional keys the schema adds to a NodeSpec. */
export type NodeHistoryKeys = Partial<HistorySettings>;

/** A node's history settings, defaults filled in (a NodeSpec built by hand has none). */
export function historySettingsOf(node: NodeSpec): HistorySettings {
  const n = node as NodeSpec & NodeHistoryKeys;
  return {
    store: n.store ?? historyDefaults.store,
    retention: n.retention ?? { ...historyDefaults.retention },
  };
}

/** PostgreSQL schema names Vigil accepts (the store quotes them, but keeps them simple). */
export const postgresSchemaPattern = /^[a-z_][a-z0-9_]{0,62}$/;

/** A store URL for messages and logs: the password replaced by `***`. */
export function redactStoreUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
