// Shared by the security tests: token files and certificates in a temporary directory. The
// certificates come from the openssl CLI, as the checker tests make theirs.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCerts, openssl, type TestCerts } from "../checkers/helpers.ts";

export interface SecurityFiles {
  dir: string;
  certs: TestCerts;
  /** Another key, not the certificate's. */
  otherKey: string;
  /** The certificate's key, encrypted with a passphrase. */
  encryptedKey: string;
  write(name: string, text: string): string;
  remove(): void;
}

export const READ_TOKEN = "read-token-0123456789abcdef";
export const WRITE_TOKEN = "write-token-0123456789abcdef";

export function makeSecurityFiles(): SecurityFiles {
  const certs = makeCerts();
  const dir = mkdtempSync(join(tmpdir(), "vigil-security-"));
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"], dir);
  openssl(["pkey", "-in", certs.key, "-aes256", "-passout", "pass:secret", "-out", "encrypted.key"], dir);
  return {
    dir,
    certs,
    otherKey: join(dir, "other.key"),
    encryptedKey: join(dir, "encrypted.key"),
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
      rmSync(certs.dir, { recursive: true, force: true });
    },
  };
}

/** One request to a node's API (http or https), for tests: status, headers and parsed JSON body. */
export function call(
  method: string,
  url: string,
  opts: { token?: string; ca?: string; body?: unknown; headers?: Record<string, string> } = {},
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field by the tests
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  const u = new URL(url);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: text === "" ? undefined : JSON.parse(text),
        });
      });
      res.on("error", reject);
    };
    const req =
      u.protocol === "https:"
        ? httpsRequest(
            u,
            { method, headers, agent: false, ...(opts.ca === undefined ? {} : { ca: opts.ca }) },
            onResponse,
          )
        : httpRequest(u, { method, headers, agent: false }, onResponse);
    req.on("error", reject);
    req.end(payload);
  });
}
