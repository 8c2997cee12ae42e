// Vigil's DNS server: UDP and TCP on one port, answering from the pool lookup the runtime
// passes in. The protocol work is in ./dns/ (sans sockets); this file owns the sockets, TCP
// framing, backpressure, the idle timeout and the connection cap. docs/dns.md describes the
// names and records.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, isIPv6, type Server, type Socket } from "node:net";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { maxDnsQueryBytes } from "./dns/message.ts";
import { DnsResponder, type DnsResponderOptions, type DnsStats } from "./dns/responder.ts";

export type { RcodeName } from "./dns/message.ts";
export type { DnsDropReason, DnsResponderOptions, DnsStats, DnsTransport } from "./dns/responder.ts";
export { DnsResponder, dnsStatCells, dnsStatsOver, dnsStatsSum } from "./dns/responder.ts";
export type { DnsLookup, DnsTarget } from "./dns/zone.ts";

/**
 * Open TCP connections; more are closed on accept. DNS over TCP is the fallback for truncated
 * answers, one short connection per retry, so a few hundred is ample for a node.
 */
export const dnsMaxTcpConnectionsDefault = 256;
/** RFC 7766 §6.2.3 asks servers to hold idle connections for some seconds, not forever. */
export const dnsTcpIdleMsDefault = 10_000;
/**
 * Response bytes queued on one TCP connection before we stop reading its queries: a client
 * that pipelines without reading answers cannot make us buffer without end.
 */
export const dnsMaxTcpPendingWriteBytes = 256 * 1024;
/** Port 0: tries at a free UDP port whose number TCP has free too. */
const bindAttemptsMax = 20;

export interface DnsServerOptions extends DnsResponderOptions {
  host: string;
  /** 0 picks a port free for both UDP and TCP. */
  port: number;
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  /** SO_REUSEPORT on both sockets: several servers (lookup threads) share the port. Linux. */
  reusePort?: boolean;
}

export interface DnsServer {
  /** The bound port, the same for UDP and TCP. */
  port: number;
  host: string;
  /** Live counters (see DnsStats); read them at scrape time. */
  stats: DnsStats;
  close(): Promise<void>;
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const maxTcpConnections = opts.maxTcpConnections ?? dnsMaxTcpConnectionsDefault;
  const tcpIdleMs = opts.tcpIdleMs ?? dnsTcpIdleMsDefault;
  if (!Number.isInteger(maxTcpConnections) || maxTcpConnections < 1) {
    throw new VigilError(ErrorCode.config, `expected maxTcpConnections ≥ 1, got ${maxTcpConnections}`);
  }
  if (!Number.isInteger(tcpIdleMs) || tcpIdleMs < 1) {
    throw new VigilError(ErrorCode.config, `expected tcpIdleMs ≥ 1, got ${tcpIdleMs}`);
  }
  const responder = new DnsResponder(opts);
  const sockets = await bindBoth(opts.host, opts.port, opts.reusePort === true);
  return new RunningDnsServer(opts.host, sockets, responder, maxTcpConnections, tcpIdleMs);
}

interface BoundSockets {
  udp: UdpSocket;
  tcp: Server;
  port: number;
}

async function bindBoth(host: string, port: number, reusePort: boolean): Promise<BoundSockets> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bindOnce(host, port, reusePort);
    } catch (e) {
      if (port === 0 && attempt < bindAttemptsMax) continue;
      const why = e instanceof Error ? e.message : String(e);
      throw new VigilError(ErrorCode.unavailable, `dns: cannot listen on ${host}:${port}: ${why}`, {
        cause: e,
      });
    }
  }
}

async function bindOnce(host: string, port: number, reusePort: boolean): Promise<BoundSockets> {
  const udp = createSocket({ type: isIPv6(host) ? "udp6" : "udp4", reusePort });
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => {
      udp.off("error", reject);
      resolve();
    });
  });
  const udpPort = udp.address().port;
  const tcp = createServer({ noDelay: true });
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen({ port: udpPort, host, reusePort }, () => {
        tcp.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    udp.close();
    throw e;
  }
  return { udp, tcp, port: udpPort };
}

