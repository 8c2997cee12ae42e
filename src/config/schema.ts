// The config file's own form, as zod schemas: snake_case keys, duration strings, strict
// mappings (a typo is an error, never a silently ignored key). Every schema carries its own
// message in the "expected …, got …" form; load.ts turns the first issue into a VigilError.
//
// The pool schema validates each key alone. Layering (defaults < pool < built-in defaults)
// and the checks that span keys (timeout ≤ interval) happen in load.ts, after layering.

import { isIP, isIPv6 } from "node:net";
import { hostname } from "node:os";
import { z } from "zod";
import { ErrorCode, isVigilError, VigilError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import {
  AddressProblem,
  canonicalIPv6,
  isDnsQueryName,
  isHostName,
  isIPv4,
  parseHostPort,
} from "./address.ts";
import { allowLimits, parseAllowRule } from "./allow.ts";
import { formatDurationMs, parseDurationMs } from "./duration.ts";
import {
  historyConfigLimits,
  historyDefaults,
  type NodeHistoryKeys,
  postgresSchemaPattern,
  type RetentionSetting,
  redactStoreUrl,
  type StoreSetting,
} from "./history.ts";
import { describeValue, didYouMean, expectedGot, unknownKeyMessage } from "./messages.ts";
import { poolNamePattern } from "./names.ts";
import { readCertFile, readKeyFile, readTokenFile, secretLimits, tokenProblem } from "./secrets.ts";
import type {
  AlertDeliverySpec,
  AlertRuleSpec,
  AlertSinkSpec,
  AlertStormSpec,
  AlertsSpec,
  AlertTransition,
  ApiTlsSpec,
  ApiTokenSpec,
  DnsCheckSpec,
  GrpcCheckSpec,
  HttpCheckSpec,
  NodeSpec,
  Profile,
  Spread,
  StatusRange,
  TargetAddr,
  TcpCheckSpec,
  TlsCheckSpec,
  VerdictPolicy,
} from "./types.ts";

/** Bounds on config values that src/core/limits.ts does not name (local to the config module). */
export const configLimits = {
  /** HTTP check request path; longer paths are refused rather than truncated. */
  maxCheckPathChars: 2048,
  maxHeaderValueChars: 4096,
  /** body_contains, tcp send / expect, dns expect_answer: a marker, not a document. */
  maxMatchChars: 4096,
  /** body_regex source; long patterns are where catastrophic backtracking hides. */
  maxRegexChars: 1024,
  maxStatusRanges: 32,
  maxJoinAddresses: 1024,
  /** node.lookup_threads: more than a machine has cores only adds switching. */
  maxLookupThreads: 64,
  /** Keys in the keyring: one active plus the ones still being rotated out. */
  maxEncryptKeys: 16,
  /** Node names and zones: they travel in every gossip message and metric label. */
  maxNodeNameChars: 128,
  maxPathChars: 4096,
  maxGrpcServiceChars: 256,
  /** A tls check warning further out than ten years is a typo. */
  maxMinDays: 3650,
  maxWeight: 1000,
} as const;

/** Built-in pool defaults, under `defaults:` and the pool's own keys. */
export const builtinPoolDefaults = {
  /** 10 s: HAProxy's `inter` is 2 s, but we check from several nodes; 10 s matches Consul's usual check. */
  intervalMs: 10_000,
  /** 2 s: long enough for a cross-region TLS handshake, short enough to fail fast. */
  timeoutMs: 2_000,
  /** ±10 % keeps nodes that started together from probing in lockstep. */
  jitter: 0.1,
  /** HAProxy's defaults: 2 successes to come up, 3 failures to go down. */
  rise: 2,
  fall: 3,
  /** Two vantage points: one node's network trouble cannot mark a target down alone. */
  observers: 2,
  verdict: "majority" as VerdictPolicy,
  spread: "none" as Spread,
  /** Off: serving known-bad targets is a choice to make per pool, not a default. */
  failOpen: false,
} as const;

export const nodeDefaults = {
  gossip: "127.0.0.1:7946",
  api: "127.0.0.1:7000",
  /** Nodes without a zone share one, so `spread: zone` degrades to plain placement. */
  zone: "default",
  weight: 1,
  dataDir: "./vigil-data",
  profile: "lan" as Profile,
} as const;

export const checkDefaults = {
  method: "GET",
  path: "/",
  status: [{ lo: 200, hi: 399 }] as readonly StatusRange[],
  maxBodyBytes: limits.maxBodyBytesDefault,
  tlsVerify: true,
  /** A fresh connection per check, so a dead backend cannot hide behind a pooled socket. */
  keepalive: false,
  recordType: "A" as DnsCheckSpec["recordType"],
  dnsProtocol: "udp" as DnsCheckSpec["protocol"],
  grpcService: "",
  grpcTls: false,
  minDays: 7,
} as const;

// ── building blocks ──

interface IssueLike {
  readonly code?: string;
  readonly input?: unknown;
  readonly keys?: readonly PropertyKey[];
}
type MessageFn = (issue: IssueLike) => string;

const expecting =
  (what: string): MessageFn =>
  (issue) =>
    expectedGot(what, issue.input);

/** A field's own problem, thrown by the parse functions of `custom` fields. */
class FieldProblem extends Error {
  override name = "FieldProblem";
}

/** A field validated by a plain function; its thrown problem becomes the issue message. */
function custom<T>(parse: (input: unknown) => T) {
  return z.unknown().transform((input, ctx): T => {
    try {
      return parse(input);
    } catch (e) {
      if (e instanceof FieldProblem || e instanceof AddressProblem || isVigilError(e)) {
        ctx.issues.push({ code: "custom", message: e.message, input });
        return z.NEVER;
      }
      throw e;
    }
  });
}

/** A strict mapping: unknown keys are errors naming the closest known key. */
function mapping<S extends z.core.$ZodLooseShape>(shape: S, what: string, owner?: string) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue: IssueLike) =>
      issue.code === "unrecognized_keys"
        ? unknownKeyMessage(String(issue.keys?.[0]), known, owner)
        : expectedGot(what, issue.input),
  });
}

function integer(min: number, max: number, what: string) {
  const error = expecting(`${what} from ${min} to ${max}`);
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

function text(what: string, maxChars: number) {
  const error = expecting(what);
  return z.string({ error }).min(1, { error }).max(maxChars, { error });
}

const bool = z.boolean({ error: expecting("true or false") });

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const listed = `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}`;
  return z.enum(values, { error: expecting(listed) });
}

