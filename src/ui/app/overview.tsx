import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ApiError,
  getJson,
  type PoolSummary,
  type TargetRow,
  type TargetsPage,
  targetsUrl,
  type VigilEvent,
} from "./api.ts";
import {
  type Effective,
  effectiveOf,
  effectiveStates,
  formatLatency,
  formatSince,
  formatTime,
  stateLabel,
} from "./format.ts";
import { useLiveEvents, useTick } from "./live.tsx";
import { splitSearch } from "./search.ts";
import { pagesCovering, RowPages, visibleRange } from "./virtual.ts";

// The overview: counts by state, and every target in one virtualised list. Filtering, sorting
// and paging happen on the node (GET /v1/targets); the browser holds a few pages of rows and
// renders only those on screen, so 10,000 targets cost what 50 do.

const PAGE_SIZE = 200;
const OVERSCAN_ROWS = 8;
const SEARCH_DEBOUNCE_MS = 150;
/** Live updates refetch the rows on screen at most this often (a storm of events is one refetch). */
const REFRESH_MIN_GAP_MS = 300;

function rowHeightPx(): number {
  const v = getComputedStyle(document.documentElement).getPropertyValue("--row-h");
  const n = Number.parseFloat(v);
  return Number.isFinite(n) && n > 0 ? n : 44;
}

