import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import type { Prober } from "../../src/checkers/types.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { notAllowedReason } from "../../src/serve/security.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { tmpDataDir } from "../helpers/tmp.ts";
import { call, makeSecurityFiles, READ_TOKEN, type SecurityFiles, WRITE_TOKEN } from "./helpers.ts";

// Real nodes with docs/security.md's settings: targets_allow against API writes, restored
// pools and pools replicated from a node with a looser list; a cluster whose nodes call each
// other's APIs (the history fan-out) with a token, over TLS.

/** A prober that records what it was asked to check. */
function recordingProber(): Prober & { checked: string[] } {
  const inner = createProber();
  const checked: string[] = [];
  return {
    checked,
    check: (req) => {
      checked.push(req.target.key);
      return inner.check(req);
    },
    close: () => inner.close(),
  };
}

function newNode(text: string, prober: Prober = createProber(), seed = 1): VigilNode {
  return new VigilNode(parseConfigText(text, "<test>"), {
    clock: systemClock,
    random: new SeededRandom(seed),
    prober,
    logger: silentLogger,
  });
}

const pool = (targets: string[]) => ({
  check: { type: "http", path: "/healthz" },
  targets,
  interval: "200ms",
  timeout: "150ms",
  rise: 1,
  fall: 1,
});

interface TargetView {
  verdict: string;
  reason: string;
  checkRefused?: boolean;
  observers: { node: string; state: string; reason: string; owner: boolean }[];
}

