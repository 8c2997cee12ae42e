// The normalized, validated configuration the rest of Vigil works with. The schema
// (schema.ts) accepts the YAML/JSON form with snake_case keys and duration strings and
// produces these types: camelCase, units last in names, all defaults filled in.

export type CheckType = "http" | "https" | "tcp" | "dns" | "grpc" | "tls";
export type VerdictPolicy = "majority" | "any" | "all" | number;
export type Spread = "none" | "zone";
export type Profile = "lan" | "wan" | "local";

/** Inclusive status code range: "200-299" → {lo:200, hi:299}; "204" → {lo:204, hi:204}. */
export interface StatusRange {
  lo: number;
  hi: number;
}

export interface HttpCheckSpec {
  type: "http" | "https";
  method: string; // GET by default
  path: string; // "/" by default
  headers: Record<string, string>;
  /** Host header (and SNI for https unless `sni` is set); default: the target host. */
  host?: string;
  sni?: string;
  expect: {
    status: StatusRange[]; // default [{lo:200,hi:399}]
    bodyContains?: string;
    bodyRegex?: string; // source of a RegExp, validated to compile
  };
  maxBodyBytes: number; // default 64 KiB
  tlsVerify: boolean; // default true
  /** Path to a PEM CA bundle to verify against instead of the system store. */
  tlsCa?: string;
  keepalive: boolean; // default false: new connection per check
}

export interface TcpCheckSpec {
  type: "tcp";
  send?: string;
  expect?: string; // substring expected in what the target sends back
}

export interface DnsCheckSpec {
  type: "dns";
  /** The name to query; the target (host:port) is the resolver asked. */
  name: string;
  recordType: "A" | "AAAA" | "CNAME" | "MX" | "TXT" | "NS" | "SRV" | "SOA" | "PTR";
  /** When set, one answer's data must equal this (e.g. an IP for A). */
  expectAnswer?: string;
  protocol: "udp" | "tcp"; // default udp
}

export interface GrpcCheckSpec {
  type: "grpc";
  service: string; // "" = the server as a whole
  tls: boolean; // default false (h2c)
  tlsVerify: boolean;
  tlsCa?: string;
  authority?: string;
}

export interface TlsCheckSpec {
  type: "tls";
  sni?: string;
  minDays: number; // down when the certificate expires within this many days; default 7
  tlsVerify: boolean; // default true
  tlsCa?: string;
}

export type CheckSpec = HttpCheckSpec | TcpCheckSpec | DnsCheckSpec | GrpcCheckSpec | TlsCheckSpec;

/** A target as configured: "host:port"; IPv6 hosts in brackets "[::1]:80". */
export interface TargetAddr {
  host: string; // without brackets
  port: number;
  /** Canonical "host:port" form, brackets for IPv6: the id inside its pool. */
  key: string;
}

export interface PoolSpec {
  name: string;
  check: CheckSpec;
  targets: TargetAddr[];
  intervalMs: number; // default 10s
  /** HAProxy's fastinter: interval while a target is transitioning; default = intervalMs. */
  fastIntervalMs: number;
  /** HAProxy's downinter: interval while a target is down; default = intervalMs. */
  downIntervalMs: number;
  timeoutMs: number; // default 2s; covers connect + response
  /** Jitter fraction, ±spread × interval; default 0.1. */
  jitter: number;
  rise: number; // default 2
  fall: number; // default 3
  observers: number; // default 2
  verdict: VerdictPolicy; // default majority
  spread: Spread; // default none
  failOpen: boolean; // default false
}

