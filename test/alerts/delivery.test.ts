// Delivery against a real webhook receiver on loopback: signatures, retries through failures,
// at-least-once with repeats the receiver drops by idempotency key, the outbox surviving a
// restart, and one sender per alert among several nodes.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, it } from "node:test";
import { Registry } from "prom-client";
import { AlertManager, type AlertManagerOptions } from "../../src/alerts/manager.ts";
import { registerAlertMetrics } from "../../src/alerts/metrics.ts";
import { Outbox } from "../../src/alerts/outbox.ts";
import { verifySignature } from "../../src/alerts/payload.ts";
import type { AlertDeliverySpec, AlertSinkSpec, AlertsSpec } from "../../src/config/types.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { eventually } from "../helpers/origins.ts";
import { type Receiver, signatureOk, startReceiver } from "./receiver.ts";

const SECRET = "correct-horse-battery-staple";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "vigil-alerts-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  cleanups.push(() => r.close());
  return r;
}

function webhook(url: string, over: Partial<AlertSinkSpec> = {}): AlertSinkSpec {
  return { name: "hook", type: "webhook", url, secret: SECRET, timeoutMs: 2_000, ...over };
}

/** Fast retries: the failing-receiver tests take milliseconds, not minutes. */
const fastDelivery: AlertDeliverySpec = {
  maxAttempts: 10,
  maxAgeMs: 60_000,
  backoffMs: 10,
  backoffMsMax: 50,
};

function spec(sinks: AlertSinkSpec[], delivery: Partial<AlertDeliverySpec> = {}): AlertsSpec {
  const names = sinks.map((s) => s.name);
  return {
    sinks: new Map(sinks.map((s) => [s.name, s])),
    rules: [{ name: "down", transitions: ["down"], forMs: 0, resolve: true, remindMs: 0, sinks: names }],
    storm: { share: 0.5, windowMs: 60_000, minTargets: 3, sampleSize: 10, sinks: names },
    delivery: { ...fastDelivery, ...delivery },
  };
}

function manager(dataDir: string, alerts: AlertsSpec, over: Partial<AlertManagerOptions> = {}): AlertManager {
  const m = new AlertManager({
    spec: alerts,
    dataDir,
    node: "n1",
    clock: { wallMs: () => Date.now() },
    random: new SeededRandom(7),
    logger: silentLogger,
    isSender: () => true,
    isStormSender: () => true,
    targetCount: () => 100,
    ...over,
  });
  m.start();
  cleanups.push(() => m.stop());
  return m;
}

function change(target: string, from: string, to: string, ts = Date.now()) {
  return {
    type: "verdict.changed",
    ts,
    pool: "web",
    target,
    node: "n1",
    from,
    to,
    cause: to === "down" ? "connect ECONNREFUSED" : "HTTP 200",
    observers: `n1:${to},n2:${to}`,
  };
}

/** A target known up, then down: one firing notice for the "down" rule. */
function goDown(m: AlertManager, target = "10.0.0.1:80"): void {
  m.handleEvent(change(target, "unknown", "up"));
  m.handleEvent(change(target, "up", "down"));
}

