// A node's security settings put together (docs/security.md): the API's token check and TLS,
// the client it calls its peers' APIs with, and the guard that keeps it from checking targets
// outside its own `targets_allow`. A config reload (src/runtime/reload.ts) swaps them in place.

import { X509Certificate } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { Counter, type Registry } from "prom-client";
import { TargetsAllow } from "../config/allow.ts";
import { assertPoolAllowed, parsePoolDocument } from "../config/load.ts";
import type { ApiTlsSpec, ApiTokenSpec, NodeSpec, TargetAddr } from "../config/types.ts";
import type { Logger } from "../runtime/log.ts";
import { ApiAuth, registerAuthMetrics } from "./api/auth.ts";
import { createPeerClient, openPeerClient, type PeerClient } from "./api/peer-client.ts";

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
  private allow: TargetsAllow;
  private readonly log: Logger | undefined;
  private readonly cache = new Map<string, boolean>();
  private readonly warned = new Set<string>();
  /** Checks refused since start, by pool. */
  readonly refusedByPool = new Map<string, number>();

  constructor(allow: TargetsAllow, log?: Logger) {
    this.allow = allow;
    this.log = log;
  }

  /**
   * Holds targets to `allow` from now on (a config reload): decisions are made again, and a
   * pool refused under the new list is warned about again. Refusal counts carry on.
   */
  setAllow(allow: TargetsAllow): void {
    this.allow = allow;
    this.cache.clear();
    this.warned.clear();
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

/** The security settings a config reload changes without a restart (docs/security.md). */
export interface LiveSecurity {
  apiTokens: readonly ApiTokenSpec[] | undefined;
  /** With TLS on, the certificate, key and CA may change; TLS itself cannot be turned on or off. */
  apiTls: ApiTlsSpec | undefined;
  targetsAllow: readonly string[] | undefined;
}

/** What a staged update changes; `commit` it, or drop it to change nothing. */
export interface StagedSecurity {
  tokens: boolean;
  tls: boolean;
  allow: boolean;
  readonly next: LiveSecurity;
  readonly allowList: TargetsAllow | undefined;
}

/**
 * A node's security pieces: the API's token check and TLS, the client it calls its peers' APIs
 * with, and the target guard. A config reload swaps them in place (stage, then commit), so the
 * API server, the history fan-out and the scheduler see the new settings on their next request
 * or check; the counters behind the metrics carry on.
 */
export class NodeSecurity {
  /** For calls to peers' APIs (history fan-out); sends the token and trusts the CA in force. */
  readonly peers: PeerClient;
  private current: LiveSecurity;
  /** Made when tokens are first configured, kept when they are removed: its failure counts. */
  private authImpl: ApiAuth | undefined;
  private authOn = false;
  private guardImpl: TargetGuard | undefined;
  private guardOn = false;
  private peerClient: PeerClient = openPeerClient;
  /** Fixed at start: a node that serves HTTPS calls its peers over HTTPS only. */
  private readonly httpsOnly: boolean;
  private readonly logger: Logger | undefined;
  private readonly registry: Registry | undefined;

  constructor(node: NodeSpec, deps: { logger?: Logger; registry?: Registry } = {}) {
    this.logger = deps.logger;
    this.registry = deps.registry;
    this.httpsOnly = node.apiTls !== undefined;
    this.current = { apiTokens: undefined, apiTls: undefined, targetsAllow: undefined };
    this.peers = { get: (url, o) => this.peerClient.get(url, o) };
    this.commit(
      this.stage({ apiTokens: node.apiTokens, apiTls: node.apiTls, targetsAllow: node.targetsAllow }),
    );
  }

  /** Undefined when the node has no tokens: the API is open. */
  get auth(): ApiAuth | undefined {
    return this.authOn ? this.authImpl : undefined;
  }

  /** Undefined for plain HTTP. */
  get tls(): ApiTlsSpec | undefined {
    return this.current.apiTls;
  }

  /** Undefined without `targets_allow`: every target may be checked. */
  get guard(): TargetGuard | undefined {
    return this.guardOn ? this.guardImpl : undefined;
  }

  /**
   * What moving to `next` would change, with everything that can fail done (the allow list
   * compiled); nothing is changed yet. Throws VigilError(config) on a list that does not compile.
   */
  stage(next: LiveSecurity): StagedSecurity {
    if ((next.apiTls !== undefined) !== this.httpsOnly) {
      throw new Error("invariant: TLS cannot be turned on or off without a restart");
    }
    const cur = this.current;
    const tokens = !isDeepStrictEqual(tokenIdentity(cur.apiTokens), tokenIdentity(next.apiTokens));
    const tls = !isDeepStrictEqual(tlsIdentity(cur.apiTls), tlsIdentity(next.apiTls));
    const allow = !isDeepStrictEqual(cur.targetsAllow, next.targetsAllow);
    const allowList =
      allow && next.targetsAllow !== undefined ? new TargetsAllow([...next.targetsAllow]) : undefined;
    return { tokens, tls, allow, next, allowList };
  }

  /** Puts a staged update in force. Does not throw. */
  commit(staged: StagedSecurity): void {
    const { next } = staged;
    if (staged.tokens) {
      const tokens = next.apiTokens ?? [];
      if (tokens.length === 0) {
        this.authOn = false;
      } else if (this.authImpl !== undefined) {
        this.authImpl.setTokens(tokens);
        this.authOn = true;
      } else {
        this.authImpl = new ApiAuth(tokens, this.logger === undefined ? {} : { logger: this.logger });
        this.authOn = true;
        if (this.registry !== undefined) registerAuthMetrics(this.registry, this.authImpl);
      }
    }
    if (staged.allow) {
      if (staged.allowList === undefined) {
        this.guardOn = false;
      } else if (this.guardImpl !== undefined) {
        this.guardImpl.setAllow(staged.allowList);
        this.guardOn = true;
      } else {
        this.guardImpl = new TargetGuard(staged.allowList, this.logger);
        this.guardOn = true;
        if (this.registry !== undefined) this.guardImpl.registerMetrics(this.registry);
      }
    }
    if (staged.tls && next.apiTls !== undefined && this.logger !== undefined) {
      warnOnExpiry(next.apiTls, this.logger);
    }
    this.current = next;
    if (staged.tokens || staged.tls) {
      const auth = this.auth;
      this.peerClient = createPeerClient({
        httpsOnly: this.httpsOnly,
        ...(auth === undefined ? {} : { token: auth.peerToken }),
        ...(next.apiTls?.ca === undefined ? {} : { ca: next.apiTls.ca }),
      });
    }
  }
}

/** What makes tokens the same tokens: where they were read from does not matter. */
function tokenIdentity(tokens: readonly ApiTokenSpec[] | undefined): unknown {
  return (tokens ?? []).map((t) => [t.name, t.scope, t.token]);
}

function tlsIdentity(tls: ApiTlsSpec | undefined): unknown {
  return tls === undefined ? undefined : [tls.cert, tls.key, tls.ca];
}

/** Builds a node's security pieces and registers their metrics; warns about a certificate near expiry. */
export function createNodeSecurity(
  node: NodeSpec,
  deps: { logger?: Logger; registry?: Registry },
): NodeSecurity {
  return new NodeSecurity(node, deps);
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
