import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { VigilNode } from "../../src/runtime/node.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import {
  ensureUiBuilt,
  getJson,
  launchBrowser,
  screenshotPath,
  startCluster,
  stopCluster,
} from "./harness.ts";

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

// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// 3-node cluster checking real local origins. Screenshots of each page go to test-results/.

interface TargetView {
  state: string;
  admin: string;
  adminReason?: string;
}

/** WCAG contrast of every visible badge's text on its own ground (opaque colours only). */
function badgeContrasts(page: Page): Promise<{ text: string; ratio: number }[]> {
  return page.evaluate(() => {
    const parse = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!);
    };
    return [...document.querySelectorAll(".badge, .count .l")].map((el) => {
      const cs = getComputedStyle(el);
      let bgEl: PageElement | null = el;
      let bg = cs.backgroundColor;
      while (bgEl && (bg === "rgba(0, 0, 0, 0)" || bg === "transparent")) {
        bgEl = bgEl.parentElement;
        bg = bgEl ? getComputedStyle(bgEl).backgroundColor : "rgb(255, 255, 255)";
      }
      const a = lum(parse(cs.color));
      const b = lum(parse(bg));
      return { text: el.textContent ?? "", ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
    });
  });
}

describe("dashboard in a real browser, 3-node cluster", { timeout: 90_000 }, () => {
  const web: TestOrigin[] = [];
  const api: TestOrigin[] = [];
  let nodes: VigilNode[] = [];
  let browser: Browser | undefined;
  let page: Page;
  let base: string;

  before(async () => {
    browser = await launchBrowser(); // first: without Chromium, fail at once with the fix
    await ensureUiBuilt();
    for (let i = 0; i < 6; i++) web.push(await startTestOrigin(200, "ok"));
    for (let i = 0; i < 3; i++) api.push(await startTestOrigin(200, "ok"));
    nodes = await startCluster({
      size: 3,
      poolsYaml: `defaults: { interval: 400ms, timeout: 400ms, rise: 1, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [${web.map((o) => o.key).join(", ")}]
  api:
    check: { type: http, path: /healthz }
    targets: [${api.map((o) => o.key).join(", ")}]
`,
    });
    base = nodes[0]!.apiUrl;
    await eventually(
      async () => (await getJson<{ counts: { up: number } }>(`${base}/v1/targets`)).counts.up === 9,
      "all 9 targets up on n1",
      20_000,
    );
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(15_000);
  });
  after(async () => {
    await browser?.close();
    await stopCluster(nodes);
    await Promise.all([...web, ...api].map((o) => o.close()));
  });

  const rowCount = () => page.locator("[data-testid=target-list] tr.grid-row[data-target]").count();

  it("loads at / and shows the counts by state", async () => {
    await page.goto(`${base}/`);
    await page.locator("[data-testid=count-up] .n", { hasText: /^9$/ }).waitFor();
    assert.equal(await page.locator("[data-testid=count-all] .n").innerText(), "9");
    assert.equal(await page.locator("[data-testid=count-down] .n").innerText(), "0");
    assert.equal(await rowCount(), 9);
    assert.equal(await page.locator(".brand small").innerText(), "node n1");
    await page.locator(".conn", { hasText: "Live" }).waitFor();
    for (const c of await badgeContrasts(page))
      assert.ok(c.ratio >= 4.5, `light: "${c.text}" contrast ${c.ratio}`);
    await page.screenshot({ path: screenshotPath("overview"), fullPage: true });
  });

  it("search filters on the server: by pool, by address, by state", async () => {
    const box = page.getByLabel("Search pools and addresses");
    await box.fill("api");
    await page.locator("[data-testid=result-count]", { hasText: /^3 targets/ }).waitFor();
    const shown = await page
      .locator("tr.grid-row[data-target]")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-target")));
    assert.deepEqual(shown.sort(), api.map((o) => `api/${o.key}`).sort());

    await box.fill(String(web[4]!.port));
    await page.locator("[data-testid=result-count]", { hasText: /^1 target\b/ }).waitFor();
    assert.equal(await page.locator("tr.grid-row").first().getAttribute("data-target"), `web/${web[4]!.key}`);

    await box.fill("state:down");
    await page.locator("[data-testid=result-count]", { hasText: "No targets match." }).waitFor();

    await box.fill("");
    await page.locator("[data-testid=result-count]", { hasText: /^9 targets/ }).waitFor();
    await page.locator("[data-testid=count-up]").click();
    assert.equal(await page.locator("[data-testid=count-up]").getAttribute("aria-pressed"), "true");
    await page.locator("[data-testid=count-down]").click();
    await page.locator("[data-testid=result-count]", { hasText: /^9 targets · state down, up/ }).waitFor();
    await page.locator("[data-testid=count-all]").click();
    await page
      .locator("[data-testid=result-count]", { hasText: /^9 targets · down and unknown first/ })
      .waitFor();
  });

  it("the keyboard moves between rows with the arrow keys, Home and End", async () => {
    await page.locator("tr.grid-row[data-index='0'] a").focus();
    const focusedIndex = () =>
      page.evaluate(() => document.activeElement?.closest("tr")?.getAttribute("data-index") ?? null);
    await page.keyboard.press("ArrowDown");
    await eventually(async () => (await focusedIndex()) === "1", "row 1 focused", 3_000);
    await page.keyboard.press("End");
    await eventually(async () => (await focusedIndex()) === "8", "last row focused", 3_000);
    await page.keyboard.press("Home");
    await eventually(async () => (await focusedIndex()) === "0", "first row focused", 3_000);
    // one tab stop for the whole list: the other rows' links are out of the tab order
    assert.equal(await page.locator("tr.grid-row a[tabindex='0']").count(), 1);
  });

  it("an origin stopped by the test turns red without a reload", async () => {
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const victim = web[2]!;
    victim.status = 503;
    const row = page.locator(`tr.grid-row[data-target="web/${victim.key}"][data-state="down"]`);
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.locator(".badge").innerText(), "Down");
    assert.equal(await row.getAttribute("data-index"), "0", "down rows sort first");
    await page.locator("[data-testid=count-down] .n", { hasText: /^1$/ }).waitFor();
    assert.equal(
      await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
      true,
    );
    await page.screenshot({ path: screenshotPath("overview-one-down"), fullPage: true });
  });

  it("the target page shows observers and history, and its admin action reaches the API", async () => {
    const victim = web[2]!;
    await page.locator(`tr.grid-row[data-target="web/${victim.key}"] a`).click();
    await page.locator("[data-testid=target-state]", { hasText: "Down" }).waitFor();
    assert.ok((await page.locator("[data-testid=observers] tbody tr").count()) >= 2, "two observers");
    await page.locator("[data-testid=observers] td", { hasText: "status 503" }).first().waitFor();
    await page.locator("[data-testid=changes] td", { hasText: "→ down" }).first().waitFor();
    // latency: the rollups when the node serves them, else its recent checks, said so
    await page.locator("[data-testid=latency-chart] canvas, [data-testid=history-note]").first().waitFor();

    await page.getByLabel("Maintenance").check();
    await page.getByLabel(/^Reason/).fill("disk swap");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("[data-testid=admin-message]", { hasText: "Admin state set to maint." }).waitFor();
    await page.locator("[data-testid=target-state]", { hasText: "Maintenance" }).waitFor();
    for (const n of nodes) {
      await eventually(async () => {
        const t = await getJson<TargetView>(`${n.apiUrl}/v1/pools/web/targets/${victim.key}`);
        return t.admin === "maint" && t.adminReason === "disk swap" && t.state === "maint";
      }, `${n.name} to hold the admin state`);
    }
    await page.screenshot({ path: screenshotPath("target"), fullPage: true });
  });

  it("the cluster page lists the 3 members with zone and owned counts", async () => {
    await page.getByRole("link", { name: "Cluster" }).click();
    await eventually(
      async () =>
        (await page.locator("[data-testid=members] tr[data-member][data-state=alive]").count()) === 3,
      "3 alive members shown",
    );
    const names = await page
      .locator("[data-testid=members] tr[data-member]")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-member")));
    assert.deepEqual(names, ["n1", "n2", "n3"]);
    const n2 = await page.locator("tr[data-member=n2] td").allInnerTexts();
    assert.equal(n2[1], "z2");
    assert.match(n2[2]!, /^\d+$/);
    await page.screenshot({ path: screenshotPath("cluster"), fullPage: true });
  });

  it("the events page shows the log newest first and filters it by type", async () => {
    interface ApiEvents {
      events: { seq: number; type: string; target?: string }[];
      next: number;
      order: string;
    }
    const rowsLoc = "[data-testid=events] tbody tr[data-type]";
    /** The store cursors of the rows read from pages (live rows carry none), top to bottom. */
    const pageSeqs = () =>
      page
        .locator(`${rowsLoc}[data-seq]`)
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-seq"))));
    const newestBefore = (await getJson<ApiEvents>(`${base}/v1/events?limit=1`)).events[0]!.seq;
    await page.getByRole("link", { name: "Events" }).click();
    await page.locator(rowsLoc).first().waitFor();
    await eventually(async () => (await pageSeqs()).length > 0, "rows from the newest page");
    const seqs = await pageSeqs();
    assert.ok(seqs[0]! >= newestBefore, `the newest event on top: ${seqs[0]} >= ${newestBefore}`);
    for (let i = 1; i < seqs.length; i++)
      assert.ok(seqs[i]! < seqs[i - 1]!, `newest first at row ${i}: ${seqs}`);

    const onlyType = async (type: string) => {
      await page.getByLabel("Type").selectOption(type);
      await page.getByRole("button", { name: "Apply filters" }).click();
      await eventually(async () => {
        const types = await page
          .locator(rowsLoc)
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-type")));
        return types.length > 0 && types.every((t) => t === type);
      }, `only ${type} rows`);
    };
    await onlyType("target.admin");
    const admin = page.locator("[data-testid=events] tr[data-type='target.admin']", { hasText: web[2]!.key });
    assert.match(await admin.first().innerText(), /→ maint\s+disk swap/);

    // A new event arrives over the stream and goes on top, above the page read before it.
    const other = web[4]!;
    const setAdmin = async (state: string, reason?: string) => {
      const r = await fetch(`${base}/v1/pools/web/targets/${other.key}/admin`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(reason === undefined ? { state } : { state, reason }),
      });
      assert.equal(r.status, 200);
    };
    await setAdmin("drain", "live to the top");
    const top = page.locator(rowsLoc).first();
    await eventually(
      async () =>
        /→ drain\s+live to the top/.test(await top.innerText()) &&
        (await top.innerText()).includes(other.key),
      "the live admin event on top",
    );
    assert.equal(await top.getAttribute("data-live"), "true", "it came over the stream");
    await setAdmin("none");
    await eventually(
      async () => /→ none/.test(await top.innerText()) && (await top.innerText()).includes(other.key),
      "the next one above it",
    );
    assert.match(await page.locator(rowsLoc).nth(1).innerText(), /→ drain\s+live to the top/);
    await page.screenshot({ path: screenshotPath("events-live") });

    // Older pages on demand: past a page of admin changes, "Older events" adds the rest below,
    // continuing exactly where the API's own paging does.
    for (let i = 0; i < 60; i++) {
      await setAdmin("drain", `burst ${i}`);
      await setAdmin("none");
    }
    const adminEvents = () => getJson<ApiEvents>(`${base}/v1/events?type=target.admin&order=desc&limit=1000`);
    await eventually(async () => (await adminEvents()).events.length >= 123, "the burst in the store");
    await eventually(
      async () => (await page.locator(`${rowsLoc}[data-live]`).count()) >= 120,
      "the burst, live",
    );
    await page.getByRole("button", { name: "Newest" }).click();
    const want = (await adminEvents()).events.map((e) => e.seq);
    await eventually(
      async () => JSON.stringify(await pageSeqs()) === JSON.stringify(want.slice(0, 100)),
      "the newest page of 100, newest first",
    );
    assert.equal(await page.locator(`${rowsLoc}[data-live]`).count(), 0, "a fresh page");
    await page.getByTestId("events-older").click();
    await eventually(async () => (await pageSeqs()).length === want.length, "the older events below");
    assert.deepEqual(await pageSeqs(), want);
    await page.getByText("No older events.").waitFor();
    assert.equal(await page.getByTestId("events-older").isDisabled(), true);

    await onlyType("verdict.changed");
    await page.screenshot({ path: screenshotPath("events"), fullPage: true });
  });

  it("reads on a phone in dark mode, and the theme toggle overrides the system", async () => {
    await page.emulateMedia({ colorScheme: "dark" });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("link", { name: "Overview" }).click();
    await page.locator("[data-testid=count-all] .n", { hasText: /^9$/ }).waitFor();
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(14, 17, 21)");
    for (const c of await badgeContrasts(page))
      assert.ok(c.ratio >= 4.5, `dark: "${c.text}" contrast ${c.ratio}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px too wide)`);
    await page.screenshot({ path: screenshotPath("overview-phone-dark"), fullPage: true });
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme ?? "system");
    for (const want of ["light", "dark", "system"]) {
      await page.locator("button.theme").click();
      await eventually(async () => (await theme()) === want, `theme ${want}`, 3_000);
      if (want === "light") {
        assert.equal(
          await page.evaluate(() => getComputedStyle(document.body).backgroundColor),
          "rgb(245, 246, 248)",
        );
      }
    }
  });
});
