// Shared pieces of the checker tests: spec builders, a port nobody listens on, and
// certificates made with the openssl CLI. A missing openssl fails the TLS tests loudly.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { targetAddr } from "../../src/checkers/url.ts";
import type { HttpCheckSpec, TargetAddr } from "../../src/config/types.ts";

export function loopback(port: number): TargetAddr {
  return targetAddr("127.0.0.1", port);
}

export function httpSpec(over: Partial<HttpCheckSpec> = {}): HttpCheckSpec {
  return {
    type: "http",
    method: "GET",
    path: "/",
    headers: {},
    expect: { status: [{ lo: 200, hi: 399 }] },
    maxBodyBytes: 64 * 1024,
    tlsVerify: true,
    keepalive: false,
    ...over,
  };
}

/** Resolves once `server` listens on 127.0.0.1 and returns its port. */
export function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): unknown;
}) {
  return new Promise<number>((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

/** A port that refuses connections: one a server held and released. */
export async function closedPort(): Promise<number> {
  const s: Server = createServer();
  const port = await listen(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface TestCerts {
  dir: string;
  key: string;
  /** Self-signed, CN=localhost, SANs localhost and 127.0.0.1, valid for 2 days from now. */
  cert: string;
  /** The same name and key, valid 2020-01-01 to 2020-01-03. */
  expiredCert: string;
}

export function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === "ENOENT") {
      throw new Error("the openssl CLI is not on PATH: the TLS checker tests need it (CI installs it)");
    }
    throw new Error(`openssl ${args.join(" ")} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

/** Makes the test certificates in a fresh temporary directory. */
export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "vigil-certs-"));
  const san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
  const args = (line: string) => line.split(" ");
  openssl(
    args(
      "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost " +
        `-addext ${san} -keyout key.pem -out cert.pem`,
    ),
    dir,
  );
  // OpenSSL 3.0 `req`/`x509` cannot set dates in the past (-not_after came in 3.4); `ca` can.
  writeFileSync(
    join(dir, "ca.cnf"),
    [
      "[ ca ]",
      "default_ca = d",
      "[ d ]",
      "database = index.txt",
      "new_certs_dir = .",
      "serial = serial",
      "default_md = sha256",
      "policy = p",
      "copy_extensions = copy",
      "[ p ]",
      "commonName = supplied",
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  openssl(
    ["req", "-new", "-key", "key.pem", "-subj", "/CN=localhost", "-addext", san, "-out", "req.csr"],
    dir,
  );
  openssl(
    args(
      "ca -batch -notext -config ca.cnf -selfsign -keyfile key.pem -in req.csr " +
        "-startdate 20200101000000Z -enddate 20200103000000Z -out expired.pem",
    ),
    dir,
  );
  return {
    dir,
    key: join(dir, "key.pem"),
    cert: join(dir, "cert.pem"),
    expiredCert: join(dir, "expired.pem"),
  };
}

export function removeCerts(c: TestCerts | undefined): void {
  if (c !== undefined) rmSync(c.dir, { recursive: true, force: true });
}
