// Bytes in, bytes out: one DNS message and the transport it came on, to the response to
// send (or nothing), with every outcome counted. No sockets here, so it is tested directly
// and fuzzed without a network.

import { ErrorCode, VigilError } from "../../core/errors.ts";
import type { DropReason as ParseDropReason } from "./message.ts";
import { parseQuery, Rcode, type RcodeName, rcodeNames } from "./message.ts";
import { encodeResponse, tcpMessageBytesMax, udpPayloadBytesMax, udpPayloadBytesMin } from "./response.ts";
import { type DnsLookup, maxDnsTtlSeconds, normalizeDomain, Zone } from "./zone.ts";

export type DnsTransport = "udp" | "tcp";

export type DnsDropReason =
  | ParseDropReason
  /** A TCP connection over the cap, closed on accept. */
  | "tcp_connection_limit"
  /** A TCP connection that ended or timed out in the middle of a message. */
  | "tcp_partial"
  | "udp_send_error";

/** Live counters, read at scrape time; names match the Prometheus metrics in docs/dns.md. */
export interface DnsStats {
  /** Responses sent, by transport and rcode. */
  responses: Record<DnsTransport, Record<RcodeName, number>>;
  /** Responses sent with TC set. */
  truncated: Record<DnsTransport, number>;
  /** Messages (or connections) not answered, by reason. */
  dropped: Record<DnsDropReason, number>;
  tcp: { open: number; accepted: number; idleClosed: number };
  /** Bugs caught while answering (answered SERVFAIL); should stay 0. */
  internalErrors: number;
}

export function createDnsStats(): DnsStats {
  const byRcode = (): Record<RcodeName, number> => ({
    NOERROR: 0,
    FORMERR: 0,
    SERVFAIL: 0,
    NXDOMAIN: 0,
    NOTIMP: 0,
    REFUSED: 0,
    BADVERS: 0,
  });
  return {
    responses: { udp: byRcode(), tcp: byRcode() },
    truncated: { udp: 0, tcp: 0 },
    dropped: {
      short: 0,
      response: 0,
      too_large: 0,
      tcp_connection_limit: 0,
      tcp_partial: 0,
      udp_send_error: 0,
    },
    tcp: { open: 0, accepted: 0, idleClosed: 0 },
    internalErrors: 0,
  };
}

/** Cells a DnsStats needs when it lives in a Float64Array (dnsStatsOver). */
export const dnsStatCells = countLeaves(createDnsStats() as unknown as Record<string, unknown>);

function countLeaves(o: Record<string, unknown>): number {
  let n = 0;
  for (const v of Object.values(o))
    n += typeof v === "number" ? 1 : countLeaves(v as Record<string, unknown>);
  return n;
}

/**
 * A DnsStats whose every number is the accessor `cell(i)` makes for its position i (the order of
 * createDnsStats' keys, depth first); checks that there are `cells` of them.
 */
function statsOverCells(cells: number, cell: (i: number) => PropertyDescriptor): DnsStats {
  const stats = createDnsStats();
  let next = 0;
  const wire = (o: Record<string, unknown>): void => {
    for (const k of Object.keys(o)) {
      const v = o[k];
      if (typeof v !== "number") wire(v as Record<string, unknown>);
      else Object.defineProperty(o, k, { enumerable: true, ...cell(next++) });
    }
  };
  wire(stats as unknown as Record<string, unknown>);
  if (next !== cells) throw new Error(`DNS stats need ${next} cells, got ${cells}`);
  return stats;
}

/**
 * The same counters with every number kept in a cell of `cells` (dnsStatCells of them, shared
 * memory allowed): the DNS server on the lookup thread counts, the node's thread reads for
 * /metrics. Same shape, so `stats.dropped.short++` works either way. One writer.
 */
export function dnsStatsOver(cells: Float64Array): DnsStats {
  return statsOverCells(cells.length, (at) => ({
    get: () => cells[at]!,
    set: (x: number) => {
      cells[at] = x;
    },
  }));
}

