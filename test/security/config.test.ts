import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfigText } from "../../src/config/load.ts";
import { isVigilError, type VigilError } from "../../src/core/errors.ts";
import { makeSecurityFiles, READ_TOKEN, type SecurityFiles, WRITE_TOKEN } from "./helpers.ts";

// The config keys of docs/security.md: node.api_tokens, node.api_tls, node.targets_allow, and
// config pools held to the list. Every bad input is one VigilError naming the path and, for
// files, the file.

let files: SecurityFiles;
before(() => {
  files = makeSecurityFiles();
});
after(() => files.remove());

const load = (nodeYaml: string, rest = "") => parseConfigText(`node:\n${nodeYaml}\n${rest}`, "vigil.yaml");

function configError(nodeYaml: string, rest = ""): VigilError {
  try {
    load(nodeYaml, rest);
  } catch (e) {
    assert.ok(isVigilError(e), String(e));
    assert.equal(e.code, "VIGIL_ERR_CONFIG");
    assert.equal(e.file, "vigil.yaml");
    return e;
  }
  assert.fail("expected a config error");
}

describe("node.api_tokens", () => {
  it("reads token files (trimmed) and inline tokens, with their scopes", () => {
    const ops = files.write("ops.token", `\n  ${WRITE_TOKEN}\n\n`);
    const cfg = load(`  api_tokens:
    - { name: ops, scope: write, token_file: ${ops} }
    - { name: prometheus, scope: read, token: ${READ_TOKEN} }`);
    assert.deepEqual(cfg.node.apiTokens, [
      { name: "ops", scope: "write", token: WRITE_TOKEN, tokenFile: ops },
      { name: "prometheus", scope: "read", token: READ_TOKEN },
    ]);
  });

  it("is absent when not configured (the API is open)", () => {
    assert.equal(load("  name: n1").node.apiTokens, undefined);
  });

  it("refuses bad tokens with the path, never echoing the secret", () => {
    const short = files.write("short.token", "abc123\n");
    const empty = files.write("empty.token", " \n\n");
    const twoLines = files.write("two.token", `${WRITE_TOKEN}\n${READ_TOKEN}\n`);
    const dir = join(files.dir, "a-directory");
    mkdirSync(dir, { recursive: true });
    const missing = join(files.dir, "missing.token");
    const cases: [string, string, RegExp][] = [
      [
        `[{ name: ops, scope: write, token_file: ${short} }]`,
        "node.api_tokens[0].token_file",
        new RegExp(`of 16 to 4096 .*got 6 characters in the token file "${short}"`),
      ],
      [`[{ name: ops, scope: write, token_file: ${empty} }]`, "node.api_tokens[0].token_file", /is empty/],
      [
        `[{ name: ops, scope: write, token_file: ${twoLines} }]`,
        "node.api_tokens[0].token_file",
        /got a character outside them/,
      ],
      [
        `[{ name: ops, scope: write, token_file: ${missing} }]`,
        "node.api_tokens[0].token_file",
        new RegExp(`cannot read the token file "${missing}": ENOENT`),
      ],
      [`[{ name: ops, scope: write, token_file: ${dir} }]`, "node.api_tokens[0].token_file", /regular file/],
      [`[{ name: ops, scope: write, token: short }]`, "node.api_tokens[0].token", /got 5 characters/],
      [
        `[{ name: ops, scope: write, token: "with space 0123456789" }]`,
        "node.api_tokens[0].token",
        /outside them/,
      ],
      [
        `[{ name: ops, scope: write, token: 12345678901234567890 }]`,
        "node.api_tokens[0].token",
        /got a number/,
      ],
      [
        `[{ name: ops, scope: admin, token: ${WRITE_TOKEN} }]`,
        "node.api_tokens[0].scope",
        /expected read or write, got "admin"/,
      ],
      [`[{ name: ops, token: ${WRITE_TOKEN} }]`, "node.api_tokens[0].scope", /missing required key/],
      [`[{ name: ops, scope: read }]`, "node.api_tokens[0].token_file", /token_file .* or token/],
      [
        `[{ name: ops, scope: read, token: ${READ_TOKEN}, token_file: ${short} }]`,
        "node.api_tokens[0].token",
        /not both/,
      ],
      [
        `[{ name: ops, scope: read, tokn: ${READ_TOKEN} }]`,
        "node.api_tokens[0].tokn",
        /did you mean "token"/,
      ],
      [
        `[{ name: "bad name", scope: read, token: ${READ_TOKEN} }]`,
        "node.api_tokens[0].name",
        /a token name/,
      ],
      [
        `[{ name: a, scope: read, token: ${READ_TOKEN} }, { name: a, scope: write, token: ${WRITE_TOKEN} }]`,
        "node.api_tokens[1].name",
        /duplicate token name "a"/,
      ],
      [
        `[{ name: a, scope: read, token: ${READ_TOKEN} }, { name: b, scope: write, token: ${READ_TOKEN} }]`,
        "node.api_tokens[1]",
        /token "b" has the same secret as \[0\]/,
      ],
      ["[]", "node.api_tokens", /at least one token.*leave api_tokens out/],
      [`{ ops: ${WRITE_TOKEN} }`, "node.api_tokens", /a list of tokens/],
    ];
    for (const [tokens, path, re] of cases) {
      const e = configError(`  api_tokens: ${tokens}`);
      assert.equal(e.path, path, tokens);
      assert.match(e.message, re, tokens);
      for (const secret of [WRITE_TOKEN, READ_TOKEN, "abc123", "12345678901234567890", "with space"]) {
        assert.ok(!e.message.includes(secret), `${tokens}: the message echoes a secret: ${e.message}`);
      }
    }
  });
});

