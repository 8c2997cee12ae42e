// The life of one probe: one timer armed before the first byte is sent, an optional abort
// signal, and exactly one result. Checkers subclass Attempt, start their sockets in `start`
// and release them in `release`; everything after the first `finish` is ignored, so late
// socket events (an error after a destroy, a reply after the timeout) cannot change a result.

import type { Socket } from "node:net";
import { limits } from "../core/limits.ts";
import type { TlsContexts } from "./tls-context.ts";
import type { CheckRequest, CheckResult } from "./types.ts";

/**
 * Ends a plain TCP check connection the way HAProxy does (SO_LINGER 0): with a reset, so the
 * checker keeps no TIME_WAIT socket per check — at thousands of checks a second those would
 * hold tens of thousands of local ports for a minute. It does not save CPU: bench/http-checker.ts
 * measures the same cost either way (81 vs 79 µs per check, 5 interleaved rounds). A socket still
 * connecting, or already closed, is simply destroyed.
 */
export function closeWithReset(socket: Socket): void {
  if (!socket.destroyed && socket.readyState === "open") socket.resetAndDestroy();
  else socket.destroy();
}

/** What a prober shares with its checks. */
export interface CheckerContext {
  /** Attempts in flight, ended by the prober's close. */
  inflight: Set<Attempt>;
  tls: TlsContexts;
}

export abstract class Attempt {
  /** Resolves exactly once; never rejects. */
  readonly result: Promise<CheckResult>;
  protected settled = false;
  protected readonly timeoutMs: number;
  private readonly startMs: number;
  private readonly signal: AbortSignal | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resolveResult!: (r: CheckResult) => void;
  /** The prober's attempts in flight, so that closing it ends them. */
  private readonly inflight: Set<Attempt>;

  constructor(req: CheckRequest, inflight: Set<Attempt>) {
    const signal = req.signal;
    this.timeoutMs = req.timeoutMs;
    this.signal = signal;
    this.inflight = inflight;
    this.startMs = performance.now();
    this.result = new Promise((resolve) => {
      this.resolveResult = resolve;
    });
  }

  /** Arms the timer (so it covers connect), then starts the probe. Call once. */
  run(): Promise<CheckResult> {
    if (this.signal?.aborted) {
      this.finish(false, "aborted");
      return this.result;
    }
    this.inflight.add(this);
    this.timer = setTimeout(onAttemptTimer, this.timeoutMs, this);
    if (this.signal !== undefined) watchSignal(this.signal, this);
    try {
      this.start();
    } catch (e) {
      // Node validates some inputs synchronously (a header value with a newline, an
      // unresolvable option): that is a failed check, not a crash of the scheduler.
      this.fail(e);
    }
    return this.result;
  }

  protected abstract start(): void;
  /** Destroys whatever sockets the attempt still holds. Called once, inside `finish`. */
  protected abstract release(): void;

  /** Called by the timer; a checker may override it to add context or keep a known verdict. */
  timedOut(): void {
    this.finish(false, `timeout after ${this.timeoutMs}ms`);
  }

  /** Ends the attempt from outside (the prober is closing). */
  abort(reason: string): void {
    this.finish(false, reason);
  }

  protected fail(err: unknown): void {
    this.finish(false, errorReason(err));
  }

  protected finish(ok: boolean, reason: string): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.inflight.delete(this);
    if (this.signal !== undefined) attemptsBySignal.get(this.signal)?.delete(this);
    this.release();
    this.resolveResult({ ok, latencyMs: performance.now() - this.startMs, reason: cutReason(reason) });
  }
}

// One abort listener per signal, however many attempts wait on it. A node passes one signal to
// every check; with a listener each, hundreds would hang on it, and EventTarget adds and removes
// a listener in time linear in their number (~5 µs a check at 512 in flight).
const attemptsBySignal = new WeakMap<AbortSignal, Set<Attempt>>();

function watchSignal(signal: AbortSignal, a: Attempt): void {
  let waiting = attemptsBySignal.get(signal);
  if (waiting === undefined) {
    const set = new Set<Attempt>();
    waiting = set;
    attemptsBySignal.set(signal, set);
    signal.addEventListener(
      "abort",
      () => {
        // abort() takes each attempt out of the set: iterate a copy.
        for (const x of [...set]) x.abort("aborted");
      },
      { once: true },
    );
  }
  waiting.add(a);
}

// A module-level callback with the attempt as argument: no closure per check.
function onAttemptTimer(a: Attempt): void {
  a.timedOut();
}

/** Cuts a reason shown to people to limits.maxReasonChars. */
export function cutReason(reason: string): string {
  if (reason.length <= limits.maxReasonChars) return reason;
  return reason.slice(0, limits.maxReasonChars - 1) + "…";
}

// OpenSSL verification codes come as bare upper-case codes with a readable message.
const certCodePattern = /^[A-Z][A-Z0-9_]+$/;
// "…:error:0A0000C6:SSL routines:tls_get_more_records:packet length too long:…"
const opensslReason = /SSL routines:[^:]*:([^:]+):/;
const maxCauseDepth = 4;

/** The short reason for an operating error: "connect ECONNREFUSED", "read ECONNRESET". */
export function errorReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Wrappers such as http2's "pending stream has been canceled" carry the socket error as
  // their cause: the cause is what an operator needs. The depth bound guards a cyclic chain.
  let e = err as NodeJS.ErrnoException;
  for (let depth = 0; depth < maxCauseDepth && e.cause instanceof Error; depth++) e = e.cause;
  const code = e.code;
  // A handshake with something that is not TLS fails inside OpenSSL; node reports it as
  // ERR_SSL_* or as a bare EPROTO on write, the readable part buried in the message.
  const ssl = opensslReason.exec(e.message);
  if (ssl !== null) return `tls ${ssl[1]}`;
  if (typeof code === "string") {
    if (typeof e.syscall === "string") return `${e.syscall} ${code}`;
    // node:http reports a peer that closed mid-response as ECONNRESET "aborted": a reset
    // while reading. One that closed before any response is the familiar "socket hang up".
    if (code === "ECONNRESET") return e.message === "socket hang up" ? "socket hang up" : "read ECONNRESET";
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `certificate name mismatch: ${e.message}`;
    if (certCodePattern.test(code) && !code.startsWith("ERR_"))
      return `certificate not trusted: ${e.message} (${code})`;
    return `${e.message} (${code})`;
  }
  return e.message;
}