function duration(what: string, minMs: number, maxMs: number) {
  return custom((input): number => {
    if (typeof input !== "string" && typeof input !== "number") {
      throw new FieldProblem(expectedGot(`${what} like "10s"`, input));
    }
    const valueMs = parseDurationMs(input);
    if (valueMs < minMs || valueMs > maxMs) {
      const range = `from ${formatDurationMs(minMs)} to ${formatDurationMs(maxMs)}`;
      throw new FieldProblem(`expected ${what} ${range}, got ${describeValue(input)}`);
    }
    return valueMs;
  });
}

// ── pools ──

export { poolNamePattern } from "./names.ts";

const poolNameWhat = `a pool name of lowercase letters, digits, "-" and "_", starting with a letter or digit, at most ${limits.maxPoolNameChars} characters`;

/** Why `name` cannot be a pool name, or undefined when it can. Pool names become DNS labels and URL segments. */
export function poolNameProblem(name: unknown): string | undefined {
  return typeof name === "string" && poolNamePattern.test(name) ? undefined : expectedGot(poolNameWhat, name);
}

export const poolNameSchema = z.string().refine((s) => poolNamePattern.test(s), {
  error: expecting(poolNameWhat),
});

const statusWhat = `a status or range like "200-299" between 100 and 599`;

function parseStatus(input: unknown): StatusRange {
  if (typeof input === "number" && Number.isInteger(input) && input >= 100 && input <= 599) {
    return { lo: input, hi: input };
  }
  const match = typeof input === "string" ? /^(\d{3})(?:-(\d{3}))?$/.exec(input) : null;
  if (match === null) throw new FieldProblem(expectedGot(statusWhat, input));
  const lo = Number(match[1]);
  const hi = match[2] === undefined ? lo : Number(match[2]);
  if (lo < 100 || hi > 599) throw new FieldProblem(expectedGot(statusWhat, input));
  if (lo > hi)
    throw new FieldProblem(expectedGot(`a range with the lower status first, like "200-299"`, input));
  return { lo, hi };
}

const statusList = z
  .array(custom(parseStatus), { error: expecting(`a list of statuses like ["200-299", 204]`) })
  .min(1, { error: () => `expected at least one status or range, got an empty list` })
  .max(configLimits.maxStatusRanges, {
    error: () => `expected at most ${configLimits.maxStatusRanges} statuses or ranges`,
  });

function parseRegex(input: unknown): string {
  if (typeof input !== "string" || input === "" || input.length > configLimits.maxRegexChars) {
    throw new FieldProblem(
      expectedGot(`a regular expression of at most ${configLimits.maxRegexChars} characters`, input),
    );
  }
  try {
    new RegExp(input);
  } catch (e) {
    throw new FieldProblem(
      `expected a valid regular expression, got ${describeValue(input)}: ${(e as Error).message}`,
    );
  }
  return input;
}

// RFC 9110 token characters.
const headerNamePattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// The checker owns these: a configured value would contradict what it actually sends.
const reservedHeaders = new Map([
  ["host", `the Host header is set with the check's "host" key`],
  ["content-length", "the checker sets Content-Length"],
  ["transfer-encoding", "the checker sets Transfer-Encoding"],
  ["connection", `the checker sets Connection (use "keepalive")`],
]);

const headerName = z.string().superRefine((name, ctx) => {
  if (!headerNamePattern.test(name)) {
    ctx.addIssue({
      code: "custom",
      message: expectedGot("a header name of letters, digits and !#$%&'*+-.^_`|~", name),
      input: name,
    });
    return;
  }
  const reserved = reservedHeaders.get(name.toLowerCase());
  if (reserved !== undefined) {
    ctx.addIssue({
      code: "custom",
      message: `header ${JSON.stringify(name)} is not allowed: ${reserved}`,
      input: name,
    });
  }
});

const headerValue = z
  .string({ error: expecting("a header value as a string (quote numbers)") })
  .max(configLimits.maxHeaderValueChars, {
    error: expecting(`a header value of at most ${configLimits.maxHeaderValueChars} characters`),
  })
  .regex(/^[\t\x20-\x7e\x80-\uffff]*$/, { error: expecting("a header value without control characters") });

const headers = z
  .record(headerName, headerValue, { error: expecting("a mapping of header names to values") })
  .superRefine((map, ctx) => {
    const names = Object.keys(map);
    if (names.length > limits.maxHeaderCount) {
      ctx.addIssue({
        code: "custom",
        message: `expected at most ${limits.maxHeaderCount} headers, got ${names.length}`,
        input: map,
      });
    }
    const seen = new Map<string, string>();
    for (const name of names) {
      const first = seen.get(name.toLowerCase());
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `header ${JSON.stringify(name)} repeats ${JSON.stringify(first)} (names are case-insensitive)`,
          input: name,
        });
        return;
      }
      seen.set(name.toLowerCase(), name);
    }
  });

const hostWhat = `a host name or IP address, optionally with ":port"`;

function parseHostHeader(input: unknown): string {
  if (typeof input !== "string") throw new FieldProblem(expectedGot(hostWhat, input));
  if (isHostName(input) || isIPv4(input)) return input;
  try {
    parseHostPort(input);
    return input;
  } catch {
    throw new FieldProblem(expectedGot(hostWhat, input));
  }
}

function parseServerName(input: unknown): string {
  if (typeof input === "string" && isHostName(input)) return input;
  throw new FieldProblem(expectedGot("a server name (a DNS host name, not an IP address)", input));
}

const tlsCa = text("a path to a PEM CA bundle", configLimits.maxPathChars);

const httpExpect = mapping(
  {
    status: statusList.optional(),
    body_contains: text(
      `a non-empty string of at most ${configLimits.maxMatchChars} characters`,
      configLimits.maxMatchChars,
    ).optional(),
    body_regex: custom(parseRegex).optional(),
  },
  "a mapping with status, body_contains or body_regex",
  "expect",
);

const httpMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] as const;

const httpShape = {
  method: oneOf(httpMethods).optional(),
  path: text(`a request path starting with "/", without spaces`, configLimits.maxCheckPathChars)
    .regex(/^\/[\x21-\x7e]*$/, { error: expecting(`a request path starting with "/", without spaces`) })
    .optional(),
  headers: headers.optional(),
  host: custom(parseHostHeader).optional(),
  expect: httpExpect.optional(),
  max_body_bytes: integer(1, limits.maxBodyBytesCeiling, "a byte count").optional(),
  keepalive: bool.optional(),
};

type HttpDocument = {
  type: "http" | "https";
  method?: string | undefined;
  path?: string | undefined;
  headers?: Record<string, string> | undefined;
  host?: string | undefined;
  sni?: string | undefined;
  expect?: { status?: StatusRange[]; body_contains?: string; body_regex?: string } | undefined;
  max_body_bytes?: number | undefined;
  tls_verify?: boolean | undefined;
  tls_ca?: string | undefined;
  keepalive?: boolean | undefined;
};

