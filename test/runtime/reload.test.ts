import assert from "node:assert/strict";
import { copyFileSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { createProber } from "../../src/checkers/index.ts";
import { loadConfigFile, parseConfigText } from "../../src/config/load.ts";
import type { VigilConfig } from "../../src/config/types.ts";
import { isVigilError } from "../../src/core/errors.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import type { Logger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { planReload } from "../../src/runtime/reload.ts";
import { makeCerts, type TestCerts } from "../checkers/helpers.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";
import { call, READ_TOKEN, WRITE_TOKEN } from "../security/helpers.ts";

// Config reload (VigilNode.reloadConfig, what `vigil agent` runs on SIGHUP) on real nodes with
// real sockets: the file's pools, tokens from files, the API certificate, targets_allow, settings
// that need a restart, configs that do not load, and reloads asked for while one runs.

/** A logger whose lines the test reads. */
function capturingLogger(): { logger: Logger; lines(level?: number): Record<string, unknown>[] } {
  const out: string[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void out.push(s) });
  return {
    logger,
    lines: (level) =>
      out
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => level === undefined || l.level === level),
  };
}
const WARN = 40;
const ERROR = 50;

function newNode(config: VigilConfig, logger: Logger): VigilNode {
  return new VigilNode(config, {
    clock: systemClock,
    random: new SeededRandom(7),
    prober: createProber(),
    logger,
  });
}

/** The config file a test edits, and the loader `vigil agent` uses on it. */
function configFile(
  dir: string,
  text: string,
): { path: string; write(text: string): void; load(): VigilConfig } {
  const path = join(dir, "vigil.yaml");
  writeFileSync(path, text);
  return {
    path,
    write: (t) => writeFileSync(path, t),
    load: () => loadConfigFile(path),
  };
}

async function metric(node: VigilNode, re: RegExp): Promise<number | undefined> {
  const m = re.exec((await node.metricsText()).text);
  return m === null ? undefined : Number(m[1]);
}
const reloadsOk = /^vigil_config_reloads_total\{result="ok"\} (\d+)$/m;
const reloadsError = /^vigil_config_reloads_total\{result="error"\} (\d+)$/m;
const lastSuccess = /^vigil_config_last_reload_success_timestamp_seconds (\S+)$/m;

/** The pool events after `seq`, as "type pool cause". */
function poolEventsAfter(node: VigilNode, seq: number): string[] {
  return node
    .queryEvents({ since: seq, types: new Set(["pool.created", "pool.updated", "pool.deleted"]) })
    .events.map((e) => `${e.type} ${e.pool} ${e.cause}`)
    .sort();
}
const lastSeq = (node: VigilNode): number =>
  node.queryEvents({ order: "desc", limit: 1 }).events[0]?.seq ?? 0;