export function OverviewPage() {
  const [input, setInput] = useState(
    () => new URLSearchParams(location.hash.split("?")[1] ?? "").get("q") ?? "",
  );
  const [search, setSearch] = useState(input);
  const [cardStates, setCardStates] = useState<Effective[]>([]);
  const [pool, setPool] = useState("");
  const [pools, setPools] = useState<PoolSummary[]>([]);
  const [counts, setCounts] = useState<Record<Effective, number> | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [, setVersion] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [rowPx, setRowPx] = useState(44);
  const [active, setActive] = useState(0);
  const [serverSkewMs, setServerSkewMs] = useState(0);
  const pagesRef = useRef(new RowPages<TargetRow>(PAGE_SIZE));
  const scrollRef = useRef<HTMLTableSectionElement>(null);
  const refresh = useRef({ timer: 0 as number | 0, lastMs: 0, pending: false });
  useTick(1000);

  const parsed = useMemo(() => splitSearch(search), [search]);
  const states = useMemo(
    () => [...new Set([...cardStates, ...parsed.states])].sort(),
    [cardStates, parsed.states],
  );
  const queryKey = `${parsed.text}|${states.join(",")}|${pool}`;

  // debounce typing: one request per pause, not per key
  useEffect(() => {
    const id = setTimeout(() => setSearch(input), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(id);
  }, [input]);

  const pages = pagesRef.current;
  const range = visibleRange(scrollTop, viewport, rowPx, pages.total, OVERSCAN_ROWS);
  const firstLoad = useRef(true);

  const fetchPages = useCallback(
    (wanted: number[]) => {
      for (const p of pages.toFetch(wanted)) {
        const token = pages.begin(p);
        getJson<TargetsPage>(
          targetsUrl({ q: parsed.text, states, pool, offset: p * PAGE_SIZE, limit: PAGE_SIZE }),
        ).then(
          (page) => {
            if (!pages.put(p, page.targets, page.total, token, wanted)) return;
            setCounts(page.counts);
            setServerSkewMs(page.now - Date.now());
            setError(undefined);
            setVersion((v) => v + 1);
            if (firstLoad.current) {
              firstLoad.current = false;
              performance.mark("vigil:overview-rendered");
            }
          },
          (e: unknown) => {
            pages.fail(p, token);
            setError(e instanceof ApiError ? e.message : String(e));
          },
        );
      }
    },
    // queryKey stands for parsed.text, states and pool
    [queryKey],
  );

  // a new query: forget the rows, back to the top
  useEffect(() => {
    pages.reset();
    setActive(0);
    if (scrollRef.current) scrollRef.current.scrollTop = 0;
    setScrollTop(0);
    fetchPages([0]);
    setVersion((v) => v + 1);
  }, [queryKey]);

  // rows scrolled into view
  useEffect(() => {
    if (pages.total > 0) fetchPages(pagesCovering(range, PAGE_SIZE));
  });

  const loadPools = useCallback(() => {
    getJson<{ pools: PoolSummary[] }>("/v1/pools").then(
      (r) => setPools(r.pools),
      () => {},
    );
  }, []);
  useEffect(loadPools, []);

  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const measure = () => {
      setViewport(el.clientHeight);
      setRowPx(rowHeightPx());
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const refreshSoon = useCallback(() => {
    const r = refresh.current;
    if (r.timer !== 0) return;
    const wait = Math.max(0, r.lastMs + REFRESH_MIN_GAP_MS - Date.now());
    r.timer = setTimeout(() => {
      r.timer = 0;
      r.lastMs = Date.now();
      pages.invalidate();
      const el = scrollRef.current;
      const rr = visibleRange(
        el?.scrollTop ?? 0,
        el?.clientHeight ?? 600,
        rowHeightPx(),
        pages.total,
        OVERSCAN_ROWS,
      );
      fetchPages(pages.total === 0 ? [0] : pagesCovering(rr, PAGE_SIZE));
    }, wait) as unknown as number;
  }, [fetchPages, pages]);
  useEffect(() => () => clearTimeout(refresh.current.timer), []);

  const onEvent = useCallback(
    (e: VigilEvent) => {
      if (e.type === "verdict.changed" || e.type === "target.admin") {
        // Show the change at once on the rows we hold; the refetch then re-sorts and recounts.
        const n = pages.patch(
          (r) => r.pool === e.pool && r.target === e.target,
          (r) => {
            if (e.type === "verdict.changed" && (e.to === "up" || e.to === "down" || e.to === "unknown")) {
              return {
                ...r,
                verdict: e.to,
                since: e.ts,
                state: effectiveOf(e.to, r.admin),
                reason: e.cause ?? r.reason,
              };
            }
            const admin = e.to === "maint" || e.to === "drain" ? e.to : "none";
            return { ...r, admin, state: effectiveOf(r.verdict, admin) };
          },
        );
        if (n > 0) setVersion((v) => v + 1);
        refreshSoon();
      } else if (e.type.startsWith("pool.")) {
        loadPools();
        refreshSoon();
      }
    },
    [refreshSoon, loadPools, pages],
  );
  useLiveEvents(onEvent, refreshSoon);

  const toggleState = (s: Effective) =>
    setCardStates((cur) => (cur.includes(s) ? cur.filter((x) => x !== s) : [...cur, s]));

  const focusRow = (i: number) => {
    const el = scrollRef.current;
    if (!el || pages.total === 0) return;
    const idx = Math.max(0, Math.min(pages.total - 1, i));
    setActive(idx);
    const top = idx * rowPx;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + rowPx > el.scrollTop + el.clientHeight) el.scrollTop = top + rowPx - el.clientHeight;
    setScrollTop(el.scrollTop);
    requestAnimationFrame(() => el.querySelector<HTMLElement>(`[data-index="${idx}"] a`)?.focus());
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const per = Math.max(1, Math.floor(viewport / rowPx) - 1);
    const moves: Record<string, number> = {
      ArrowDown: active + 1,
      ArrowUp: active - 1,
      PageDown: active + per,
      PageUp: active - per,
      Home: 0,
      End: pages.total - 1,
    };
    const to = moves[e.key];
    if (to === undefined || !(e.target as HTMLElement).closest(".grid-row")) return;
    e.preventDefault();
    focusRow(to);
  };

  const onScroll = (e: Event) => {
    const el = e.currentTarget as HTMLTableSectionElement;
    setScrollTop(el.scrollTop);
    const r = visibleRange(el.scrollTop, el.clientHeight, rowPx, pages.total, 0);
    if (active < r.first || active >= r.end) setActive(r.first);
  };

  const now = Date.now() + serverSkewMs;
  const total = pages.total;
  const all = counts ? effectiveStates.reduce((n, s) => n + counts[s], 0) : undefined;
  const filtered = parsed.text !== "" || pool !== "";
  const rows = [];
  for (let i = range.first; i < range.end; i++) {
    const r = pages.row(i);
    rows.push(
      r === undefined ? (
        <tr
          class="grid-row placeholder"
          aria-rowindex={i + 2}
          style={{ top: `${i * rowPx}px` }}
          key={`p${i}`}
        >
          <td class="cell" colSpan={6}>
            Loading…
          </td>
        </tr>
      ) : (
        <Row
          key={`${r.pool}/${r.target}`}
          row={r}
          index={i}
          top={i * rowPx}
          now={now}
          tabbable={i === active}
        />
      ),
    );
  }

  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <section
        aria-label={filtered ? "Targets matching the search, by state" : "Targets by state"}
        class="counts"
      >
        <button
          type="button"
          class="count all"
          aria-pressed={cardStates.length === 0}
          onClick={() => setCardStates([])}
          data-testid="count-all"
        >
          <span class="n">{all?.toLocaleString("en") ?? "…"}</span>
          <span class="l">{filtered ? "Matching" : "All targets"}</span>
        </button>
        {effectiveStates.map((s) => (
          <button
            type="button"
            key={s}
            class={`count s-${s}`}
            aria-pressed={cardStates.includes(s)}
            onClick={() => toggleState(s)}
            data-testid={`count-${s}`}
            title={`Show only ${stateLabel(s).toLowerCase()} targets (toggle)`}
          >
            <span class="n">{counts?.[s].toLocaleString("en") ?? "…"}</span>
            <span class="l">{stateLabel(s)}</span>
          </button>
        ))}
      </section>
      <form
        class="filters"
        aria-label="Search targets"
        onSubmit={(e) => {
          e.preventDefault();
          setSearch(input);
        }}
      >
        <label class="field grow">
          Search pools and addresses
          <input
            type="search"
            value={input}
            onInput={(e) => setInput((e.currentTarget as HTMLInputElement).value)}
            placeholder="e.g. web, 10.0.1., state:down"
            aria-describedby="search-help"
            autocomplete="off"
            spellcheck={false}
          />
        </label>
        <label class="field">
          Pool
          <select value={pool} onChange={(e) => setPool((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">All pools</option>
            {pools.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name} ({p.targets})
              </option>
            ))}
          </select>
        </label>
        <p id="search-help" class="sr-only">
          Matches part of a pool name or target address. Add state:down, state:up, state:unknown, state:maint
          or state:drain to filter by state. Results update as you type.
        </p>
      </form>
      <p class="muted" aria-live="polite" data-testid="result-count">
        {total === 0 && counts !== undefined
          ? "No targets match."
          : `${total.toLocaleString("en")} ${total === 1 ? "target" : "targets"}`}
        {states.length > 0 ? ` · state ${states.join(", ")}` : ""}
        {total > 0 ? " · down and unknown first · ↑↓ PgUp PgDn Home End move between rows" : ""}
      </p>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <table class="grid" aria-label="Targets" aria-rowcount={total + 1} onKeyDown={onKeyDown}>
        <thead>
          <tr class="grid-head" aria-rowindex={1}>
            <th scope="col">State</th>
            <th scope="col">Pool</th>
            <th scope="col">Target</th>
            <th scope="col">Since</th>
            <th scope="col">Observers</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody
          class="grid-scroll"
          ref={scrollRef}
          onScroll={onScroll}
          data-testid="target-list"
          style={{ "--list-h": `${total * rowPx}px` }}
        >
          {rows}
        </tbody>
      </table>
    </>
  );
}