function toHttpSpec(doc: HttpDocument, ctx: z.core.$RefinementCtx): HttpCheckSpec {
  const maxBodyBytes = doc.max_body_bytes ?? checkDefaults.maxBodyBytes;
  const bodyContains = doc.expect?.body_contains;
  if (bodyContains !== undefined && Buffer.byteLength(bodyContains) > maxBodyBytes) {
    ctx.issues.push({
      code: "custom",
      path: ["expect", "body_contains"],
      message: `expected a string no longer than max_body_bytes (${maxBodyBytes}), got ${Buffer.byteLength(bodyContains)} bytes`,
      input: bodyContains,
    });
    return z.NEVER;
  }
  const spec: HttpCheckSpec = {
    type: doc.type,
    method: doc.method ?? checkDefaults.method,
    path: doc.path ?? checkDefaults.path,
    headers: { ...doc.headers },
    expect: { status: (doc.expect?.status ?? checkDefaults.status).map((r) => ({ ...r })) },
    maxBodyBytes,
    tlsVerify: doc.tls_verify ?? checkDefaults.tlsVerify,
    keepalive: doc.keepalive ?? checkDefaults.keepalive,
  };
  // Optional keys are left out rather than set to undefined, so specs compare deep-equal.
  if (doc.host !== undefined) spec.host = doc.host;
  if (doc.sni !== undefined) spec.sni = doc.sni;
  if (bodyContains !== undefined) spec.expect.bodyContains = bodyContains;
  if (doc.expect?.body_regex !== undefined) spec.expect.bodyRegex = doc.expect.body_regex;
  if (doc.tls_ca !== undefined) spec.tlsCa = doc.tls_ca;
  return spec;
}

const httpCheck = mapping(
  { type: z.literal("http"), ...httpShape },
  "an http check",
  "an http check",
).transform(toHttpSpec);

const httpsCheck = mapping(
  {
    type: z.literal("https"),
    ...httpShape,
    sni: custom(parseServerName).optional(),
    tls_verify: bool.optional(),
    tls_ca: tlsCa.optional(),
  },
  "an https check",
  "an https check",
).transform(toHttpSpec);

const tcpCheck = mapping(
  {
    type: z.literal("tcp"),
    send: text(
      `a non-empty string of at most ${configLimits.maxMatchChars} characters`,
      configLimits.maxMatchChars,
    ).optional(),
    expect: text(
      `a string the target must send back, at most ${limits.maxTcpExpectBytes} characters`,
      limits.maxTcpExpectBytes,
    ).optional(),
  },
  "a tcp check",
  "a tcp check",
).transform((doc): TcpCheckSpec => {
  const spec: TcpCheckSpec = { type: "tcp" };
  if (doc.send !== undefined) spec.send = doc.send;
  if (doc.expect !== undefined) spec.expect = doc.expect;
  return spec;
});

const recordTypes = ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "SOA", "PTR"] as const;

const dnsCheck = mapping(
  {
    type: z.literal("dns"),
    name: custom((input) => {
      if (typeof input === "string" && isDnsQueryName(input)) return input;
      throw new FieldProblem(expectedGot(`a DNS name to query like "example.com"`, input));
    }),
    record_type: oneOf(recordTypes).optional(),
    expect_answer: text("the expected answer as a string", configLimits.maxMatchChars).optional(),
    protocol: oneOf(["udp", "tcp"]).optional(),
  },
  "a dns check",
  "a dns check",
).transform((doc, ctx): DnsCheckSpec => {
  const recordType = doc.record_type ?? checkDefaults.recordType;
  let expectAnswer = doc.expect_answer;
  if (expectAnswer !== undefined && (recordType === "A" || recordType === "AAAA")) {
    const valid =
      recordType === "A" ? isIPv4(expectAnswer) : isIPv6(expectAnswer) && !expectAnswer.includes("%");
    if (!valid) {
      ctx.issues.push({
        code: "custom",
        path: ["expect_answer"],
        message: expectedGot(
          `an ${recordType === "A" ? "IPv4" : "IPv6"} address for ${recordType} records`,
          expectAnswer,
        ),
        input: expectAnswer,
      });
      return z.NEVER;
    }
    // Compare like with like: the answer is matched against the resolver's canonical form.
    if (recordType === "AAAA") expectAnswer = canonicalIPv6(expectAnswer);
  }
  const spec: DnsCheckSpec = {
    type: "dns",
    name: doc.name,
    recordType,
    protocol: doc.protocol ?? checkDefaults.dnsProtocol,
  };
  if (expectAnswer !== undefined) spec.expectAnswer = expectAnswer;
  return spec;
});

const grpcCheck = mapping(
  {
    type: z.literal("grpc"),
    service: z
      .string({
        error: expecting(`a gRPC service name like "grpc.health.v1.Health" ("" for the whole server)`),
      })
      .max(configLimits.maxGrpcServiceChars, {
        error: expecting(`a gRPC service name of at most ${configLimits.maxGrpcServiceChars} characters`),
      })
      .regex(/^[\x21-\x7e]*$/, { error: expecting("a gRPC service name without spaces") })
      .optional(),
    tls: bool.optional(),
    tls_verify: bool.optional(),
    tls_ca: tlsCa.optional(),
    authority: custom(parseHostHeader).optional(),
  },
  "a grpc check",
  "a grpc check",
).transform((doc): GrpcCheckSpec => {
  const spec: GrpcCheckSpec = {
    type: "grpc",
    service: doc.service ?? checkDefaults.grpcService,
    tls: doc.tls ?? checkDefaults.grpcTls,
    tlsVerify: doc.tls_verify ?? checkDefaults.tlsVerify,
  };
  if (doc.tls_ca !== undefined) spec.tlsCa = doc.tls_ca;
  if (doc.authority !== undefined) spec.authority = doc.authority;
  return spec;
});

const tlsCheck = mapping(
  {
    type: z.literal("tls"),
    sni: custom(parseServerName).optional(),
    min_days: integer(0, configLimits.maxMinDays, "a number of days").optional(),
    tls_verify: bool.optional(),
    tls_ca: tlsCa.optional(),
  },
  "a tls check",
  "a tls check",
).transform((doc): TlsCheckSpec => {
  const spec: TlsCheckSpec = {
    type: "tls",
    minDays: doc.min_days ?? checkDefaults.minDays,
    tlsVerify: doc.tls_verify ?? checkDefaults.tlsVerify,
  };
  if (doc.sni !== undefined) spec.sni = doc.sni;
  if (doc.tls_ca !== undefined) spec.tlsCa = doc.tls_ca;
  return spec;
});

const checkTypes = ["http", "https", "tcp", "dns", "grpc", "tls"] as const;
const checkTypeWhat = `a check type: ${checkTypes.slice(0, -1).join(", ")} or ${checkTypes[checkTypes.length - 1]}`;

