// Loading: file → YAML → schema → layered, normalized VigilConfig. Every failure is one
// VigilError(config) naming the file, the path inside it and what was expected there.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { parseDocument, type YAMLError } from "yaml";
import type { z } from "zod";
import { assert, unreachable } from "../core/assert.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { TargetsAllow } from "./allow.ts";
import { formatDurationMs } from "./duration.ts";
import { formatPath } from "./messages.ts";
import {
  builtinPoolDefaults,
  configSchema,
  type DefaultsDocument,
  defaultsSchema,
  nodeSchema,
  type PoolDocument,
  policyKeys,
  poolNameProblem,
  poolSchema,
} from "./schema.ts";
import type { CheckSpec, PoolSpec, StatusRange, VigilConfig } from "./types.ts";

/** Pool timing and policy values that `defaults:` may set, normalized (ms, camelCase). */
export type PoolDefaults = Partial<
  Pick<
    PoolSpec,
    | "intervalMs"
    | "fastIntervalMs"
    | "downIntervalMs"
    | "timeoutMs"
    | "jitter"
    | "rise"
    | "fall"
    | "observers"
    | "verdict"
    | "spread"
    | "failOpen"
  >
>;

/** Aliases are expanded on load; this bounds a "billion laughs" document. */
const maxYamlAliases = 100;
const readChunkBytes = 64 * 1024;

/** Reads, parses and validates a config file. */
export function loadConfigFile(path: string): VigilConfig {
  return parseConfigText(readConfigFile(path), path);
}

/** Parses and validates config text; `fileLabel` names it in errors (a path, or "<demo>"). */
export function parseConfigText(text: string, fileLabel: string): VigilConfig {
  const root = parseYaml(text, fileLabel);
  const parsed = configSchema.safeParse(root);
  if (!parsed.success) throw issueError(parsed.error.issues, root, [], fileLabel);
  const doc = parsed.data;

  const defaults = defaultsFromDocument(doc.defaults ?? {});
  const pools = new Map<string, PoolSpec>();
  const rawPools = new Map<string, unknown>();
  const rawDefaults = asRecord(asRecord(root).defaults);
  const rawPoolDocs = asRecord(asRecord(root).pools);
  for (const [name, poolDoc] of Object.entries(doc.pools ?? {})) {
    pools.set(
      name,
      resolvePool(name, poolDoc, defaults, { pool: ["pools", name], defaults: ["defaults"] }, fileLabel),
    );
    rawPools.set(name, withDefaults(asRecord(rawPoolDocs[name]), rawDefaults));
  }
  // `node:` absent or empty: every node setting takes its default.
  const config: VigilConfig = { node: doc.node ?? nodeSchema.parse({}), pools, rawPools };
  const allowList = config.node.targetsAllow;
  if (allowList !== undefined) {
    // The file is held to the node's own list like any other pool write (docs/security.md).
    const allow = new TargetsAllow(allowList);
    for (const [name, spec] of pools) {
      const refused = allow.firstRefused(spec.targets);
      if (refused !== undefined) {
        throw configError(
          allow.refusal(refused.target),
          ["pools", name, "targets", refused.index],
          fileLabel,
        );
      }
    }
  }
  if (doc.alerts !== undefined) config.alerts = doc.alerts;
  return config;
}

/**
 * Validates a pool document (a `PUT /v1/pools/{pool}` body, or a replicated spec). Errors
 * carry a path relative to the pool (`check.expect.status[1]`) and no file.
 */
export function parsePoolDocument(name: string, doc: unknown, defaults: PoolDefaults = {}): PoolSpec {
  const nameProblem = poolNameProblem(name);
  if (nameProblem !== undefined) throw new VigilError(ErrorCode.config, nameProblem);
  const parsed = poolSchema.safeParse(doc);
  if (!parsed.success) throw issueError(parsed.error.issues, doc, [], undefined);
  return resolvePool(name, parsed.data, defaults, { pool: [] }, undefined);
}

/**
 * Throws VigilError(config) with the path of the first target outside `allow`
 * (`targets[2]`, relative to the pool, as a `PUT /v1/pools/{pool}` error carries it).
 */
export function assertPoolAllowed(spec: PoolSpec, allow: TargetsAllow): void {
  const refused = allow.firstRefused(spec.targets);
  if (refused !== undefined)
    throw configError(allow.refusal(refused.target), ["targets", refused.index], undefined);
}

