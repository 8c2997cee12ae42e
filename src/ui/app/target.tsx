import { useCallback, useEffect, useState } from "preact/hooks";
import {
  ApiError,
  type EventsPage,
  getJson,
  setAdmin,
  type TargetDetail,
  targetPath,
  type VigilEvent,
} from "./api.ts";
import { LatencyChart } from "./chart.tsx";
import { eventKey, withLiveAtEnd } from "./event-rows.ts";
import { formatDuration, formatLatency, formatSince, formatTime, stateLabel } from "./format.ts";
import { type LatencyPoint, parseHistory, recentToPoints, timelineSegments } from "./history.ts";
import { useLiveEvents, useTick } from "./live.tsx";

// One target: its state and why, each observer's observation, the verdict timeline (from the
// event log), latency (from the rollups when the node serves them, else its recent results)
// and the admin actions.

const DETAIL_POLL_MS = 5_000;
/** The newest events about the target that the timeline shows, at most (one page). */
const MAX_EVENTS_KEPT = 500;
const windows = [
  { label: "1 hour", ms: 3_600_000 },
  { label: "6 hours", ms: 6 * 3_600_000 },
  { label: "24 hours", ms: 24 * 3_600_000 },
  { label: "7 days", ms: 7 * 24 * 3_600_000 },
];

interface History {
  source: "rollups" | "recent";
  /** The window asked for (rollups only). */
  rangeMs?: [number, number];
  points: LatencyPoint[];
  /** Why the chart is not from the rollups, or what is missing from them. */
  note: string;
}

interface HistoryAnswer {
  buckets?: unknown[];
  missing?: { node: string }[];
}

