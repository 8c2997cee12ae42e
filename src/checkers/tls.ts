// TLS checks: a handshake (with SNI when the name allows it) and a look at the peer
// certificate. Verification failures are read from the socket rather than thrown by the
// handshake, so an expired or untrusted certificate is reported for what it is.

import { isIP } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { TargetAddr, TlsCheckSpec } from "../config/types.ts";
import { Attempt, type CheckerContext } from "./attempt.ts";
import type { TlsContexts } from "./tls-context.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

const dayMs = 24 * 3600 * 1000;

export function checkTls(spec: TlsCheckSpec, req: CheckRequest, ctx: CheckerContext): Promise<CheckResult> {
  return new TlsAttempt(spec, req, ctx).run();
}

/** The verdict on a certificate valid until `validToMs` (wall clock): up while more than minDays remain. */
export function expiryReason(
  validToMs: number,
  nowMs: number,
  minDays: number,
): { ok: boolean; reason: string } {
  const daysLeft = (validToMs - nowMs) / dayMs;
  if (daysLeft <= 0) return { ok: false, reason: `certificate expired ${(-daysLeft).toFixed(1)} days ago` };
  if (daysLeft <= minDays) {
    return { ok: false, reason: `certificate expires in ${daysLeft.toFixed(1)} days (< ${minDays})` };
  }
  const whole = Math.floor(daysLeft);
  return { ok: true, reason: `certificate valid ${whole} day${whole === 1 ? "" : "s"}` };
}

// The verifier reports bare OpenSSL codes; the common ones get words.
const certProblems: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
  SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in chain",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "unable to verify the first certificate",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "unknown issuer",
  CERT_HAS_EXPIRED: "certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "name not in the certificate",
};

function certProblem(code: string): string {
  const words = certProblems[code];
  return words === undefined ? code : `${words} (${code})`;
}

class TlsAttempt extends Attempt {
  private readonly tls: TlsContexts;
  private readonly spec: TlsCheckSpec;
  private readonly target: TargetAddr;
  private socket: TLSSocket | undefined;

  constructor(spec: TlsCheckSpec, req: CheckRequest, ctx: CheckerContext) {
    super(req, ctx.inflight);
    this.tls = ctx.tls;
    this.spec = spec;
    this.target = req.target;
  }

  protected start(): void {
    const { spec, target } = this;
    const trust = this.tls.get(spec.tlsCa);
    const servername = spec.sni ?? (isIP(target.host) === 0 ? target.host : "");
    const socket = tlsConnect({
      host: target.host,
      port: target.port,
      servername,
      secureContext: trust.context,
      // Verification is judged below, so its failure gets a clear reason.
      rejectUnauthorized: false,
    });
    this.socket = socket;
    socket.on("secureConnect", this.onSecure);
    socket.on("error", this.onError);
  }

  private readonly onSecure = (): void => {
    const socket = this.socket!;
    const cert = socket.getPeerCertificate();
    if (cert === null || cert.valid_to === undefined) {
      this.finish(false, "no peer certificate");
      return;
    }
    const nowMs = Date.now();
    const validToMs = Date.parse(cert.valid_to);
    const validFromMs = Date.parse(cert.valid_from);
    if (Number.isNaN(validToMs)) {
      this.finish(false, `unreadable certificate expiry ${cert.valid_to}`);
      return;
    }
    // Expiry first: "expired 3 days ago" says more than the verifier's CERT_HAS_EXPIRED.
    if (validToMs <= nowMs) {
      this.finish(false, expiryReason(validToMs, nowMs, this.spec.minDays).reason);
      return;
    }
    if (validFromMs > nowMs) {
      this.finish(false, `certificate not valid before ${cert.valid_from}`);
      return;
    }
    if (this.spec.tlsVerify && !socket.authorized) {
      this.finish(false, `certificate not trusted: ${certProblem(String(socket.authorizationError))}`);
      return;
    }
    const e = expiryReason(validToMs, nowMs, this.spec.minDays);
    this.finish(e.ok, e.reason);
  };

  private readonly onError = (err: Error): void => {
    this.fail(err);
  };

  protected release(): void {
    this.socket?.destroy();
  }
}
