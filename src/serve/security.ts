// A node's security settings put together (docs/security.md): the API's token check and TLS,
// the client it calls its peers' APIs with, and the guard that keeps it from checking targets
// outside its own `targets_allow`.

import { X509Certificate } from "node:crypto";
import { Counter, type Registry } from "prom-client";
import { TargetsAllow } from "../config/allow.ts";
import { assertPoolAllowed, parsePoolDocument } from "../config/load.ts";
import type { ApiTlsSpec, NodeSpec, TargetAddr } from "../config/types.ts";
import type { Logger } from "../runtime/log.ts";
import { type ApiAuth, createApiAuth, registerAuthMetrics } from "./api/auth.ts";
import { createPeerClient, type PeerClient } from "./api/peer-client.ts";

/** Shown as this node's observation reason on a target it owns but may not check. */
export const notAllowedReason = "not allowed by targets_allow on this node";

export const securityLimits = {
  /** Hosts whose allow decision is remembered; the cache starts over when full. */
  maxCachedHosts: 65_536,
  /** Pools named in "refusing to check" warnings; later ones are counted only. */
  maxWarnedPools: 1_000,
  /** A certificate expiring within this is warned about at start. */
  certExpiryWarnMs: 14 * 86_400_000,
} as const;

/**
 * Refuses checks of targets outside `targets_allow`, whichever way their pool arrived: a peer
 * with a looser list may replicate one, and a store may hold one written before the list was
 * narrowed. The node does not probe such a target; it writes no observation for it, so the
 * verdict comes from owners that may check it, or stays unknown.
 */
export class TargetGuard {
  private readonly allow: TargetsAllow;
  private readonly log: Logger | undefined;
  private readonly cache = new Map<string, boolean>();
  private readonly warned = new Set<string>();
  /** Checks refused since start, by pool. */
  readonly refusedByPool = new Map<string, number>();

  constructor(allow: TargetsAllow, log?: Logger) {
    this.allow = allow;
    this.log = log;
  }

  allowsHost(host: string): boolean {
    let ok = this.cache.get(host);
    if (ok === undefined) {
      ok = this.allow.allowsHost(host);
      if (this.cache.size >= securityLimits.maxCachedHosts) this.cache.clear();
      this.cache.set(host, ok);
    }
    return ok;
  }

  /** Whether this node may check `target` now; a refusal is counted, and warned about once per pool. */
  mayCheck(pool: string, target: TargetAddr): boolean {
    if (this.allowsHost(target.host)) return true;
    this.refusedByPool.set(pool, (this.refusedByPool.get(pool) ?? 0) + 1);
    if (!this.warned.has(pool) && this.warned.size < securityLimits.maxWarnedPools) {
      this.warned.add(pool);
      this.log?.warn(
        { pool, target: target.key, targetsAllow: this.allow.describe() },
        "not checking targets outside targets_allow (pool written elsewhere); their verdict comes from nodes that may check them",
      );
    }
    return false;
  }

  /** Throws VigilError(config) (400, path `targets[i]`) when a pool document names a target outside the list. */
  assertPoolDocument(name: string, doc: unknown): void {
    assertPoolAllowed(parsePoolDocument(name, doc), this.allow);
  }

  /**
   * A target view (`GET /v1/pools/{pool}[/targets/{t}]`) of a target this node owns but may not
   * check: its own observer entry and, when nothing else gives one, the target say why.
   */
  annotate(view: unknown, self: string): void {
    if (typeof view !== "object" || view === null) return;
    const v = view as { target?: unknown; reason?: unknown; observers?: unknown; checkRefused?: boolean };
    if (typeof v.target !== "string" || !Array.isArray(v.observers)) return;
    const host = hostOfKey(v.target);
    if (this.allowsHost(host)) return;
    const mine = (v.observers as { node?: unknown; reason?: unknown; owner?: unknown }[]).find(
      (o) => o.node === self,
    );
    if (mine === undefined || mine.owner !== true) return;
    if (mine.reason === "") mine.reason = notAllowedReason;
    if (v.reason === "") v.reason = notAllowedReason;
    v.checkRefused = true;
  }

  registerMetrics(registry: Registry): void {
    const self = this;
    new Counter({
      name: "vigil_checks_refused_total",
      help: "Checks this node did not run because the target is outside its targets_allow, by pool.",
      labelNames: ["pool"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, n] of self.refusedByPool) this.labels(pool).inc(n);
      },
    });
  }
}

/** "host" of a canonical "host:port" key ("[::1]:80" → "::1"). */
function hostOfKey(key: string): string {
  if (key.startsWith("[")) return key.slice(1, key.indexOf("]"));
  const colon = key.lastIndexOf(":");
  return colon < 0 ? key : key.slice(0, colon);
}

export interface NodeSecurity {
  /** Undefined when the node has no tokens: the API is open. */
  auth: ApiAuth | undefined;
  /** Undefined for plain HTTP. */
  tls: ApiTlsSpec | undefined;
  /** For calls to peers' APIs (history fan-out). */
  peers: PeerClient;
  /** Undefined without `targets_allow`: every target may be checked. */
  guard: TargetGuard | undefined;
}

/** Builds a node's security pieces and registers their metrics; warns about a certificate near expiry. */
export function createNodeSecurity(
  node: NodeSpec,
  deps: { logger?: Logger; registry?: Registry },
): NodeSecurity {
  const auth = createApiAuth(node.apiTokens, deps.logger === undefined ? {} : { logger: deps.logger });
  const tls = node.apiTls;
  const peers = createPeerClient({
    httpsOnly: tls !== undefined,
    ...(auth === undefined ? {} : { token: auth.peerToken }),
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
  });
  const guard =
    node.targetsAllow === undefined
      ? undefined
      : new TargetGuard(new TargetsAllow(node.targetsAllow), deps.logger);
  if (deps.registry !== undefined) {
    if (auth !== undefined) registerAuthMetrics(deps.registry, auth);
    guard?.registerMetrics(deps.registry);
  }
  if (tls !== undefined && deps.logger !== undefined) warnOnExpiry(tls, deps.logger);
  return { auth, tls, peers, guard };
}

function warnOnExpiry(tls: ApiTlsSpec, log: Logger): void {
  let validToMs: number;
  try {
    validToMs = Date.parse(new X509Certificate(tls.cert).validTo);
  } catch {
    return;
  }
  const leftMs = validToMs - Date.now();
  if (leftMs < securityLimits.certExpiryWarnMs) {
    log.warn(
      { cert: tls.certFile, validTo: new Date(validToMs).toISOString() },
      leftMs <= 0 ? "the API certificate has expired" : "the API certificate expires soon",
    );
  }
}