export interface NodeSpec {
  name: string;
  zone: string;
  weight: number;
  gossip: string; // host:port
  api: string; // host:port
  agent?: string;
  dns?: string;
  /** Threads answering agent-check and DNS on the same ports (SO_REUSEPORT); default 1. */
  lookupThreads?: number;
  /** node.lookup_isolation: the lookup servers in child processes of the node (default) or on
   * its worker threads. */
  lookupIsolation?: "thread" | "process";
  /** node.lookup_rt_priority: SCHED_FIFO priority (1-99) for the lookup processes; absent =
   * normal scheduling. */
  lookupRtPriority?: number;
  /** node.lookup_api: the lookup processes take the API's connections and answer target lookups
   * (`GET /v1/pools/{pool}/targets/{target}`) from a table the node pushes; every other
   * connection is handed to the node. Absent = the node serves its API itself. */
  lookupApi?: true;
  join: string[];
  /** The IP address peers use for this node's gossip and API when it binds 0.0.0.0/:: (`node.advertise`). */
  advertise?: string;
  dataDir: string;
  profile: Profile;
  encryptKeys: string[]; // base64, 32 bytes each
  maxConcurrentChecks: number;
  /** HTTPS for the API and dashboard (`node.api_tls`); absent = plain HTTP. docs/security.md. */
  apiTls?: ApiTlsSpec;
  /** Bearer tokens for the API (`node.api_tokens`); absent = the API is open. docs/security.md. */
  apiTokens?: ApiTokenSpec[];
  /** The CIDRs and host patterns pool targets must match (`node.targets_allow`), canonical
   * text; absent = any target. Compiled by src/config/allow.ts. docs/security.md. */
  targetsAllow?: string[];
}

// ── API security (docs/security.md) ──

export type ApiScope = "read" | "write";

export interface ApiTokenSpec {
  /** Names the token in logs and metrics; the secret itself never appears there. */
  name: string;
  scope: ApiScope;
  /** The secret, read from `token_file` (trimmed) or given inline as `token`. */
  token: string;
  /** The file it was read from, when it came from one. */
  tokenFile?: string;
}

export interface ApiTlsSpec {
  certFile: string;
  keyFile: string;
  /** PEM, read and checked at load. */
  cert: string;
  key: string;
  /** A PEM CA bundle the node trusts for its peers' API certificates instead of the system
   * store (`api_tls.ca`). */
  caFile?: string;
  ca?: string;
}

export interface VigilConfig {
  node: NodeSpec;
  pools: Map<string, PoolSpec>;
  /** The raw validated pool documents (snake_case), as given: replicated and echoed by the API. */
  rawPools: Map<string, unknown>;
  /** Present only when the file has an `alerts:` section (docs/alerts.md). */
  alerts?: AlertsSpec;
}

// ── alerts (docs/alerts.md) ──

/** The verdict a target moves to that a rule fires on; `up` is a recovery from down. */
export type AlertTransition = "down" | "up" | "unknown";

export interface AlertSinkSpec {
  name: string;
  /** webhook: Vigil's JSON; slack: `{"text", "blocks"}` for Slack-compatible incoming webhooks. */
  type: "webhook" | "slack";
  url: string;
  /** HMAC-SHA256 key for X-Vigil-Signature; required for webhook sinks, optional for slack. */
  secret?: string;
  timeoutMs: number; // default 5s
}

export interface AlertRuleSpec {
  name: string;
  /** The pools the rule watches; absent = every pool, including pools added later. */
  pools?: string[];
  transitions: AlertTransition[]; // default ["down"]
  /** How long the target must stay in the state before the alert fires; default 0. */
  forMs: number;
  /** Send a resolved notice when a fired alert's target is up again; default true. */
  resolve: boolean;
  /** Repeat a fired alert this often until its target is up again; 0 = never (default). */
  remindMs: number;
  sinks: string[];
}

export interface AlertStormSpec {
  /** A storm is more than this fraction of all targets flipping within the window; 1 = never. */
  share: number; // default 0.2
  windowMs: number; // default 1m
  /** ...and at least this many targets: two flips in a five-target cluster are not a storm. */
  minTargets: number; // default 10
  /** Targets listed by name in a storm notice. */
  sampleSize: number; // default 20
  /** Where storm notices go; default every sink some rule uses. */
  sinks: string[];
}

export interface AlertDeliverySpec {
  /** A notice is dropped after this many failed attempts... */
  maxAttempts: number; // default 50
  /** ...or once it is this old, whichever comes first. */
  maxAgeMs: number; // default 24h
  /** Backoff before the first retry, doubling per attempt up to backoffMsMax, with jitter. */
  backoffMs: number; // default 1s
  backoffMsMax: number; // default 5m
}

export interface AlertsSpec {
  sinks: Map<string, AlertSinkSpec>;
  rules: AlertRuleSpec[];
  storm: AlertStormSpec;
  delivery: AlertDeliverySpec;
}
