// Config reload (`vigil agent` on SIGHUP; README "Reloading the config", docs/security.md).
//
// The file is loaded again exactly as at start (src/config/load.ts, the CLI's --name/--join on
// top). A config that does not load changes nothing: the node keeps running on the config it
// has, and the error is logged (the message the CLI prints at start) and counted. A config that
// loads is applied without a restart, as far as it can be:
//
// - pools: a pool whose document in the file differs from the running file's is put, and a pool
//   gone from the file is deleted, both with cause "config" and replicated like any change.
//   Pools the file did not change are not written again (no event, nothing replicated), and
//   pools created through the API that neither file lists are left alone.
// - security: API tokens, the API certificate, key and CA, targets_allow (NodeSecurity).
// - everything else (the node's name, addresses, data_dir, store, join, gossip keys, TLS on or
//   off, alerts) takes a restart: each setting that differs is warned about by name, and the
//   node keeps running with its value.
//
// Reloads run one at a time; reloads asked for while one runs are folded into one more after it.

import { isDeepStrictEqual } from "node:util";
import type { Counter, Gauge } from "prom-client";
import type { ApiTlsSpec, ApiTokenSpec, NodeSpec, PoolSpec, VigilConfig } from "../config/types.ts";
import { isVigilError } from "../core/errors.ts";
import type { LiveSecurity, NodeSecurity } from "../serve/security.ts";
import type { Logger } from "./log.ts";

/** Node settings a reload applies; every other one, present or future, takes a restart. */
const liveNodeKeys: ReadonlySet<string> = new Set(["apiTokens", "apiTls", "targetsAllow"]);

/** What moving from the running config to a newly loaded one does. */
export interface ReloadPlan {
  /** Pools of the new file that the running file lacks or has with another document. */
  put: string[];
  /** Pools of the running file that the new one lacks. */
  remove: string[];
  /** Pools both files have with the same document. */
  unchanged: number;
  /** Settings that differ but take effect only at a restart, as config paths (`node.data_dir`, `alerts`). */
  restart: string[];
  /** The security settings to run with (TLS kept on or off as it is). */
  security: LiveSecurity;
}

