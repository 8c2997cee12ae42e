// `node.targets_allow` (docs/security.md): the addresses this node may check. Anyone who can
// write a pool (the API, a config file, a peer's gossip) chooses what the cluster connects to;
// without a list, a pool write can make every node probe the internal network for it. With
// one, an IP target must fall in one of the CIDRs and a host name must match one of the host
// patterns.
//
// Matching is exact and boring on purpose:
// - IP targets are matched against CIDRs only, host names against host patterns only. A host
//   pattern never matches an IP literal, and a CIDR never matches a name (names are not
//   resolved here: a pattern trusts whoever runs that DNS zone).
// - An IPv4-mapped IPv6 target (`[::ffff:10.0.0.1]:80`) reaches the IPv4 address, so it is
//   matched as that IPv4 address (and also against IPv6 CIDRs, for a list that names
//   `::ffff:0:0/96` itself).
// - Patterns are anchored and case-insensitive. `*` and `?` stay inside one label: `*` is any
//   run of characters (also none), `?` exactly one. A label that is `**` alone is one or more
//   whole labels. So `*.svc.internal` matches `db.svc.internal` but neither `svc.internal` nor
//   `a.b.svc.internal` nor `evilsvc.internal`; `**.svc.internal` matches the first and third.
//
// Host matching is a small dynamic program over labels and a linear glob inside a label, not a
// regular expression: no pattern can make a match slow.

import { isIPv6 } from "node:net";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { canonicalIPv6, isIPv4 } from "./address.ts";
import { describeValue } from "./messages.ts";
import type { TargetAddr } from "./types.ts";

export const allowLimits = {
  /** Entries in `targets_allow`: a list longer than this is a generated dump, not a policy. */
  maxRules: 1024,
  /** A host pattern is at most a DNS name long. */
  maxPatternChars: 253,
  /** Rules named in an error message before "… and N more". */
  maxRulesShown: 5,
} as const;

export type AllowRule =
  | {
      kind: "cidr";
      /** Canonical text: `10.0.0.0/8`, `fd00::/8`; a bare address gets its full prefix. */
      text: string;
      family: 4 | 6;
      network: Uint8Array;
      prefix: number;
    }
  | {
      kind: "host";
      /** The pattern, lowercased. */
      text: string;
      labels: readonly string[];
    };

const cidrWhat = `a CIDR like "10.0.0.0/8" or "fd00::/8", an IP address, or a host pattern like "*.svc.internal"`;

function problem(message: string): VigilError {
  return new VigilError(ErrorCode.config, message);
}

/** Parses one `targets_allow` entry; throws VigilError(config) saying what is wrong with it. */
export function parseAllowRule(input: unknown): AllowRule {
  if (typeof input !== "string" || input === "") {
    throw problem(`expected ${cidrWhat}, got ${describeValue(input)}`);
  }
  if (input.length > allowLimits.maxPatternChars) {
    throw problem(
      `expected ${cidrWhat} of at most ${allowLimits.maxPatternChars} characters, got ${input.length}`,
    );
  }
  const text = input.trim();
  if (text !== input) throw problem(`expected ${cidrWhat} without spaces, got ${describeValue(input)}`);
  if (text.includes("/") || text.includes(":") || text.includes("[") || isIPv4(text)) return parseCidr(text);
  return parseHostPattern(text);
}

// ── CIDRs ──

function parseCidr(text: string): AllowRule {
  const shown = describeValue(text);
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (addrText.startsWith("[")) {
    throw problem(`expected an IPv6 network without brackets like "fd00::/8", got ${shown}`);
  }
  if (addrText.includes("%")) throw problem(`expected an IPv6 network without a zone id, got ${shown}`);
  let family: 4 | 6;
  let network: Uint8Array;
  if (isIPv4(addrText)) {
    family = 4;
    network = ipv4Bytes(addrText);
  } else if (isIPv6(addrText)) {
    family = 6;
    network = ipv6Bytes(addrText);
  } else {
    throw problem(`expected ${cidrWhat}, got ${shown}: "${addrText}" is not an IP address`);
  }
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
      throw problem(`expected a prefix length from 0 to ${bits} after "/", got ${shown}`);
    }
    prefix = Number(prefixText);
  }
  const masked = maskBytes(network, prefix);
  const canonical = `${formatBytes(masked, family)}/${prefix}`;
  if (!sameBytes(masked, network)) {
    // 10.1.2.3/8 is usually a typo for a host (/32) or for the network (10.0.0.0/8): ask.
    throw problem(
      `expected a network address with no bits set past the prefix, got ${shown} (did you mean "${canonical}", or "${formatBytes(network, family)}/${bits}" for the one address?)`,
    );
  }
  return { kind: "cidr", text: canonical, family, network, prefix };
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

/** The 16 bytes of a valid IPv6 address (dotted IPv4 tails included). */
export function ipv6Bytes(text: string): Uint8Array {
  // The URL parser writes an IPv4 tail in hex ("::ffff:1.2.3.4" → "::ffff:102:304").
  const canonical = canonicalIPv6(text);
  const [head = "", tail] = canonical.split("::");
  const groups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function formatBytes(bytes: Uint8Array, family: 4 | 6): string {
  if (family === 4) return [...bytes].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return canonicalIPv6(groups.join(":"));
}

function inNetwork(addr: Uint8Array, rule: { network: Uint8Array; prefix: number }): boolean {
  const full = rule.prefix >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== rule.network[i]) return false;
  const rest = rule.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[full]! & mask) === rule.network[full];
}

