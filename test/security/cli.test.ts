import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProber } from "../../src/checkers/index.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { SeededRandom } from "../../src/core/random.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { VigilNode } from "../../src/runtime/node.ts";
import { eventually, startTestOrigin, type TestOrigin } from "../helpers/origins.ts";
import { runVigil } from "../helpers/spawn.ts";
import { makeSecurityFiles, READ_TOKEN, type SecurityFiles, WRITE_TOKEN } from "./helpers.ts";

// The CLI against a node with tokens and TLS (`vigil status`, `vigil members` with --token,
// --token-file, VIGIL_TOKEN and --ca), and `vigil agent` refusing a config whose security
// files are wrong, with exit 2 and the file named.

describe("vigil status and members against a node with tokens and TLS", { timeout: 60_000 }, () => {
  let files: SecurityFiles;
  let origin: TestOrigin;
  let node: VigilNode;
  let url: string;
  let tokenFile: string;

  before(async () => {
    files = makeSecurityFiles();
    origin = await startTestOrigin(200, "ok");
    tokenFile = files.write("read.token", `${READ_TOKEN}\n`);
    node = new VigilNode(
      parseConfigText(
        `node:
  name: c1
  api: "127.0.0.1:0"
  gossip: "127.0.0.1:0"
  store: none
  api_tls: { cert: ${files.certs.cert}, key: ${files.certs.key} }
  api_tokens: [{ name: ops, scope: write, token: ${WRITE_TOKEN} }, { name: cli, scope: read, token_file: ${tokenFile} }]
defaults: { interval: 200ms, timeout: 150ms, rise: 1 }
pools:
  web:
    check: { type: http }
    targets: [${origin.key}]
`,
        "<test>",
      ),
      { clock: systemClock, random: new SeededRandom(5), prober: createProber(), logger: silentLogger },
    );
    await node.start();
    url = node.apiUrl;
    await eventually(() => node.core.target("web", origin.key)?.verdict === "up", "the target up");
  });
  after(async () => {
    await node?.stop();
    await origin?.close();
    files?.remove();
  });

  const ca = () => ["--ca", files.certs.cert];

  it("reads the table with a token file, VIGIL_TOKEN or --token, trusting the CA given", async () => {
    const viaFile = await runVigil(["status", "--server", url, ...ca(), "--token-file", tokenFile]);
    assert.equal(viaFile.code, 0, viaFile.stderr);
    assert.match(viaFile.stdout, new RegExp(`web\\s+${origin.key.replace(/\./g, "\\.")}\\s+UP`));
    const viaEnv = await runVigil(["status", `web/${origin.key}`, "--server", url, ...ca()], 20_000, {
      VIGIL_TOKEN: READ_TOKEN,
    });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    const members = await runVigil(["members", "--json", "--server", url, ...ca(), "--token", WRITE_TOKEN]);
    assert.equal(members.code, 0, members.stderr);
    assert.equal((JSON.parse(members.stdout) as { name: string }[])[0]?.name, "c1");
  });

  it("says a token is needed, or refused, with exit 1", async () => {
    const none = await runVigil(["status", "--server", url, ...ca()], 20_000, { VIGIL_TOKEN: "" });
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /this API needs a token.*give a token with --token-file FILE, VIGIL_TOKEN or --token/,
    );
    const wrong = await runVigil([
      "members",
      "--server",
      url,
      ...ca(),
      "--token",
      "not-the-right-token-0000",
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /the token is not valid \(the token was refused\)/);
  });

  it("refuses an untrusted certificate, pointing at --ca", async () => {
    const r = await runVigil(["status", "--server", url, "--token", READ_TOKEN]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach https:\/\/127\.0\.0\.1:\d+: self-signed certificate.*--ca FILE/);
  });

  it("exits 2 on bad token and CA options, naming the file", async () => {
    const missingCa = join(files.dir, "no-ca.pem");
    const cases: [string[], RegExp][] = [
      [
        ["status", "--server", url, "--ca", missingCa, "--token", READ_TOKEN],
        new RegExp(`CA file "${missingCa}": ENOENT`),
      ],
      [
        ["status", "--server", url, ...ca(), "--token", "short"],
        /--token: expected a token .* got 5 characters/,
      ],
      [["status", "--server", url, ...ca(), "--token", READ_TOKEN, "--token-file", tokenFile], /not both/],
      [["members", "--server", url, ...ca(), "--token-file", join(files.dir, "nope")], /token file .*ENOENT/],
    ];
    for (const [args, re] of cases) {
      const r = await runVigil(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(" "));
      assert.ok(!r.stderr.includes(READ_TOKEN), "a token was echoed");
    }
  });
});

describe("vigil agent with bad security settings", () => {
  let files: SecurityFiles;
  before(() => {
    files = makeSecurityFiles();
  });
  after(() => files.remove());

  it("exits 2 naming the file and path: missing certificate, short token file, target outside the list", async () => {
    const missing = join(files.dir, "missing.crt");
    const short = files.write("short.token", "tooshort\n");
    const cases: [string, RegExp][] = [
      [
        `node: { api: "127.0.0.1:0", gossip: "127.0.0.1:0", api_tls: { cert: ${missing}, key: ${files.certs.key} } }`,
        new RegExp(`node\\.api_tls\\.cert: cannot read the certificate file "${missing}": ENOENT`),
      ],
      [
        `node: { api: "127.0.0.1:0", gossip: "127.0.0.1:0", api_tokens: [{ name: ops, scope: write, token_file: ${short} }] }`,
        new RegExp(
          `node\\.api_tokens\\[0\\]\\.token_file: expected a token .* got 8 characters in the token file "${short}"`,
        ),
      ],
      [
        `node: { api: "127.0.0.1:0", gossip: "127.0.0.1:0", targets_allow: ["10.0.0.0/8"] }
pools:
  web: { check: { type: tcp }, targets: ["10.1.1.1:80", "192.168.0.1:80"] }`,
        /pools\.web\.targets\[1\]: target "192\.168\.0\.1:80" is not allowed by node\.targets_allow/,
      ],
    ];
    for (const [text, re] of cases) {
      const config = files.write("vigil.yaml", text);
      const r = await runVigil(["agent", "--config", config]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^vigil: ${config.replace(/[.]/g, "\\.")}: `));
      assert.match(r.stderr, re);
    }
  });
});
