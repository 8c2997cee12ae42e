import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, VigilError } from "../core/errors.ts";
import type { EventLog, EventQuery, VigilEvent } from "../runtime/events.ts";

// GET /v1/events/stream: server-sent events. Each event carries `id: <seq>` so a client that
// reconnects with `Last-Event-ID` (browsers do it by themselves) resumes where it left off.
// A consumer that does not keep up is cut off once its unsent bytes pass a bound, after a
// final `event: dropped` telling it so — never unbounded memory on the server.

export const sseLimits = {
  /** Unsent bytes buffered for one client before it is dropped. */
  maxBufferedBytes: 1024 * 1024,
  /** Concurrent streams per node; more get 503. */
  maxStreams: 1024,
  /** A comment line this often keeps idle proxies from closing the stream. */
  heartbeatMs: 15_000,
  /** A dropped client has this long to read the final notice before its socket is destroyed. */
  dropGraceMs: 10_000,
  /** Events replayed on (re)connect, at most. */
  maxReplay: 10_000,
} as const;

interface Stream {
  res: ServerResponse;
  matches: (e: VigilEvent) => boolean;
  unsubscribe: () => void;
}

export class EventStreams {
  private readonly log: EventLog;
  private readonly streams = new Set<Stream>();
  private heartbeat: NodeJS.Timeout | undefined;
  droppedSlow = 0;
  private readonly limits: typeof sseLimits;

  constructor(log: EventLog, overrides: Partial<typeof sseLimits> = {}) {
    this.log = log;
    this.limits = { ...sseLimits, ...overrides };
  }

  get size(): number {
    return this.streams.size;
  }

  /** Serves one stream; the response stays open until the client leaves or is dropped. */
  open(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (this.streams.size >= this.limits.maxStreams) {
      throw new VigilError(ErrorCode.unavailable, `too many event streams (${this.limits.maxStreams})`);
    }
    const q = filterOf(url);
    const resumeFrom = req.headers["last-event-id"] ?? url.searchParams.get("since") ?? undefined;
    let since: number | undefined;
    if (resumeFrom !== undefined) {
      const v = Array.isArray(resumeFrom) ? resumeFrom[0] : resumeFrom;
      if (v === undefined || !/^\d+$/.test(v)) {
        throw new VigilError(
          ErrorCode.badRequest,
          `Last-Event-ID / since must be an event cursor, got "${v}"`,
        );
      }
      since = Number(v);
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      // The connection ends with the stream: nothing to reuse it for afterwards.
      connection: "close",
      "x-accel-buffering": "no",
    });
    res.write(`retry: 2000\n: vigil event stream, newest cursor ${this.log.lastSeq}\n\n`);

    const matches = (e: VigilEvent): boolean =>
      (q.pool === undefined || e.pool === q.pool) &&
      (q.target === undefined || e.target === q.target) &&
      (q.types === undefined || q.types.has(e.type));
    const stream: Stream = { res, matches, unsubscribe: () => {} };

    // Replay and subscribe in the same tick: the in-memory log appends synchronously, so
    // nothing can slip between the last replayed event and the first live one.
    if (since !== undefined) {
      let cursor = since;
      let replayed = 0;
      if (since + 1 < this.log.firstSeq) {
        this.write(
          stream,
          `event: gap\ndata: ${JSON.stringify({ from: since, oldest: this.log.firstSeq })}\n\n`,
        );
      }
      while (replayed < this.limits.maxReplay) {
        const page = this.log.query({ ...q, since: cursor, limit: 1000 });
        for (const e of page.events) this.send(stream, e);
        replayed += page.events.length;
        if (page.next === cursor) break;
        cursor = page.next;
      }
    }
    stream.unsubscribe = this.log.subscribe((e) => {
      if (stream.matches(e)) this.send(stream, e);
    });
    this.streams.add(stream);
    this.ensureHeartbeat();
    const close = (): void => this.close(stream);
    req.on("close", close);
    res.on("close", close);
  }

  private send(s: Stream, e: VigilEvent): void {
    this.write(s, `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  }

  private write(s: Stream, chunk: string): void {
    if (s.res.writableEnded || s.res.destroyed) return;
    if (s.res.writableLength > this.limits.maxBufferedBytes) {
      this.droppedSlow++;
      // Bypass the buffer bound for the final notice; then end and forget the client.
      s.res.end(
        `event: dropped\ndata: ${JSON.stringify({ reason: "slow consumer", bufferedBytes: s.res.writableLength })}\n\n`,
      );
      this.close(s);
      return;
    }
    s.res.write(chunk);
  }

  private close(s: Stream): void {
    if (!this.streams.delete(s)) return;
    s.unsubscribe();
    if (!s.res.writableEnded) s.res.end();
    if (this.streams.size === 0 && this.heartbeat !== undefined) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  private ensureHeartbeat(): void {
    if (this.heartbeat !== undefined) return;
    this.heartbeat = setInterval(() => {
      for (const s of this.streams) this.write(s, ": ping\n\n");
    }, this.limits.heartbeatMs);
    this.heartbeat.unref();
  }

  closeAll(): void {
    for (const s of [...this.streams]) this.close(s);
  }
}

function filterOf(url: URL): EventQuery {
  const q: EventQuery = {};
  const pool = url.searchParams.get("pool");
  if (pool !== null) q.pool = pool;
  const target = url.searchParams.get("target");
  if (target !== null) q.target = target;
  const type = url.searchParams.get("type");
  if (type !== null) q.types = new Set(type.split(",").filter((t) => t !== ""));
  return q;
}
