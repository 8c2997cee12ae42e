// Lists of events as the pages show them, merging pages read from the API with events arriving
// on the live stream. A store's cursors (`seq` on a page) and the stream's ids (the node's
// in-memory sequence) are different numberings, so the same event is recognized by what it
// says, not by its seq.

import type { VigilEvent } from "./api.ts";

/** The same fact whichever log it came from: the fields a stored event's id is made of. */
export function eventKey(e: VigilEvent): string {
  return JSON.stringify([
    e.type,
    e.ts,
    e.pool ?? null,
    e.target ?? null,
    e.node ?? null,
    e.from ?? null,
    e.to ?? null,
  ]);
}

/** A row of the events table; `live` rows came from the stream, not from a page. */
export interface EventRow extends VigilEvent {
  key: string;
  live: boolean;
}

/** Rows for a page read from the API, keyed by the store's id (or the ring's seq). */
export function pageRows(events: readonly VigilEvent[]): EventRow[] {
  return events.map((e) => ({ ...e, key: e.id ?? `m${e.seq}`, live: false }));
}

/** `rows` (newest first) with live event `e` on top; `rows` itself when `e` is already shown. */
export function withLiveOnTop(rows: readonly EventRow[], e: VigilEvent): readonly EventRow[] {
  const k = eventKey(e);
  if (rows.some((r) => eventKey(r) === k)) return rows;
  return [{ ...e, key: `live-${e.seq}-${k}`, live: true }, ...rows];
}

/** `rows` (newest first) with an older page below them, leaving out any row already shown. */
export function withOlderBelow(rows: readonly EventRow[], older: readonly VigilEvent[]): EventRow[] {
  const shown = new Set(rows.map(eventKey));
  return [...rows, ...pageRows(older.filter((e) => !shown.has(eventKey(e))))];
}

/** `list` (oldest first) with live event `e` at the end unless already there, at most `max` kept. */
export function withLiveAtEnd(
  list: readonly VigilEvent[],
  e: VigilEvent,
  max: number,
): readonly VigilEvent[] {
  const k = eventKey(e);
  if (list.some((x) => eventKey(x) === k)) return list;
  return [...list.slice(Math.max(0, list.length - max + 1)), e];
}