describe("config reload: the file's pools", { timeout: 60_000 }, () => {
  let a: TestOrigin;
  let b: TestOrigin;
  let dir: string;
  before(async () => {
    a = await startTestOrigin(200, "ok");
    b = await startTestOrigin(200, "ok");
    dir = tmpDataDir("reload");
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  const nodeYaml = (name: string, extra = "") =>
    `node: { name: ${name}, api: "127.0.0.1:0", gossip: "127.0.0.1:0", profile: local, store: none, data_dir: "${dir}"${extra} }\n`;
  const before_ = () => `defaults: { interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }
pools:
  keep: { check: { type: http }, targets: [${a.key}] }
  change: { check: { type: http }, targets: [${a.key}] }
  gone: { check: { type: tcp }, targets: [${a.key}] }
`;
  const after_ = () => `defaults: { interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }
pools:
  keep: { check: { type: http }, targets: [${a.key}] }
  change: { check: { type: http }, targets: [${a.key}, ${b.key}] }
  fresh: { check: { type: tcp }, targets: [${b.key}] }
`;

  /** A started node reading its config from a file of its own: the "before" pools. */
  async function startedFromFile(name: string) {
    const log = capturingLogger();
    const file = configFile(tmpDataDir("reload"), nodeYaml(name) + before_());
    const node = newNode(file.load(), log.logger);
    await node.start();
    return { log, file, node };
  }

  it("puts new and changed pools, deletes removed ones (cause config), leaves unchanged and API pools alone", async () => {
    const { log, file, node } = await startedFromFile("p1");
    try {
      const base = node.apiUrl;
      const manual = { check: { type: "tcp" }, targets: [b.key], interval: "1s" };
      assert.equal((await call("PUT", `${base}/v1/pools/manual`, { body: manual })).status, 201);
      const manualBefore = (await call("GET", `${base}/v1/pools/manual`)).body;
      await eventually(() => node.core.target("keep", a.key)?.verdict === "up", "keep is up");
      const seq = lastSeq(node);

      file.write(nodeYaml("p1") + after_());
      const r = await node.reloadConfig(file.load);
      assert.deepEqual(r, {
        ok: true,
        put: ["change", "fresh"],
        deleted: ["gone"],
        unchanged: 1,
        security: [],
        restart: [],
      });
      assert.deepEqual(poolEventsAfter(node, seq), [
        "pool.created fresh config",
        "pool.deleted gone config",
        "pool.updated change config",
      ]);
      const pools = (await call("GET", `${base}/v1/pools`)).body.pools as { name: string; targets: number }[];
      assert.deepEqual(pools.map((p) => `${p.name}:${p.targets}`).sort(), [
        "change:2",
        "fresh:1",
        "keep:1",
        "manual:1",
      ]);
      assert.equal((await call("GET", `${base}/v1/pools/gone`)).status, 404);
      assert.deepEqual((await call("GET", `${base}/v1/pools/manual`)).body.spec, manualBefore.spec);
      // The unchanged pool kept its targets' state: still up, not unknown again.
      assert.equal(node.core.target("keep", a.key)?.verdict, "up");
      await eventually(() => node.core.target("change", b.key)?.verdict === "up", "the added target checked");
      assert.equal(await metric(node, reloadsOk), 1);
      assert.equal(await metric(node, reloadsError), 0);
      assert.equal(log.lines().filter((l) => l.msg === "config reloaded").length, 1);

      // The same file again: nothing to do, nothing written.
      const seq2 = lastSeq(node);
      const again = await node.reloadConfig(file.load);
      assert.deepEqual(again, { ok: true, put: [], deleted: [], unchanged: 3, security: [], restart: [] });
      assert.deepEqual(poolEventsAfter(node, seq2), []);
      assert.equal(await metric(node, reloadsOk), 2);
    } finally {
      await node.stop();
    }
  });

  it("replicates what a reload changes to a peer", async () => {
    const file = configFile(tmpDataDir("reload"), nodeYaml("r1") + before_());
    const n1 = newNode(file.load(), capturingLogger().logger);
    await n1.start();
    const n2 = newNode(
      parseConfigText(nodeYaml("r2", `, join: ["${n1.gossipAddr}"]`), "<test>"),
      capturingLogger().logger,
    );
    await n2.start();
    try {
      await eventually(() => n2.hasPool("gone") && n2.hasPool("change"), "r2 learns r1's pools", 15_000);
      file.write(nodeYaml("r1") + after_());
      assert.equal((await n1.reloadConfig(file.load)).ok, true);
      await eventually(
        () =>
          n2.hasPool("fresh") &&
          !n2.hasPool("gone") &&
          n2.core.target("change", b.key) !== undefined &&
          n2.hasPool("keep"),
        "r2 sees the reload's changes",
        15_000,
      );
    } finally {
      await Promise.all([n2.stop(), n1.stop()]);
    }
  });

  it("a config that does not load changes nothing: one error logged as the CLI prints it, counted", async () => {
    const log = capturingLogger();
    const tmp = tmpDataDir("reload");
    const tokenFile = join(tmp, "ops.token");
    writeFileSync(tokenFile, `${WRITE_TOKEN}\n`);
    const tokens = `, api_tokens: [{ name: ops, scope: write, token_file: "${tokenFile}" }], targets_allow: ["127.0.0.1/32"]`;
    const good = nodeYaml("e1", tokens) + before_();
    const file = configFile(tmp, good);
    const node = newNode(file.load(), log.logger);
    await node.start();
    try {
      const base = node.apiUrl;
      const startedAt = await metric(node, lastSuccess);
      assert.ok(startedAt !== undefined && Math.abs(startedAt - Date.now() / 1000) < 60, String(startedAt));
      const seq = lastSeq(node);
      const bad = [
        // A pool key of the wrong type.
        nodeYaml("e1", tokens) + before_().replace("keep: {", "keep: { rise: zero,"),
        // YAML that does not parse.
        `${good}  broken: { check: { type: http }, targets: [`,
        // A token file that is gone.
        nodeYaml("e1", tokens.replace(tokenFile, join(tmp, "missing.token"))) + before_(),
        // A pool outside the (new) targets_allow.
        nodeYaml("e1", tokens.replace("127.0.0.1/32", "10.0.0.0/8")) + before_(),
      ];
      const expected: string[] = [];
      for (const text of bad) {
        file.write(text);
        let described = "";
        try {
          loadConfigFile(file.path);
        } catch (e) {
          assert.ok(isVigilError(e));
          described = e.describe();
        }
        assert.notEqual(described, "", "the bad config loaded");
        expected.push(described);
        const r = await node.reloadConfig(file.load);
        assert.deepEqual(r, { ok: false, error: described });
      }
      assert.match(expected[0]!, /vigil\.yaml: pools\.keep\.rise: expected/);
      assert.match(expected[2]!, /node\.api_tokens\[0\]\.token_file: .*missing\.token/);
      assert.match(
        expected[3]!,
        /pools\.keep\.targets\[0\]: target .* is not allowed by node\.targets_allow/,
      );

      // The file deleted, and a loader that fails in a way nobody planned for.
      unlinkSync(file.path);
      const gone = await node.reloadConfig(file.load);
      assert.equal(gone.ok, false);
      assert.match(gone.ok ? "" : gone.error, /vigil\.yaml: cannot open the config file: ENOENT/);
      const odd = await node.reloadConfig(() => {
        throw new Error("EIO: i/o error, read");
      });
      assert.deepEqual(odd, { ok: false, error: "EIO: i/o error, read" });

      assert.equal(await metric(node, reloadsError), 6);
      assert.equal(await metric(node, reloadsOk), 0);
      assert.equal(await metric(node, lastSuccess), startedAt);
      const errors = log.lines(ERROR);
      assert.equal(errors.length, 6, JSON.stringify(errors));
      for (const [i, described] of expected.entries()) {
        assert.equal(errors[i]!.msg, `config reload failed, the node keeps its running config: ${described}`);
        assert.equal(errors[i]!.file, file.path);
      }
      assert.equal(errors[0]!.path, "pools.keep.rise");
      // Nothing changed: the pools, the token, the allow list.
      assert.deepEqual(poolEventsAfter(node, seq), []);
      assert.deepEqual(node.core.poolNames().sort(), ["change", "gone", "keep"]);
      assert.equal((await call("GET", `${base}/v1/pools`, { token: WRITE_TOKEN })).status, 200);
      const outside = await call("PUT", `${base}/v1/pools/x`, {
        token: WRITE_TOKEN,
        body: { check: { type: "tcp" }, targets: ["10.1.2.3:80"] },
      });
      assert.equal(outside.status, 400, "the narrower list of a refused config is in force");

      // And the next good file applies.
      file.write(nodeYaml("e1", tokens) + after_());
      assert.equal((await node.reloadConfig(file.load)).ok, true);
      assert.equal(await metric(node, reloadsOk), 1);
      assert.ok((await metric(node, lastSuccess))! >= startedAt!);
      assert.ok(node.hasPool("fresh"));
    } finally {
      await node.stop();
    }
  });

  it("settings that need a restart are warned about by name and keep their value; the rest applies", async () => {
    const { log, file, node } = await startedFromFile("w1");
    try {
      const url = node.apiUrl;
      const changed = `node:
  name: w2
  zone: z9
  api: "127.0.0.1:1"
  gossip: "127.0.0.1:2"
  profile: wan
  store: sqlite
  data_dir: "${tmpDataDir("reload-other")}"
  max_concurrent_checks: 7
  join: ["127.0.0.1:3"]
alerts:
  sinks: { hook: { type: webhook, url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef0123" } }
  rules: [{ name: down, sinks: [hook] }]
${after_()}`;
      file.write(changed);
      const r = await node.reloadConfig(file.load);
      const restart = [
        "alerts",
        "node.api",
        "node.data_dir",
        "node.gossip",
        "node.join",
        "node.max_concurrent_checks",
        "node.name",
        "node.profile",
        "node.store",
        "node.zone",
      ];
      assert.ok(r.ok);
      assert.deepEqual([...r.restart].sort(), restart);
      assert.deepEqual(r.put, ["change", "fresh"], "the pools applied all the same");
      const warned = log
        .lines(WARN)
        .map((l) => l.field)
        .sort();
      assert.deepEqual(warned, restart);
      for (const l of log.lines(WARN)) assert.match(String(l.msg), /needs a restart/);
      // The node runs as it did.
      assert.equal(node.name, "w1");
      assert.equal(node.apiUrl, url);
      assert.equal((node.health() as { name: string }).name, "w1");
      assert.equal(node.alerts, undefined);
      assert.equal((await call("GET", `${url}/v1/pools/fresh`)).status, 200);
      assert.equal(node.config.node.name, "w1", "the running config keeps the running name");
      // Still different from the file: the next reload says so again.
      const again = await node.reloadConfig(file.load);
      assert.ok(again.ok);
      assert.deepEqual([...again.restart].sort(), restart);
      assert.deepEqual(again.put, []);
    } finally {
      await node.stop();
    }
  });

  it("reloads asked for while one runs are folded into one more after it", async () => {
    const node = newNode(parseConfigText(nodeYaml("c1") + before_(), "vigil.yaml"), capturingLogger().logger);
    await node.start();
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      let loads = 0;
      let running = 0;
      let most = 0;
      const slowLoad = (text: string) => async () => {
        loads++;
        running++;
        most = Math.max(most, running);
        await gate;
        running--;
        return parseConfigText(text, "vigil.yaml");
      };
      const first = node.reloadConfig(slowLoad(nodeYaml("c1") + before_()));
      const queued = [
        node.reloadConfig(slowLoad(nodeYaml("c1") + before_().replace("gone", "gone2"))),
        node.reloadConfig(slowLoad(nodeYaml("c1") + before_().replace("gone", "gone3"))),
        node.reloadConfig(slowLoad(nodeYaml("c1") + after_())),
      ];
      assert.equal(loads, 1, "a second load started while the first ran");
      release();
      const r1 = await first;
      const rest = await Promise.all(queued);
      assert.equal(loads, 2);
      assert.equal(most, 1);
      assert.ok(r1.ok && r1.put.length === 0);
      assert.ok(
        rest.every((r) => r === rest[0]),
        "the folded requests share one result",
      );
      assert.deepEqual(rest[0], {
        ok: true,
        put: ["change", "fresh"],
        deleted: ["gone"],
        unchanged: 1,
        security: [],
        restart: [],
      });
      assert.equal(await metric(node, reloadsOk), 2);
      // And a reload after that runs at once.
      assert.equal((await node.reloadConfig(() => parseConfigText(nodeYaml("c1") + after_(), "x"))).ok, true);
      assert.equal(loads, 2);
    } finally {
      await node.stop();
    }
  });
});

describe("config reload: security", { timeout: 60_000 }, () => {
  let tmp: string;
  let dataDir: string;
  before(() => {
    tmp = tmpDataDir("reload-sec-files");
    dataDir = tmpDataDir("reload-sec");
  });
  const nodeYaml = (name: string, extra: string) =>
    `node:\n  name: ${name}\n  api: "127.0.0.1:0"\n  gossip: "127.0.0.1:0"\n  store: none\n  data_dir: "${dataDir}"\n${extra}`;
  const NEW_READ = "read-token-rotated-0123456789";
  const NEW_WRITE = "write-token-rotated-0123456789";

  it("rotates tokens read from files: the old ones get 401, the new ones in; open event streams end", async () => {
    const readFile = join(tmp, "read.token");
    const writeFile = join(tmp, "write.token");
    writeFileSync(readFile, `${READ_TOKEN}\n`);
    writeFileSync(writeFile, `${WRITE_TOKEN}\n`);
    const file = configFile(
      tmp,
      nodeYaml(
        "t1",
        `  api_tokens:\n    - { name: ops, scope: write, token_file: "${writeFile}" }\n    - { name: prom, scope: read, token_file: "${readFile}" }\n`,
      ),
    );
    const node = newNode(file.load(), capturingLogger().logger);
    await node.start();
    try {
      const base = node.apiUrl;
      assert.equal((await call("GET", `${base}/v1/pools`, { token: READ_TOKEN })).status, 200);
      const stream = await fetch(`${base}/v1/events/stream`, {
        headers: { authorization: `Bearer ${READ_TOKEN}` },
      });
      assert.equal(stream.status, 200);
      const reader = stream.body!.getReader();

      // The files change; the config file does not.
      writeFileSync(readFile, `${NEW_READ}\n`);
      writeFileSync(writeFile, `${NEW_WRITE}\n`);
      const r = await node.reloadConfig(file.load);
      assert.ok(r.ok);
      assert.deepEqual(r.security, ["node.api_tokens"]);

      for (;;) if ((await reader.read()).done) break; // the stream was ended by the node
      const old = await call("GET", `${base}/v1/pools`, { token: READ_TOKEN });
      assert.equal(old.status, 401);
      assert.match(String(old.headers["www-authenticate"]), /invalid_token/);
      assert.equal((await call("GET", `${base}/v1/pools`, { token: NEW_READ })).status, 200);
      const pool = { check: { type: "tcp" }, targets: ["127.0.0.1:9"] };
      assert.equal((await call("PUT", `${base}/v1/pools/p`, { token: WRITE_TOKEN, body: pool })).status, 401);
      assert.equal((await call("PUT", `${base}/v1/pools/p`, { token: NEW_READ, body: pool })).status, 403);
      assert.equal((await call("PUT", `${base}/v1/pools/p`, { token: NEW_WRITE, body: pool })).status, 201);
      // The target lookup's lean path judges with the new tokens too.
      const target = `${base}/v1/pools/p/targets/127.0.0.1:9`;
      assert.equal((await call("GET", target, { token: READ_TOKEN })).status, 401);
      assert.equal((await call("GET", target, { token: NEW_READ })).status, 200);
      assert.equal(await metric(node, /^vigil_api_auth_failures_total\{reason="unknown_token"\} (\d+)$/m), 3);
    } finally {
      await node.stop();
    }
  });

  it("turns tokens on for an open API, and off again", async () => {
    const file = configFile(tmp, nodeYaml("t2", ""));
    const node = newNode(file.load(), capturingLogger().logger);
    await node.start();
    try {
      const base = node.apiUrl;
      const target = `${base}/v1/pools/p/targets/127.0.0.1:9`;
      const pool = { check: { type: "tcp" }, targets: ["127.0.0.1:9"] };
      assert.equal((await call("PUT", `${base}/v1/pools/p`, { body: pool })).status, 201);
      assert.equal((await call("GET", target)).status, 200);

      file.write(nodeYaml("t2", `  api_tokens: [{ name: ops, scope: write, token: ${WRITE_TOKEN} }]\n`));
      const on = await node.reloadConfig(file.load);
      assert.ok(on.ok);
      assert.deepEqual(on.security, ["node.api_tokens"]);
      assert.equal((await call("GET", `${base}/v1/pools`)).status, 401);
      assert.equal((await call("GET", target)).status, 401, "the lean path let a lookup through");
      assert.equal((await call("GET", target, { token: WRITE_TOKEN })).status, 200);
      assert.equal((await call("GET", `${base}/v1/health`)).status, 200);

      file.write(nodeYaml("t2", ""));
      assert.ok((await node.reloadConfig(file.load)).ok);
      assert.equal((await call("GET", `${base}/v1/pools`)).status, 200);
      assert.equal((await call("GET", target)).status, 200);
      // The refusals counted while tokens were on stay counted.
      assert.equal(await metric(node, /^vigil_api_auth_failures_total\{reason="missing"\} (\d+)$/m), 2);
    } finally {
      await node.stop();
    }
  });

  it("serves a renewed certificate to new connections; turning TLS off waits for a restart", async () => {
    const one: TestCerts = makeCerts();
    const two: TestCerts = makeCerts();
    const certFile = join(tmp, "api.crt");
    const keyFile = join(tmp, "api.key");
    copyFileSync(one.cert, certFile);
    copyFileSync(one.key, keyFile);
    const tlsYaml = `  api_tls: { cert: "${certFile}", key: "${keyFile}" }\n`;
    const log = capturingLogger();
    const file = configFile(tmp, nodeYaml("t3", tlsYaml));
    const node = newNode(file.load(), log.logger);
    await node.start();
    try {
      const health = `${node.apiUrl}/v1/health`;
      assert.match(health, /^https:/);
      const ca1 = readFileSync(one.cert, "utf8");
      const ca2 = readFileSync(two.cert, "utf8");
      assert.equal((await call("GET", health, { ca: ca1 })).status, 200);
      await assert.rejects(call("GET", health, { ca: ca2 }), /self-signed|signature|certificate/i);

      // A certificate kept open over the reload stays as it was.
      const kept = await openTls(health, ca1);
      copyFileSync(two.cert, certFile);
      copyFileSync(two.key, keyFile);
      const r = await node.reloadConfig(file.load);
      assert.ok(r.ok);
      assert.deepEqual(r.security, ["node.api_tls"]);
      assert.equal((await call("GET", health, { ca: ca2 })).status, 200);
      await assert.rejects(call("GET", health, { ca: ca1 }), /self-signed|signature|certificate/i);
      assert.equal(await kept.get(), 200, "a connection made before the reload broke");
      kept.close();

      file.write(nodeYaml("t3", ""));
      const off = await node.reloadConfig(file.load);
      assert.ok(off.ok);
      assert.deepEqual(off.restart, ["node.api_tls"]);
      assert.deepEqual(off.security, []);
      assert.ok(log.lines(WARN).some((l) => l.field === "node.api_tls"));
      assert.equal((await call("GET", health, { ca: ca2 })).status, 200, "still https");
    } finally {
      await node.stop();
      for (const c of [one, two]) rmSync(c.dir, { recursive: true, force: true });
    }
  });

  it("holds targets to a new targets_allow: API writes, and checks of pools it already has", async () => {
    const origin = await startTestOrigin(200, "ok");
    const file = configFile(tmp, nodeYaml("t4", `  targets_allow: ["127.0.0.1/32"]\n`));
    const node = newNode(file.load(), capturingLogger().logger);
    await node.start();
    try {
      const base = node.apiUrl;
      const pool = (t: string) => ({
        check: { type: "http" },
        targets: [t],
        interval: "200ms",
        timeout: "150ms",
        rise: 1,
        fall: 1,
      });
      assert.equal((await call("PUT", `${base}/v1/pools/web`, { body: pool(origin.key) })).status, 201);
      await eventually(() => node.core.target("web", origin.key)?.verdict === "up", "web up");

      file.write(nodeYaml("t4", `  targets_allow: ["10.0.0.0/8"]\n`));
      const r = await node.reloadConfig(file.load);
      assert.ok(r.ok);
      assert.deepEqual(r.security, ["node.targets_allow"]);
      const refused = await call("PUT", `${base}/v1/pools/web2`, { body: pool(origin.key) });
      assert.equal(refused.status, 400);
      assert.match(refused.body.error.message, /not allowed by node\.targets_allow \(10\.0\.0\.0\/8\)/);
      await eventually(
        async () => ((await metric(node, /^vigil_checks_refused_total\{pool="web"\} (\d+)$/m)) ?? 0) >= 2,
        "checks of the pool refused",
      );
      const view = (await call("GET", `${base}/v1/pools/web/targets/${origin.key}`)).body;
      assert.equal(view.checkRefused, true);

      file.write(nodeYaml("t4", ""));
      assert.ok((await node.reloadConfig(file.load)).ok);
      assert.equal((await call("PUT", `${base}/v1/pools/web2`, { body: pool(origin.key) })).status, 201);
    } finally {
      await node.stop();
      await origin.close();
    }
  });
});

describe("planReload", () => {
  const cfg = (text: string) => parseConfigText(text, "vigil.yaml");
  const pools = `pools:
  a: { check: { type: tcp }, targets: ["127.0.0.1:1"] }
  b: { check: { type: tcp }, targets: ["127.0.0.1:2"], interval: 5s }
`;

  it("re-puts the pools whose values come from a changed defaults section, and only those", () => {
    const p = planReload(
      cfg(`defaults: { interval: 10s }\n${pools}`),
      cfg(`defaults: { interval: 20s }\n${pools}`),
    );
    assert.deepEqual(p.put, ["a"]);
    assert.equal(p.unchanged, 1);
    assert.deepEqual(p.restart, []);
  });

  it("names changed node settings by their config keys, and leaves the live ones out", () => {
    const p = planReload(
      cfg(`node: { name: n1, encrypt_keys: [] }\n${pools}`),
      cfg(
        `node: { name: n1, weight: 2, advertise: 10.0.0.1, encrypt_keys: ["${Buffer.alloc(32, 1).toString("base64")}"], retention: { events: 2d }, targets_allow: ["10.0.0.0/8", "127.0.0.1"], api_tokens: [{ name: a, scope: read, token: ${READ_TOKEN} }] }\n${pools}`,
      ),
    );
    assert.deepEqual(p.restart.sort(), [
      "node.advertise",
      "node.encrypt_keys",
      "node.retention",
      "node.weight",
    ]);
    assert.deepEqual(p.put, []);
    assert.deepEqual(p.security.targetsAllow, ["10.0.0.0/8", "127.0.0.1/32"]);
  });
});

/** A keep-alive HTTPS connection made now, for a request later. */
async function openTls(url: string, ca: string): Promise<{ get(): Promise<number>; close(): void }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = httpsRequest(url, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end();
    });
  assert.equal(await get(), 200);
  return { get, close: () => agent.destroy() };
}
