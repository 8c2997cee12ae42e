import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { ErrorCode, VigilError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { Keyring } from "./keyring.ts";

// The real Transport: best-effort UDP packets and request/response TCP streams on the same
// port number. With a keyring every packet and stream frame is sealed (AES-256-GCM).
//
// A stream carries exactly one request frame and one reply frame: [u32 BE length][bytes].

export interface TransportHandlers {
  onPacket(from: string, bytes: Uint8Array): void;
  /** Answer a stream request; undefined closes the stream without a reply. */
  onStream(from: string, bytes: Uint8Array): Uint8Array | undefined;
}

export type DropReason = "decrypt" | "oversized" | "bad_frame" | "stream_timeout";

export interface TransportStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  streamsIn: number;
  streamsOut: number;
  dropped: Record<DropReason, number>;
}

export interface TransportOptions {
  host: string;
  port: number;
  keyring?: Keyring;
  handlers: TransportHandlers;
  /** Server-side bound on how long a peer may take to send its request. */
  streamIdleMs?: number;
}

const STREAM_IDLE_MS_DEFAULT = 10_000;
/** UDP reads above this are someone else's traffic, not ours: dropped before decrypting. */
const MAX_DATAGRAM_BYTES = 65_507;

export class UdpTcpTransport {
  readonly stats: TransportStats = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    streamsIn: 0,
    streamsOut: 0,
    dropped: { decrypt: 0, oversized: 0, bad_frame: 0, stream_timeout: 0 },
  };
  private udp!: UdpSocket;
  private tcp!: Server;
  private readonly opts: TransportOptions;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;
  private closed = false;

  private constructor(opts: TransportOptions) {
    this.opts = opts;
  }

  static async listen(opts: TransportOptions): Promise<UdpTcpTransport> {
    const t = new UdpTcpTransport(opts);
    // Port 0: take a free UDP port, then the same number for TCP; retry if TCP has it taken.
    for (let attempt = 0; ; attempt++) {
      try {
        await t.bind(opts.port);
        return t;
      } catch (e) {
        if (opts.port !== 0 || attempt >= 20) throw e;
      }
    }
  }

  get localAddr(): string {
    return joinHostPort(this.opts.host, this.boundPort);
  }

  private async bind(port: number): Promise<void> {
    const udp = createSocket({ type: this.opts.host.includes(":") ? "udp6" : "udp4", reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, this.opts.host, () => {
        udp.off("error", reject);
        resolve();
      });
    });
    const udpPort = udp.address().port;
    const tcp = createServer((s) => this.acceptStream(s));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(udpPort, this.opts.host, () => {
          tcp.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    udp.on("message", (msg, rinfo) => this.receivePacket(msg, rinfo.address, rinfo.port));
    // A send error (e.g. ICMP unreachable surfaced on some systems) is not a reason to crash.
    udp.on("error", () => {});
    tcp.on("error", () => {});
    this.udp = udp;
    this.tcp = tcp;
    this.boundPort = udpPort;
  }

  private receivePacket(msg: Buffer, host: string, port: number): void {
    if (msg.length > MAX_DATAGRAM_BYTES) {
      this.stats.dropped.oversized++;
      return;
    }
    this.stats.packetsIn++;
    this.stats.bytesIn += msg.length;
    const plain = this.unseal(msg);
    if (plain === undefined) return;
    const from = joinHostPort(host, port);
    this.opts.handlers.onPacket(from, plain);
  }

  private unseal(b: Uint8Array): Uint8Array | undefined {
    if (this.opts.keyring === undefined) return b;
    const plain = this.opts.keyring.open(b);
    if (plain === undefined) this.stats.dropped.decrypt++;
    return plain;
  }

  private seal(b: Uint8Array): Uint8Array {
    return this.opts.keyring === undefined ? b : this.opts.keyring.seal(b);
  }

  send(to: string, bytes: Uint8Array): void {
    if (this.closed) return;
    const [host, port] = splitAddr(to);
    const sealed = this.seal(bytes);
    this.stats.packetsOut++;
    this.stats.bytesOut += sealed.length;
    this.udp.send(sealed, port, host);
  }

  /** One request frame out, one reply frame back, within `timeoutMs`. Rejects on any failure. */
  request(to: string, bytes: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new VigilError(ErrorCode.unavailable, "transport closed"));
    const [host, port] = splitAddr(to);
    this.stats.streamsOut++;
    return new Promise((resolve, reject) => {
      const s = createConnection({ host, port });
      this.sockets.add(s);
      let done = false;
      const finish = (err: Error | undefined, reply?: Uint8Array): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.destroy();
        this.sockets.delete(s);
        if (err !== undefined) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(
        () => finish(new VigilError(ErrorCode.unavailable, `stream to ${to} timed out after ${timeoutMs}ms`)),
        timeoutMs,
      );
      s.on("error", (e) => finish(new VigilError(ErrorCode.unavailable, `stream to ${to}: ${e.message}`)));
      s.on("connect", () => this.writeFrame(s, bytes));
      readFrame(s, (err, frame) => {
        if (err !== undefined) return finish(err);
        this.stats.bytesIn += frame!.length + 4;
        const plain = this.unseal(frame!);
        if (plain === undefined)
          return finish(new VigilError(ErrorCode.crypto, `stream reply from ${to} did not decrypt`));
        finish(undefined, plain);
      });
      s.on("close", () =>
        finish(new VigilError(ErrorCode.unavailable, `stream to ${to} closed without a reply`)),
      );
    });
  }

  private writeFrame(s: Socket, bytes: Uint8Array): void {
    const sealed = this.seal(bytes);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(sealed.length, 0);
    this.stats.bytesOut += sealed.length + 4;
    s.write(head);
    s.write(sealed);
  }

  private acceptStream(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.stats.streamsIn++;
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => {});
    s.setTimeout(this.opts.streamIdleMs ?? STREAM_IDLE_MS_DEFAULT, () => {
      this.stats.dropped.stream_timeout++;
      s.destroy();
    });
    const from = `${s.remoteAddress ?? "?"}:${s.remotePort ?? 0}`;
    readFrame(s, (err, frame) => {
      if (err !== undefined) {
        this.stats.dropped[err.message.includes("exceeds") ? "oversized" : "bad_frame"]++;
        s.destroy();
        return;
      }
      this.stats.bytesIn += frame!.length + 4;
      const plain = this.unseal(frame!);
      if (plain === undefined) {
        s.destroy();
        return;
      }
      const reply = this.opts.handlers.onStream(from, plain);
      if (reply === undefined) {
        s.end();
        return;
      }
      this.writeFrame(s, reply);
      s.end();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      new Promise<void>((r) => this.udp.close(() => r())),
      new Promise<void>((r) => this.tcp.close(() => r())),
    ]);
  }
}

