// Formatting shared by the dashboard's pages. Pure: no DOM, so node tests cover it.

export type Effective = "up" | "down" | "unknown" | "maint" | "drain";
export const effectiveStates: readonly Effective[] = ["down", "unknown", "drain", "maint", "up"];

/** "12s", "3m 5s", "2h 10m", "4d 3h": how long ago, to the two largest units. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m}m` : `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h}h` : `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d}d` : `${d}d ${h % 24}h`;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

/** Local time as "2026-11-22 01:02:03": sortable, unambiguous, no locale surprises. */
export function formatTime(ts: number | null | undefined): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts) || ts <= 0) return "—";
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 10_000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** "since" as the age of a transition relative to the server's clock. */
export function formatSince(since: number | null | undefined, nowMs: number): string {
  if (since === null || since === undefined || since <= 0) return "—";
  return formatDuration(nowMs - since);
}

export function stateLabel(s: string): string {
  switch (s) {
    case "up":
      return "Up";
    case "down":
      return "Down";
    case "unknown":
      return "Unknown";
    case "maint":
      return "Maintenance";
    case "drain":
      return "Draining";
    case "alive":
      return "Alive";
    case "suspect":
      return "Suspect";
    case "dead":
      return "Dead";
    case "left":
      return "Left";
    default:
      return s;
  }
}

/** The state a target shows: its admin state when set, else its verdict (as the server does). */
export function effectiveOf(verdict: string, admin: string): Effective {
  if (admin === "maint" || admin === "drain") return admin;
  return verdict === "up" || verdict === "down" ? verdict : "unknown";
}
