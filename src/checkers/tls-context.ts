// TLS secure contexts built once per CA source: tls.connect without a context would parse
// the CA bundle (or copy the system store) on every connection.

import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";
import { errorReason } from "./attempt.ts";

export interface TlsTrust {
  context: SecureContext;
  /** The PEM bundle when the trust comes from a file: part of a keep-alive pool's key. */
  ca: Buffer | undefined;
}

export class TlsContexts {
  private system: TlsTrust | undefined;
  private readonly byCaPath = new Map<string, TlsTrust>();

  /**
   * The trust for `caPath` (the system store when undefined). A file is read once and
   * kept; a read failure is not kept, so a bundle that appears later is picked up.
   * Throws a plain Error naming the file when it cannot be read or parsed.
   */
  get(caPath: string | undefined): TlsTrust {
    if (caPath === undefined) {
      if (this.system === undefined) this.system = { context: createSecureContext(), ca: undefined };
      return this.system;
    }
    const known = this.byCaPath.get(caPath);
    if (known !== undefined) return known;
    let trust: TlsTrust;
    try {
      const ca = readFileSync(caPath);
      trust = { context: createSecureContext({ ca }), ca };
    } catch (e) {
      throw new Error(`tls_ca ${caPath}: ${errorReason(e)}`);
    }
    this.byCaPath.set(caPath, trust);
    return trust;
  }

  clear(): void {
    this.system = undefined;
    this.byCaPath.clear();
  }
}
