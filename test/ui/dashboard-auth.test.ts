import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";
import { ensureUiBuilt, launchBrowser, screenshotPath } from "./harness.ts";

// The dashboard in a real browser against a node with API tokens (docs/security.md): it asks
// for a token, keeps it in a SameSite=Strict cookie for its reads and its event stream, and
// sends it in the Authorization header for the admin action; a read token cannot write.

const READ = "dashboard-read-token-0123456789";
const WRITE = "dashboard-write-token-0123456789";

interface TargetView {
  admin: string;
}

describe("dashboard with API tokens, in a real browser", { timeout: 60_000 }, () => {
  const origins: TestOrigin[] = [];
  let node: VigilNode;
  let browser: Browser | undefined;
  let page: Page;
  let base: string;

  before(async () => {
    browser = await launchBrowser();
    await ensureUiBuilt();
    for (let i = 0; i < 3; i++) origins.push(await startTestOrigin(200, "ok"));
    node = new VigilNode(
      parseConfigText(
        `node:
  name: d1
  api: "127.0.0.1:0"
  gossip: "127.0.0.1:0"
  data_dir: "${tmpDataDir("dash-auth")}"
  api_tokens: [{ name: ops, scope: write, token: ${WRITE} }, { name: viewer, scope: read, token: ${READ} }]
defaults: { interval: 300ms, timeout: 250ms, rise: 1, fall: 2 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [${origins.map((o) => o.key).join(", ")}]
`,
        "<d1>",
      ),
      { clock: systemClock, random: new SeededRandom(9), prober: createProber(), logger: silentLogger },
    );
    await node.start();
    base = node.apiUrl;
    await eventually(
      () => origins.every((o) => node.core.target("web", o.key)?.verdict === "up"),
      "all targets up",
      15_000,
    );
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(15_000);
  });
  after(async () => {
    await browser?.close();
    await node?.stop();
    await Promise.all(origins.map((o) => o.close()));
  });

  it("asks for a token, and refuses one the node does not know", async () => {
    await page.goto(`${base}/`);
    await page.locator("[data-testid=token-prompt]").waitFor();
    await page.locator("[data-testid=token-input]").fill("not-a-token-the-node-knows");
    await page.getByRole("button", { name: "Use token" }).click();
    await page.locator("[data-testid=token-error]", { hasText: "does not accept this token" }).waitFor();
    await page.screenshot({ path: screenshotPath("auth-prompt") });
    assert.deepEqual(await page.context().cookies(), []);
  });

  it("with a read token: the overview, live over the cookie; the cookie is SameSite=Strict", async () => {
    await page.locator("[data-testid=token-input]").fill(READ);
    await page.getByRole("button", { name: "Use token" }).click();
    await page.locator("[data-testid=count-up] .n", { hasText: /^3$/ }).waitFor();
    // The event stream (EventSource, no headers) got in with the cookie.
    await page.locator("output.conn", { hasText: "Live" }).waitFor();
    const cookies = await page.context().cookies();
    assert.equal(cookies.length, 1);
    assert.deepEqual(
      [cookies[0]!.name, cookies[0]!.value, cookies[0]!.sameSite, cookies[0]!.path, cookies[0]!.httpOnly],
      ["vigil_token", READ, "Strict", "/", false],
    );
    await page.screenshot({ path: screenshotPath("auth-overview"), fullPage: true });
  });

  it("a read token cannot use the admin action: the node's 403 is shown", async () => {
    const victim = origins[0]!;
    await page.goto(`${base}/#/target/web/${encodeURIComponent(victim.key)}`);
    await page.locator("[data-testid=target-state]", { hasText: "Up" }).waitFor();
    await page.getByLabel("Maintenance").check();
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("[data-testid=admin-message]", { hasText: /has the read scope/ }).waitFor();
    assert.equal(node.core.admin(`web/${victim.key}`).state, "none");
  });

  it("with a write token the admin action works, sent in the header, never by cookie alone", async () => {
    await page.getByTestId("forget-token").click();
    await page.locator("[data-testid=token-prompt]").waitFor();
    await page.locator("[data-testid=token-input]").fill(WRITE);
    await page.getByRole("button", { name: "Use token" }).click();
    // The reload lands on the page it left: the first target's.
    await page.locator("[data-testid=target-state]", { hasText: "Up" }).waitFor();
    const victim = origins[1]!;
    await page.goto(`${base}/#/target/web/${encodeURIComponent(victim.key)}`);
    await page.locator("main h1", { hasText: victim.key }).waitFor();
    await page.locator("[data-testid=target-state]", { hasText: "Up" }).waitFor();
    await page.getByLabel("Maintenance").check();
    await page.getByLabel(/^Reason/).fill("token test");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("[data-testid=admin-message]", { hasText: "Admin state set to maint." }).waitFor();
    const t = (await (
      await fetch(`${base}/v1/pools/web/targets/${victim.key}`, {
        headers: { authorization: `Bearer ${READ}` },
      })
    ).json()) as TargetView;
    assert.equal(t.admin, "maint");
    assert.equal(node.core.admin(`web/${origins[0]!.key}`).state, "none");
    assert.equal(node.security.auth!.failures.cookie_on_write, 0, "a write went out with the cookie alone");
  });
});