describe("alert delivery: webhook", () => {
  it("delivers a signed notice whose signature the receiver can check", async () => {
    const rec = await receiver();
    const m = manager(tempDir(), spec([webhook(rec.url)]));
    goDown(m);
    await eventually(() => rec.applied.length === 1, "the notice");
    const r = rec.applied[0]!;

    assert.ok(signatureOk(SECRET, r), "HMAC-SHA256 over `<timestamp>.<body>`");
    assert.ok(!signatureOk("another-secret-entirely", r));
    const now = Date.now();
    const verify = (over: Partial<Parameters<typeof verifySignature>[0]>) =>
      verifySignature({
        secret: SECRET,
        body: r.body,
        signature: r.headers["x-vigil-signature"] as string,
        timestamp: r.headers["x-vigil-timestamp"] as string,
        nowMs: now,
        ...over,
      });
    assert.equal(verify({}), true);
    assert.equal(verify({ body: r.body.replace('"down"', '"up"') }), false, "a changed body fails");
    assert.equal(verify({ secret: "another-secret-entirely" }), false);
    assert.equal(verify({ nowMs: now + 10 * 60_000 }), false, "a replay ten minutes later fails");
    const staleTs = String(Number(r.headers["x-vigil-timestamp"]) - 3600);
    assert.equal(verify({ timestamp: staleTs }), false, "a fresh-looking timestamp on an old body fails");
    assert.equal(verify({ signature: undefined }), false);

    assert.equal(r.headers["content-type"], "application/json");
    assert.equal(r.headers["x-vigil-alert-kind"], "firing");
    assert.equal(r.headers["x-vigil-idempotency-key"], r.json.id);
    assert.match(r.json.id, /^[0-9a-f]{32}$/);
    assert.equal(r.json.version, 1);
    assert.equal(r.json.kind, "firing");
    assert.equal(r.json.rule, "down");
    assert.equal(r.json.pool, "web");
    assert.equal(r.json.target, "10.0.0.1:80");
    assert.equal(r.json.targetId, "web/10.0.0.1:80");
    assert.equal(r.json.state, "down");
    assert.equal(r.json.from, "up");
    assert.equal(r.json.cause, "connect ECONNREFUSED");
    assert.deepEqual(r.json.observers, [
      { node: "n1", state: "down" },
      { node: "n2", state: "down" },
    ]);
    assert.equal(r.json.node, "n1");
    assert.equal(r.json.summary, "web/10.0.0.1:80 is down: connect ECONNREFUSED");
    assert.ok(!Number.isNaN(Date.parse(r.json.since)));

    await eventually(() => m.outboxSize() === 0, "the outbox to empty");
    assert.deepEqual(m.stats, { queued: 1, sent: 1, failed: 0, retried: 0, dropped: 0, suppressed: 0 });

    const registry = new Registry();
    registerAlertMetrics(registry, () => m);
    const text = await registry.metrics();
    assert.match(text, /vigil_alerts_total\{result="sent"\} 1/);
    assert.match(text, /vigil_alerts_total\{result="dropped"\} 0/);
    assert.match(text, /vigil_alert_outbox 0/);
  });

  it("sends Slack-compatible text and blocks to a slack sink, and the resolve after it", async () => {
    const rec = await receiver();
    const m = manager(tempDir(), spec([{ name: "chat", type: "slack", url: rec.url, timeoutMs: 2_000 }]));
    goDown(m);
    await eventually(() => rec.applied.length === 1, "the firing notice");
    m.handleEvent(change("10.0.0.1:80", "down", "up"));
    await eventually(() => rec.applied.length === 2, "the resolved notice");
    const [firing, resolved] = rec.applied as [(typeof rec.applied)[0], (typeof rec.applied)[0]];
    assert.equal(firing.headers["x-vigil-signature"], undefined, "no secret, no signature");
    assert.equal(firing.json.text, "web/10.0.0.1:80 is down: connect ECONNREFUSED");
    assert.equal(firing.json.blocks[0].type, "section");
    assert.match(firing.json.blocks[0].text.text, /^:red_circle: web\/10\.0\.0\.1:80 is down/);
    assert.match(firing.json.blocks[1].elements[0].text, /rule down · node n1 · id [0-9a-f]{32}/);
    assert.match(resolved.json.text, /^web\/10\.0\.0\.1:80 is up again after being down for \d+/);
    assert.equal(resolved.headers["x-vigil-alert-kind"], "resolved");
  });

  it("a receiver that fails and recovers gets the notice until it answers 2xx, and applies it once", async () => {
    const rec = await receiver();
    rec.script = [500, "close", 503, 302];
    const m = manager(tempDir(), spec([webhook(rec.url)]));
    goDown(m);
    await eventually(() => rec.applied.length === 1, "the notice after the receiver recovers");
    await eventually(() => m.outboxSize() === 0, "the outbox to empty");
    assert.equal(rec.raw.length, 5, "four failed attempts, then the one that worked");
    assert.equal(new Set(rec.raw.map((r) => r.json.id)).size, 1, "every attempt carries the same id");
    assert.equal(new Set(rec.raw.map((r) => r.headers["x-vigil-idempotency-key"])).size, 1);
    assert.ok(
      rec.raw.every((r) => signatureOk(SECRET, r)),
      "each attempt is signed afresh",
    );
    assert.deepEqual(m.stats, { queued: 1, sent: 1, failed: 4, retried: 4, dropped: 0, suppressed: 0 });
  });

  it("repeats a notice whose answer was lost; the receiver drops the repeat by its key", async () => {
    const rec = await receiver();
    rec.applyBeforeFailing = true; // it applied the notice, then its answer failed
    rec.script = [500, "close"];
    const m = manager(tempDir(), spec([webhook(rec.url)]));
    goDown(m);
    await eventually(() => m.stats.sent === 1, "a 2xx");
    assert.equal(rec.raw.length, 3, "at-least-once: the same notice arrived three times");
    assert.equal(rec.applied.length, 1, "exactly once to the application");
  });

  it("gives up after max_attempts and counts the drop", async () => {
    const rec = await receiver();
    rec.otherwise = 500;
    const m = manager(tempDir(), spec([webhook(rec.url)], { maxAttempts: 3 }));
    goDown(m);
    await eventually(() => m.stats.dropped === 1, "the drop");
    assert.equal(rec.raw.length, 3);
    assert.equal(rec.applied.length, 0);
    assert.equal(m.outboxSize(), 0);
    assert.deepEqual(m.stats, { queued: 1, sent: 0, failed: 3, retried: 2, dropped: 1, suppressed: 0 });
  });

  it("drops a notice older than max_age instead of sending it late", async () => {
    const rec = await receiver();
    rec.otherwise = 500;
    let offsetMs = 0;
    const m = manager(tempDir(), spec([webhook(rec.url)], { maxAgeMs: 60_000 }), {
      clock: { wallMs: () => Date.now() + offsetMs },
    });
    goDown(m);
    await eventually(() => m.stats.retried >= 1, "a failed attempt");
    offsetMs = 120_000; // the receiver stayed down past max_age
    await eventually(() => m.stats.dropped === 1, "the drop");
    assert.equal(m.outboxSize(), 0, "nothing is left to send late");
    assert.equal(m.stats.sent, 0);
  });

  it("sends each notice to every sink of the rule, and a failing sink does not hold up the others", async () => {
    const good = await receiver();
    const bad = await receiver();
    bad.otherwise = 503;
    const m = manager(
      tempDir(),
      spec([webhook(good.url, { name: "good" }), webhook(bad.url, { name: "bad" })], { maxAttempts: 2 }),
    );
    goDown(m);
    await eventually(() => good.applied.length === 1 && m.stats.dropped === 1, "one delivered, one dropped");
    assert.equal(m.stats.queued, 2, "one row per sink");
    assert.equal(bad.raw[0]?.json.id, good.applied[0]?.json.id);
  });
});