/** Validates a `defaults:` document on its own (paths relative to it). */
export function parseDefaultsDocument(doc: unknown): PoolDefaults {
  const parsed = defaultsSchema.safeParse(doc);
  if (!parsed.success) throw issueError(parsed.error.issues, doc, [], undefined);
  return defaultsFromDocument(parsed.data);
}

/**
 * The document form of a pool (snake_case, duration strings, every value explicit), for
 * echoing and replicating: `parsePoolDocument(p.name, poolToDocument(p))` deep-equals `p`.
 */
export function poolToDocument(spec: PoolSpec): Record<string, unknown> {
  return {
    check: checkToDocument(spec.check),
    targets: spec.targets.map((t) => t.key),
    interval: formatDurationMs(spec.intervalMs),
    fastinter: formatDurationMs(spec.fastIntervalMs),
    downinter: formatDurationMs(spec.downIntervalMs),
    timeout: formatDurationMs(spec.timeoutMs),
    jitter: spec.jitter,
    rise: spec.rise,
    fall: spec.fall,
    observers: spec.observers,
    verdict: spec.verdict,
    spread: spec.spread,
    fail_open: spec.failOpen,
  };
}

// ── reading and YAML ──

function readConfigFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new VigilError(ErrorCode.config, `cannot open the config file: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new VigilError(ErrorCode.config, "expected a regular file", { file: path });
    if (stat.size > limits.maxConfigBytes) throw tooLarge(stat.size, path);
    // Read to EOF rather than trusting the size: the file may grow while we read it.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(readChunkBytes);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > limits.maxConfigBytes) throw tooLarge(total, path);
      chunks.push(chunk.subarray(0, n));
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks, total));
    } catch (e) {
      throw new VigilError(ErrorCode.config, "expected UTF-8 text, got bytes that are not valid UTF-8", {
        file: path,
        cause: e,
      });
    }
  } catch (e) {
    if (e instanceof VigilError) throw e;
    throw new VigilError(ErrorCode.config, `cannot read the config file: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  } finally {
    closeSync(fd);
  }
}

function tooLarge(bytes: number, file: string): VigilError {
  const limitMiB = limits.maxConfigBytes / (1024 * 1024);
  return new VigilError(
    ErrorCode.config,
    `expected a file of at most ${limits.maxConfigBytes} bytes (${limitMiB} MiB), got ${bytes} bytes or more`,
    { file },
  );
}

function parseYaml(text: string, file: string): unknown {
  // "core" is YAML 1.2: `yes`/`no`/`on` stay strings, so `tls_verify: no` is an error, not a surprise.
  const doc = parseDocument(text, { schema: "core", prettyErrors: true, uniqueKeys: true, strict: true });
  // Warnings (an unknown tag like `!foo`) change what a value means; refuse them like errors.
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) throw yamlError(problem, file);
  if (doc.contents === null) {
    throw new VigilError(
      ErrorCode.config,
      "the file is empty: expected a mapping with node, defaults and pools",
      {
        file,
      },
    );
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: maxYamlAliases });
  } catch (e) {
    throw new VigilError(ErrorCode.config, `invalid YAML: ${(e as Error).message}`, { file, cause: e });
  }
  if (root === null || root === undefined) {
    throw new VigilError(
      ErrorCode.config,
      "the file is empty: expected a mapping with node, defaults and pools",
      {
        file,
      },
    );
  }
  return root;
}

function yamlError(error: YAMLError, file: string): VigilError {
  const position = error.linePos?.[0];
  // The library's message repeats the position and appends a source excerpt; keep the reason.
  const reason = (error.message.split("\n")[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, "");
  const where = position === undefined ? "" : ` at line ${position.line}, column ${position.col}`;
  return new VigilError(ErrorCode.config, `invalid YAML${where}: ${reason}`, { file, cause: error });
}

// ── issues to errors ──

/** Turns the first zod issue into the one error we report. */
function issueError(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  prefix: readonly PropertyKey[],
  file: string | undefined,
): VigilError {
  const issue = firstProblem(issues, input);
  const path: PropertyKey[] = [...prefix, ...issue.path];
  let message = issue.message;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0];
    if (key !== undefined) path.push(key);
  } else if (issue.code === "invalid_key") {
    message = issue.issues[0]?.message ?? message;
  }
  return configError(message, path, file);
}

function configError(message: string, path: readonly PropertyKey[], file: string | undefined): VigilError {
  const formatted = formatPath(path);
  const opts: { path?: string; file?: string } = {};
  if (formatted !== "") opts.path = formatted;
  if (file !== undefined) opts.file = file;
  return new VigilError(ErrorCode.config, message, opts);
}

