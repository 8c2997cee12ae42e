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
import { formatTime } from "./format.ts";

// The event log, oldest first as the API pages it: cursors move forward (`next`), a stack of
// earlier cursors moves back, and "Newest" walks to the end. On the last page, new events
// arrive live over a stream with the same filters.

const PAGE_SIZE = 100;
/** "Newest" reads at most this many pages of 1000 to find the end. */
const MAX_WALK_PAGES = 50;
const MAX_LIVE_ROWS = 500;

export function EventsPage() {
  const [filter, setFilter] = useState<EventsFilter>({ types: [], pool: "", target: "" });
  const [draft, setDraft] = useState({ type: "", pool: "", target: "" });
  const [pools, setPools] = useState<PoolSummary[]>([]);
  const [events, setEvents] = useState<VigilEvent[]>([]);
  const [cursor, setCursor] = useState(0);
  const [next, setNext] = useState(0);
  const [back, setBack] = useState<number[]>([]);
  const [atEnd, setAtEnd] = useState(false);
  const [live, setLive] = useState(true);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const liveSeq = useRef(0);

  useEffect(() => {
    getJson<{ pools: PoolSummary[] }>("/v1/pools").then(
      (r) => setPools(r.pools),
      () => {},
    );
  }, []);

  const load = useCallback(
    async (since: number) => {
      setBusy(true);
      try {
        const page = await getJson<Page>(`/v1/events?${eventsQuery(filter, { since, limit: PAGE_SIZE })}`);
        setEvents(page.events);
        setCursor(since);
        setNext(page.next);
        setAtEnd(page.events.length < PAGE_SIZE);
        liveSeq.current = page.next;
        setError(undefined);
      } catch (e) {
        setError(e instanceof ApiError ? e.message : String(e));
      } finally {
        setBusy(false);
      }
    },
    [filter],
  );

  const newest = useCallback(async () => {
    setBusy(true);
    try {
      let since = 0;
      let last: VigilEvent[] = [];
      for (let i = 0; i < MAX_WALK_PAGES; i++) {
        const page = await getJson<Page>(`/v1/events?${eventsQuery(filter, { since, limit: 1000 })}`);
        if (page.events.length > 0) last = [...last, ...page.events].slice(-PAGE_SIZE);
        if (page.events.length < 1000 || page.next <= since) break;
        since = page.next;
      }
      const start = last.length === PAGE_SIZE ? last[0]!.seq - 1 : 0;
      setBack([]);
      await load(start);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
      setBusy(false);
    }
  }, [filter, load]);

  useEffect(() => {
    setBack([]);
    newest();
  }, [newest]);

  // live tail on the last page: a stream with the same filters, resuming after what we show
  useEffect(() => {
    if (!live || !atEnd) return;
    const q = eventsQuery(filter, liveSeq.current > 0 ? { since: liveSeq.current } : {});
    const es = new EventSource(`/v1/events/stream?${q}`);
    const on = (m: MessageEvent<string>) => {
      try {
        const e = JSON.parse(m.data) as VigilEvent;
        if (e.seq <= liveSeq.current) return;
        liveSeq.current = e.seq;
        setEvents((cur) => [...cur, e].slice(-MAX_LIVE_ROWS));
        setNext(e.seq);
      } catch {
        // a malformed frame is skipped, the stream goes on
      }
    };
    for (const t of eventTypes) es.addEventListener(t, on as EventListener);
    return () => es.close();
  }, [live, atEnd, filter]);

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
            onChange={(e) => setLive((e.currentTarget as HTMLInputElement).checked)}
          />
          Live on the newest page
        </label>
      </form>
      <nav class="pager" aria-label="Event pages">
        <button
          type="button"
          disabled={busy || cursor === 0}
          onClick={() => {
            setBack([]);
            load(0);
          }}
        >
          « Oldest
        </button>
        <button
          type="button"
          disabled={busy || back.length === 0}
          onClick={() => {
            const prev = back.at(-1) ?? 0;
            setBack(back.slice(0, -1));
            load(prev);
          }}
        >
          ← Older
        </button>
        <button
          type="button"
          disabled={busy || atEnd}
          onClick={() => {
            setBack([...back, cursor]);
            load(next);
          }}
        >
          Newer →
        </button>
        <button type="button" disabled={busy} onClick={() => newest()}>
          Newest »
        </button>
        <span class="muted" aria-live="polite">
          {busy
            ? "Loading…"
            : `${events.length} events after cursor ${cursor}${atEnd ? " · newest page" : ""}`}
        </span>
      </nav>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <div class="table-wrap">
        <table class="data" data-testid="events">
          <caption class="sr-only">Events, oldest first</caption>
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
            {events.length === 0 && !busy ? (
              <tr>
                <td colSpan={7} class="muted">
                  No events match.
                </td>
              </tr>
            ) : null}
            {events.map((e) => (
              <tr key={e.seq} data-type={e.type}>
                <td class="num">{e.seq}</td>
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
    </>
  );
}
