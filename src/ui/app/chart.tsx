import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatLatency, formatTime } from "./format.ts";
import type { LatencyPoint } from "./history.ts";

// Latency over time with uPlot (canvas, small, fast). The canvas is hidden from assistive
// technology; a text summary and a table of the points stand in for it.

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v === "" ? fallback : v;
}

export function LatencyChart({
  points,
  label,
  rangeMs,
}: {
  points: LatencyPoint[];
  label: string;
  /** The time axis, ms since the epoch; by default the points' own span (at least a minute). */
  rangeMs?: [number, number];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || points.length === 0) return;
    const first = points[0]!.t;
    const last = points.at(-1)!.t;
    const pad = Math.max(0, 60_000 - (last - first)) / 2;
    const [fromMs, toMs] = rangeMs ?? [first - pad, last + pad];
    const xRange: [number, number] = [fromMs / 1000, toMs / 1000];
    const text = cssVar("--text", "#222");
    const grid = cssVar("--border", "#ccc");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const data: uPlot.AlignedData = [
      points.map((p) => p.t / 1000),
      points.map((p) => p.latencyMs),
      points.map((p) => (p.failures > 0 ? p.failures : null)),
      points.map((p) => p.p95Ms ?? null),
    ];
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 220,
      scales: {
        x: { time: true, range: () => xRange },
        ms: { auto: true, range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        { ...axis },
        { ...axis, scale: "ms", label: "ms", values: (_u, vals) => vals.map((v) => `${v}`) },
        { ...axis, scale: "f", side: 1, label: "failed checks", grid: { show: false } },
      ],
      series: [
        { value: (_u, v) => (v === null ? "—" : formatTime(v * 1000)) },
        {
          label: "latency",
          scale: "ms",
          stroke: cssVar("--accent", "#0a58a8"),
          width: 2,
          points: { show: points.length < 120 },
          spanGaps: false,
          value: (_u, v) => formatLatency(v),
        },
        {
          label: "failed",
          scale: "f",
          stroke: cssVar("--down", "#a3150e"),
          fill: cssVar("--down", "#a3150e"),
          width: 0,
          points: { show: true, size: 7, fill: cssVar("--down", "#a3150e") },
          paths: () => null,
        },
        {
          label: "p95",
          scale: "ms",
          show: points.some((p) => p.p95Ms != null),
          stroke: cssVar("--muted", "#666"),
          width: 1,
          dash: [4, 4],
          points: { show: false },
          value: (_u, v) => formatLatency(v),
        },
      ],
    };
    const plot = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 220 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [points, rangeMs?.[0], rangeMs?.[1]]);

  const lat = points.map((p) => p.latencyMs).filter((v): v is number => v !== null);
  const failures = points.reduce((n, p) => n + p.failures, 0);
  const summary =
    lat.length === 0
      ? `${label}: no successful checks to chart; ${failures} failed.`
      : `${label}: ${points.length} ${points.length === 1 ? "point" : "points"}; latency min ${formatLatency(Math.min(...lat))}, mean ${formatLatency(
          lat.reduce((a, b) => a + b, 0) / lat.length,
        )}, max ${formatLatency(Math.max(...lat))}; ${failures} failed checks.`;
  return (
    <figure style={{ margin: "0" }}>
      <div class="chart" ref={box} aria-hidden="true" data-testid="latency-chart" />
      <figcaption class="muted">{summary}</figcaption>
      <details>
        <summary>Data table</summary>
        <div class="table-wrap">
          <table class="data">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Latency</th>
                <th scope="col">Checks</th>
                <th scope="col">Failed</th>
              </tr>
            </thead>
            <tbody>
              {points.slice(-200).map((p) => (
                <tr key={p.t}>
                  <td>{formatTime(p.t)}</td>
                  <td class="num">{formatLatency(p.latencyMs)}</td>
                  <td class="num">{p.checks}</td>
                  <td class="num">{p.failures}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
