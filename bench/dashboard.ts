// The dashboard with 10,000 targets, measured in a real browser (Debian's Chromium through
// playwright-core) against a real 3-node cluster in this process:
//   - time to first render of the overview (navigation start to counts and rows on screen),
//   - time from a verdict change on the node the browser talks to, to the page showing it,
//   - a search over 10,000 targets and a jump to the middle of the list, for responsiveness.
// Targets: first render < 1 s, verdict change shown < 2 s (issue 7).
//
//   npx node bench/dashboard.ts [--targets=10000] [--runs=5] [--flips=5]

import os from "node:os";
import type { VigilEvent } from "../src/runtime/events.ts";
import { eventually, startTestOrigin } from "../test/helpers/origins.ts";
import {
  ensureUiBuilt,
  getJson,
  launchBrowser,
  screenshotPath,
  startCluster,
  stopCluster,
} from "../test/ui/harness.ts";
import { arg, percentile, progress, round, writeResults } from "./lib.ts";

// The few browser globals used by the functions this file runs inside the page (page.evaluate),
// declared here instead of adding the DOM library to the Node program.
interface PageElement {
  textContent: string | null;
  parentElement: PageElement | null;
  scrollTop: number;
  scrollHeight: number;
  scrollWidth: number;
  dataset: Record<string, string | undefined>;
  getAttribute(name: string): string | null;
  closest(selector: string): PageElement | null;
}
declare const document: {
  body: PageElement;
  documentElement: PageElement;
  activeElement: PageElement | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};
declare const window: { innerWidth: number };
declare function getComputedStyle(el: PageElement): { color: string; backgroundColor: string };
declare function requestAnimationFrame(fn: () => void): number;

const TARGETS = arg("targets", 10_000);
const RUNS = arg("runs", 5);
const FLIPS = arg("flips", 5);
const POOLS = 10;
const FIRST_RENDER_TARGET_MS = 1_000;
const VERDICT_SHOWN_TARGET_MS = 2_000;

/** Loopback addresses with nothing listening (127.77.0.0/16 is loopback on Linux): checks are refused at once. */
function fakeAddr(i: number): string {
  return `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}:9`;
}

/** Names the step in a failure: a timeout alone does not say which wait it was. */
async function step<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

const live = await startTestOrigin(200, "ok");
const perPool = Math.ceil(TARGETS / POOLS);
let pools = "";
for (let p = 0; p < POOLS; p++) {
  const addrs: string[] = [];
  for (let i = p * perPool; i < Math.min(TARGETS, (p + 1) * perPool); i++) addrs.push(fakeAddr(i));
  // A 10-minute interval spreads the first checks over 10 minutes: a steady trickle of
  // refused checks and verdict changes (live load on the page), not a storm.
  pools += `  fake-${p}:\n    check: { type: tcp }\n    interval: 10m\n    timeout: 1s\n    targets: [${addrs.join(", ")}]\n`;
}
// "aaa-live" sorts first among down targets, so its row comes to the top when it goes down.
pools += `  aaa-live:\n    check: { type: http, path: /healthz }\n    interval: 300ms\n    timeout: 250ms\n    targets: [${live.key}]\n`;

await ensureUiBuilt();
progress(`starting 3 nodes with ${TARGETS + 1} targets`);
const t0 = performance.now();
const nodes = await startCluster({ size: 3, poolsYaml: `defaults: { rise: 1, fall: 1 }\npools:\n${pools}` });
const base = nodes[0]!.apiUrl;
await eventually(
  async () => (await getJson<{ total: number }>(`${base}/v1/targets?limit=1`)).total === TARGETS + 1,
  "all targets on n1",
  60_000,
);
await eventually(
  async () =>
    (await getJson<{ state: string }>(`${base}/v1/pools/aaa-live/targets/${live.key}`)).state === "up",
  "the live target up",
  30_000,
);
progress(`cluster ready in ${Math.round(performance.now() - t0)} ms`);

// The server side of one overview page, for reference.
const apiMs: number[] = [];
for (let i = 0; i < 20; i++) {
  const s = performance.now();
  await getJson(`${base}/v1/targets?offset=0&limit=200`);
  apiMs.push(performance.now() - s);
}
const searchApiMs: number[] = [];
for (let i = 0; i < 20; i++) {
  const s = performance.now();
  await getJson(`${base}/v1/targets?q=77.1&offset=0&limit=200`);
  searchApiMs.push(performance.now() - s);
}