function Row({
  row,
  index,
  top,
  now,
  tabbable,
}: {
  row: TargetRow;
  index: number;
  top: number;
  now: number;
  tabbable: boolean;
}) {
  const href = `#/target/${encodeURIComponent(row.pool)}/${encodeURIComponent(row.target)}`;
  const observers = row.observers.filter((o) => o.owner || o.voting);
  const shown = observers.length > 0 ? observers : row.observers;
  return (
    <tr
      class="grid-row"
      aria-rowindex={index + 2}
      data-index={index}
      data-state={row.state}
      data-target={`${row.pool}/${row.target}`}
      style={{ top: `${top}px` }}
    >
      <td class="cell c-state">
        <span class={`badge s-${row.state}`}>{stateLabel(row.state)}</span>
      </td>
      <td class="cell c-pool">{row.pool}</td>
      <td class="cell c-target mono">
        <a href={href} tabIndex={tabbable ? 0 : -1}>
          {row.target}
        </a>
      </td>
      <td class="cell c-since" title={formatTime(row.since)}>
        {formatSince(row.since, now)}
      </td>
      <td class="cell c-obs">
        {shown.length === 0 ? <span class="muted">none yet</span> : null}
        {shown.map((o) => (
          <span
            key={o.node}
            class={`obs s-${o.state}`}
            title={`${o.node}: ${o.state}${o.reason ? ` (${o.reason})` : ""}, ${formatLatency(o.latencyMs)}`}
          >
            {o.node}
            <span class="sr-only"> {o.state};</span>
          </span>
        ))}
      </td>
      <td class="cell reason" title={row.reason}>
        {row.admin !== "none" ? `${row.admin}: ${row.adminReason ?? ""}` : row.reason}
      </td>
    </tr>
  );
}
