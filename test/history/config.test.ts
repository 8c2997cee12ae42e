import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { historyDefaults, historySettingsOf, redactStoreUrl } from "../../src/config/history.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";

// node.store and node.retention: what they accept, and the one clear error for what they do not.

const DAY = 86_400_000;

function settings(node: string) {
  return historySettingsOf(parseConfigText(`node: ${node}\n`, "vigil.yaml").node);
}

function refuses(node: string, path: string, message: RegExp): void {
  assert.throws(
    () => parseConfigText(`node: ${node}\n`, "vigil.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof VigilError, String(e));
      assert.equal(e.code, ErrorCode.config);
      assert.equal(e.file, "vigil.yaml");
      assert.equal(e.path, path);
      assert.match(e.message, message);
      return true;
    },
  );
}

describe("node.store and node.retention", () => {
  it("default to SQLite in data_dir with 90 days of events, 7 of minutes, 400 of hours", () => {
    const s = settings("{ name: n1 }");
    assert.deepEqual(s, historyDefaults);
    assert.deepEqual(s.retention, { eventsMs: 90 * DAY, minuteRollupsMs: 7 * DAY, hourRollupsMs: 400 * DAY });
    assert.deepEqual(settings("{ store: sqlite }").store, { kind: "sqlite" });
    assert.deepEqual(settings("{ store: none }").store, { kind: "none" });
  });

  it("keep the config's node spec unchanged when not set (defaults are filled in by historySettingsOf)", () => {
    const node = parseConfigText("node: { name: n1 }\n", "vigil.yaml").node;
    assert.ok(!("store" in node) && !("retention" in node));
  });

  it("read a PostgreSQL URL, taking Vigil's own ?schema= out of what the driver sees", () => {
    assert.deepEqual(settings(`{ store: "postgres://vigil:pw@db.example.com:5432/vigil" }`).store, {
      kind: "postgres",
      url: "postgres://vigil:pw@db.example.com:5432/vigil",
    });
    assert.deepEqual(
      settings(`{ store: "postgresql://vigil@10.0.0.5/hist?schema=vigil_prod&sslmode=require" }`).store,
      {
        kind: "postgres",
        url: "postgresql://vigil@10.0.0.5/hist?sslmode=require",
        schema: "vigil_prod",
      },
    );
    // A Unix socket instead of a host.
    assert.equal(settings(`{ store: "postgres:///vigil?host=/run/postgresql" }`).store.kind, "postgres");
  });

  it("read retention durations in days, hours or minutes; unset kinds keep their default", () => {
    const r = settings("{ retention: { events: 30d, minute_rollups: 36h } }").retention;
    assert.deepEqual(r, { eventsMs: 30 * DAY, minuteRollupsMs: 36 * 3_600_000, hourRollupsMs: 400 * DAY });
    const short = settings("{ retention: { minute_rollups: 1d, hourly_rollups: 2d12h } }").retention;
    assert.equal(short.hourRollupsMs, 2.5 * DAY);
  });

  it("refuse a store that is neither sqlite, none nor a PostgreSQL URL", () => {
    refuses(
      "{ store: sqlite3 }",
      "node.store",
      /expected "sqlite", "none" or a PostgreSQL URL .*, got "sqlite3"$/,
    );
    refuses("{ store: 5 }", "node.store", /got 5$/);
    refuses("{ store: [sqlite] }", "node.store", /got a list/);
    refuses(
      `{ store: "mysql://root:hunter2@db/vigil" }`,
      "node.store",
      /got "mysql:\/\/root:\*\*\*@db\/vigil"$/,
    );
    refuses(`{ store: "postgres://vigil@db.example.com" }`, "node.store", /naming a database/);
    refuses(
      `{ store: "postgres://vigil@db/x?schema=Bad-Name" }`,
      "node.store",
      /schema name .* got "Bad-Name"/,
    );
    refuses(`{ store: "postgres://${"x".repeat(3000)}@db/vigil" }`, "node.store", /at most 2048 characters/);
    refuses(`{ store: "postgres://[broken" }`, "node.store", /does not parse as a URL/);
  });

  it("never echo a store password in an error", () => {
    assert.throws(
      () => parseConfigText(`node: { store: "postgres://vigil:hunter2@db.example.com/" }\n`, "vigil.yaml"),
      (e: unknown) => e instanceof VigilError && !e.message.includes("hunter2") && e.message.includes("***"),
    );
    assert.equal(redactStoreUrl("postgres://a:b@h/d"), "postgres://a:***@h/d");
    assert.equal(redactStoreUrl("not a url"), "(unparseable URL)");
  });

  it("refuse bad retention values, naming the key", () => {
    refuses(
      "{ retention: { events: 10m } }",
      "node.retention.events",
      /expected an events retention from 1h to 36500d, got "10m"/,
    );
    refuses("{ retention: { events: 90 } }", "node.retention.events", /expected a duration with a unit/);
    refuses(
      "{ retention: { minute_rollups: 40000d } }",
      "node.retention.minute_rollups",
      /from 1h to 36500d/,
    );
    refuses(
      "{ retention: { hourly_rollups: soon } }",
      "node.retention.hourly_rollups",
      /expected a duration like "10s", got "soon" \(units: ms, s, m, h, d\)/,
    );
    refuses(
      "{ retention: { event: 30d } }",
      "node.retention.event",
      /unknown key "event" for retention \(did you mean "events"\?\)/,
    );
    refuses(
      "{ retention: 30d }",
      "node.retention",
      /expected a mapping with events, minute_rollups and hourly_rollups/,
    );
  });

  it("refuse hour rollups kept for less time than minute rollups, blaming the key that was set", () => {
    refuses(
      "{ retention: { minute_rollups: 10d, hourly_rollups: 5d } }",
      "node.retention.hourly_rollups",
      /expected hourly_rollups no shorter than minute_rollups \(10d\), got "5d"/,
    );
    refuses(
      "{ retention: { minute_rollups: 500d } }",
      "node.retention.minute_rollups",
      /expected minute_rollups no longer than hourly_rollups \(400d by default\), got "500d"/,
    );
  });
});