async function metric(node: VigilNode, line: RegExp): Promise<number> {
  const text = (await node.metricsText()).text;
  const m = line.exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe("targets_allow on a running node", () => {
  let origin: TestOrigin;
  before(async () => {
    origin = await startTestOrigin(200, "ok");
  });
  after(() => origin.close());

  it("refuses API writes of pools outside the list with a 400 naming the target, and takes the rest", async () => {
    const node = newNode(
      `node: { name: s1, api: "127.0.0.1:0", gossip: "127.0.0.1:0", store: none, targets_allow: ["127.0.0.1/32", "*.svc.internal"] }`,
    );
    await node.start();
    try {
      const base = node.apiUrl;
      const outside = await call("PUT", `${base}/v1/pools/scan`, {
        body: pool([origin.key, "127.0.0.2:22"]),
      });
      assert.equal(outside.status, 400);
      assert.equal(outside.body.error.code, "VIGIL_ERR_CONFIG");
      assert.equal(outside.body.error.path, "targets[1]");
      assert.match(
        outside.body.error.message,
        /target "127\.0\.0\.2:22" is not allowed by node\.targets_allow \(127\.0\.0\.1\/32, \*\.svc\.internal\)/,
      );
      const byName = await call("PUT", `${base}/v1/pools/scan`, {
        body: pool(["metadata.google.internal:80"]),
      });
      assert.equal(byName.status, 400);
      assert.match(byName.body.error.message, /host names must match one of its host patterns/);
      // A bad document is still reported as such first: the list is checked on valid pools.
      const bad = await call("PUT", `${base}/v1/pools/scan`, {
        body: { check: { type: "nope" }, targets: ["127.0.0.2:1"] },
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.path, "check.type");
      assert.equal((await call("GET", `${base}/v1/pools/scan`)).status, 404, "a refused pool was stored");

      const inside = await call("PUT", `${base}/v1/pools/web`, { body: pool([origin.key]) });
      assert.equal(inside.status, 201);
      await eventually(() => node.core.target("web", origin.key)?.verdict === "up", "the allowed target up");
    } finally {
      await node.stop();
    }
  });

  it("never checks a stored pool outside a list narrowed since; its verdict stays unknown, with the reason", async () => {
    const dataDir = tmpDataDir("allow");
    const first = newNode(
      `node: { name: s2, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}" }`,
    );
    await first.start();
    assert.equal(
      (await call("PUT", `${first.apiUrl}/v1/pools/legacy`, { body: pool([origin.key]) })).status,
      201,
    );
    await first.history!.flush();
    await first.stop();

    const prober = recordingProber();
    const node = newNode(
      `node: { name: s2, api: "127.0.0.1:0", gossip: "127.0.0.1:0", data_dir: "${dataDir}", targets_allow: ["10.0.0.0/8"] }`,
      prober,
    );
    await node.start();
    try {
      assert.ok(node.core.poolSpec("legacy") !== undefined, "the stored pool was restored");
      await eventually(
        async () => (await metric(node, /^vigil_checks_refused_total\{pool="legacy"\} (\d+)$/m)) >= 3,
        "three refused rounds",
      );
      assert.deepEqual(prober.checked, [], "a target outside the list was probed");
      const t = (await call("GET", `${node.apiUrl}/v1/pools/legacy/targets/${origin.key}`))
        .body as TargetView;
      assert.equal(t.verdict, "unknown");
      assert.equal(t.reason, notAllowedReason);
      assert.equal(t.checkRefused, true);
      const mine = t.observers.find((o) => o.node === "s2");
      assert.deepEqual([mine?.state, mine?.reason, mine?.owner], ["unknown", notAllowedReason, true]);
      const p = (await call("GET", `${node.apiUrl}/v1/pools/legacy`)).body as { targets: TargetView[] };
      assert.equal(p.targets[0]?.reason, notAllowedReason);
    } finally {
      await node.stop();
    }
  });
});

describe(
  "a cluster with tokens and TLS, and a node with a narrower targets_allow",
  { timeout: 60_000 },
  () => {
    let files: SecurityFiles;
    let ca: string;
    let origin: TestOrigin;
    let a: VigilNode;
    let b: VigilNode;
    const proberB = recordingProber();

    const nodeYaml = (name: string, extra: string) => `node:
  name: ${name}
  api: "127.0.0.1:0"
  gossip: "127.0.0.1:0"
  profile: local
  data_dir: "${tmpDataDir(name)}"
  api_tls: { cert: ${files.certs.cert}, key: ${files.certs.key}, ca: ${files.certs.cert} }
  api_tokens:
    - { name: ops, scope: write, token: ${WRITE_TOKEN} }
    - { name: peers, scope: read, token: ${READ_TOKEN} }
${extra}`;

    before(async () => {
      files = makeSecurityFiles();
      ca = readFileSync(files.certs.cert, "utf8");
      origin = await startTestOrigin(200, "ok");
      a = newNode(nodeYaml("a", ""), createProber(), 1);
      await a.start();
      b = newNode(nodeYaml("b", `  targets_allow: ["10.0.0.0/8"]\n  join: ["${a.gossipAddr}"]`), proberB, 2);
      await b.start();
      for (const n of [a, b]) {
        await eventually(
          () => (n.members() as { state: string }[]).filter((m) => m.state === "alive").length === 2,
          `${n.name} sees both nodes alive`,
          15_000,
        );
      }
    });
    after(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await origin?.close();
      files?.remove();
    });

    it("serves https and needs a token, for the test as for anyone", async () => {
      assert.match(a.apiUrl, /^https:\/\//);
      assert.equal((await call("GET", `${b.apiUrl}/v1/health`, { ca })).status, 200);
      const refused = await call("GET", `${b.apiUrl}/v1/pools`, { ca });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers["www-authenticate"], 'Bearer realm="vigil"');
      const members = (await call("GET", `${a.apiUrl}/v1/members`, { ca, token: READ_TOKEN })).body
        .members as {
        api: string;
      }[];
      for (const m of members) assert.match(m.api, /^https:\/\/127\.0\.0\.1:\d+$/);
    });

    it("takes a pool on the looser node; the narrower one replicates it but never checks it", async () => {
      const put = await call("PUT", `${a.apiUrl}/v1/pools/web`, {
        ca,
        token: WRITE_TOKEN,
        body: { ...pool([origin.key]), observers: 2 },
      });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      await eventually(
        () => b.core.target("web", origin.key)?.verdict === "up",
        "b learns a's verdict",
        15_000,
      );
      await eventually(
        async () => (await metric(b, /^vigil_checks_refused_total\{pool="web"\} (\d+)$/m)) >= 2,
        "b refuses its rounds",
      );
      assert.ok(!proberB.checked.includes(origin.key), "b probed a target outside its targets_allow");
      const t = (
        await call("GET", `${b.apiUrl}/v1/pools/web/targets/${origin.key}`, { ca, token: READ_TOKEN })
      ).body as TargetView;
      assert.equal(t.verdict, "up", "the verdict comes from the node that may check it");
      assert.equal(t.checkRefused, true);
      const byNode = Object.fromEntries(t.observers.map((o) => [o.node, o]));
      assert.equal(byNode.a?.state, "up");
      assert.equal(byNode.b?.reason, notAllowedReason);
      // And the narrower node refuses the same write through its own API.
      const direct = await call("PUT", `${b.apiUrl}/v1/pools/web2`, {
        ca,
        token: WRITE_TOKEN,
        body: pool([origin.key]),
      });
      assert.equal(direct.status, 400);
      assert.equal(direct.body.error.path, "targets[0]");
    });

    it("gathers history from the peer over https, with a token", async () => {
      const before = b.security.auth!.failures;
      const failuresBefore = Object.values(before).reduce((x, y) => x + y, 0);
      const h = await call(
        "GET",
        `${a.apiUrl}/v1/pools/web/targets/${origin.key}/history?from=now-10m&step=1m`,
        {
          ca,
          token: READ_TOKEN,
        },
      );
      assert.equal(h.status, 200, JSON.stringify(h.body));
      assert.equal(h.body.source, "members");
      assert.equal(h.body.missing, undefined, JSON.stringify(h.body.missing));
      assert.equal(h.body.partial, false);
      const failuresAfter = Object.values(b.security.auth!.failures).reduce((x, y) => x + y, 0);
      assert.equal(failuresAfter, failuresBefore, "the peer call was refused by b");
    });
  },
);
