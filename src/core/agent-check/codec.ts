// HAProxy agent-check, sans-IO: the request HAProxy sends (`agent-send "<pool>/<host:port>\n"`)
// and the one-line reply it parses. No sockets, clocks or timers here; the shell in
// src/serve/agent-server.ts feeds bytes in and writes the reply out.
//
// What HAProxy does with a reply (checked against HAProxy 2.6's tcpcheck_agent_expect_reply and
// by test/integrations/haproxy.test.ts): the line ends at the first CR or LF; words are split on
// spaces, tabs and commas, in any order, the last of each kind wins; "#" starts a description
// that is shown only when a health word is present. Health words: up, down, fail, stopped.
// Admin words: ready (clears DRAIN and MAINT), drain, maint. "75%" sets a weight. A line with no
// known word (an empty line, or an unrecognised word) is reported as "No status change" and
// touches nothing; that is the answer Vigil gives whenever it has nothing trustworthy to say.

import { AddressProblem, parseHostPort } from "../../config/address.ts";
import { poolNamePattern } from "../../config/names.ts";
import { assert } from "../assert.ts";

/** Bytes of one request line, newline included. HAProxy sends `<pool>/<host:port>\n`: a
 * 128-character pool and a 300-character address fit; anything longer is not a request. */
export const maxAgentRequestBytes = 512;

/** Characters of the reason after `#`. HAProxy keeps 128 bytes of check description and
 * prefixes "via agent : down (", so a longer reason would be cut by HAProxy anyway. */
export const maxAgentReasonChars = 100;

/** The longest reply formatAgentReply can produce ("down drain #" + reason + "\n"). */
export const maxAgentReplyBytes = 16 + maxAgentReasonChars;

/** An answer that changes nothing in HAProxy: an empty line is "No status change". */
export const noChangeReply = "\n";

// ── request ────────────────────────────────────────────────────────────────

export interface AgentRequest {
  pool: string;
  /** The canonical `host:port` key (lowercase host, compressed IPv6 in brackets). */
  target: string;
}

export type AgentRequestErrorKind =
  | "line_too_long"
  | "empty"
  | "bad_bytes"
  | "bad_format"
  | "bad_pool"
  | "bad_target"
  | "incomplete";

export interface AgentRequestError {
  kind: AgentRequestErrorKind;
  message: string;
}

export type AgentRequestResult =
  | { ok: true; request: AgentRequest }
  | { ok: false; error: AgentRequestError };

/** What one chunk did: nothing decisive yet, or the request (or why there is none). */
export type AgentDecodeStep = { type: "need_more" } | { type: "done"; result: AgentRequestResult };

const needMore: AgentDecodeStep = { type: "need_more" };
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;

const fail = (kind: AgentRequestErrorKind, message: string): AgentRequestResult => ({
  ok: false,
  error: { kind, message },
});

/**
 * Accumulates the bytes of one connection until the first LF (a CR before it is dropped), then
 * parses that line. Bounded: it never holds more than `maxRequestBytes`. One-shot: once it has
 * decided, later bytes are ignored and every call returns the same decision. Never throws on
 * any input.
 */
export class AgentRequestDecoder {
  private readonly buf: Uint8Array;
  private used = 0;
  private decided: AgentDecodeStep | undefined;

  constructor(maxRequestBytes = maxAgentRequestBytes) {
    assert(
      Number.isInteger(maxRequestBytes) && maxRequestBytes >= 2,
      "maxRequestBytes must be an integer ≥ 2",
    );
    this.buf = new Uint8Array(maxRequestBytes);
  }

  get done(): boolean {
    return this.decided !== undefined;
  }

  push(chunk: Uint8Array): AgentDecodeStep {
    if (this.decided !== undefined) return this.decided;
    const lf = chunk.indexOf(LF);
    const take = lf < 0 ? chunk.length : lf + 1;
    if (this.used + take > this.buf.length) {
      return this.decide(fail("line_too_long", `line too long: no newline within ${this.buf.length} bytes`));
    }
    this.buf.set(chunk.subarray(0, take), this.used);
    this.used += take;
    if (lf < 0) return needMore;
    return this.decide(parseAgentRequestBytes(this.buf.subarray(0, this.used - 1)));
  }

  /** The peer closed its side. A line still missing its newline is not taken: HAProxy never
   * closes first, except when its agent timeout expires, which is what a forgotten `\n` in
   * `agent-send` looks like; answering the fragment would count an answer nobody read. */
  end(): AgentDecodeStep {
    if (this.decided !== undefined) return this.decided;
    if (this.used === 0) return this.decide(fail("incomplete", "connection closed before a request line"));
    return this.decide(
      fail(
        "incomplete",
        'connection closed before the newline ending the request (is "\\n" missing from agent-send?)',
      ),
    );
  }

  private decide(result: AgentRequestResult): AgentDecodeStep {
    this.decided = { type: "done", result };
    return this.decided;
  }
}

/** Parses one line (without its LF; one trailing CR is allowed) into a request. Its length is
 * the caller's to bound: AgentRequestDecoder does. */