/**
 * zod reports issues in schema order. One case deserves reordering: a misspelt required
 * key shows up both as missing and as unknown, and the unknown one names the typo.
 */
function firstProblem(issues: readonly z.core.$ZodIssue[], input: unknown): z.core.$ZodIssue {
  const first = issues[0];
  assert(first !== undefined, "a failed parse has at least one issue");
  if (first.path.length > 0 && valueAt(input, first.path) === undefined) {
    const parent = first.path.slice(0, -1);
    const unknownKey = issues.find((i) => i.code === "unrecognized_keys" && samePath(i.path, parent));
    if (unknownKey !== undefined) return unknownKey;
  }
  return first;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const segment of path) {
    if (typeof value !== "object" || value === null) return undefined;
    if (!Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function samePath(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  return a.length === b.length && a.every((segment, i) => segment === b[i]);
}

// ── layering ──

function defaultsFromDocument(doc: DefaultsDocument): PoolDefaults {
  const out: PoolDefaults = {};
  if (doc.interval !== undefined) out.intervalMs = doc.interval;
  if (doc.fastinter !== undefined) out.fastIntervalMs = doc.fastinter;
  if (doc.downinter !== undefined) out.downIntervalMs = doc.downinter;
  if (doc.timeout !== undefined) out.timeoutMs = doc.timeout;
  if (doc.jitter !== undefined) out.jitter = doc.jitter;
  if (doc.rise !== undefined) out.rise = doc.rise;
  if (doc.fall !== undefined) out.fall = doc.fall;
  if (doc.observers !== undefined) out.observers = doc.observers;
  if (doc.verdict !== undefined) out.verdict = doc.verdict;
  if (doc.spread !== undefined) out.spread = doc.spread;
  if (doc.fail_open !== undefined) out.failOpen = doc.fail_open;
  return out;
}

type Origin = "pool" | "defaults" | "builtin";
interface Sourced<T> {
  value: T;
  from: Origin;
}

/** Where errors about a pool point: its own keys, and the defaults section when there is one. */
interface PoolLocation {
  pool: readonly PropertyKey[];
  defaults?: readonly PropertyKey[];
}

function resolvePool(
  name: string,
  doc: PoolDocument,
  defaults: PoolDefaults,
  at: PoolLocation,
  file: string | undefined,
): PoolSpec {
  const own = defaultsFromDocument(doc);
  function pick<K extends keyof PoolDefaults>(key: K, fallback: Sourced<NonNullable<PoolDefaults[K]>>) {
    const mine = own[key];
    if (mine !== undefined) return { value: mine as NonNullable<PoolDefaults[K]>, from: "pool" as Origin };
    const inherited = defaults[key];
    if (inherited !== undefined)
      return { value: inherited as NonNullable<PoolDefaults[K]>, from: "defaults" as Origin };
    return fallback;
  }
  const builtin = <T>(value: T): Sourced<T> => ({ value, from: "builtin" });

  const interval = pick("intervalMs", builtin(builtinPoolDefaults.intervalMs));
  // HAProxy: fastinter and downinter default to inter, wherever inter came from.
  const fastInterval = pick("fastIntervalMs", interval);
  const downInterval = pick("downIntervalMs", interval);
  // The built-in timeout never exceeds the interval: `interval: 1s` alone must not be an error
  // about a key the user did not write.
  const timeout = pick("timeoutMs", builtin(Math.min(builtinPoolDefaults.timeoutMs, interval.value)));
  const observers = pick("observers", builtin(builtinPoolDefaults.observers));
  const verdict = pick("verdict", builtin(builtinPoolDefaults.verdict));

  const locate = (key: string, from: Origin): { path: PropertyKey[]; note: string } => {
    if (from === "pool") return { path: [...at.pool, key], note: "" };
    if (at.defaults !== undefined) return { path: [...at.defaults, key], note: "" };
    return { path: [...at.pool, key], note: " (from defaults)" };
  };
  const origin = (from: Origin): string =>
    from === "defaults" ? " from defaults" : from === "builtin" ? " by default" : "";

  // The timeout is bounded by the interval only: a fastinter below the timeout is normal
  // (HAProxy's `fastinter 500ms` with a 1 s check timeout); the scheduler never overlaps
  // two checks of one target.
  if (timeout.value > interval.value) {
    const intervalText = formatDurationMs(interval.value);
    const timeoutText = formatDurationMs(timeout.value);
    // Blame the key the pool itself set; only if it set neither, blame defaults.
    if (timeout.from === "pool" || (interval.from !== "pool" && timeout.from === "defaults")) {
      const { path, note } = locate("timeout", timeout.from);
      throw configError(
        `expected a timeout no longer than the interval (${intervalText}${origin(interval.from)}), got "${timeoutText}"${note}`,
        path,
        file,
      );
    }
    const { path, note } = locate("interval", interval.from);
    throw configError(
      `expected an interval no shorter than the timeout (${timeoutText}${origin(timeout.from)}), got "${intervalText}"${note}`,
      path,
      file,
    );
  }

  // A verdict needing more down votes than there are observers could never mark a target down.
  if (typeof verdict.value === "number" && verdict.value > observers.value) {
    if (verdict.from === "pool" || (observers.from !== "pool" && verdict.from === "defaults")) {
      const { path, note } = locate("verdict", verdict.from);
      throw configError(
        `expected a verdict no larger than observers (${observers.value}${origin(observers.from)}), got ${verdict.value}${note}`,
        path,
        file,
      );
    }
    const { path, note } = locate("observers", observers.from);
    throw configError(
      `expected at least as many observers as the verdict needs (${verdict.value}${origin(verdict.from)}), got ${observers.value}${note}`,
      path,
      file,
    );
  }

  return {
    name,
    check: doc.check,
    targets: doc.targets,
    intervalMs: interval.value,
    fastIntervalMs: fastInterval.value,
    downIntervalMs: downInterval.value,
    timeoutMs: timeout.value,
    jitter: pick("jitter", builtin(builtinPoolDefaults.jitter)).value,
    rise: pick("rise", builtin(builtinPoolDefaults.rise)).value,
    fall: pick("fall", builtin(builtinPoolDefaults.fall)).value,
    observers: observers.value,
    verdict: verdict.value,
    spread: pick("spread", builtin(builtinPoolDefaults.spread)).value,
    failOpen: pick("failOpen", builtin(builtinPoolDefaults.failOpen)).value,
  };
}

/**
 * The pool document as written, with the file's `defaults:` filled in under its own keys:
 * a replicated or echoed pool then means the same on a node whose file has other defaults.
 */
function withDefaults(pool: Record<string, unknown>, defaults: Record<string, unknown>): unknown {
  const merged: Record<string, unknown> = { ...pool };
  for (const key of policyKeys) {
    if (merged[key] === undefined && defaults[key] !== undefined) merged[key] = defaults[key];
  }
  return structuredClone(merged);
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

// ── back to documents ──

function statusToDocument(range: StatusRange): string {
  return range.lo === range.hi ? String(range.lo) : `${range.lo}-${range.hi}`;
}

function checkToDocument(check: CheckSpec): Record<string, unknown> {
  const doc: Record<string, unknown> = { type: check.type };
  const put = (key: string, value: unknown): void => {
    if (value !== undefined) doc[key] = value;
  };
  switch (check.type) {
    case "http":
    case "https": {
      const expect: Record<string, unknown> = { status: check.expect.status.map(statusToDocument) };
      if (check.expect.bodyContains !== undefined) expect.body_contains = check.expect.bodyContains;
      if (check.expect.bodyRegex !== undefined) expect.body_regex = check.expect.bodyRegex;
      put("method", check.method);
      put("path", check.path);
      put("headers", { ...check.headers });
      put("host", check.host);
      put("expect", expect);
      put("max_body_bytes", check.maxBodyBytes);
      put("keepalive", check.keepalive);
      // Plain http has no TLS keys; written out only if set, so a malformed spec fails loudly on re-parse.
      put("sni", check.sni);
      if (check.type === "https" || !check.tlsVerify) put("tls_verify", check.tlsVerify);
      put("tls_ca", check.tlsCa);
      return doc;
    }
    case "tcp":
      put("send", check.send);
      put("expect", check.expect);
      return doc;
    case "dns":
      put("name", check.name);
      put("record_type", check.recordType);
      put("expect_answer", check.expectAnswer);
      put("protocol", check.protocol);
      return doc;
    case "grpc":
      put("service", check.service);
      put("tls", check.tls);
      put("tls_verify", check.tlsVerify);
      put("tls_ca", check.tlsCa);
      put("authority", check.authority);
      return doc;
    case "tls":
      put("sni", check.sni);
      put("min_days", check.minDays);
      put("tls_verify", check.tlsVerify);
      put("tls_ca", check.tlsCa);
      return doc;
    default:
      return unreachable(check);
  }
}
