// The `alerts:` section: what a good one loads to, what the defaults are, and one clear
// error (file, exact path, what was expected) for each way of getting it wrong.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../src/config/load.ts";
import { alertDefaults } from "../../src/config/schema.ts";
import { ErrorCode, VigilError } from "../../src/core/errors.ts";

const file = "alerts.yaml";
const secret = "0123456789abcdef-secret";

const full = `
alerts:
  sinks:
    ops-webhook: { type: webhook, url: "http://127.0.0.1:9000/hook", secret: "${secret}", timeout: 3s }
    ops-slack: { type: slack, url: "https://hooks.slack.example/services/T0/B0/xyz" }
  rules:
    - name: web-down
      pools: [web, api]
      transitions: [down, unknown]
      for: 30s
      resolve: false
      remind: 1h
      sinks: [ops-webhook, ops-slack]
    - name: recoveries
      transitions: [up]
      sinks: [ops-slack]
  storm: { share: 0.1, window: 2m, min_targets: 50, sample: 5, sinks: [ops-webhook] }
  delivery: { max_attempts: 7, max_age: 2h, backoff: 500ms, backoff_max: 1m }
`;

describe("alerts config: a good section", () => {
  it("loads every key, normalized", () => {
    const a = parseConfigText(full, file).alerts;
    assert.ok(a !== undefined);
    assert.deepEqual(a.sinks.get("ops-webhook"), {
      name: "ops-webhook",
      type: "webhook",
      url: "http://127.0.0.1:9000/hook",
      secret,
      timeoutMs: 3_000,
    });
    assert.deepEqual(a.sinks.get("ops-slack"), {
      name: "ops-slack",
      type: "slack",
      url: "https://hooks.slack.example/services/T0/B0/xyz",
      timeoutMs: alertDefaults.sinkTimeoutMs,
    });
    assert.deepEqual(a.rules, [
      {
        name: "web-down",
        pools: ["web", "api"],
        transitions: ["down", "unknown"],
        forMs: 30_000,
        resolve: false,
        remindMs: 3_600_000,
        sinks: ["ops-webhook", "ops-slack"],
      },
      {
        name: "recoveries",
        transitions: ["up"],
        forMs: 0,
        resolve: true,
        remindMs: 0,
        sinks: ["ops-slack"],
      },
    ]);
    assert.deepEqual(a.storm, {
      share: 0.1,
      windowMs: 120_000,
      minTargets: 50,
      sampleSize: 5,
      sinks: ["ops-webhook"],
    });
    assert.deepEqual(a.delivery, {
      maxAttempts: 7,
      maxAgeMs: 7_200_000,
      backoffMs: 500,
      backoffMsMax: 60_000,
    });
  });

  it("fills the defaults, and storm notices go to every sink a rule uses", () => {
    const a = parseConfigText(
      `
alerts:
  sinks:
    a: { type: slack, url: "http://127.0.0.1:1/a" }
    b: { type: slack, url: "http://127.0.0.1:1/b" }
    unused: { type: slack, url: "http://127.0.0.1:1/c" }
  rules:
    - { name: r1, sinks: [b] }
    - { name: r2, sinks: [a, b] }
`,
      file,
    ).alerts;
    assert.ok(a !== undefined);
    assert.deepEqual(a.rules[0], {
      name: "r1",
      transitions: ["down"],
      forMs: 0,
      resolve: true,
      remindMs: 0,
      sinks: ["b"],
    });
    assert.equal(a.rules[0]?.pools, undefined, "no pools: every pool");
    assert.deepEqual(a.storm, {
      share: 0.2,
      windowMs: 60_000,
      minTargets: 10,
      sampleSize: 20,
      sinks: ["b", "a"],
    });
    assert.deepEqual(a.delivery, {
      maxAttempts: 50,
      maxAgeMs: 86_400_000,
      backoffMs: 1_000,
      backoffMsMax: 300_000,
    });
  });

  it("is absent without the section, or with an empty one", () => {
    assert.equal(parseConfigText("node: { name: n1 }\n", file).alerts, undefined);
    assert.equal(parseConfigText("alerts:\n", file).alerts, undefined);
  });

  it("accepts remind: 0s as never, and share: 1 (storms off)", () => {
    const a = parseConfigText(
      full.replace("remind: 1h", "remind: 0s").replace("share: 0.1", "share: 1"),
      file,
    ).alerts;
    assert.equal(a?.rules[0]?.remindMs, 0);
    assert.equal(a?.storm.share, 1);
  });
});

interface BadCase {
  name: string;
  text: string;
  path: string;
  message: string;
}

/** `full` with one piece replaced; the replaced piece must be there. */
function edit(from: string, to: string): string {
  assert.ok(full.includes(from), `test bug: ${from} not in the config`);
  return full.replace(from, to);
}

