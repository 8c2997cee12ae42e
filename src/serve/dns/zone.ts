// The names Vigil answers for and what it answers, as a pure function of the question and
// the pool lookup. Under the configured domain (default `vigil.`):
//
//   <domain>                          apex: SOA
//   service.<domain>                  empty non-terminal
//   <pool>.service.<domain>           A / AAAA of the pool's healthy IP targets
//   _tcp.service.<domain>             empty non-terminal
//   _<pool>._tcp.service.<domain>     SRV of the pool's healthy targets
//   addr.<domain>                     empty non-terminal
//   <ip-with-dashes>.addr.<domain>    A / AAAA of that address (the SRV targets of IP targets)
//
// Empty non-terminals answer NODATA rather than NXDOMAIN: RFC 8020 lets a resolver take an
// NXDOMAIN to mean nothing exists below the name, which would hide every pool.

import type { Answer, SoaAnswer, SrvAnswer, StringAnswer } from "dns-packet";
import { poolNamePattern } from "../../config/names.ts";
import { ErrorCode, VigilError } from "../../core/errors.ts";
import { addressOfLabel, addrLabel, type ClassifiedHost, classifyHost } from "./addr-names.ts";
import { lowerAscii, QClass, QType, type Question, Rcode } from "./message.ts";

export interface DnsTarget {
  host: string;
  port: number;
}

/** The addresses to route to for a pool (fail_open already applied), or undefined for no such pool. */
export type DnsLookup = (pool: string) => { targets: readonly DnsTarget[] } | undefined;

/** Longest domain accepted, so that every synthesized name stays well within 255 bytes. */
export const maxDnsDomainChars = 128;
/**
 * Records considered for one answer. No DNS message (64 KiB) can hold more records than
 * this (each takes at least 28 bytes here), so a pool of 100 000 targets costs no more to
 * answer than one of 4096.
 */
export const maxDnsRecordsPerAnswer = 4096;
/** RFC 2181 §8: TTLs are 31-bit. */
export const maxDnsTtlSeconds = 2 ** 31 - 1;

const domainLabelPattern = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** "Vigil." → "vigil"; throws VigilError(config) for a name that cannot be a DNS domain. */
export function normalizeDomain(domain: string): string {
  const name = lowerAscii(domain.endsWith(".") ? domain.slice(0, -1) : domain);
  if (
    name === "" ||
    name.length > maxDnsDomainChars ||
    !name.split(".").every((l) => domainLabelPattern.test(l))
  ) {
    throw new VigilError(
      ErrorCode.config,
      `expected a DNS domain of at most ${maxDnsDomainChars} characters (labels of letters, digits, "-" and "_"), got ${JSON.stringify(domain)}`,
      { path: "dns.domain" },
    );
  }
  return name;
}

export interface ZoneAnswer {
  rcode: Rcode;
  authoritative: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

type Node =
  | { kind: "outside" }
  | { kind: "apex" }
  | { kind: "empty" }
  | { kind: "pool"; pool: string }
  | { kind: "srv"; pool: string }
  | { kind: "addr"; host: ClassifiedHost }
  | { kind: "none" };

export interface ZoneOptions {
  /** Normalized (see normalizeDomain): lowercase, no trailing dot. */
  domain: string;
  ttlSeconds: number;
  lookup: DnsLookup;
}

export class Zone {
  private readonly domainLabels: string[];
  private readonly fqdn: string;
  private readonly ttl: number;
  private readonly lookup: DnsLookup;
  private readonly soa: SoaAnswer;

  constructor(opts: ZoneOptions) {
    this.domainLabels = opts.domain.split(".");
    this.fqdn = `${opts.domain}.`;
    this.ttl = opts.ttlSeconds;
    this.lookup = opts.lookup;
    this.soa = {
      type: "SOA",
      name: this.fqdn,
      ttl: this.ttl,
      class: "IN",
      data: {
        mname: this.fqdn,
        rname: `hostmaster.${this.fqdn}`,
        // No zone transfers, so secondaries never compare serials; the timers are moot too.
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        // RFC 2308: the negative-caching TTL. Pools come and go, so it follows the answer TTL.
        minimum: this.ttl,
      },
    };
  }

  /**
   * Answers one question. `rotation` turns the order of the records (round robin), so that
   * clients taking the first address, and truncated answers, spread over the whole pool.
   */
  answer(q: Question, rotation: number): ZoneAnswer {
    const node = this.classify(q.lowerLabels);
    if (node.kind === "outside") return refusal(Rcode.refused);
    if (q.qclass !== QClass.in && q.qclass !== QClass.any) return refusal(Rcode.refused);
    if (
      q.qtype === QType.axfr ||
      q.qtype === QType.ixfr ||
      q.qtype === QType.maila ||
      q.qtype === QType.mailb
    ) {
      return refusal(Rcode.notImp);
    }
    // Owner names echo the question's spelling, case included (resolvers using 0x20 compare it).
    const owner = q.labels.join(".");
    switch (node.kind) {
      case "none":
        return this.negative(Rcode.nxDomain);
      case "empty":
        return this.negative(Rcode.noError);
      case "apex":
        return q.qtype === QType.soa || q.qtype === QType.any
          ? this.positive([{ ...this.soa, name: owner }], [])
          : this.negative(Rcode.noError);
      case "addr": {
        const wanted = node.host.kind === "ipv4" ? QType.a : QType.aaaa;
        return q.qtype === wanted || q.qtype === QType.any
          ? this.positive([this.addressRecord(owner, node.host)], [])
          : this.negative(Rcode.noError);
      }
      case "pool":
      case "srv": {
        let found: ReturnType<DnsLookup>;
        try {
          found = this.lookup(node.pool);
        } catch {
          return refusal(Rcode.servFail);
        }
        if (found === undefined) return this.negative(Rcode.nxDomain);
        if (node.kind === "pool") return this.addresses(owner, q.qtype, found.targets, rotation);
        return this.services(owner, q.qtype, found.targets, rotation);
      }
    }
  }