// ── host patterns ──

const patternLabel = /^[a-z0-9*?-]{1,63}$/;

function parseHostPattern(input: string): AllowRule {
  const shown = describeValue(input);
  const text = input.toLowerCase();
  if (text.length > allowLimits.maxPatternChars) {
    throw problem(
      `expected a host pattern of at most ${allowLimits.maxPatternChars} characters, got ${shown}`,
    );
  }
  const labels = text.split(".");
  if (labels.some((l) => l === "")) {
    throw problem(
      `expected a host pattern of dot-separated labels like "*.svc.internal" (no empty label), got ${shown}`,
    );
  }
  for (const label of labels) {
    if (label === "**") continue;
    if (label.includes("**")) {
      throw problem(`expected "**" as a whole label ("**.example.com"), got ${shown}`);
    }
    if (!patternLabel.test(label)) {
      throw problem(
        `expected a host pattern of letters, digits, "-", "*" and "?" in labels of at most 63 characters, got ${shown}`,
      );
    }
  }
  // Host names never end in an all-numeric label, and IP targets never meet host patterns: a
  // pattern like "10.0.*.*" would silently match nothing.
  if (labels.every((l) => /^[\d*?]+$/.test(l)) && /\d/.test(text)) {
    throw problem(`expected a host name pattern, got ${shown}: write IP ranges as CIDRs like "10.0.0.0/8"`);
  }
  return { kind: "host", text, labels };
}

/** `?` one character, `*` any run (also none), inside one label; linear-time greedy matching. */
function globLabel(pattern: string, label: string): boolean {
  let p = 0;
  let s = 0;
  let star = -1;
  let mark = 0;
  while (s < label.length) {
    const c = pattern[p];
    if (c === "?" || (c !== undefined && c !== "*" && c === label[s])) {
      p++;
      s++;
    } else if (c === "*") {
      star = p++;
      mark = s;
    } else if (star >= 0) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Whether host-name labels match pattern labels, `**` standing for one or more labels. */
function matchLabels(pattern: readonly string[], host: readonly string[]): boolean {
  // can[j]: pattern labels so far match host labels [0, j). One row per pattern label.
  let can = new Array<boolean>(host.length + 1).fill(false);
  can[0] = true;
  for (const pl of pattern) {
    const next = new Array<boolean>(host.length + 1).fill(false);
    if (pl === "**") {
      let reachable = false;
      for (let j = 1; j <= host.length; j++) {
        reachable ||= can[j - 1]!;
        next[j] = reachable;
      }
    } else {
      for (let j = 1; j <= host.length; j++) next[j] = can[j - 1]! && globLabel(pl, host[j - 1]!);
    }
    can = next;
  }
  return can[host.length]!;
}

// ── the list ──

/** A compiled `targets_allow`. */
export class TargetsAllow {
  readonly rules: readonly AllowRule[];
  private readonly v4: AllowRule[];
  private readonly v6: AllowRule[];
  private readonly hosts: AllowRule[];

  constructor(entries: readonly string[]) {
    this.rules = entries.map(parseAllowRule);
    this.v4 = this.rules.filter((r) => r.kind === "cidr" && r.family === 4);
    this.v6 = this.rules.filter((r) => r.kind === "cidr" && r.family === 6);
    this.hosts = this.rules.filter((r) => r.kind === "host");
  }

  /** Whether a target host (as in TargetAddr: no brackets, canonical IPv6, lowercase name) may be checked. */
  allowsHost(host: string): boolean {
    if (isIPv4(host)) return this.anyCidr(this.v4, ipv4Bytes(host));
    if (isIPv6(host)) {
      const bytes = ipv6Bytes(host);
      if (isIPv4Mapped(bytes) && this.anyCidr(this.v4, bytes.subarray(12))) return true;
      return this.anyCidr(this.v6, bytes);
    }
    const labels = host.toLowerCase().split(".");
    return this.hosts.some((r) => r.kind === "host" && matchLabels(r.labels, labels));
  }

  allows(target: TargetAddr): boolean {
    return this.allowsHost(target.host);
  }

  /** The first target outside the list, with its index, or undefined when all are allowed. */
  firstRefused(targets: readonly TargetAddr[]): { index: number; target: TargetAddr } | undefined {
    for (const [index, target] of targets.entries()) if (!this.allows(target)) return { index, target };
    return undefined;
  }

  /** "10.0.0.0/8, *.svc.internal and 3 more": for error messages. */
  describe(): string {
    const shown = this.rules.slice(0, allowLimits.maxRulesShown).map((r) => r.text);
    const more = this.rules.length - shown.length;
    return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
  }

  /** Why `target` is refused, for an error message with a path. */
  refusal(target: TargetAddr): string {
    const kind = isIPv4(target.host) || isIPv6(target.host) ? "address" : "host name";
    const hint =
      kind === "address"
        ? "IP targets must fall in one of its CIDRs"
        : "host names must match one of its host patterns";
    return `target "${target.key}" is not allowed by node.targets_allow (${this.describe()}): ${hint}`;
  }

  private anyCidr(rules: readonly AllowRule[], bytes: Uint8Array): boolean {
    for (const r of rules) if (r.kind === "cidr" && inNetwork(bytes, r)) return true;
    return false;
  }
}

function isIPv4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}