describe("node.api_tls", () => {
  it("reads the certificate and key (and a CA bundle) at load", () => {
    const { cert, key } = files.certs;
    const cfg = load(`  api_tls: { cert: ${cert}, key: ${key}, ca: ${cert} }`);
    const tls = cfg.node.apiTls!;
    assert.equal(tls.certFile, cert);
    assert.equal(tls.keyFile, key);
    assert.equal(tls.caFile, cert);
    assert.match(tls.cert, /BEGIN CERTIFICATE/);
    assert.match(tls.key, /PRIVATE KEY/);
    assert.match(tls.ca!, /BEGIN CERTIFICATE/);
  });

  it("is not taken with node.lookup_api: a TLS session cannot be handed to the node", () => {
    const { cert, key } = files.certs;
    const e = configError(`  lookup_api: true\n  api_tls: { cert: ${cert}, key: ${key} }`);
    assert.equal(e.path, "node.lookup_api");
    assert.match(e.message, /expected no lookup_api with api_tls \(a TLS connection cannot be handed/);
    assert.equal(
      load(`  lookup_api: false\n  api_tls: { cert: ${cert}, key: ${key} }`).node.lookupApi,
      undefined,
    );
  });

  it("refuses missing, unreadable, mismatched and malformed files, naming them", () => {
    const { cert, key } = files.certs;
    const missing = join(files.dir, "nope.pem");
    const notPem = files.write("not.pem", "hello\n");
    const badCert = files.write(
      "bad-cert.pem",
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    const cases: [string, string, RegExp][] = [
      [`{ cert: ${missing}, key: ${key} }`, "node.api_tls.cert", new RegExp(`"${missing}": ENOENT`)],
      [`{ cert: ${cert}, key: ${missing} }`, "node.api_tls.key", new RegExp(`"${missing}": ENOENT`)],
      [`{ cert: ${notPem}, key: ${key} }`, "node.api_tls.cert", /expected PEM certificates .*found none/],
      [`{ cert: ${badCert}, key: ${key} }`, "node.api_tls.cert", /certificate 1 .* does not parse/],
      [`{ cert: ${key}, key: ${key} }`, "node.api_tls.cert", /expected PEM certificates/],
      [`{ cert: ${cert}, key: ${cert} }`, "node.api_tls.key", /expected a PEM private key/],
      [`{ cert: ${cert}, key: ${files.otherKey} }`, "node.api_tls.key", /does not belong to the certificate/],
      [`{ cert: ${cert}, key: ${files.encryptedKey} }`, "node.api_tls.key", /encrypted key/],
      [`{ cert: ${cert}, key: ${key}, ca: ${notPem} }`, "node.api_tls.ca", /in the CA file/],
      [`{ cert: ${cert} }`, "node.api_tls.key", /missing required key/],
      [`{ cert: ${cert}, key: ${key}, crt: x }`, "node.api_tls.crt", /unknown key "crt"/],
    ];
    for (const [tls, path, re] of cases) {
      const e = configError(`  api_tls: ${tls}`);
      assert.equal(e.path, path, tls);
      assert.match(e.message, re, tls);
    }
  });
});

describe("node.targets_allow", () => {
  it("keeps the canonical entries", () => {
    const cfg = load(`  targets_allow: ["10.0.0.0/8", "FD00::/8", "*.Svc.Internal", 127.0.0.1]`);
    assert.deepEqual(cfg.node.targetsAllow, ["10.0.0.0/8", "fd00::/8", "*.svc.internal", "127.0.0.1/32"]);
  });

  it("refuses bad entries with their index", () => {
    const cases: [string, string, RegExp][] = [
      [`["10.0.0.0/8", "10.0.0.0/33"]`, "node.targets_allow[1]", /prefix length/],
      [`["*.corp", "a..corp"]`, "node.targets_allow[1]", /no empty label/],
      [`["10.0.0.0/8", "10.0.0.0/8"]`, "node.targets_allow[1]", /duplicate entry "10\.0\.0\.0\/8"/],
      [`["10.0.0.1", "10.0.0.1/32"]`, "node.targets_allow[1]", /duplicate entry/],
      [`[]`, "node.targets_allow", /leave targets_allow out/],
      [`"10.0.0.0/8"`, "node.targets_allow", /a list of CIDRs/],
    ];
    for (const [list, path, re] of cases) {
      const e = configError(`  targets_allow: ${list}`);
      assert.equal(e.path, path, list);
      assert.match(e.message, re, list);
    }
  });

  it("holds the file's pools to the list, naming the first target outside it", () => {
    const ok = load(
      `  targets_allow: ["10.0.0.0/8", "*.svc.internal"]`,
      `pools:
  web:
    check: { type: http }
    targets: [10.0.0.1:80, web.svc.internal:80]`,
    );
    assert.equal(ok.pools.get("web")?.targets.length, 2);

    const e = configError(
      `  targets_allow: ["10.0.0.0/8", "*.svc.internal"]`,
      `pools:
  web:
    check: { type: http }
    targets: [10.0.0.1:80]
  admin:
    check: { type: tcp }
    targets: [10.0.0.2:22, 169.254.169.254:80]`,
    );
    assert.equal(e.path, "pools.admin.targets[1]");
    assert.match(
      e.message,
      /target "169\.254\.169\.254:80" is not allowed by node\.targets_allow \(10\.0\.0\.0\/8, \*\.svc\.internal\)/,
    );
  });

  it("holds a dns check's resolver to the list: it is the target", () => {
    const e = configError(
      `  targets_allow: ["10.0.0.0/8"]`,
      `pools:
  resolvers:
    check: { type: dns, name: example.com }
    targets: ["10.0.0.53:53", "8.8.8.8:53"]`,
    );
    assert.equal(e.path, "pools.resolvers.targets[1]");
    assert.match(e.message, /"8\.8\.8\.8:53"/);
  });
});