  private classify(lower: string[]): Node {
    const d = this.domainLabels.length;
    if (lower.length < d) return { kind: "outside" };
    for (let i = 0; i < d; i++) {
      if (lower[lower.length - d + i] !== this.domainLabels[i]) return { kind: "outside" };
    }
    const rel = lower.slice(0, lower.length - d);
    const [a, b, c] = rel;
    switch (rel.length) {
      case 0:
        return { kind: "apex" };
      case 1:
        return a === "service" || a === "addr" ? { kind: "empty" } : { kind: "none" };
      case 2:
        if (b === "service" && a === "_tcp") return { kind: "empty" };
        if (b === "service" && isPoolLabel(a!)) return { kind: "pool", pool: a! };
        if (b === "addr") {
          const host = addressOfLabel(a!);
          if (host !== undefined) return { kind: "addr", host };
        }
        return { kind: "none" };
      case 3:
        if (c === "service" && b === "_tcp" && a!.startsWith("_") && isPoolLabel(a!.slice(1))) {
          return { kind: "srv", pool: a!.slice(1) };
        }
        return { kind: "none" };
      default:
        return { kind: "none" };
    }
  }

  private addresses(
    owner: string,
    qtype: number,
    targets: readonly DnsTarget[],
    rotation: number,
  ): ZoneAnswer {
    const wantA = qtype === QType.a || qtype === QType.any;
    const wantAaaa = qtype === QType.aaaa || qtype === QType.any;
    if (!wantA && !wantAaaa) return this.negative(Rcode.noError);
    // Several targets may share an address (different ports); an RRset holds each once.
    const seen = new Set<string>();
    const hosts: ClassifiedHost[] = [];
    for (const t of targets) {
      const host = classifyHost(t.host);
      // Host-name targets have no address of their own to give; SRV names them instead.
      if (host === undefined || host.kind === "name") continue;
      if (host.kind === "ipv4" ? !wantA : !wantAaaa) continue;
      if (seen.has(host.value)) continue;
      seen.add(host.value);
      hosts.push(host);
    }
    const picked = rotate(hosts, rotation).slice(0, maxDnsRecordsPerAnswer);
    return this.positive(
      picked.map((h) => this.addressRecord(owner, h)),
      [],
    );
  }

  private services(
    owner: string,
    qtype: number,
    targets: readonly DnsTarget[],
    rotation: number,
  ): ZoneAnswer {
    if (qtype !== QType.srv && qtype !== QType.any) return this.negative(Rcode.noError);
    const seen = new Set<string>();
    const entries: { target: string; port: number; host: ClassifiedHost }[] = [];
    for (const t of targets) {
      const host = classifyHost(t.host);
      if (host === undefined || !Number.isInteger(t.port) || t.port < 1 || t.port > 65_535) continue;
      const target = host.kind === "name" ? `${host.value}.` : `${addrLabel(host)}.addr.${this.fqdn}`;
      const key = `${target} ${t.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      entries.push({ target, port: t.port, host });
    }
    const picked = rotate(entries, rotation).slice(0, maxDnsRecordsPerAnswer);
    const answers: SrvAnswer[] = picked.map((e) => ({
      type: "SRV",
      name: owner,
      ttl: this.ttl,
      class: "IN",
      // Vigil has already chosen: every healthy target is equally good.
      data: { priority: 1, weight: 1, port: e.port, target: e.target },
    }));
    // The addresses of the synthesized names, so clients need no second query.
    const glued = new Set<string>();
    const additionals: Answer[] = [];
    for (const e of picked) {
      if (e.host.kind === "name" || glued.has(e.target)) continue;
      glued.add(e.target);
      additionals.push(this.addressRecord(e.target, e.host));
    }
    return this.positive(answers, additionals);
  }

  private addressRecord(owner: string, host: ClassifiedHost): StringAnswer {
    return {
      type: host.kind === "ipv4" ? "A" : "AAAA",
      name: owner,
      ttl: this.ttl,
      class: "IN",
      data: host.value,
    };
  }

  private positive(answers: Answer[], additionals: Answer[]): ZoneAnswer {
    // A name that exists with nothing to give (no healthy target) is NODATA: it carries the
    // SOA so resolvers know how long they may cache the empty answer.
    if (answers.length === 0) return this.negative(Rcode.noError);
    return { rcode: Rcode.noError, authoritative: true, answers, authorities: [], additionals };
  }

  private negative(rcode: Rcode): ZoneAnswer {
    return { rcode, authoritative: true, answers: [], authorities: [this.soa], additionals: [] };
  }
}

function refusal(rcode: Rcode): ZoneAnswer {
  return { rcode, authoritative: false, answers: [], authorities: [], additionals: [] };
}

function isPoolLabel(label: string): boolean {
  return poolNamePattern.test(label);
}

function rotate<T>(items: T[], by: number): T[] {
  if (items.length < 2) return items;
  const k = by % items.length;
  return k === 0 ? items : [...items.slice(k), ...items.slice(0, k)];
}
