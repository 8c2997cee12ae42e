// The files `node.api_tokens` and `node.api_tls` name (docs/security.md), read and checked when
// the config is loaded: a node must not start with an API it cannot secure, and the operator
// must learn which file is wrong before anything binds. Messages name the file and say what is
// wrong with its contents, never echoing a secret.

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { ErrorCode, VigilError } from "../core/errors.ts";

export const secretLimits = {
  /** A token shorter than this is guessable over the network; 16 base64 characters are 96 bits. */
  tokenCharsMin: 16,
  /** Longer is a pasted file, not a token. */
  tokenCharsMax: 4096,
  /** A token file holds one token and a newline or two. */
  maxTokenFileBytes: 8 * 1024,
  /** A certificate chain, a key or a CA bundle; the system bundle is about 220 KiB. */
  maxPemFileBytes: 1024 * 1024,
  /** Tokens in `node.api_tokens`: one per client is plenty. */
  maxTokens: 64,
} as const;

// RFC 6750's b64token: what may follow "Bearer " in a header, and also safe in a cookie value.
const tokenPattern = /^[A-Za-z0-9\-._~+/]+=*$/;
const tokenWhat = `a token of ${secretLimits.tokenCharsMin} to ${secretLimits.tokenCharsMax} characters from A-Z a-z 0-9 - . _ ~ + / (and trailing =), such as "vigil keygen" or "openssl rand -hex 32" print`;

function problem(message: string): VigilError {
  return new VigilError(ErrorCode.config, message);
}

/** Why `token` cannot be a token (no secret in the message), or undefined when it can. */
export function tokenProblem(token: string, where: string): string | undefined {
  if (token.length < secretLimits.tokenCharsMin || token.length > secretLimits.tokenCharsMax) {
    return `expected ${tokenWhat}, got ${token.length} characters${where}`;
  }
  if (!tokenPattern.test(token)) {
    return `expected ${tokenWhat}, got a character outside them${where}`;
  }
  return undefined;
}

/** Reads a small text file whole; errors name the file and what it was meant to be. */
export function readSmallFile(path: string, what: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw problem(`cannot read the ${what} ${JSON.stringify(path)}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw problem(`expected the ${what} ${JSON.stringify(path)} to be a regular file`);
    if (st.size > maxBytes) {
      throw problem(
        `expected the ${what} ${JSON.stringify(path)} to be at most ${maxBytes} bytes, got ${st.size}`,
      );
    }
    const buf = Buffer.alloc(maxBytes + 1);
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, total, buf.length - total, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) {
        throw problem(`expected the ${what} ${JSON.stringify(path)} to be at most ${maxBytes} bytes`);
      }
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, total));
    } catch {
      throw problem(`expected the ${what} ${JSON.stringify(path)} to be UTF-8 text`);
    }
  } catch (e) {
    if (e instanceof VigilError) throw e;
    throw problem(`cannot read the ${what} ${JSON.stringify(path)}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** A token file's token: the whole file, surrounding whitespace (the trailing newline) trimmed. */
export function readTokenFile(path: string): string {
  const token = readSmallFile(path, "token file", secretLimits.maxTokenFileBytes).trim();
  if (token === "") throw problem(`the token file ${JSON.stringify(path)} is empty: expected ${tokenWhat}`);
  const p = tokenProblem(token, ` in the token file ${JSON.stringify(path)}`);
  if (p !== undefined) throw problem(p);
  return token;
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The PEM blocks of a type in `text`. */
function pemBlocks(text: string, type: string): string[] {
  return [...text.matchAll(pemBlock)].filter((m) => m[1] === type).map((m) => m[0]);
}

/** A certificate chain file: at least one certificate, each of which parses. */
export function readCertFile(
  path: string,
  what = "certificate file",
): { pem: string; leaf: X509Certificate } {
  const text = readSmallFile(path, what, secretLimits.maxPemFileBytes);
  const blocks = pemBlocks(text, "CERTIFICATE");
  if (blocks.length === 0) {
    throw problem(
      `expected PEM certificates ("-----BEGIN CERTIFICATE-----") in the ${what} ${JSON.stringify(path)}, found none`,
    );
  }
  const certs: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(b));
    } catch (e) {
      throw problem(
        `certificate ${i + 1} in the ${what} ${JSON.stringify(path)} does not parse: ${(e as Error).message}`,
      );
    }
  }
  return { pem: text, leaf: certs[0]! };
}

/** A private key file: one unencrypted PEM key. */
export function readKeyFile(path: string): { pem: string; key: KeyObject } {
  const text = readSmallFile(path, "key file", secretLimits.maxPemFileBytes);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw problem(
      `the key file ${JSON.stringify(path)} holds an encrypted key: Vigil needs it unencrypted (protect the file instead)`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw problem(
      `expected a PEM private key ("-----BEGIN PRIVATE KEY-----") in the key file ${JSON.stringify(path)}, found none`,
    );
  }
  try {
    return { pem: text, key: createPrivateKey(text) };
  } catch (e) {
    throw problem(`the key in the key file ${JSON.stringify(path)} does not parse: ${(e as Error).message}`);
  }
}