export function TargetPage({ pool, target }: { pool: string; target: string }) {
  const [detail, setDetail] = useState<TargetDetail | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [events, setEvents] = useState<readonly VigilEvent[]>([]);
  const [windowMs, setWindowMs] = useState(windows[0]!.ms);
  const [history, setHistory] = useState<History | undefined>();
  useTick(1000);

  const loadDetail = useCallback(() => {
    getJson<TargetDetail>(targetPath(pool, target)).then(
      (d) => {
        setDetail(d);
        setError(undefined);
      },
      (e: unknown) => setError(e instanceof ApiError ? e.message : String(e)),
    );
  }, [pool, target]);

  const loadEvents = useCallback(async () => {
    // The newest events about the target, in one page newest first; the timeline reads them
    // oldest first.
    const q = new URLSearchParams({
      pool,
      target,
      type: "verdict.changed,target.admin,observation.changed",
      order: "desc",
      limit: String(MAX_EVENTS_KEPT),
    });
    const page = await getJson<EventsPage>(`/v1/events?${q}`);
    setEvents(page.events.slice().reverse());
  }, [pool, target]);

  const loadHistory = useCallback(
    async (d: TargetDetail | undefined) => {
      const to = Date.now();
      const from = to - windowMs;
      const step = windowMs <= 6 * 3_600_000 ? "1m" : windowMs <= 24 * 3_600_000 ? "15m" : "1h";
      const recent = (note: string): History => ({
        source: "recent",
        points: recentToPoints(d?.recent),
        note,
      });
      try {
        const body = await getJson<HistoryAnswer>(
          `${targetPath(pool, target)}/history?from=${from}&to=${to}&step=${step}`,
        );
        const points = parseHistory(body);
        if (points === undefined || points.length === 0) {
          setHistory(
            recent(
              "No rollups for this target in this window (they are kept by nodes with a data_dir); showing this node's most recent checks.",
            ),
          );
          return;
        }
        const missing = (body.missing ?? []).map((m) => m.node);
        setHistory({
          source: "rollups",
          rangeMs: [from, to],
          points,
          note: missing.length > 0 ? `Partial: no answer from ${missing.join(", ")}.` : "",
        });
      } catch (e) {
        setHistory(
          recent(
            e instanceof ApiError && e.status === 404
              ? "History not available on this node; showing its most recent checks."
              : `History not available (${(e as Error).message}); showing this node's most recent checks.`,
          ),
        );
      }
    },
    [pool, target, windowMs],
  );

  useEffect(() => {
    loadDetail();
    loadEvents().catch((e: unknown) => setError(String((e as Error).message)));
    const id = setInterval(loadDetail, DETAIL_POLL_MS);
    return () => clearInterval(id);
  }, [loadDetail, loadEvents]);

  // re-read on a new window, or when the node has new results
  useEffect(() => {
    loadHistory(detail);
  }, [loadHistory, detail?.recent?.at(-1)?.ts]);

  const onEvent = useCallback(
    (e: VigilEvent) => {
      if (e.pool !== pool || e.target !== target) return;
      // The stream's ids are not the store's cursors: an event already read is known by its fields.
      setEvents((cur) => withLiveAtEnd(cur, e, MAX_EVENTS_KEPT));
      loadDetail();
    },
    [pool, target, loadDetail],
  );
  useLiveEvents(onEvent, loadEvents as () => void);

  const now = Date.now();
  return (
    <>
      <p>
        <a href="#/">← Overview</a>
      </p>
      <div class="target-head">
        <h1 tabIndex={-1}>
          <span class="muted">{pool} /</span> <span class="mono">{target}</span>
        </h1>
        {detail ? (
          <span class={`badge s-${detail.state}`} data-testid="target-state">
            {stateLabel(detail.state)}
          </span>
        ) : null}
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {detail ? (
        <>
          <section class="panel" aria-labelledby="summary-h">
            <h2 id="summary-h" class="sr-only">
              Summary
            </h2>
            <dl class="kv">
              <dt>Verdict</dt>
              <dd>
                {stateLabel(detail.verdict)} for {formatSince(detail.since, now)}{" "}
                <span class="muted">(since {formatTime(detail.since)})</span>
              </dd>
              <dt>Admin</dt>
              <dd>
                {detail.admin === "none"
                  ? "none"
                  : `${detail.admin}${detail.adminReason ? `: ${detail.adminReason}` : ""}`}
              </dd>
              <dt>Reason</dt>
              <dd>{detail.reason || "—"}</dd>
              <dt>Owners</dt>
              <dd>{detail.owners.join(", ") || "—"}</dd>
            </dl>
          </section>
          <AdminPanel pool={pool} target={target} current={detail.admin} onDone={setDetail} />
          <section aria-labelledby="obs-h">
            <h2 id="obs-h">Observers</h2>
            <div class="table-wrap">
              <table class="data" data-testid="observers">
                <thead>
                  <tr>
                    <th scope="col">Node</th>
                    <th scope="col">Observation</th>
                    <th scope="col">Since</th>
                    <th scope="col">Role</th>
                    <th scope="col">Latency</th>
                    <th scope="col">Last check</th>
                    <th scope="col">Last reason</th>
                  </tr>
                </thead>
                <tbody>
                  {detail.observers.length === 0 ? (
                    <tr>
                      <td colSpan={7} class="muted">
                        No observation yet.
                      </td>
                    </tr>
                  ) : null}
                  {detail.observers.map((o) => (
                    <tr key={o.node}>
                      <th scope="row">{o.node}</th>
                      <td>
                        <span class={`badge s-${o.state}`}>{stateLabel(o.state)}</span>
                      </td>
                      <td title={formatTime(o.since)}>{formatSince(o.since, now)}</td>
                      <td>
                        {[o.owner ? "owner" : "", o.voting ? "voting" : ""].filter(Boolean).join(", ") || "—"}
                      </td>
                      <td class="num">{formatLatency(o.latencyMs)}</td>
                      <td title={formatTime(o.checkedAt)}>
                        {o.checkedAt ? `${formatSince(o.checkedAt, now)} ago` : "—"}
                      </td>
                      <td>{o.reason || "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
          <Timeline
            events={events}
            current={detail.verdict}
            windowMs={windowMs}
            setWindowMs={setWindowMs}
            now={now}
          />
          <section aria-labelledby="lat-h">
            <h2 id="lat-h">Latency</h2>
            {history === undefined ? <p class="muted">Loading…</p> : null}
            {history && history.note !== "" ? (
              <p class="muted" data-testid="history-note">
                {history.note}
              </p>
            ) : null}
            {history && history.points.length > 0 ? (
              <LatencyChart
                points={history.points}
                {...(history.rangeMs ? { rangeMs: history.rangeMs } : {})}
                label={history.source === "rollups" ? "Latency from the rollups" : "Latency of recent checks"}
              />
            ) : history ? (
              <p class="muted">No checks recorded yet.</p>
            ) : null}
          </section>
        </>
      ) : error ? null : (
        <p class="muted">Loading…</p>
      )}
    </>
  );
}

function Timeline({
  events,
  current,
  windowMs,
  setWindowMs,
  now,
}: {
  events: readonly VigilEvent[];
  current: string;
  windowMs: number;
  setWindowMs: (ms: number) => void;
  now: number;
}) {
  // Before the first thing this node recorded about the target, "unknown" would be a guess.
  const firstSeen = events.length > 0 ? Math.min(...events.map((e) => e.ts)) : Number.NEGATIVE_INFINITY;
  const start = Math.max(now - windowMs, firstSeen);
  const segs = timelineSegments(events, current, start, now);
  const changes = events
    .filter((e) => e.type !== "observation.changed")
    .slice()
    .reverse();
  return (
    <section aria-labelledby="tl-h">
      <h2 id="tl-h">Verdict history</h2>
      <label class="field inline-field">
        Window
        <select
          value={windowMs}
          onChange={(e) => setWindowMs(Number((e.currentTarget as HTMLSelectElement).value))}
        >
          {windows.map((w) => (
            <option key={w.ms} value={w.ms}>
              {w.label}
            </option>
          ))}
        </select>
      </label>
      <div class="timeline" role="img" aria-label={timelineLabel(segs)} data-testid="timeline">
        {segs.map((s) => (
          <span
            key={s.startMs}
            class={`s-${s.state}`}
            style={{ flexGrow: s.endMs - s.startMs }}
            title={`${stateLabel(s.state)} ${formatTime(s.startMs)} – ${formatTime(s.endMs)}`}
          />
        ))}
      </div>
      <div class="timeline-scale" aria-hidden="true">
        <span>{formatTime(start)}</span>
        <span>now</span>
      </div>
      <div class="legend" aria-hidden="true">
        <span>
          <span class="badge s-up">Up</span>
        </span>
        <span>
          <span class="badge s-down">Down</span>
        </span>
        <span>
          <span class="badge s-unknown">Unknown</span>
        </span>
      </div>
      <h3 class="sr-only">Changes</h3>
      <div class="table-wrap">
        <table class="data" data-testid="changes">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Change</th>
              <th scope="col">From → to</th>
              <th scope="col">Node</th>
              <th scope="col">Cause</th>
            </tr>
          </thead>
          <tbody>
            {changes.length === 0 ? (
              <tr>
                <td colSpan={5} class="muted">
                  No verdict or admin change in the event log this node holds.
                </td>
              </tr>
            ) : null}
            {changes.slice(0, 100).map((e) => (
              <tr key={eventKey(e)}>
                <td>{formatTime(e.ts)}</td>
                <td>{e.type === "verdict.changed" ? "verdict" : "admin"}</td>
                <td>
                  {e.from ?? "—"} → <strong>{e.to ?? "—"}</strong>
                </td>
                <td>{e.node ?? ""}</td>
                <td>{e.cause ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function timelineLabel(segs: { startMs: number; endMs: number; state: string }[]): string {
  if (segs.length === 0) return "No verdict history.";
  return `Verdict over the window: ${segs
    .map((s) => `${s.state} for ${formatDuration(s.endMs - s.startMs)}`)
    .join(", then ")}.`;
}

function AdminPanel({
  pool,
  target,
  current,
  onDone,
}: {
  pool: string;
  target: string;
  current: "none" | "maint" | "drain";
  onDone: (d: TargetDetail) => void;
}) {
  const [choice, setChoice] = useState<"none" | "maint" | "drain">(current);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>();
  useEffect(() => setChoice(current), [current]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setMessage(undefined);
    try {
      const d = await setAdmin(pool, target, choice, reason);
      onDone(d);
      setMessage({ ok: true, text: `Admin state set to ${choice}.` });
      setReason("");
    } catch (err) {
      setMessage({ ok: false, text: err instanceof ApiError ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  const options: { v: "none" | "maint" | "drain"; label: string; help: string }[] = [
    { v: "none", label: "None", help: "route by the health verdict" },
    { v: "drain", label: "Drain", help: "finish current work, take no new" },
    { v: "maint", label: "Maintenance", help: "out of rotation" },
  ];
  return (
    <section class="panel" aria-labelledby="admin-h">
      <h2 id="admin-h" style={{ marginTop: "0" }}>
        Admin state
      </h2>
      <form class="admin-form" onSubmit={submit} data-testid="admin-form">
        <fieldset>
          <legend>State</legend>
          {options.map((o) => (
            <label class="radio" key={o.v} title={o.help}>
              <input
                type="radio"
                name="admin-state"
                value={o.v}
                checked={choice === o.v}
                onChange={() => setChoice(o.v)}
              />
              {o.label}
            </label>
          ))}
        </fieldset>
        <label class="field grow">
          Reason (optional, shown to operators and HAProxy)
          <input
            type="text"
            maxLength={200}
            value={reason}
            onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)}
            placeholder="e.g. kernel upgrade, ticket OPS-123"
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Applying…" : "Apply"}
        </button>
      </form>
      <output
        aria-live="polite"
        class={message && !message.ok ? "error" : "muted"}
        data-testid="admin-message"
      >
        {message?.text ?? ""}
      </output>
    </section>
  );
}