export const checkSchema = z.discriminatedUnion(
  "type",
  [httpCheck, httpsCheck, tcpCheck, dnsCheck, grpcCheck, tlsCheck],
  {
    error: (issue: IssueLike) => {
      // A bad or missing `type` is reported on the type key, with what was found there.
      if (issue.code === "invalid_union" && typeof issue.input === "object" && issue.input !== null) {
        return expectedGot(checkTypeWhat, (issue.input as { type?: unknown }).type);
      }
      return expectedGot(`a check: a mapping with a type (${checkTypes.join(", ")})`, issue.input);
    },
  },
);

function parseTarget(input: unknown): TargetAddr {
  if (typeof input !== "string") throw new FieldProblem(expectedGot(`a target "host:port"`, input));
  return parseHostPort(input);
}

export const targetsSchema = z
  .array(custom(parseTarget), { error: expecting(`a list of targets like ["10.0.1.10:8080"]`) })
  .max(limits.maxTargetsPerPool, {
    error: () => `expected at most ${limits.maxTargetsPerPool} targets in a pool`,
  })
  .superRefine((targets, ctx) => {
    const firstIndex = new Map<string, number>();
    targets.forEach((target, i) => {
      const first = firstIndex.get(target.key);
      if (first === undefined) {
        firstIndex.set(target.key, i);
        return;
      }
      ctx.addIssue({
        code: "custom",
        path: [i],
        message: `duplicate target ${JSON.stringify(target.key)}: targets[${first}] and targets[${i}] are the same address`,
        input: target.key,
      });
    });
  });

const verdictWhat = `majority, any, all or a number of observers from 1 to ${limits.observersMax}`;

function parseVerdict(input: unknown): VerdictPolicy {
  if (input === "majority" || input === "any" || input === "all") return input;
  if (typeof input === "number" && Number.isInteger(input) && input >= 1 && input <= limits.observersMax) {
    return input;
  }
  throw new FieldProblem(expectedGot(verdictWhat, input));
}

/** The timing and policy keys: allowed in `defaults:` and in each pool. */
const policyShape = {
  interval: duration("an interval", limits.intervalMsMin, limits.intervalMsMax).optional(),
  fastinter: duration("a fastinter interval", limits.intervalMsMin, limits.intervalMsMax).optional(),
  downinter: duration("a downinter interval", limits.intervalMsMin, limits.intervalMsMax).optional(),
  timeout: duration("a timeout", limits.timeoutMsMin, limits.timeoutMsMax).optional(),
  jitter: z
    .number({ error: expecting("a jitter fraction from 0 to 0.5") })
    .min(0, { error: expecting("a jitter fraction from 0 to 0.5") })
    .max(0.5, { error: expecting("a jitter fraction from 0 to 0.5") })
    .optional(),
  rise: integer(1, limits.riseFallMax, "a rise count").optional(),
  fall: integer(1, limits.riseFallMax, "a fall count").optional(),
  observers: integer(1, limits.observersMax, "a number of observers").optional(),
  verdict: custom(parseVerdict).optional(),
  spread: oneOf(["none", "zone"]).optional(),
  fail_open: bool.optional(),
};

export const policyKeys = Object.keys(policyShape) as (keyof typeof policyShape)[];

export const defaultsSchema = mapping(policyShape, "a mapping of pool defaults", "defaults");

export const poolSchema = mapping(
  { check: checkSchema, targets: targetsSchema, ...policyShape },
  "a pool: a mapping with check and targets",
  "a pool",
);

export const poolsSchema = z
  .record(poolNameSchema, poolSchema, { error: expecting("a mapping of pool names to pools") })
  .superRefine((pools, ctx) => {
    const count = Object.keys(pools).length;
    if (count > limits.maxPoolsPerCluster) {
      ctx.addIssue({
        code: "custom",
        message: `expected at most ${limits.maxPoolsPerCluster} pools, got ${count}`,
        input: pools,
      });
    }
  });

// ── node ──

const nodeNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function nameLike(what: string) {
  const full = `${what} of letters, digits, ".", "-" and "_", at most ${configLimits.maxNodeNameChars} characters`;
  return text(full, configLimits.maxNodeNameChars).regex(nodeNamePattern, { error: expecting(full) });
}

function address(options: { allowPortZero: boolean }) {
  return custom((input): string => {
    if (typeof input !== "string") throw new FieldProblem(expectedGot(`an address "host:port"`, input));
    return parseHostPort(input, options).key;
  });
}

const listenAddress = address({ allowPortZero: true });

/** `node.advertise`: an IP address a peer can reach — not a name, not 0.0.0.0 or ::. */
function parseAdvertise(input: unknown): string {
  const what = "an IP address peers can reach, like 10.0.1.5";
  if (typeof input !== "string") throw new FieldProblem(expectedGot(what, input));
  const host = input.startsWith("[") && input.endsWith("]") ? input.slice(1, -1) : input;
  if (isIP(host) === 0) throw new FieldProblem(`expected ${what}, got ${JSON.stringify(input)}`);
  if (host === "0.0.0.0" || host === "::")
    throw new FieldProblem(
      `expected ${what}, got ${JSON.stringify(input)}, which is no address a peer can reach`,
    );
  return host;
}

const encryptKeyBytes = 32;

function parseEncryptKey(input: unknown): string {
  const what = `a base64 key of ${encryptKeyBytes} bytes (as printed by "vigil keygen")`;
  // Keys are secrets: say what is wrong with one, never echo it into a log.
  if (typeof input !== "string") {
    throw new FieldProblem(
      `expected ${what}, got ${typeof input === "number" ? "a number" : describeValue(input)}`,
    );
  }
  if (input.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(input) || input === "") {
    throw new FieldProblem(`expected ${what}, got a string of ${input.length} characters that is not base64`);
  }
  const bytes = Buffer.from(input, "base64").length;
  if (bytes !== encryptKeyBytes) {
    throw new FieldProblem(`expected a key of ${encryptKeyBytes} bytes (AES-256), got ${bytes} bytes`);
  }
  return input;
}

// ── node history: store and retention (src/config/history.ts) ──

const storeWhat = `"sqlite", "none" or a PostgreSQL URL like "postgres://vigil@db:5432/vigil"`;