describe("alert delivery: the outbox survives a restart", () => {
  it("a notice undelivered when the node stops is delivered by the next start", async () => {
    const rec = await receiver();
    rec.otherwise = 503;
    const dir = tempDir();
    const alerts = spec([webhook(rec.url)]);
    const first = manager(dir, alerts);
    goDown(first);
    await eventually(() => first.stats.retried >= 1, "a failed attempt");
    await first.stop();
    const attemptsBefore = rec.raw.length;
    const id = rec.raw[0]?.json.id as string;

    const peek = Outbox.open(dir);
    assert.equal(peek.size(), 1, "the notice is on disk");
    assert.equal(peek.listOpen().length, 1, "and so is the open alert");
    peek.close();

    rec.otherwise = 200;
    const second = manager(dir, alerts);
    await eventually(() => rec.applied.length === 1, "delivery after the restart");
    assert.equal(rec.applied[0]?.json.id, id, "the same notice, by its id");
    assert.ok(rec.raw.length > attemptsBefore);
    assert.equal(second.stats.queued, 0, "nothing new was queued");
    await eventually(() => second.outboxSize() === 0, "the outbox to empty");

    // The restarted node re-learns the verdict: unknown → down is not announced again...
    second.handleEvent(change("10.0.0.1:80", "unknown", "down"));
    assert.equal(second.stats.queued, 0);
    // ...and the recovery resolves the alert announced before the restart.
    second.handleEvent(change("10.0.0.1:80", "down", "up"));
    await eventually(() => rec.applied.length === 2, "the resolved notice");
    assert.equal(rec.applied[1]?.json.kind, "resolved");
    assert.equal(rec.applied[1]?.json.firingId, id);
  });
});

describe("alert delivery: one sender per alert", () => {
  it("five nodes see the same changes; only each target's sender sends", async () => {
    const rec = await receiver();
    const alerts = spec([webhook(rec.url)]);
    const names = ["n1", "n2", "n3", "n4", "n5"];
    // A stand-in for `core.owners(id)[0]`: every node agrees on it.
    const firstOwner: Record<string, string> = { "web/10.0.0.1:80": "n3", "web/10.0.0.2:80": "n5" };
    const nodes = names.map((name) =>
      manager(tempDir(), alerts, {
        node: name,
        isSender: (id) => firstOwner[id] === name,
        isStormSender: () => name === "n1",
        targetCount: () => 4,
      }),
    );
    for (const m of nodes) {
      goDown(m, "10.0.0.1:80");
      goDown(m, "10.0.0.2:80");
    }
    assert.deepEqual(
      nodes.map((m) => m.stats.queued),
      [0, 0, 1, 0, 1],
      "every node computed the alerts; two queued them",
    );
    await eventually(() => rec.applied.length === 2, "two notices");
    assert.deepEqual(rec.raw.map((r) => [r.json.target, r.json.node]).sort(), [
      ["10.0.0.1:80", "n3"],
      ["10.0.0.2:80", "n5"],
    ]);

    // A storm belongs to no target: one node sends it.
    for (const m of nodes) m.handleEvent(change("10.0.0.3:80", "up", "down"));
    assert.deepEqual(
      nodes.map((m) => m.stats.queued),
      [1, 0, 1, 0, 1],
    );
    await eventually(() => rec.applied.length === 3, "the storm notice");
    assert.equal(rec.applied[2]?.json.kind, "storm");
    assert.equal(rec.applied[2]?.json.node, "n1");
    assert.equal(rec.applied[2]?.json.storm.flipped, 3);
  });
});
