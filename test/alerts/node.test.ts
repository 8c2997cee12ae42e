// One real node with `alerts:` in its config, a real origin on loopback that goes down and
// comes back, and a real webhook receiver: the whole path from a failing check to a signed
// notice, its resolve, and the metrics.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ALERTS_DB_FILE } from "../../src/alerts/outbox.ts";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { type Receiver, signatureOk, startReceiver } from "./receiver.ts";

const SECRET = "integration-test-secret";

describe("alerts on a real node", () => {
  let node: VigilNode;
  let origin: TestOrigin;
  let steady: TestOrigin;
  let rec: Receiver;
  let dataDir: string;

  before(async () => {
    origin = await startTestOrigin(200, "ok");
    steady = await startTestOrigin(200, "ok");
    rec = await startReceiver();
    dataDir = mkdtempSync(join(tmpdir(), "vigil-alerts-node-"));
    const config = parseConfigText(
      `
node: { name: a1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}" }
defaults: { interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }
pools:
  web:
    check: { type: http, path: /healthz }
    targets: [${origin.key}, ${steady.key}]
alerts:
  sinks:
    hook: { type: webhook, url: "${rec.url}", secret: ${SECRET}, timeout: 2s }
  rules:
    - name: web-down
      pools: [web]
      for: 300ms
      sinks: [hook]
`,
      "<test>",
    );
    node = new VigilNode(config, {
      clock: systemClock,
      random: new SeededRandom(3),
      prober: createProber(),
      logger: silentLogger,
    });
    await node.start();
  });

  after(async () => {
    await node.stop();
    await Promise.all([origin.close(), steady.close(), rec.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const verdictOf = async (key: string): Promise<string | undefined> => {
    const r = await fetch(`${node.apiUrl}/v1/pools/web`);
    const body = (await r.json()) as { targets: { target: string; verdict: string }[] };
    return body.targets.find((t) => t.target === key)?.verdict;
  };

  it("sends nothing while every target is up", async () => {
    await eventually(async () => (await verdictOf(origin.key)) === "up", "the origin up");
    await eventually(async () => (await verdictOf(steady.key)) === "up", "the other origin up");
    assert.equal(rec.raw.length, 0);
    assert.ok(existsSync(join(dataDir, ALERTS_DB_FILE)), "the outbox lives in data_dir");
  });

  it("an origin that goes down brings one signed notice once `for` has passed", async () => {
    origin.status = 503;
    const downAt = Date.now();
    await eventually(() => rec.applied.length >= 1, "the firing notice");
    const r = rec.applied[0]!;
    assert.ok(signatureOk(SECRET, r));
    assert.equal(r.json.kind, "firing");
    assert.equal(r.json.rule, "web-down");
    assert.equal(r.json.pool, "web");
    assert.equal(r.json.target, origin.key);
    assert.equal(r.json.state, "down");
    assert.equal(r.json.from, "up");
    assert.equal(r.json.node, "a1");
    assert.match(r.json.cause, /503/);
    assert.ok(Date.parse(r.json.createdAt) - Date.parse(r.json.since) >= 300, "not before `for`");
    assert.ok(Date.now() - downAt >= 300);
  });

  it("its recovery resolves it, and the metrics count both", async () => {
    origin.status = 200;
    await eventually(() => rec.applied.length >= 2, "the resolved notice");
    const [firing, resolved] = [rec.applied[0]!, rec.applied[1]!];
    assert.equal(resolved.json.kind, "resolved");
    assert.equal(resolved.json.firingId, firing.json.id);
    assert.equal(rec.raw.length, 2, "no repeats: every attempt succeeded");
    assert.ok(
      rec.raw.every((r) => r.json.target === origin.key),
      "the steady origin never alerted",
    );

    const text = await (await fetch(`${node.apiUrl}/metrics`)).text();
    assert.match(text, /vigil_alerts_total\{result="sent"\} 2/);
    assert.match(text, /vigil_alerts_total\{result="queued"\} 2/);
    assert.match(text, /vigil_alert_outbox 0/);
  });
});
