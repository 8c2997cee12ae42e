// The life of one probe: one timer armed before the first byte is sent, an optional abort
// signal, and exactly one result. Checkers subclass Attempt, start their sockets in `start`
// and release them in `release`; everything after the first `finish` is ignored, so late
// socket events (an error after a destroy, a reply after the timeout) cannot change a result.

import { limits } from "../core/limits.ts";
import type { CheckResult } from "./types.ts";

export abstract class Attempt {
  /** Resolves exactly once; never rejects. */
  readonly result: Promise<CheckResult>;
  protected settled = false;
  protected readonly timeoutMs: number;
  private readonly startMs: number;
  private readonly signal: AbortSignal | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resolveResult!: (r: CheckResult) => void;
  private readonly onAbort: (() => void) | undefined;

  constructor(timeoutMs: number, signal: AbortSignal | undefined) {
    this.timeoutMs = timeoutMs;
    this.signal = signal;
    this.startMs = performance.now();
    this.result = new Promise((resolve) => {
      this.resolveResult = resolve;
    });
    this.onAbort = signal === undefined ? undefined : () => this.finish(false, "aborted");
  }

  /** Arms the timer (so it covers connect), then starts the probe. Call once. */
  run(): Promise<CheckResult> {
    if (this.signal?.aborted) {
      this.finish(false, "aborted");
      return this.result;
    }
    this.timer = setTimeout(onAttemptTimer, this.timeoutMs, this);
    if (this.onAbort !== undefined) this.signal!.addEventListener("abort", this.onAbort, { once: true });
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

  /** Called when the timer fires before a result; a checker may override to add context. */
  protected timedOut(): void {
    this.finish(false, `timeout after ${this.timeoutMs}ms`);
  }

  protected fail(err: unknown): void {
    this.finish(false, errorReason(err));
  }

  protected finish(ok: boolean, reason: string): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener("abort", this.onAbort);
    this.release();
    this.resolveResult({ ok, latencyMs: performance.now() - this.startMs, reason: cutReason(reason) });
  }

  /** Stops the timer without settling: for work that continues after the verdict is known. */
  protected get timerArmed(): boolean {
    return this.timer !== undefined && !this.settled;
  }
}

// A module-level callback with the attempt as argument: no closure per check.
function onAttemptTimer(a: Attempt): void {
  (a as unknown as { timedOut(): void }).timedOut();
}

/** Cuts a reason shown to people to limits.maxReasonChars. */
export function cutReason(reason: string): string {
  if (reason.length <= limits.maxReasonChars) return reason;
  return reason.slice(0, limits.maxReasonChars - 1) + "…";
}

// OpenSSL verification codes come as bare upper-case codes with a readable message.
const certCodePattern = /^[A-Z][A-Z0-9_]+$/;

/** The short reason for an operating error: "connect ECONNREFUSED", "read ECONNRESET". */
export function errorReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException & { reason?: unknown };
  const code = e.code;
  if (typeof code === "string") {
    if (typeof e.syscall === "string") return `${e.syscall} ${code}`;
    // node:http reports a peer that closed mid-response as ECONNRESET "aborted" (or "socket
    // hang up" before the response): for an operator both are a reset while reading.
    if (code === "ECONNRESET") return e.message === "socket hang up" ? "socket hang up" : "read ECONNRESET";
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `certificate name mismatch: ${e.message}`;
    if (certCodePattern.test(code) && !code.startsWith("ERR_")) return `certificate ${e.message} (${code})`;
    if (typeof e.reason === "string" && code.startsWith("ERR_SSL_")) return `tls ${e.reason}`;
    return `${e.message} (${code})`;
  }
  return e.message;
}