/** `running`: the config the node runs; `next`: the one just loaded. Pure. */
export function planReload(running: VigilConfig, next: VigilConfig): ReloadPlan {
  const put: string[] = [];
  const remove: string[] = [];
  let unchanged = 0;
  for (const name of next.pools.keys()) {
    const before = running.rawPools.get(name);
    if (running.pools.has(name) && isDeepStrictEqual(before, next.rawPools.get(name))) unchanged++;
    else put.push(name);
  }
  for (const name of running.pools.keys()) if (!next.pools.has(name)) remove.push(name);

  const restart: string[] = [];
  const keys = new Set([...Object.keys(running.node), ...Object.keys(next.node)]);
  for (const key of keys) {
    if (liveNodeKeys.has(key)) continue;
    const a = (running.node as unknown as Record<string, unknown>)[key];
    const b = (next.node as unknown as Record<string, unknown>)[key];
    if (!isDeepStrictEqual(a, b)) restart.push(`node.${snakeCase(key)}`);
  }
  const tlsFlips = (running.node.apiTls === undefined) !== (next.node.apiTls === undefined);
  if (tlsFlips) restart.push("node.api_tls");
  if (!isDeepStrictEqual(running.alerts, next.alerts)) restart.push("alerts");

  return {
    put,
    remove,
    unchanged,
    restart,
    security: {
      apiTokens: next.node.apiTokens,
      // The listener is TLS or it is not: only its certificate can change in place.
      apiTls: tlsFlips ? running.node.apiTls : next.node.apiTls,
      targetsAllow: next.node.targetsAllow,
    },
  };
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** What the reloader needs from a node (VigilNode.reloadConfig builds it). */
export interface ReloadHost {
  /** The config the node runs: a reload that applies updates it in place. */
  config: VigilConfig;
  security: NodeSecurity;
  log: Logger;
  metrics: { configReloads: Counter<"result">; configLastReloadSuccess: Gauge };
  wallMs(): number;
  /** Puts a pool with cause "config" (validated already). */
  putPool(name: string, doc: unknown): void;
  /** Deletes a pool with cause "config"; false when there is none. */
  deletePool(name: string): boolean;
  /** After the pool changes: let the node run its cores (broadcast, schedule). */
  poolsChanged(): void;
  /** Serves another certificate on the API (a node started with TLS only). */
  replaceApiTls(tls: ApiTlsSpec): void;
  /** Security settings now in force that others must hear of: new tokens end the open event
   * streams (each resumes with a request the new tokens judge) and reach the lookup processes'
   * copy; a new allow list changes the target bodies the guard annotates. */
  securityChanged(change: {
    tokens: readonly ApiTokenSpec[] | undefined;
    tokensChanged: boolean;
    allowChanged: boolean;
  }): void;
}

export type ReloadResult =
  | {
      ok: true;
      /** Pools put (new or changed in the file). */
      put: string[];
      /** Pools deleted (gone from the file). */
      deleted: string[];
      unchanged: number;
      /** Security settings that changed: `node.api_tokens`, `node.api_tls`, `node.targets_allow`. */
      security: string[];
      /** Settings that changed but wait for a restart. */
      restart: string[];
    }
  | {
      ok: false;
      /** As the CLI prints a config error at start: `vigil.yaml: pools.web.rise: expected …`. */
      error: string;
    };

export type ConfigLoader = () => VigilConfig | Promise<VigilConfig>;

export class ConfigReloader {
  private readonly host: ReloadHost;
  private running: Promise<ReloadResult> | undefined;
  private queued: Promise<ReloadResult> | undefined;
  private load: ConfigLoader | undefined;

  constructor(host: ReloadHost) {
    this.host = host;
  }

  /**
   * Reloads with `load`. While a reload runs, further requests share one more reload after it
   * (with the latest loader), and get its result. Never rejects.
   */
  request(load: ConfigLoader): Promise<ReloadResult> {
    this.load = load;
    if (this.running === undefined) return this.begin();
    this.queued ??= this.running.then(() => {
      this.queued = undefined;
      return this.begin();
    });
    return this.queued;
  }

  private begin(): Promise<ReloadResult> {
    const load = this.load!;
    const p: Promise<ReloadResult> = this.once(load).finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async once(load: ConfigLoader): Promise<ReloadResult> {
    const { host } = this;
    let next: VigilConfig;
    let plan: ReloadPlan;
    let staged: ReturnType<NodeSecurity["stage"]>;
    try {
      next = await load();
      plan = planReload(host.config, next);
      staged = host.security.stage(plan.security);
      // The one step that can still fail (a certificate the TLS stack refuses) comes first, and
      // changes nothing when it does.
      if (staged.tls && plan.security.apiTls !== undefined) host.replaceApiTls(plan.security.apiTls);
    } catch (e) {
      return this.failed(e);
    }
    host.security.commit(staged);
    if (staged.tokens || staged.allow)
      host.securityChanged({
        tokens: plan.security.apiTokens,
        tokensChanged: staged.tokens,
        allowChanged: staged.allow,
      });

    const running = host.config;
    const pools = new Map<string, PoolSpec>(running.pools);
    const rawPools = new Map<string, unknown>(running.rawPools);
    const deleted: string[] = [];
    const put: string[] = [];
    const failures: string[] = [];
    for (const name of plan.remove) {
      try {
        if (host.deletePool(name)) deleted.push(name);
        pools.delete(name);
        rawPools.delete(name);
      } catch (e) {
        failures.push(`pool "${name}": ${describe(e)}`);
      }
    }
    for (const name of plan.put) {
      try {
        host.putPool(name, next.rawPools.get(name) ?? next.pools.get(name));
        pools.set(name, next.pools.get(name)!);
        rawPools.set(name, next.rawPools.get(name));
        put.push(name);
      } catch (e) {
        failures.push(`pool "${name}": ${describe(e)}`);
      }
    }
    if (plan.put.length > 0 || plan.remove.length > 0) host.poolsChanged();
    // What runs now: the file's pools as applied, the live security settings; the settings that
    // wait for a restart keep their running values, so the next reload warns about them again.
    running.pools = pools;
    running.rawPools = rawPools;
    setLive(running.node, plan.security);

    for (const field of plan.restart) {
      host.log.warn(
        { field },
        `config reload: ${field} changed and needs a restart; it keeps its running value`,
      );
    }
    const security = [
      ...(staged.tokens ? ["node.api_tokens"] : []),
      ...(staged.tls ? ["node.api_tls"] : []),
      ...(staged.allow ? ["node.targets_allow"] : []),
    ];
    if (failures.length > 0) {
      // Not expected (the pools were validated as the file was loaded); the pools that failed
      // keep their running state, and the next reload tries them again.
      return this.failed(new Error(`config reload applied in part: ${failures.join("; ")}`));
    }
    host.metrics.configReloads.labels("ok").inc();
    host.metrics.configLastReloadSuccess.set(host.wallMs() / 1000);
    host.log.info(
      { put, deleted, unchanged: plan.unchanged, security, restart: plan.restart },
      "config reloaded",
    );
    return { ok: true, put, deleted, unchanged: plan.unchanged, security, restart: plan.restart };
  }

  private failed(e: unknown): ReloadResult {
    const error = describe(e);
    this.host.metrics.configReloads.labels("error").inc();
    const where = isVigilError(e) ? { file: e.file, path: e.path } : {};
    this.host.log.error(where, `config reload failed, the node keeps its running config: ${error}`);
    return { ok: false, error };
  }
}

function describe(e: unknown): string {
  if (isVigilError(e)) return e.describe();
  return e instanceof Error ? e.message : String(e);
}

function setLive(node: NodeSpec, live: LiveSecurity): void {
  if (live.apiTokens === undefined) delete node.apiTokens;
  else node.apiTokens = [...live.apiTokens];
  if (live.apiTls === undefined) delete node.apiTls;
  else node.apiTls = live.apiTls;
  if (live.targetsAllow === undefined) delete node.targetsAllow;
  else node.targetsAllow = [...live.targetsAllow];
}
