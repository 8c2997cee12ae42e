import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  type EventsFilter,
  eventsQuery,
  eventTypes,
  getJson,
  type EventsPage as Page,
  type PoolSummary,
  type VigilEvent,
} from "./api.ts";
import { type EventRow, pageRows, withLiveOnTop, withOlderBelow } from "./event-rows.ts";
import { formatTime } from "./format.ts";

// The event log, newest first: the API's newest page (`order=desc`), older pages below it on
// demand (`before` = the last page's `next`), and new events over a stream with the same
// filters, on top as they happen.

const PAGE_SIZE = 100;
/** Live rows shown above the page before the page is read afresh (the newest PAGE_SIZE). */
const MAX_LIVE_ROWS = 500;

export function EventsPage() {
  const [filter, setFilter] = useState<EventsFilter>({ types: [], pool: "", target: "" });
  const [draft, setDraft] = useState({ type: "", pool: "", target: "" });
  const [pools, setPools] = useState<PoolSummary[]>([]);
  const [rows, setRows] = useState<readonly EventRow[]>([]);
  /** `before` for the next older page; undefined once the oldest event is shown. */
  const [older, setOlder] = useState<number | undefined>();
  const [source, setSource] = useState<Page["source"] | undefined>();
  const [live, setLive] = useState(true);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  // Live events that arrive while the newest page is being read wait here, then merge into it.
  const pending = useRef<VigilEvent[] | undefined>([]);
  const request = useRef(0);
  const liveCount = useRef(0);

  useEffect(() => {
    getJson<{ pools: PoolSummary[] }>("/v1/pools").then(
      (r) => setPools(r.pools),
      () => {},
    );
  }, []);

  const loadNewest = useCallback(async () => {
    const mine = ++request.current;
    pending.current = [];
    liveCount.current = 0;
    setBusy(true);
    try {
      const page = await getJson<Page>(
        `/v1/events?${eventsQuery(filter, { order: "desc", limit: PAGE_SIZE })}`,
      );
      if (mine !== request.current) return;
      let merged: readonly EventRow[] = pageRows(page.events);
      for (const e of pending.current ?? []) merged = withLiveOnTop(merged, e);
      pending.current = undefined;
      setRows(merged);
      setOlder(page.events.length < PAGE_SIZE ? undefined : page.next);
      setSource(page.source);
      setError(undefined);
    } catch (e) {
      if (mine !== request.current) return;
      setError(e instanceof ApiError ? e.message : String(e));
      // The rows shown stay; what arrived meanwhile goes on top of them.
      const missed = pending.current ?? [];
      pending.current = undefined;
      setRows((cur) => missed.reduce(withLiveOnTop, cur));
    } finally {
      if (mine === request.current) setBusy(false);
    }
  }, [filter]);

  const loadOlder = useCallback(async () => {
    if (older === undefined) return;
    const mine = ++request.current;
    setBusy(true);
    try {
      const page = await getJson<Page>(
        `/v1/events?${eventsQuery(filter, { order: "desc", before: older, limit: PAGE_SIZE })}`,
      );
      if (mine !== request.current) return;
      setRows((cur) => withOlderBelow(cur, page.events));
      setOlder(page.events.length < PAGE_SIZE ? undefined : page.next);
      setError(undefined);
    } catch (e) {
      if (mine === request.current) setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      if (mine === request.current) setBusy(false);
    }
  }, [filter, older]);

  useEffect(() => {
    loadNewest();
  }, [loadNewest]);

  // Live: a stream with the same filters from now on; each new event goes on top. The stream's
  // ids are not the store's cursors, so it starts at "now" rather than after the page.
  useEffect(() => {
    if (!live) return;
    const q = eventsQuery(filter);
    const es = new EventSource(`/v1/events/stream${q === "" ? "" : `?${q}`}`);
    const on = (m: MessageEvent<string>) => {
      let e: VigilEvent;
      try {
        e = JSON.parse(m.data) as VigilEvent;
      } catch {
        return; // a malformed frame is skipped, the stream goes on
      }
      if (pending.current !== undefined) {
        pending.current.push(e);
        return;
      }
      if (++liveCount.current > MAX_LIVE_ROWS) {
        loadNewest();
        return;
      }
      setRows((cur) => withLiveOnTop(cur, e));
    };
    for (const t of eventTypes) es.addEventListener(t, on as EventListener);
    // The node could not replay what this page missed: read the newest page again.
    for (const t of ["gap", "dropped"]) es.addEventListener(t, () => loadNewest());
    return () => es.close();
  }, [live, filter, loadNewest]);

  const apply = (e: Event) => {
    e.preventDefault();
    setFilter({
      types: draft.type === "" ? [] : [draft.type],
      pool: draft.pool.trim(),
      target: draft.target.trim(),
    });
  };

  return (
    <>
      <h1 tabIndex={-1}>Events</h1>
      <form class="filters" onSubmit={apply} aria-label="Event filters">
        <label class="field">
          Type
          <select
            value={draft.type}
            onChange={(e) => setDraft({ ...draft, type: (e.currentTarget as HTMLSelectElement).value })}
          >
            <option value="">All types</option>
            {eventTypes.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Pool
          <select
            value={draft.pool}
            onChange={(e) => setDraft({ ...draft, pool: (e.currentTarget as HTMLSelectElement).value })}
          >
            <option value="">All pools</option>
            {pools.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Target (host:port)
          <input
            type="text"
            value={draft.target}
            onInput={(e) => setDraft({ ...draft, target: (e.currentTarget as HTMLInputElement).value })}
            placeholder="10.0.1.10:8080"
            spellcheck={false}
          />
        </label>
        <button type="submit">Apply filters</button>
        <label class="radio" style={{ display: "flex", gap: "6px", alignItems: "center" }}>
          <input
            type="checkbox"
            checked={live}
            onChange={(e) => {
              const on = (e.currentTarget as HTMLInputElement).checked;
              setLive(on);
              // Back on: what happened while it was off comes with the newest page.
              if (on) loadNewest();
            }}
          />
          Live: new events on top
        </label>
      </form>
      <nav class="pager" aria-label="Event pages">
        <button type="button" disabled={busy} onClick={() => loadNewest()}>
          Newest
        </button>
        <span class="muted" aria-live="polite" data-testid="events-status">
          {busy ? "Loading…" : `${rows.length} events, newest first`}
        </span>
      </nav>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <div class="table-wrap">
        <table class="data" data-testid="events">
          <caption class="sr-only">Events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">Pool / target</th>
              <th scope="col">Node</th>
              <th scope="col">From → to</th>
              <th scope="col">Cause</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && !busy ? (
              <tr>
                <td colSpan={7} class="muted">
                  No events match.
                </td>
              </tr>
            ) : null}
            {rows.map((e) => (
              <tr
                key={e.key}
                data-type={e.type}
                data-seq={e.live ? undefined : e.seq}
                data-live={e.live || undefined}
              >
                <td class="num" title={seqTitle(e, source)}>
                  {e.live && source !== "memory" ? "live" : e.seq}
                </td>
                <td>{formatTime(e.ts)}</td>
                <td>{e.type}</td>
                <td class="mono">
                  {e.pool && e.target ? (
                    <a href={`#/target/${encodeURIComponent(e.pool)}/${encodeURIComponent(e.target)}`}>
                      {e.pool}/{e.target}
                    </a>
                  ) : (
                    (e.pool ?? "")
                  )}
                </td>
                <td>{e.node ?? ""}</td>
                <td>
                  {e.from !== undefined || e.to !== undefined ? `${e.from ?? "—"} → ${e.to ?? "—"}` : ""}
                </td>
                <td>{e.cause ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="pager">
        <button
          type="button"
          disabled={busy || older === undefined}
          onClick={() => loadOlder()}
          data-testid="events-older"
        >
          Older events
        </button>
        {older === undefined && rows.length > 0 ? <span class="muted">No older events.</span> : null}
      </div>
    </>
  );
}

function seqTitle(e: EventRow, source: Page["source"] | undefined): string | undefined {
  if (!e.live) return source === "memory" ? "in-memory sequence number" : "store cursor";
  return source === "memory"
    ? "arrived live; in-memory sequence number"
    : "arrived live: the stream numbers events apart from the store (Newest shows its store cursor)";
}