/** The counters of several DNS servers (one block of dnsStatCells cells each), summed; read only. */
export function dnsStatsSum(blocks: readonly Float64Array[]): DnsStats {
  for (const b of blocks)
    if (b.length !== dnsStatCells) throw new Error(`DNS stats need ${dnsStatCells} cells, got ${b.length}`);
  return statsOverCells(dnsStatCells, (at) => ({
    get: () => {
      let n = 0;
      for (const b of blocks) n += b[at]!;
      return n;
    },
  }));
}

export interface DnsResponderOptions {
  /** Where to count (a fresh DnsStats if absent). */
  stats?: DnsStats;
  /** Default "vigil.". */
  domain?: string;
  /** Default 0: pools change with every check, so answers should not be cached. */
  ttlSeconds?: number;
  lookup: DnsLookup;
  /** Told of a bug caught while answering (the query got SERVFAIL). */
  onInternalError?: (err: unknown) => void;
}

export class DnsResponder {
  readonly stats: DnsStats;
  private readonly zone: Zone;
  private readonly onInternalError: ((err: unknown) => void) | undefined;
  private rotation = 0;

  constructor(opts: DnsResponderOptions) {
    this.stats = opts.stats ?? createDnsStats();
    const ttlSeconds = opts.ttlSeconds ?? 0;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > maxDnsTtlSeconds) {
      throw new VigilError(
        ErrorCode.config,
        `expected a TTL in whole seconds from 0 to ${maxDnsTtlSeconds}, got ${ttlSeconds}`,
        { path: "dns.ttl" },
      );
    }
    this.zone = new Zone({
      domain: normalizeDomain(opts.domain ?? "vigil."),
      ttlSeconds,
      lookup: opts.lookup,
    });
    this.onInternalError = opts.onInternalError;
  }

  /** The response to `msg`, or undefined when it is dropped. Never throws. */
  respond(msg: Buffer, transport: DnsTransport): Buffer | undefined {
    const parsed = parseQuery(msg);
    if (parsed.kind === "drop") {
      this.stats.dropped[parsed.reason]++;
      return undefined;
    }
    const maxBytes = transport === "tcp" ? tcpMessageBytesMax : udpLimit(parsed.edns?.udpPayloadBytes);
    const edns = parsed.edns !== undefined;
    let rcode: Rcode;
    let response: { bytes: Buffer; truncated: boolean };
    try {
      if (parsed.kind === "reject") {
        rcode = parsed.rcode;
        response = encodeResponse(
          {
            ...noRecords,
            header: parsed.header,
            rcode,
            authoritative: false,
            question: parsed.question,
            edns,
          },
          maxBytes,
        );
      } else {
        const answer = this.zone.answer(parsed.question, this.rotation);
        this.rotation = (this.rotation + 1) % 0x1_0000_0000;
        rcode = answer.rcode;
        response = encodeResponse(
          { ...answer, header: parsed.header, question: parsed.question, edns },
          maxBytes,
        );
      }
    } catch (err) {
      this.stats.internalErrors++;
      this.onInternalError?.(err);
      rcode = Rcode.servFail;
      response = encodeResponse(
        {
          ...noRecords,
          header: parsed.header,
          rcode,
          authoritative: false,
          question: parsed.question,
          edns: false,
        },
        maxBytes,
      );
    }
    this.stats.responses[transport][rcodeNames[rcode]]++;
    if (response.truncated) this.stats.truncated[transport]++;
    return response.bytes;
  }
}

const noRecords = { answers: [], authorities: [], additionals: [] };

/** RFC 6891 §6.2.5: sizes under 512 mean 512; above our cap, the cap. */
export function udpLimit(requested: number | undefined): number {
  if (requested === undefined) return udpPayloadBytesMin;
  return Math.min(udpPayloadBytesMax, Math.max(udpPayloadBytesMin, requested));
}
