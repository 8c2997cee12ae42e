// The real Prober: one checker per check type over real sockets.

import type { CheckSpec } from "../config/types.ts";
import { unreachable } from "../core/assert.ts";
import type { Attempt, CheckerContext } from "./attempt.ts";
import { checkDns } from "./dns.ts";
import { checkGrpc } from "./grpc.ts";
import { HttpChecker, httpKeepAliveMaxSocketsPerTarget, httpKeepAliveMaxSocketsTotal } from "./http.ts";
import { checkTcp } from "./tcp.ts";
import { checkTls } from "./tls.ts";
import { TlsContexts } from "./tls-context.ts";
import type { CheckRequest, CheckResult, Prober } from "./types.ts";

export type { CheckRequest, CheckResult, Prober } from "./types.ts";
export { parseCheckUrl, targetAddr } from "./url.ts";

export interface ProberOptions {
  /** Keep-alive HTTP connections per target; default httpKeepAliveMaxSocketsPerTarget. */
  keepAliveMaxSocketsPerTarget?: number;
  /** Keep-alive HTTP connections over all targets; default httpKeepAliveMaxSocketsTotal. */
  keepAliveMaxSocketsTotal?: number;
}

/** The real prober. `close()` ends checks in flight ("prober closed") and drops pooled connections. */
export function createProber(opts: ProberOptions = {}): Prober {
  return new RealProber(opts);
}

class RealProber implements Prober {
  private readonly ctx: CheckerContext = { inflight: new Set<Attempt>(), tls: new TlsContexts() };
  private readonly http: HttpChecker;
  private closed = false;

  constructor(opts: ProberOptions) {
    this.http = new HttpChecker(this.ctx, {
      maxSocketsPerTarget: opts.keepAliveMaxSocketsPerTarget ?? httpKeepAliveMaxSocketsPerTarget,
      maxSocketsTotal: opts.keepAliveMaxSocketsTotal ?? httpKeepAliveMaxSocketsTotal,
    });
  }

  check(req: CheckRequest): Promise<CheckResult> {
    if (this.closed) return Promise.resolve({ ok: false, latencyMs: 0, reason: "prober closed" });
    const spec: CheckSpec = req.spec;
    switch (spec.type) {
      case "http":
      case "https":
        return this.http.check(spec, req);
      case "tcp":
        return checkTcp(spec, req, this.ctx);
      case "dns":
        return checkDns(spec, req, this.ctx);
      case "grpc":
        return checkGrpc(spec, req, this.ctx);
      case "tls":
        return checkTls(spec, req, this.ctx);
      default:
        return unreachable(spec);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const a of [...this.ctx.inflight]) a.abort("prober closed");
    this.http.close();
    this.ctx.tls.clear();
  }
}