function parseStore(input: unknown): StoreSetting {
  if (input === "sqlite") return { kind: "sqlite" };
  if (input === "none") return { kind: "none" };
  if (typeof input !== "string") throw new FieldProblem(expectedGot(storeWhat, input));
  if (input.length > historyConfigLimits.maxStoreUrlChars) {
    throw new FieldProblem(
      `expected ${storeWhat} of at most ${historyConfigLimits.maxStoreUrlChars} characters, got ${input.length}`,
    );
  }
  // A URL may carry a password: messages show it redacted, never as written.
  if (!input.includes("://")) throw new FieldProblem(expectedGot(storeWhat, input));
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new FieldProblem(`expected ${storeWhat}, got a string that does not parse as a URL`);
  }
  const shown = redactStoreUrl(input);
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new FieldProblem(`expected ${storeWhat}, got ${JSON.stringify(shown)}`);
  }
  // postgres:///vigil?host=/run/postgresql names a Unix socket instead of a host.
  if (url.hostname === "" && !url.searchParams.has("host")) {
    throw new FieldProblem(`expected a PostgreSQL URL with a host, got ${JSON.stringify(shown)}`);
  }
  if (url.pathname === "" || url.pathname === "/") {
    throw new FieldProblem(
      `expected a PostgreSQL URL naming a database ("…:5432/vigil"), got ${JSON.stringify(shown)}`,
    );
  }
  const schema = url.searchParams.get("schema");
  if (schema === null) return { kind: "postgres", url: input };
  if (!postgresSchemaPattern.test(schema)) {
    throw new FieldProblem(
      `expected a schema name of lowercase letters, digits and "_" (at most 63) in ?schema=, got ${describeValue(schema)}`,
    );
  }
  // The schema is Vigil's parameter, not libpq's: the driver must not see it.
  url.searchParams.delete("schema");
  return { kind: "postgres", url: url.toString(), schema };
}

function retentionDuration(what: string) {
  return duration(what, historyConfigLimits.retentionMsMin, historyConfigLimits.retentionMsMax);
}

const retentionSchema = mapping(
  {
    events: retentionDuration("an events retention").optional(),
    minute_rollups: retentionDuration("a minute rollups retention").optional(),
    hourly_rollups: retentionDuration("an hourly rollups retention").optional(),
  },
  "a mapping with events, minute_rollups and hourly_rollups",
  "retention",
).transform((doc, ctx): RetentionSetting => {
  const d = historyDefaults.retention;
  const r: RetentionSetting = {
    eventsMs: doc.events ?? d.eventsMs,
    minuteRollupsMs: doc.minute_rollups ?? d.minuteRollupsMs,
    hourRollupsMs: doc.hourly_rollups ?? d.hourRollupsMs,
  };
  // Hours outliving minutes is the point of rolling up; the reverse keeps nothing the minutes lack.
  if (r.hourRollupsMs < r.minuteRollupsMs) {
    const blameHours = doc.hourly_rollups !== undefined;
    const hours = formatDurationMs(r.hourRollupsMs);
    const minutes = formatDurationMs(r.minuteRollupsMs);
    ctx.issues.push({
      code: "custom",
      path: [blameHours ? "hourly_rollups" : "minute_rollups"],
      message: blameHours
        ? `expected hourly_rollups no shorter than minute_rollups (${minutes}), got "${hours}"`
        : `expected minute_rollups no longer than hourly_rollups (${hours} by default), got "${minutes}"`,
      input: doc,
    });
    return z.NEVER;
  }
  return r;
});

// ── node API security: tokens, TLS, targets_allow (docs/security.md) ──

function parseInlineToken(input: unknown): string {
  // A secret is never echoed, not even a wrong-typed one.
  if (typeof input !== "string") {
    throw new FieldProblem(
      `expected a token string, got ${typeof input === "number" ? "a number" : describeValue(input)}`,
    );
  }
  const p = tokenProblem(input, "");
  if (p !== undefined) throw new FieldProblem(p);
  return input;
}

const apiTokenSchema = mapping(
  {
    name: nameLike("a token name"),
    scope: oneOf(["read", "write"]),
    token: custom(parseInlineToken).optional(),
    token_file: text("a path to a file holding the token", configLimits.maxPathChars).optional(),
  },
  "a token: a mapping with name, scope and token_file (or token)",
  "a token",
).transform((doc, ctx): ApiTokenSpec => {
  const fail = (path: PropertyKey[], message: string) => {
    ctx.issues.push({ code: "custom", path, message, input: doc });
    return z.NEVER;
  };
  if (doc.token !== undefined && doc.token_file !== undefined) {
    return fail(["token"], "expected token_file or token, not both");
  }
  if (doc.token_file !== undefined) {
    let token: string;
    try {
      token = readTokenFile(doc.token_file);
    } catch (e) {
      if (!isVigilError(e)) throw e;
      return fail(["token_file"], e.message);
    }
    return { name: doc.name, scope: doc.scope, token, tokenFile: doc.token_file };
  }
  if (doc.token !== undefined) return { name: doc.name, scope: doc.scope, token: doc.token };
  return fail(
    ["token_file"],
    "missing required key: expected token_file (a file holding the token) or token",
  );
});

const apiTokensSchema = z
  .array(apiTokenSchema, {
    error: expecting("a list of tokens like [{ name: ops, scope: write, token_file: /etc/vigil/ops.token }]"),
  })
  .min(1, {
    error: () => "expected at least one token, got an empty list (leave api_tokens out for an open API)",
  })
  .max(secretLimits.maxTokens, { error: () => `expected at most ${secretLimits.maxTokens} tokens` })
  .superRefine((tokens, ctx) => {
    const names = new Map<string, number>();
    const secrets = new Map<string, number>();
    tokens.forEach((t, i) => {
      const sameName = names.get(t.name);
      if (sameName !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [i, "name"],
          message: `duplicate token name ${JSON.stringify(t.name)}: [${sameName}] and [${i}] have the same name`,
          input: t.name,
        });
        return;
      }
      const sameSecret = secrets.get(t.token);
      if (sameSecret !== undefined) {
        // Which scope would a request with it have? Refuse rather than pick one.
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `token ${JSON.stringify(t.name)} has the same secret as [${sameSecret}]: every token must be different`,
          input: t.name,
        });
        return;
      }
      names.set(t.name, i);
      secrets.set(t.token, i);
    });
  });

const pemPath = (what: string) => text(`a path to ${what}`, configLimits.maxPathChars);