const browser = await launchBrowser();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(30_000);
// Each frame, note when the overview first shows its counts and rows.
await page.addInitScript(() => {
  const w = window as unknown as { firstRenderMs?: number };
  const poll = () => {
    const rows = document.querySelectorAll("tr.grid-row[data-target]").length;
    const count = document.querySelector("[data-testid=count-all] .n")?.textContent ?? "";
    if (rows > 0 && /^\d/.test(count)) w.firstRenderMs = performance.now();
    else requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
});

progress("first render");
const firstRenderMs: number[] = [];
for (let i = 0; i < RUNS + 1; i++) {
  await page.goto(`${base}/`);
  const ms = await step(
    `first render ${i}`,
    page.waitForFunction(() => (window as unknown as { firstRenderMs?: number }).firstRenderMs),
  );
  const v = (await ms.jsonValue()) as number;
  if (i > 0) firstRenderMs.push(v); // the first load warms the browser's and node's caches
  progress(`  load ${i}: ${Math.round(v)} ms${i === 0 ? " (warm-up, not counted)" : ""}`);
}
const renderedRows = await page.locator("tr.grid-row").count();
await page.screenshot({ path: screenshotPath("bench-overview-10k") });

progress("verdict change to page");
const n1 = nodes[0]!;
const verdictShownMs: number[] = [];
const rowSel = `tr.grid-row[data-target="aaa-live/${live.key}"][data-state="down"]`;
for (let i = 0; i < FLIPS; i++) {
  const changed = new Promise<VigilEvent>((resolve) => {
    const off = n1.events.subscribe((e) => {
      if (e.type === "verdict.changed" && e.pool === "aaa-live" && e.to === "down") {
        off();
        resolve(e);
      }
    });
  });
  // The page notes (wall clock, the same machine's) when the live row first shows down.
  await page.evaluate((sel) => {
    const w = window as unknown as { shownAt?: number };
    w.shownAt = undefined;
    const poll = () => {
      if (document.querySelector(sel) !== null) w.shownAt = Date.now();
      else requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  }, rowSel);
  live.status = 503;
  const ev = await changed;
  const shown = (await (
    await step(
      `flip ${i}: the row showing down`,
      page.waitForFunction(() => (window as unknown as { shownAt?: number }).shownAt),
    )
  ).jsonValue()) as number;
  verdictShownMs.push(shown - ev.ts);
  progress(`  flip ${i}: shown ${shown - ev.ts} ms after n1's verdict changed`);
  live.status = 200;
  await eventually(
    async () =>
      (await getJson<{ state: string }>(`${base}/v1/pools/aaa-live/targets/${live.key}`)).state === "up",
    "the live target up again",
    10_000,
  );
  await step(`flip ${i}: the row leaving the top`, page.waitForSelector(rowSel, { state: "detached" }));
}

progress("search and scroll");
const searchMs: number[] = [];
const searches: [string, RegExp][] = [
  ["fake-3", new RegExp(`^${perPool.toLocaleString("en")} targets`)],
  ["127.77.1", /^[\d,]+ targets/],
  ["state:down", /^([\d,]+ targets?|No targets match\.) · state down/],
  ["", new RegExp(`^${(TARGETS + 1).toLocaleString("en")} targets`)],
];
for (const [q, shows] of searches) {
  const before = await page.locator("[data-testid=result-count]").innerText();
  const s = await page.evaluate(() => performance.now());
  await page.getByLabel("Search pools and addresses").fill(q);
  await step(
    `search "${q}"`,
    page.waitForFunction(
      ([b, src]) => {
        const t = document.querySelector("[data-testid=result-count]")?.textContent ?? "";
        return t !== b && new RegExp(src).test(t);
      },
      [before, shows.source] as const,
    ),
  );
  searchMs.push((await page.evaluate(() => performance.now())) - s);
}
const scrollStart = await page.evaluate(() => performance.now());
await page.evaluate(() => {
  const el = document.querySelector("[data-testid=target-list]")!;
  el.scrollTop = el.scrollHeight / 2;
});
await step(
  "scroll to the middle",
  page.waitForSelector(`tr.grid-row[data-index="${Math.floor((TARGETS + 1) / 2) + 2}"][data-target]`),
);
const scrollMs = (await page.evaluate(() => performance.now())) - scrollStart;
await page.screenshot({ path: screenshotPath("bench-overview-10k-middle") });

await browser.close();
await stopCluster(nodes);
await live.close();

const med = (xs: number[]) => round(percentile([...xs], 50), 1);
const max = (xs: number[]) => round(Math.max(...xs), 1);
const result = {
  machine: { cores: os.cpus().length, chromium: "Debian /usr/bin/chromium, headless" },
  notes:
    "3 VigilNodes in one process on loopback, 10 pools of fake targets (refused loopback addresses, 10-minute interval: a trickle of live verdict changes) plus one real origin flipped to 503 by the harness. Times measured in the browser: first render from navigation start to counts and rows painted; verdict change from the node's verdict.changed event (wall clock) to the row showing down at the top of the unfiltered overview.",
  targets: TARGETS + 1,
  firstRender: {
    runs: firstRenderMs.length,
    msMedian: med(firstRenderMs),
    msMax: max(firstRenderMs),
    targetMs: FIRST_RENDER_TARGET_MS,
    pass: Math.max(...firstRenderMs) < FIRST_RENDER_TARGET_MS,
    rowsInDom: renderedRows,
  },
  verdictChangeShown: {
    flips: verdictShownMs.length,
    msMedian: med(verdictShownMs),
    msMax: max(verdictShownMs),
    targetMs: VERDICT_SHOWN_TARGET_MS,
    pass: Math.max(...verdictShownMs) < VERDICT_SHOWN_TARGET_MS,
  },
  searchToResults: { queries: searchMs.length, msMedian: med(searchMs), msMax: max(searchMs) },
  scrollToMiddleMs: round(scrollMs, 1),
  api: {
    targetsPageMsMedian: med(apiMs),
    targetsPageMsMax: max(apiMs),
    searchPageMsMedian: med(searchApiMs),
  },
};
const path = writeResults("dashboard", result);
process.stdout.write(`${JSON.stringify(result, null, 2)}\nwrote ${path}\n`);
if (!result.firstRender.pass || !result.verdictChangeShown.pass) process.exitCode = 1;