export function parseAgentRequestBytes(line: Uint8Array): AgentRequestResult {
  let end = line.length;
  if (end > 0 && line[end - 1] === CR) end--;
  for (let i = 0; i < end; i++) {
    const b = line[i]!;
    if (b !== TAB && (b < 0x20 || b > 0x7e)) {
      return fail(
        "bad_bytes",
        `expected printable ASCII, got byte 0x${b.toString(16).padStart(2, "0")} at offset ${i}`,
      );
    }
  }
  // Every byte is ASCII, so one byte is one character. The decoder bounds `line`, so the
  // spread stays far below any argument-count limit.
  return parseAgentRequestLine(String.fromCharCode(...line.subarray(0, end)));
}

/**
 * Parses `<pool>/<host:port>`. Spaces and tabs around it are forgiven (an agent-send string is
 * typed by hand); anything else that is not a valid pool name and target address is an error.
 */
export function parseAgentRequestLine(text: string): AgentRequestResult {
  const line = text.replace(/^[ \t]+|[ \t]+$/g, "");
  if (line === "") return fail("empty", "empty request line; expected <pool>/<host:port>");
  const shown = JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
  const slash = line.indexOf("/");
  if (slash < 0) return fail("bad_format", `expected <pool>/<host:port>, got ${shown}`);
  const pool = line.slice(0, slash);
  const targetText = line.slice(slash + 1);
  if (!poolNamePattern.test(pool)) {
    return fail(
      "bad_pool",
      `expected a pool name of lowercase letters, digits, "-" and "_" before "/", got ${shown}`,
    );
  }
  try {
    return { ok: true, request: { pool, target: parseHostPort(targetText).key } };
  } catch (e) {
    if (e instanceof AddressProblem) return fail("bad_target", `${e.message} after "${pool}/"`);
    throw e;
  }
}

// ── reply ──────────────────────────────────────────────────────────────────

export type AgentState = "up" | "down" | "unknown" | "maint" | "drain";
export type AgentHealth = "up" | "down" | "unknown";

/** What Vigil knows about a target, as the agent server gets it from the node. */
export interface AgentVerdict {
  state: AgentState;
  reason: string;
  /** The health verdict under an admin state, when known: it lets a drained target still be
   * marked down (or back up) in HAProxy. Without it, "drain" leaves HAProxy's health alone. */
  health?: AgentHealth;
}

/**
 * The reply line for a verdict (undefined: unknown target).
 *
 * | state   | reply               | HAProxy                                                   |
 * | up      | `up ready`          | operational UP; clears a DRAIN/MAINT the agent set        |
 * | down    | `down ready #why`   | operational DOWN; clears DRAIN/MAINT (see below)          |
 * | maint   | `maint`             | admin MAINT: no traffic at all, HAProxy's own check pauses|
 * | drain   | `drain`             | admin DRAIN: weight 0, persistent sessions only; health   |
 * |         |                     | untouched (`up drain` / `down drain #why` with `health`)  |
 * | unknown | empty line          | no change                                                 |
 *
 * `down` carries `ready` because only the agent can undo what the agent set: after
 * Vigil's maint is lifted from a target that is down, a bare `down` would leave HAProxy in
 * MAINT until the target came back up.
 */
export function formatAgentReply(verdict: AgentVerdict | undefined): string {
  const reply = replyFor(verdict);
  assert(/^[\x20-\x7e]*\n$/.test(reply), "agent reply is one printable ASCII line");
  assert(reply.length <= maxAgentReplyBytes, "agent reply within its bound");
  return reply;
}

function replyFor(verdict: AgentVerdict | undefined): string {
  if (verdict === undefined) return noChangeReply;
  switch (verdict.state) {
    case "up":
      return "up ready\n";
    case "down":
      return `down ready${describe(verdict.reason)}\n`;
    case "maint":
      return "maint\n";
    case "drain":
      if (verdict.health === "up") return "up drain\n";
      if (verdict.health === "down") return `down drain${describe(verdict.reason)}\n`;
      return "drain\n";
    default:
      // "unknown" by design, and any state a newer node might invent: no trustworthy answer,
      // so HAProxy keeps what it has.
      return noChangeReply;
  }
}

function describe(reason: string): string {
  const clean = sanitizeAgentReason(reason);
  return clean === "" ? "" : ` #${clean}`;
}

/**
 * A reason safe to put after `#`: printable ASCII only (control characters become spaces, other
 * characters "?"), whitespace collapsed, cut to `maxChars` with "..." so that one reason can never
 * end the line early or grow the reply without bound.
 */
export function sanitizeAgentReason(reason: string, maxChars = maxAgentReasonChars): string {
  assert(Number.isInteger(maxChars) && maxChars >= 3, "maxChars must be an integer ≥ 3");
  const text = typeof reason === "string" ? reason : "";
  // Looking at no more than needed keeps a pathological reason cheap.
  const head = text.slice(0, maxChars * 4);
  const ascii = head
    .replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, " ")
    .replace(/[^\x20-\x7e]/gu, "?")
    .replace(/ {2,}/g, " ")
    .trim();
  if (head.length === text.length && ascii.length <= maxChars) return ascii;
  return `${ascii.slice(0, maxChars - 3).trimEnd()}...`;
}