const apiTlsSchema = mapping(
  {
    cert: pemPath("a PEM certificate (chain) file"),
    key: pemPath("a PEM private key file"),
    ca: pemPath("a PEM CA bundle").optional(),
  },
  "a mapping with cert and key (and optionally ca)",
  "api_tls",
).transform((doc, ctx): ApiTlsSpec => {
  const fail = (key: string, e: unknown) => {
    if (!isVigilError(e)) throw e;
    ctx.issues.push({ code: "custom", path: [key], message: e.message, input: doc });
    return z.NEVER;
  };
  let cert: ReturnType<typeof readCertFile>;
  let key: ReturnType<typeof readKeyFile>;
  try {
    cert = readCertFile(doc.cert);
  } catch (e) {
    return fail("cert", e);
  }
  try {
    key = readKeyFile(doc.key);
  } catch (e) {
    return fail("key", e);
  }
  if (!cert.leaf.checkPrivateKey(key.key)) {
    return fail(
      "key",
      new VigilError(
        ErrorCode.config,
        `the key in ${JSON.stringify(doc.key)} does not belong to the certificate in ${JSON.stringify(doc.cert)} (the first certificate must be the server's own)`,
      ),
    );
  }
  const spec: ApiTlsSpec = { certFile: doc.cert, keyFile: doc.key, cert: cert.pem, key: key.pem };
  if (doc.ca !== undefined) {
    try {
      spec.ca = readCertFile(doc.ca, "CA file").pem;
    } catch (e) {
      return fail("ca", e);
    }
    spec.caFile = doc.ca;
  }
  return spec;
});

const targetsAllowSchema = z
  .array(
    custom((input) => parseAllowRule(input).text),
    { error: expecting(`a list of CIDRs and host patterns like ["10.0.0.0/8", "*.svc.internal"]`) },
  )
  .min(1, {
    error: () =>
      "expected at least one CIDR or host pattern, got an empty list (leave targets_allow out to allow any target)",
  })
  .max(allowLimits.maxRules, { error: () => `expected at most ${allowLimits.maxRules} entries` })
  .superRefine((rules, ctx) => {
    const first = new Map<string, number>();
    rules.forEach((r, i) => {
      const j = first.get(r);
      if (j === undefined) {
        first.set(r, i);
        return;
      }
      ctx.addIssue({
        code: "custom",
        path: [i],
        message: `duplicate entry ${JSON.stringify(r)}: [${j}] and [${i}] are the same`,
        input: r,
      });
    });
  });

export const nodeSchema = mapping(
  {
    name: nameLike("a node name").optional(),
    zone: nameLike("a zone name").optional(),
    weight: z
      .number({ error: expecting(`a weight above 0 and at most ${configLimits.maxWeight}`) })
      .gt(0, { error: expecting(`a weight above 0 and at most ${configLimits.maxWeight}`) })
      .max(configLimits.maxWeight, {
        error: expecting(`a weight above 0 and at most ${configLimits.maxWeight}`),
      })
      .optional(),
    gossip: listenAddress.optional(),
    api: listenAddress.optional(),
    agent: listenAddress.optional(),
    dns: listenAddress.optional(),
    join: z
      .array(address({ allowPortZero: false }), { error: expecting(`a list of "host:port" addresses`) })
      .max(configLimits.maxJoinAddresses, {
        error: () => `expected at most ${configLimits.maxJoinAddresses} join addresses`,
      })
      .optional(),
    advertise: custom(parseAdvertise).optional(),
    data_dir: text("a directory path", configLimits.maxPathChars).optional(),
    profile: oneOf(["lan", "wan", "local"]).optional(),
    encrypt_keys: z
      .array(custom(parseEncryptKey), { error: expecting("a list of base64 keys") })
      .max(configLimits.maxEncryptKeys, {
        error: () => `expected at most ${configLimits.maxEncryptKeys} keys`,
      })
      .optional(),
    max_concurrent_checks: integer(1, limits.maxConcurrentChecksCeiling, "a number of checks").optional(),
    lookup_threads: integer(1, configLimits.maxLookupThreads, "a number of lookup threads").optional(),
    lookup_isolation: oneOf(["thread", "process"]).optional(),
    lookup_rt_priority: integer(1, 99, "a real-time priority").optional(),
    lookup_api: bool.optional(),
    store: custom(parseStore).optional(),
    retention: retentionSchema.optional(),
    api_tls: apiTlsSchema.optional(),
    api_tokens: apiTokensSchema.optional(),
    targets_allow: targetsAllowSchema.optional(),
  },
  "a mapping of node settings",
  "node",
).transform((doc, ctx): NodeSpec => {
  // A thread shares the node's process: there is no process of its own to prioritise.
  if (doc.lookup_rt_priority !== undefined && doc.lookup_isolation === "thread") {
    ctx.issues.push({
      code: "custom",
      path: ["lookup_rt_priority"],
      message:
        "expected no lookup_rt_priority with lookup_isolation: thread (the priority is given to the lookup processes; a thread is part of the node's)",
      input: doc.lookup_rt_priority,
    });
    return z.NEVER;
  }
  // The lookup processes hand the connections they do not answer to the node: a socket, not a
  // thread's, and not a TLS session (its keys live in the process that shook hands).
  if (doc.lookup_api === true && (doc.lookup_isolation === "thread" || doc.api_tls !== undefined)) {
    ctx.issues.push({
      code: "custom",
      path: ["lookup_api"],
      message:
        doc.lookup_isolation === "thread"
          ? "expected no lookup_api with lookup_isolation: thread (a thread cannot hand a connection to the node; the API's port needs lookup processes)"
          : "expected no lookup_api with api_tls (a TLS connection cannot be handed from the lookup process to the node; the node serves HTTPS itself)",
      input: doc.lookup_api,
    });
    return z.NEVER;
  }
  const spec: NodeSpec = {
    name: doc.name ?? hostname(),
    zone: doc.zone ?? nodeDefaults.zone,
    weight: doc.weight ?? nodeDefaults.weight,
    gossip: doc.gossip ?? nodeDefaults.gossip,
    api: doc.api ?? nodeDefaults.api,
    join: doc.join ?? [],
    dataDir: doc.data_dir ?? nodeDefaults.dataDir,
    profile: doc.profile ?? nodeDefaults.profile,
    encryptKeys: doc.encrypt_keys ?? [],
    maxConcurrentChecks: doc.max_concurrent_checks ?? limits.maxConcurrentChecksDefault,
  };
  if (doc.agent !== undefined) spec.agent = doc.agent;
  if (doc.dns !== undefined) spec.dns = doc.dns;
  if (doc.lookup_threads !== undefined) spec.lookupThreads = doc.lookup_threads;
  if (doc.lookup_isolation !== undefined) spec.lookupIsolation = doc.lookup_isolation;
  if (doc.lookup_rt_priority !== undefined) spec.lookupRtPriority = doc.lookup_rt_priority;
  if (doc.lookup_api === true) spec.lookupApi = true;
  if (doc.advertise !== undefined) spec.advertise = doc.advertise;
  // Optional keys until NodeSpec carries them: absent means the defaults (historySettingsOf).
  if (doc.store !== undefined) (spec as NodeSpec & NodeHistoryKeys).store = doc.store;
  if (doc.retention !== undefined) (spec as NodeSpec & NodeHistoryKeys).retention = doc.retention;
  if (doc.api_tls !== undefined) spec.apiTls = doc.api_tls;
  if (doc.api_tokens !== undefined) spec.apiTokens = doc.api_tokens;
  if (doc.targets_allow !== undefined) spec.targetsAllow = doc.targets_allow;
  return spec;
});