const cases: BadCase[] = [
  {
    name: "unknown key in the section, with did-you-mean",
    text: edit("  storm:", "  stomr:"),
    path: "alerts.stomr",
    message: `unknown key "stomr" for alerts (did you mean "storm"?)`,
  },
  {
    name: "the section as a list",
    text: "alerts: [a]\n",
    path: "alerts",
    message: "expected a mapping with sinks and rules, got a list",
  },
  {
    name: "no sinks",
    text: "alerts:\n  rules: [{ name: r, sinks: [x] }]\n",
    path: "alerts.sinks",
    message: "missing required key: expected a mapping of sink names to sinks",
  },
  {
    name: "an empty sinks mapping",
    text: "alerts:\n  sinks: {}\n  rules: [{ name: r, sinks: [x] }]\n",
    path: "alerts.sinks",
    message: "expected at least one sink, got an empty mapping",
  },
  {
    name: "a sink name that is not a name",
    text: edit("    ops-slack:", "    Ops Slack:"),
    path: `alerts.sinks["Ops Slack"]`,
    message: `expected a sink name of lowercase letters, digits, "-" and "_"`,
  },
  {
    name: "an unknown sink type",
    text: edit("type: slack", "type: email"),
    path: "alerts.sinks.ops-slack.type",
    message: `expected a sink type: webhook or slack, got "email"`,
  },
  {
    name: "a webhook without a secret",
    text: edit(`secret: "${secret}", `, ""),
    path: "alerts.sinks.ops-webhook.secret",
    message: "missing required key: expected a secret of 16 to 1024 characters",
  },
  {
    name: "a short secret",
    text: edit(secret, "hunter2"),
    path: "alerts.sinks.ops-webhook.secret",
    message: "expected a secret of 16 to 1024 characters, got 7 characters",
  },
  {
    name: "a secret given as a number",
    text: edit(`"${secret}"`, "12345678901234567890"),
    path: "alerts.sinks.ops-webhook.secret",
    message: "expected a secret of 16 to 1024 characters, got a number",
  },
  {
    name: "a URL that is not http(s)",
    text: edit("http://127.0.0.1:9000/hook", "ftp://127.0.0.1/hook"),
    path: "alerts.sinks.ops-webhook.url",
    message: `expected an http:// or https:// URL, got a "ftp:" URL`,
  },
  {
    name: "a URL that is not a URL",
    text: edit("http://127.0.0.1:9000/hook", "127.0.0.1:9000/hook"),
    path: "alerts.sinks.ops-webhook.url",
    message: "expected an http:// or https:// URL",
  },
  {
    name: "credentials in the URL",
    text: edit("http://127.0.0.1:9000/hook", "http://user:pw@127.0.0.1:9000/hook"),
    path: "alerts.sinks.ops-webhook.url",
    message: `without "user:password@"`,
  },
  {
    name: "a timeout too long",
    text: edit("timeout: 3s", "timeout: 5m"),
    path: "alerts.sinks.ops-webhook.timeout",
    message: `expected a sink timeout from 100ms to 1m, got "5m"`,
  },
  {
    name: "a key of another sink type",
    text: edit("type: slack,", "type: slack, secrets: x,"),
    path: "alerts.sinks.ops-slack.secrets",
    message: `unknown key "secrets" for a slack sink (did you mean "secret"?)`,
  },
  {
    name: "no rules",
    text: "alerts:\n  sinks: { a: { type: slack, url: 'http://x/' } }\n  rules: []\n",
    path: "alerts.rules",
    message: "expected at least one rule, got an empty list",
  },
  {
    name: "a rule without a name",
    text: edit("    - name: recoveries\n", "    -\n"),
    path: "alerts.rules[1].name",
    message: "missing required key: expected a rule name",
  },
  {
    name: "two rules with one name",
    text: edit("name: recoveries", "name: web-down"),
    path: "alerts.rules[1].name",
    message: `duplicate rule name "web-down": rules[0] and rules[1] have the same name`,
  },
  {
    name: "a misspelt rule key",
    text: edit("      for: 30s", "      four: 30s"),
    path: "alerts.rules[0].four",
    message: `unknown key "four" for a rule (did you mean "for"?)`,
  },
  {
    name: "a rule naming a sink that does not exist",
    text: edit("sinks: [ops-webhook, ops-slack]", "sinks: [ops-webhook, ops-slak]"),
    path: "alerts.rules[0].sinks[1]",
    message: `no sink named "ops-slak" under alerts.sinks (did you mean "ops-slack"?)`,
  },
  {
    name: "a rule naming a sink nothing like any",
    text: edit("sinks: [ops-slack]", "sinks: [pagerduty]"),
    path: "alerts.rules[1].sinks[0]",
    message: `no sink named "pagerduty" under alerts.sinks (defined: ops-webhook, ops-slack)`,
  },
  {
    name: "a rule without sinks",
    text: edit("      sinks: [ops-slack]\n", ""),
    path: "alerts.rules[1].sinks",
    message: "missing required key: expected a list of sink names",
  },
  {
    name: "a sink listed twice",
    text: edit("sinks: [ops-webhook, ops-slack]", "sinks: [ops-slack, ops-slack]"),
    path: "alerts.rules[0].sinks[1]",
    message: `duplicate sink "ops-slack": [0] and [1] are the same`,
  },
  {
    name: "an unknown transition",
    text: edit("transitions: [down, unknown]", "transitions: [down, flapping]"),
    path: "alerts.rules[0].transitions[1]",
    message: `expected down, up or unknown, got "flapping"`,
  },
  {
    name: "an empty transitions list",
    text: edit("transitions: [down, unknown]", "transitions: []"),
    path: "alerts.rules[0].transitions",
    message: "expected at least one transition, got an empty list",
  },
  {
    name: "a pool name that cannot be one",
    text: edit("pools: [web, api]", "pools: [web, API]"),
    path: "alerts.rules[0].pools[1]",
    message: "expected a pool name of lowercase letters",
  },
  {
    name: "for as a bare number",
    text: edit("for: 30s", "for: 30"),
    path: "alerts.rules[0].for",
    message: `expected a duration with a unit like "10s" or "250ms", got 30`,
  },
  {
    name: "for longer than a day",
    text: edit("for: 30s", "for: 25h"),
    path: "alerts.rules[0].for",
    message: `expected a for duration from 0s to 24h, got "25h"`,
  },
  {
    name: "reminders more often than a minute",
    text: edit("remind: 1h", "remind: 10s"),
    path: "alerts.rules[0].remind",
    message: `expected a reminder interval like "1h" (0s for none), from 1m to 7d, got "10s"`,
  },
  {
    name: "resolve as a YAML 1.1 boolean",
    text: edit("resolve: false", "resolve: no"),
    path: "alerts.rules[0].resolve",
    message: `expected true or false, got "no"`,
  },
  {
    name: "a storm share of zero",
    text: edit("share: 0.1", "share: 0"),
    path: "alerts.storm.share",
    message: "expected a share of all targets above 0 and at most 1, got 0",
  },
  {
    name: "a storm share as a percentage",
    text: edit("share: 0.1", "share: 20"),
    path: "alerts.storm.share",
    message: "expected a share of all targets above 0 and at most 1, got 20",
  },
  {
    name: "a storm sample too large",
    text: edit("sample: 5", "sample: 1000"),
    path: "alerts.storm.sample",
    message: "expected a number of targets to list from 0 to 100, got 1000",
  },
  {
    name: "storm sinks naming an unknown sink",
    text: edit("sinks: [ops-webhook] }", "sinks: [nope] }"),
    path: "alerts.storm.sinks[0]",
    message: `no sink named "nope" under alerts.sinks`,
  },
  {
    name: "zero attempts",
    text: edit("max_attempts: 7", "max_attempts: 0"),
    path: "alerts.delivery.max_attempts",
    message: "expected a number of attempts from 1 to 1000, got 0",
  },
  {
    name: "a backoff longer than backoff_max",
    text: edit("backoff: 500ms", "backoff: 2m"),
    path: "alerts.delivery.backoff_max",
    message: "expected backoff (2m) no longer than backoff_max (1m)",
  },
  {
    name: "a backoff longer than the default backoff_max",
    text: edit("backoff: 500ms, backoff_max: 1m", "backoff: 10m"),
    path: "alerts.delivery.backoff",
    message: "expected backoff (10m) no longer than backoff_max (5m)",
  },
];