class RunningDnsServer implements DnsServer {
  readonly port: number;
  readonly host: string;
  readonly stats: DnsStats;
  private readonly udp: UdpSocket;
  private readonly tcp: Server;
  private readonly responder: DnsResponder;
  private readonly maxTcpConnections: number;
  private readonly tcpIdleMs: number;
  private readonly connections = new Set<Socket>();
  private closing: Promise<void> | undefined;

  constructor(
    host: string,
    s: BoundSockets,
    responder: DnsResponder,
    maxTcpConnections: number,
    tcpIdleMs: number,
  ) {
    this.host = host;
    this.port = s.port;
    this.udp = s.udp;
    this.tcp = s.tcp;
    this.responder = responder;
    this.stats = responder.stats;
    // Counts go on from what the cells hold (a restarted lookup thread or process keeps its
    // predecessor's); open connections are this server's own.
    this.stats.tcp.open = 0;
    this.maxTcpConnections = maxTcpConnections;
    this.tcpIdleMs = tcpIdleMs;
    this.udp.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port));
    // Errors on a bound UDP socket are per-packet (ICMP surfacing on some systems); keep serving.
    this.udp.on("error", () => {});
    this.tcp.on("connection", (socket) => this.onConnection(socket));
    this.tcp.on("error", () => {});
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    const response = this.responder.respond(msg, "udp");
    if (response === undefined || this.closing !== undefined) return;
    this.udp.send(response, port, address, (err) => {
      if (err) this.stats.dropped.udp_send_error++;
    });
  }

  private onConnection(socket: Socket): void {
    if (this.closing !== undefined || this.connections.size >= this.maxTcpConnections) {
      this.stats.dropped.tcp_connection_limit++;
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    this.stats.tcp.accepted++;
    this.stats.tcp.open = this.connections.size;
    new TcpConnection(socket, this.responder, this.stats, this.tcpIdleMs, () => {
      this.connections.delete(socket);
      this.stats.tcp.open = this.connections.size;
    });
  }

  close(): Promise<void> {
    this.closing ??= Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => {
        this.tcp.close(() => resolve());
        for (const s of this.connections) s.destroy();
      }),
    ]).then(() => undefined);
    return this.closing;
  }
}

/** One client connection: 2-byte length-prefixed messages (RFC 1035 §4.2.2), answered in order. */
class TcpConnection {
  private readonly socket: Socket;
  private readonly responder: DnsResponder;
  private readonly stats: DnsStats;
  /** Bytes received and not yet answered: at most one partial message, or a chunk while paused. */
  private pending: Buffer = Buffer.alloc(0);
  private pausedForDrain = false;

  constructor(socket: Socket, responder: DnsResponder, stats: DnsStats, idleMs: number, onClose: () => void) {
    this.socket = socket;
    this.responder = responder;
    this.stats = stats;
    socket.setTimeout(idleMs, () => {
      this.stats.tcp.idleClosed++;
      socket.destroy();
    });
    socket.on("data", (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      this.answerPending();
    });
    socket.on("drain", () => {
      if (!this.pausedForDrain) return;
      this.pausedForDrain = false;
      this.answerPending();
      if (!this.pausedForDrain) socket.resume();
    });
    // A reset by the client is its business; 'close' follows and cleans up.
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.pending.length > 0) this.stats.dropped.tcp_partial++;
      this.pending = Buffer.alloc(0);
      onClose();
    });
  }

  private answerPending(): void {
    while (!this.socket.destroyed) {
      if (this.socket.writableLength >= dnsMaxTcpPendingWriteBytes) {
        this.pausedForDrain = true;
        this.socket.pause();
        return;
      }
      if (this.pending.length < 2) return;
      const length = this.pending.readUInt16BE(0);
      if (length > maxDnsQueryBytes) {
        // The length is all we have read of it; skipping a message this size is not worth
        // the buffering, and no resolver sends one.
        this.stats.dropped.too_large++;
        this.pending = Buffer.alloc(0);
        this.socket.destroy();
        return;
      }
      if (this.pending.length < 2 + length) return;
      const msg = this.pending.subarray(2, 2 + length);
      this.pending = this.pending.subarray(2 + length);
      const response = this.responder.respond(msg, "tcp");
      if (response === undefined) continue;
      const frame = Buffer.allocUnsafe(2 + response.length);
      frame.writeUInt16BE(response.length, 0);
      response.copy(frame, 2);
      this.socket.write(frame);
    }
  }
}