// ── alerts (docs/alerts.md) ──

export const alertDefaults = {
  /** A receiver slower than this is treated as failing; the retry will find it again. */
  sinkTimeoutMs: 5_000,
  transitions: ["down"] as readonly AlertTransition[],
  /** Immediate: the verdict already has rise/fall hysteresis; `for` is for slower paging. */
  forMs: 0,
  resolve: true,
  /** Never: a reminder is a choice about someone's pager, not a default. */
  remindMs: 0,
  /** A fifth of the fleet flipping at once is an incident of its own, not many incidents. */
  stormShare: 0.2,
  stormWindowMs: 60_000,
  stormMinTargets: 10,
  stormSampleSize: 20,
  /** 1 s doubling to 5 min, with jitter: about 3 h of retries before 50 attempts run out. */
  maxAttempts: 50,
  maxAgeMs: 24 * 3_600_000,
  backoffMs: 1_000,
  backoffMsMax: 5 * 60_000,
} as const;

export const alertConfigLimits = {
  maxSinks: 32,
  maxRules: 256,
  maxUrlChars: 2048,
  /** An HMAC key shorter than this is guessable; longer is a pasted file. */
  secretCharsMin: 16,
  secretCharsMax: 1024,
  maxSampleSize: 100,
  maxForMs: 24 * 3_600_000,
  /** Reminders more often than this are a flood, not a reminder. */
  remindMsMin: 60_000,
  remindMsMax: 7 * 24 * 3_600_000,
  maxAttemptsCeiling: 1_000,
} as const;

const alertTransitions = ["down", "up", "unknown"] as const;
const alertNameWhat = (what: string): string =>
  `${what} of lowercase letters, digits, "-" and "_", starting with a letter or digit, at most ${limits.maxPoolNameChars} characters`;

function alertName(what: string) {
  const error = expecting(alertNameWhat(what));
  return z.string({ error }).regex(poolNamePattern, { error });
}