function errorOf(text: string): VigilError {
  try {
    parseConfigText(text, file);
  } catch (e) {
    assert.ok(e instanceof VigilError, `not a VigilError: ${String(e)}`);
    return e;
  }
  assert.fail("expected the config to be refused");
}

describe("alerts config: bad sections", () => {
  for (const c of cases) {
    it(c.name, () => {
      const e = errorOf(c.text);
      assert.equal(e.code, ErrorCode.config);
      assert.equal(e.file, file);
      assert.equal(e.path, c.path, `path of: ${e.message}`);
      assert.ok(e.message.includes(c.message), `message: ${e.message}`);
      assert.doesNotMatch(e.message, /Invalid input|received|Unrecognized key|Too (small|big)/);
    });
  }

  it("never echoes a secret or a sink URL (they carry tokens)", () => {
    const token = "T0000/B0000/SUPERSECRETTOKEN";
    for (const text of [
      edit(secret, "shortsecret"),
      edit("https://hooks.slack.example/services/T0/B0/xyz", `gopher://hooks.slack.example/${token}`),
      edit("https://hooks.slack.example/services/T0/B0/xyz", `hooks.slack.example/${token}`),
    ]) {
      const e = errorOf(text);
      assert.ok(!e.message.includes("shortsecret"), e.message);
      assert.ok(!e.message.includes(token), e.message);
    }
  });
});
