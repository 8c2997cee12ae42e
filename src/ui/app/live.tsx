// One event stream per page load, shared by the pages: verdicts, admin changes, pools and
// members arrive as they happen; EventSource reconnects (resuming with Last-Event-ID) by itself.

import { useEffect, useState } from "preact/hooks";
import type { VigilEvent } from "./api.ts";

export type ConnState = "connecting" | "live" | "down";
type Listener = (e: VigilEvent) => void;

/** The types the pages react to; observation.changed is left to the Events page's own stream. */
const sharedTypes = [
  "verdict.changed",
  "target.admin",
  "pool.created",
  "pool.updated",
  "pool.deleted",
  "member.joined",
  "member.suspect",
  "member.alive",
  "member.dead",
  "member.left",
  "member.updated",
];

const listeners = new Set<Listener>();
const resyncListeners = new Set<() => void>();
const connListeners = new Set<(s: ConnState) => void>();
let source: EventSource | undefined;
let conn: ConnState = "connecting";
let everOpen = false;

function setConn(s: ConnState): void {
  conn = s;
  for (const l of connListeners) l(s);
}

function ensureSource(): void {
  if (source !== undefined) return;
  source = new EventSource(`/v1/events/stream?type=${sharedTypes.join(",")}`);
  source.addEventListener("open", () => {
    // After a reconnect the replay may not reach back far enough: pages reload their data.
    if (everOpen) for (const l of resyncListeners) l();
    everOpen = true;
    setConn("live");
  });
  source.addEventListener("error", () =>
    setConn(source?.readyState === EventSource.CLOSED ? "down" : "connecting"),
  );
  const onEvent = (m: MessageEvent<string>) => {
    let e: VigilEvent;
    try {
      e = JSON.parse(m.data) as VigilEvent;
    } catch {
      return;
    }
    for (const l of listeners) l(e);
  };
  for (const t of sharedTypes) source.addEventListener(t, onEvent as EventListener);
  for (const t of ["gap", "dropped"]) {
    source.addEventListener(t, () => {
      for (const l of resyncListeners) l();
    });
  }
}

/** Calls `fn` for each live event while the component is mounted. */
export function useLiveEvents(fn: Listener, onResync?: () => void): void {
  useEffect(() => {
    ensureSource();
    listeners.add(fn);
    if (onResync !== undefined) resyncListeners.add(onResync);
    return () => {
      listeners.delete(fn);
      if (onResync !== undefined) resyncListeners.delete(onResync);
    };
  }, [fn, onResync]);
}

export function useConnState(): ConnState {
  const [s, setS] = useState<ConnState>(conn);
  useEffect(() => {
    ensureSource();
    connListeners.add(setS);
    setS(conn);
    return () => {
      connListeners.delete(setS);
    };
  }, []);
  return s;
}

/** A state that re-renders the caller every `ms` (relative times). */
export function useTick(ms: number): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    const id = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(id);
  }, [ms]);
  return n;
}