function parseSinkUrl(input: unknown): string {
  const what = "an http:// or https:// URL";
  // Webhook URLs often carry a token (Slack's do): describe what is wrong, never echo one.
  if (typeof input !== "string") throw new FieldProblem(expectedGot(what, input));
  if (input.length > alertConfigLimits.maxUrlChars) {
    throw new FieldProblem(
      `expected ${what} of at most ${alertConfigLimits.maxUrlChars} characters, got ${input.length}`,
    );
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new FieldProblem(`expected ${what}, got a string of ${input.length} characters that is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new FieldProblem(`expected ${what}, got a "${url.protocol}" URL`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new FieldProblem(`expected ${what} without "user:password@" (fetch refuses credentials in URLs)`);
  }
  return url.href;
}

function parseSecret(input: unknown): string {
  const { secretCharsMin: min, secretCharsMax: max } = alertConfigLimits;
  const what = `a secret of ${min} to ${max} characters`;
  if (input === undefined) throw new FieldProblem(expectedGot(what, input));
  // A secret is never echoed, not even a wrong-typed one.
  if (typeof input !== "string") {
    throw new FieldProblem(
      `expected ${what}, got ${typeof input === "number" ? "a number" : describeValue(input)}`,
    );
  }
  if (input.length < min || input.length > max) {
    throw new FieldProblem(`expected ${what}, got ${input.length} characters`);
  }
  return input;
}

const sinkTimeout = duration("a sink timeout", 100, 60_000);

const webhookSink = mapping(
  {
    type: z.literal("webhook"),
    url: custom(parseSinkUrl),
    // Required: an unsigned webhook cannot be told from a forged one.
    secret: custom(parseSecret),
    timeout: sinkTimeout.optional(),
  },
  "a webhook sink",
  "a webhook sink",
);

const slackSink = mapping(
  {
    type: z.literal("slack"),
    url: custom(parseSinkUrl),
    secret: custom(parseSecret).optional(),
    timeout: sinkTimeout.optional(),
  },
  "a slack sink",
  "a slack sink",
);

const sinkSchema = z.discriminatedUnion("type", [webhookSink, slackSink], {
  error: (issue: IssueLike) => {
    if (issue.code === "invalid_union" && typeof issue.input === "object" && issue.input !== null) {
      return expectedGot("a sink type: webhook or slack", (issue.input as { type?: unknown }).type);
    }
    return expectedGot("a sink: a mapping with type (webhook or slack) and url", issue.input);
  },
});

/** A list whose items must differ; the second of a pair is reported, naming the first. */
function distinctList<T extends z.ZodType>(item: T, what: string, maxItems: number, noun: string) {
  return z
    .array(item, { error: expecting(what) })
    .min(1, { error: () => `expected at least one ${noun}, got an empty list` })
    .max(maxItems, { error: () => `expected at most ${maxItems} ${noun}s` })
    .superRefine((items, ctx) => {
      const firstIndex = new Map<unknown, number>();
      items.forEach((value, i) => {
        const first = firstIndex.get(value);
        if (first === undefined) {
          firstIndex.set(value, i);
          return;
        }
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `duplicate ${noun} ${JSON.stringify(value)}: [${first}] and [${i}] are the same`,
          input: value,
        });
      });
    });
}

const remindDuration = custom((input): number => {
  const what = `a reminder interval like "1h" (0s for none), from ${formatDurationMs(alertConfigLimits.remindMsMin)} to ${formatDurationMs(alertConfigLimits.remindMsMax)}`;
  if (typeof input !== "string" && typeof input !== "number")
    throw new FieldProblem(expectedGot(what, input));
  const valueMs = parseDurationMs(input);
  if (valueMs !== 0 && (valueMs < alertConfigLimits.remindMsMin || valueMs > alertConfigLimits.remindMsMax)) {
    throw new FieldProblem(`expected ${what}, got ${describeValue(input)}`);
  }
  return valueMs;
});

const alertRule = mapping(
  {
    name: alertName("a rule name"),
    pools: distinctList(poolNameSchema, "a list of pool names", limits.maxPoolsPerCluster, "pool").optional(),
    transitions: distinctList(
      oneOf(alertTransitions),
      "a list of transitions: down, up or unknown",
      alertTransitions.length,
      "transition",
    ).optional(),
    for: duration("a for duration", 0, alertConfigLimits.maxForMs).optional(),
    resolve: bool.optional(),
    remind: remindDuration.optional(),
    sinks: distinctList(alertName("a sink name"), "a list of sink names", alertConfigLimits.maxSinks, "sink"),
  },
  "a rule: a mapping with name and sinks",
  "a rule",
);

const stormSchema = mapping(
  {
    share: z
      .number({ error: expecting("a share of all targets above 0 and at most 1") })
      .gt(0, { error: expecting("a share of all targets above 0 and at most 1") })
      .max(1, { error: expecting("a share of all targets above 0 and at most 1") })
      .optional(),
    window: duration("a storm window", 1_000, 3_600_000).optional(),
    min_targets: integer(1, limits.maxTargetsPerPool, "a number of targets").optional(),
    sample: integer(0, alertConfigLimits.maxSampleSize, "a number of targets to list").optional(),
    sinks: distinctList(
      alertName("a sink name"),
      "a list of sink names",
      alertConfigLimits.maxSinks,
      "sink",
    ).optional(),
  },
  "a mapping with share, window, min_targets, sample or sinks",
  "storm",
);

const deliverySchema = mapping(
  {
    max_attempts: integer(1, alertConfigLimits.maxAttemptsCeiling, "a number of attempts").optional(),
    max_age: duration("a maximum age", 60_000, 7 * 24 * 3_600_000).optional(),
    backoff: duration("a backoff", 100, 3_600_000).optional(),
    backoff_max: duration("a maximum backoff", 100, 24 * 3_600_000).optional(),
  },
  "a mapping with max_attempts, max_age, backoff or backoff_max",
  "delivery",
);

/** `no sink named "x" under alerts.sinks (did you mean "y"?)` */
function unknownSinkMessage(name: string, known: readonly string[]): string {
  const suggestion = didYouMean(name, known);
  if (suggestion !== undefined)
    return `no sink named ${JSON.stringify(name)} under alerts.sinks (did you mean "${suggestion}"?)`;
  return `no sink named ${JSON.stringify(name)} under alerts.sinks (defined: ${known.join(", ")})`;
}

export const alertsSchema = mapping(
  {
    sinks: z
      .record(alertName("a sink name"), sinkSchema, { error: expecting("a mapping of sink names to sinks") })
      .refine((sinks) => Object.keys(sinks).length >= 1, {
        error: () => "expected at least one sink, got an empty mapping",
      })
      .refine((sinks) => Object.keys(sinks).length <= alertConfigLimits.maxSinks, {
        error: () => `expected at most ${alertConfigLimits.maxSinks} sinks`,
      }),
    rules: z
      .array(alertRule, { error: expecting("a list of rules") })
      .min(1, { error: () => "expected at least one rule, got an empty list" })
      .max(alertConfigLimits.maxRules, {
        error: () => `expected at most ${alertConfigLimits.maxRules} rules`,
      }),
    storm: stormSchema.optional(),
    delivery: deliverySchema.optional(),
  },
  "a mapping with sinks and rules",
  "alerts",
).transform((doc, ctx): AlertsSpec => {
  const sinks = new Map<string, AlertSinkSpec>();
  for (const [name, s] of Object.entries(doc.sinks)) {
    const spec: AlertSinkSpec = {
      name,
      type: s.type,
      url: s.url,
      timeoutMs: s.timeout ?? alertDefaults.sinkTimeoutMs,
    };
    if (s.secret !== undefined) spec.secret = s.secret;
    sinks.set(name, spec);
  }
  const known = [...sinks.keys()];
  const fail = (path: PropertyKey[], message: string, input: unknown) => {
    ctx.issues.push({ code: "custom", path, message, input });
    return z.NEVER;
  };

  const rules: AlertRuleSpec[] = [];
  const ruleIndex = new Map<string, number>();
  const used: string[] = [];
  for (const [i, r] of doc.rules.entries()) {
    const first = ruleIndex.get(r.name);
    if (first !== undefined) {
      return fail(
        ["rules", i, "name"],
        `duplicate rule name ${JSON.stringify(r.name)}: rules[${first}] and rules[${i}] have the same name`,
        r.name,
      );
    }
    ruleIndex.set(r.name, i);
    for (const [j, sink] of r.sinks.entries()) {
      if (!sinks.has(sink)) return fail(["rules", i, "sinks", j], unknownSinkMessage(sink, known), sink);
      if (!used.includes(sink)) used.push(sink);
    }
    const rule: AlertRuleSpec = {
      name: r.name,
      transitions: [...(r.transitions ?? alertDefaults.transitions)],
      forMs: r.for ?? alertDefaults.forMs,
      resolve: r.resolve ?? alertDefaults.resolve,
      remindMs: r.remind ?? alertDefaults.remindMs,
      sinks: [...r.sinks],
    };
    if (r.pools !== undefined) rule.pools = [...r.pools];
    rules.push(rule);
  }

  const stormDoc = doc.storm ?? {};
  for (const [j, sink] of (stormDoc.sinks ?? []).entries()) {
    if (!sinks.has(sink)) return fail(["storm", "sinks", j], unknownSinkMessage(sink, known), sink);
  }
  const storm: AlertStormSpec = {
    share: stormDoc.share ?? alertDefaults.stormShare,
    windowMs: stormDoc.window ?? alertDefaults.stormWindowMs,
    minTargets: stormDoc.min_targets ?? alertDefaults.stormMinTargets,
    sampleSize: stormDoc.sample ?? alertDefaults.stormSampleSize,
    sinks: [...(stormDoc.sinks ?? used)],
  };

  const d = doc.delivery ?? {};
  const delivery: AlertDeliverySpec = {
    maxAttempts: d.max_attempts ?? alertDefaults.maxAttempts,
    maxAgeMs: d.max_age ?? alertDefaults.maxAgeMs,
    backoffMs: d.backoff ?? alertDefaults.backoffMs,
    backoffMsMax: d.backoff_max ?? alertDefaults.backoffMsMax,
  };
  if (delivery.backoffMs > delivery.backoffMsMax) {
    const which = d.backoff_max !== undefined ? "backoff_max" : "backoff";
    return fail(
      ["delivery", which],
      `expected backoff (${formatDurationMs(delivery.backoffMs)}) no longer than backoff_max (${formatDurationMs(delivery.backoffMsMax)})`,
      d[which],
    );
  }
  return { sinks, rules, storm, delivery };
});

// ── the file ──

/** A top-level section left empty (`defaults:` with everything commented out) counts as absent. */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.optional());
}

export const configSchema = mapping(
  {
    node: section(nodeSchema),
    defaults: section(defaultsSchema),
    pools: section(poolsSchema),
    alerts: section(alertsSchema),
  },
  "a mapping with node, defaults and pools",
  "the top level",
);

export type PoolDocument = z.output<typeof poolSchema>;
export type DefaultsDocument = z.output<typeof defaultsSchema>;
export type ConfigDocument = z.output<typeof configSchema>;