/** Reads one length-prefixed frame, bounded by limits.maxStreamBytes; calls back once. */
function readFrame(s: Socket, cb: (err: Error | undefined, frame?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let have = 0;
  let need = -1;
  let called = false;
  const call = (err: Error | undefined, frame?: Buffer): void => {
    if (called) return;
    called = true;
    s.off("data", onData);
    s.off("end", onEnd);
    cb(err, frame);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    have += chunk.length;
    if (need < 0 && have >= 4) {
      const all = Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(all);
      need = all.readUInt32BE(0);
      if (need > limits.maxStreamBytes) {
        call(
          new VigilError(ErrorCode.decode, `stream frame of ${need} bytes exceeds ${limits.maxStreamBytes}`),
        );
        return;
      }
    }
    if (need >= 0 && have >= 4 + need) {
      const all = Buffer.concat(chunks);
      call(undefined, all.subarray(4, 4 + need));
    }
  };
  const onEnd = (): void => call(new VigilError(ErrorCode.decode, "stream ended before a whole frame"));
  s.on("data", onData);
  s.on("end", onEnd);
}

/** A host as it stands in a URL or before a port: IPv6 bracketed. */
export function bracketHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** `host:port` with an IPv6 host bracketed; the inverse of splitAddr. */
export function joinHostPort(host: string, port: number): string {
  return `${bracketHost(host)}:${port}`;
}

export function splitAddr(addr: string): [string, number] {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(addr) ?? /^([^:[\]]+):(\d{1,5})$/.exec(addr);
  if (m === null) throw new VigilError(ErrorCode.config, `expected host:port, got "${addr}"`);
  return [m[1]!, Number(m[2])];
}
