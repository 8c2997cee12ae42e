import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type AgentDecodeStep,
  AgentRequestDecoder,
  type AgentRequestResult,
  type AgentVerdict,
  formatAgentReply,
  maxAgentReasonChars,
  maxAgentReplyBytes,
  maxAgentRequestBytes,
  noChangeReply,
  parseAgentRequestLine,
  sanitizeAgentReason,
} from "../../src/core/agent-check/codec.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Feeds `chunks` to a fresh decoder; then EOF if `eof`. Returns the final step. */
function decode(chunks: (string | Uint8Array)[], eof = false): AgentDecodeStep {
  const d = new AgentRequestDecoder();
  let step: AgentDecodeStep = { type: "need_more" };
  for (const c of chunks) step = d.push(typeof c === "string" ? bytes(c) : c);
  if (eof) step = d.end();
  return step;
}

function result(step: AgentDecodeStep): AgentRequestResult {
  assert.equal(step.type, "done", "expected the decoder to decide");
  if (step.type !== "done") throw new Error("unreachable");
  return step.result;
}

function okRequest(chunks: (string | Uint8Array)[], eof = false): { pool: string; target: string } {
  const r = result(decode(chunks, eof));
  assert.ok(r.ok, `expected a request, got ${r.ok ? "" : `${r.error.kind}: ${r.error.message}`}`);
  return r.request;
}

function errorOf(chunks: (string | Uint8Array)[], eof = false): { kind: string; message: string } {
  const r = result(decode(chunks, eof));
  assert.ok(!r.ok, `expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

/**
 * A model of how HAProxy 2.6 reads an agent reply (src/tcpcheck.c,
 * tcpcheck_agent_expect_reply): the first line, words split on space/tab/comma, the last word
 * of each kind wins, "#" starts the description. Used to check that every reply Vigil writes
 * means to HAProxy exactly what the docs say it means.
 */
function haproxyReads(reply: string): {
  health?: string;
  admin?: string;
  weight?: string;
  errors: string[];
  desc: string;
} {
  const end = reply.search(/[\r\n]/);
  assert.ok(end >= 0, "HAProxy ignores a reply without CR or LF");
  let line = reply.slice(0, end);
  const out: { health?: string; admin?: string; weight?: string; errors: string[]; desc: string } = {
    errors: [],
    desc: "",
  };
  while (line !== "") {
    const c = line[0]!;
    if (c === " " || c === "\t" || c === ",") {
      line = line.slice(1);
      continue;
    }
    if (c === "#") {
      out.desc = line.slice(1).replace(/^[ \t]+/, "");
      break;
    }
    const m = /^[^ \t,]+/.exec(line)!;
    const word = m[0];
    line = line.slice(word.length);
    const w = word.toLowerCase();
    if (["up", "down", "stopped", "fail"].includes(w)) out.health = w;
    else if (["ready", "drain", "maint"].includes(w)) out.admin = w;
    else if (/^\d/.test(w) && w.includes("%")) out.weight = w;
    else out.errors.push(word);
  }
  return out;
}

describe("agent-check codec: requests", () => {
  it("reads <pool>/<host:port> ended by LF or CRLF", () => {
    assert.deepEqual(okRequest(["web/127.0.0.1:8080\n"]), { pool: "web", target: "127.0.0.1:8080" });
    assert.deepEqual(okRequest(["web/127.0.0.1:8080\r\n"]), { pool: "web", target: "127.0.0.1:8080" });
    assert.deepEqual(okRequest(["api_v2-x/10.0.0.1:1\n"]), { pool: "api_v2-x", target: "10.0.0.1:1" });
  });

  it("canonicalises the target the way pool keys are written", () => {
    assert.deepEqual(okRequest(["web/[::1]:80\n"]), { pool: "web", target: "[::1]:80" });
    assert.deepEqual(okRequest(["web/[0:0::0:1]:80\n"]), { pool: "web", target: "[::1]:80" });
    assert.deepEqual(okRequest(["web/[2001:DB8::A]:443\n"]), { pool: "web", target: "[2001:db8::a]:443" });
    assert.deepEqual(okRequest(["web/Origin-1.Example.COM:8080\n"]), {
      pool: "web",
      target: "origin-1.example.com:8080",
    });
  });

  it("forgives spaces and tabs around the request, which hand-typed agent-send strings grow", () => {
    assert.deepEqual(okRequest([" \tweb/127.0.0.1:80 \t\r\n"]), { pool: "web", target: "127.0.0.1:80" });
  });

  it("waits for the newline however the bytes are split", () => {
    const d = new AgentRequestDecoder();
    const line = "web/[::1]:8080\r\n";
    for (const ch of line.slice(0, -1)) assert.deepEqual(d.push(bytes(ch)), { type: "need_more" });
    assert.equal(d.done, false);
    const last = d.push(bytes("\n"));
    assert.deepEqual(last, {
      type: "done",
      result: { ok: true, request: { pool: "web", target: "[::1]:8080" } },
    });
    assert.equal(d.done, true);
  });

  it("answers the first line only; later bytes do not change the decision", () => {
    const d = new AgentRequestDecoder();
    const first = d.push(bytes("web/127.0.0.1:80\nweb/127.0.0.1:81\n"));
    assert.deepEqual(first, {
      type: "done",
      result: { ok: true, request: { pool: "web", target: "127.0.0.1:80" } },
    });
    assert.deepEqual(d.push(bytes("garbage\0\n")), first);
    assert.deepEqual(d.end(), first);
  });

  it("refuses a line cut short by the peer closing, pointing at a missing newline in agent-send", () => {
    assert.deepEqual(decode(["web/127.0.0.1:80"]), { type: "need_more" });
    const e = errorOf(["web/127.0.0.1:80"], true);
    assert.equal(e.kind, "incomplete");
    assert.match(e.message, /before the newline.*missing from agent-send/);
    // A complete line followed by the peer closing is still a request.
    assert.deepEqual(okRequest(["web/127.0.0.1:80\n"], true), { pool: "web", target: "127.0.0.1:80" });
  });

  it("bounds the line at maxAgentRequestBytes, newline included", () => {
    assert.equal(maxAgentRequestBytes, 512);
    // Padding is trimmed, so a line of exactly the bound is a valid request...
    const atBound = `web/127.0.0.1:80${" ".repeat(maxAgentRequestBytes - 17)}\n`;
    assert.equal(atBound.length, maxAgentRequestBytes);
    assert.deepEqual(okRequest([atBound]), { pool: "web", target: "127.0.0.1:80" });
    // ...and one byte more is refused, in one chunk or trickled in.
    const over = `web/127.0.0.1:80${" ".repeat(maxAgentRequestBytes - 16)}\n`;
    assert.equal(errorOf([over]).kind, "line_too_long");
    assert.match(errorOf([over]).message, /line too long/);
    assert.equal(errorOf([...over].map((c) => c)).kind, "line_too_long");
    // Without any newline the decoder gives up as soon as the bound is crossed.
    const d = new AgentRequestDecoder();
    assert.equal(d.push(new Uint8Array(maxAgentRequestBytes)).type, "need_more");
    const step = d.push(new Uint8Array(1));
    assert.equal(step.type === "done" && !step.result.ok && step.result.error.kind, "line_too_long");
  });

  it("refuses bad requests with a typed error that says what was wrong", () => {
    const cases: [string, string, RegExp][] = [
      ["\n", "empty", /empty request line/],
      [" \t\r\n", "empty", /empty request line/],
      ["web\n", "bad_format", /expected <pool>\/<host:port>, got "web"/],
      ["web 127.0.0.1:80\n", "bad_format", /expected <pool>\/<host:port>/],
      ["Web/127.0.0.1:80\n", "bad_pool", /pool name/],
      ["/127.0.0.1:80\n", "bad_pool", /pool name/],
      ["-web/127.0.0.1:80\n", "bad_pool", /pool name/],
      [`${"p".repeat(129)}/127.0.0.1:80\n`, "bad_pool", /pool name/],
      ["web/\n", "bad_target", /host:port/],
      ["web/127.0.0.1\n", "bad_target", /with a port/],
      ["web/127.0.0.1:0\n", "bad_target", /port from 1 to 65535/],
      ["web/127.0.0.1:65536\n", "bad_target", /port from 1 to 65535/],
      ["web/127.0.0.256:80\n", "bad_target", /IPv4/],
      ["web/::1:80\n", "bad_target", /IPv6 address in brackets/],
      ["web/[::1]80\n", "bad_target", /port after the bracket/],
      ["web/[::1:80\n", "bad_target", /closing the IPv6/],
      ["web/[fe80::1%eth0]:80\n", "bad_target", /zone id/],
      ["web/a/b:80\n", "bad_target", /host/],
      ["web/127.0.0.1:80 extra\n", "bad_target", /port/],
      ["web/under_score.example:80\n", "bad_target", /host name/],
    ];
    for (const [line, kind, message] of cases) {
      const e = errorOf([line]);
      assert.equal(e.kind, kind, `${JSON.stringify(line)} → ${e.kind}: ${e.message}`);
      assert.match(e.message, message, JSON.stringify(line));
    }
  });

  it("refuses control characters and non-ASCII bytes, naming the byte and its offset", () => {
    const nul = errorOf(["web/127.0.0.1:80\0\n"]);
    assert.equal(nul.kind, "bad_bytes");
    assert.match(nul.message, /byte 0x00 at offset 16/);
    assert.equal(errorOf(["web/127.0.0.1:80\r\r\n"]).kind, "bad_bytes");
    assert.equal(errorOf(["wéb/127.0.0.1:80\n"]).kind, "bad_bytes");
    assert.match(errorOf([new Uint8Array([0xff, 0x0a])]).message, /byte 0xff at offset 0/);
    assert.equal(errorOf(["\x1b[2Jweb/127.0.0.1:80\n"]).kind, "bad_bytes");
  });

  it("reports a connection that closes before any byte as incomplete", () => {
    const e = errorOf([], true);
    assert.equal(e.kind, "incomplete");
    assert.match(e.message, /closed before a request line/);
  });

  it("parseAgentRequestLine agrees with the decoder on text", () => {
    assert.deepEqual(parseAgentRequestLine("web/127.0.0.1:80"), {
      ok: true,
      request: { pool: "web", target: "127.0.0.1:80" },
    });
    const r = parseAgentRequestLine("nope");
    assert.equal(r.ok, false);
  });

  it("never throws on arbitrary bytes, and the split into chunks never changes the decision", () => {
    const chunked = fc
      .uint8Array({ maxLength: 700 })
      .chain((all) =>
        fc
          .uniqueArray(fc.nat({ max: all.length }), { maxLength: 8 })
          .map((cuts) => ({ all, cuts: cuts.sort((a, b) => a - b) })),
      );
    fc.assert(
      fc.property(chunked, fc.boolean(), ({ all, cuts }, eof) => {
        const whole = decode([all], eof);
        const pieces: Uint8Array[] = [];
        let from = 0;
        for (const c of [...cuts, all.length]) {
          pieces.push(all.subarray(from, c));
          from = c;
        }
        assert.deepEqual(decode(pieces, eof), whole);
        if (whole.type === "done" && whole.result.ok) {
          assert.match(whole.result.request.pool, /^[a-z0-9][a-z0-9_-]*$/);
          assert.ok(whole.result.request.target.length > 0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on lines built from the request alphabet", () => {
    const alphabet = fc.constantFrom(..."web/[]:.0123456789abcdef-_ \t\r%ZX".split(""));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 60 }), (chars) => {
        const step = decode([`${chars.join("")}\n`]);
        assert.equal(step.type, "done");
      }),
      { numRuns: 1000 },
    );
  });

  it("reads back every valid pool and IPv4/IPv6 target it is given", () => {
    const pool = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,40}$/);
    const host = fc.oneof(
      fc.ipV4(),
      fc.ipV6().map((h) => `[${h}]`),
    );
    fc.assert(
      fc.property(pool, host, fc.integer({ min: 1, max: 65535 }), fc.boolean(), (p, h, port, crlf) => {
        const req = okRequest([`${p}/${h}:${port}${crlf ? "\r\n" : "\n"}`]);
        assert.equal(req.pool, p);
        // The key is canonical: parsing it again gives itself.
        assert.deepEqual(okRequest([`${p}/${req.target}\n`]).target, req.target);
        assert.ok(req.target.endsWith(`:${port}`));
      }),
      { numRuns: 300 },
    );
  });
});

describe("agent-check codec: replies", () => {
  const reply = (v: AgentVerdict | undefined): string => formatAgentReply(v);

  it("up → `up ready`: operational UP, any DRAIN or MAINT the agent set is lifted", () => {
    assert.equal(reply({ state: "up", reason: "status 200" }), "up ready\n");
    assert.deepEqual(haproxyReads(reply({ state: "up", reason: "x" })), {
      health: "up",
      admin: "ready",
      errors: [],
      desc: "",
    });
  });

  it("down → `down ready #<reason>`", () => {
    assert.equal(reply({ state: "down", reason: "status 503" }), "down ready #status 503\n");
    assert.equal(reply({ state: "down", reason: "" }), "down ready\n");
    assert.deepEqual(haproxyReads(reply({ state: "down", reason: "connect ECONNREFUSED" })), {
      health: "down",
      admin: "ready",
      errors: [],
      desc: "connect ECONNREFUSED",
    });
  });

  it("maint → `maint`, drain → `drain` (health left alone unless it is known)", () => {
    assert.equal(reply({ state: "maint", reason: "kernel upgrade" }), "maint\n");
    assert.equal(reply({ state: "drain", reason: "deploy" }), "drain\n");
    assert.equal(reply({ state: "drain", reason: "deploy", health: "unknown" }), "drain\n");
    assert.equal(reply({ state: "drain", reason: "deploy", health: "up" }), "up drain\n");
    assert.equal(reply({ state: "drain", reason: "status 500", health: "down" }), "down drain #status 500\n");
    assert.deepEqual(haproxyReads(reply({ state: "maint", reason: "x" })), {
      admin: "maint",
      errors: [],
      desc: "",
    });
    assert.deepEqual(haproxyReads(reply({ state: "drain", reason: "x" })), {
      admin: "drain",
      errors: [],
      desc: "",
    });
  });

  it("unknown verdict, unknown target and unknown states → an empty line, which changes nothing", () => {
    assert.equal(noChangeReply, "\n");
    assert.equal(reply({ state: "unknown", reason: "no observations yet" }), "\n");
    assert.equal(reply(undefined), "\n");
    assert.equal(reply({ state: "exploded", reason: "?" } as unknown as AgentVerdict), "\n");
    assert.deepEqual(haproxyReads(reply(undefined)), { errors: [], desc: "" });
  });

  it("sanitises the reason: no line breaks or control characters, ASCII only, bounded", () => {
    assert.equal(sanitizeAgentReason("a\nb\r\nc\td\0e"), "a b c d e");
    assert.equal(sanitizeAgentReason("  lots   of\n\n space  "), "lots of space");
    assert.equal(sanitizeAgentReason("connexion refusée ✓ 🚀"), "connexion refus?e ? ?");
    assert.equal(sanitizeAgentReason("a\u2028b\u0085c"), "a b c");
    const long = sanitizeAgentReason("x".repeat(10_000));
    assert.equal(long.length, maxAgentReasonChars);
    assert.ok(long.endsWith("..."));
    assert.equal(sanitizeAgentReason("y".repeat(maxAgentReasonChars)), "y".repeat(maxAgentReasonChars));
    assert.equal(sanitizeAgentReason(undefined as unknown as string), "");
    // A reason cannot smuggle in a second line or a word HAProxy would obey.
    const evil = reply({ state: "down", reason: "bye\nup ready\n" });
    assert.equal(evil, "down ready #bye up ready\n");
    assert.deepEqual(haproxyReads(evil), {
      health: "down",
      admin: "ready",
      errors: [],
      desc: "bye up ready",
    });
  });

  it("every reply is one printable ASCII line within maxAgentReplyBytes that HAProxy reads as intended", () => {
    const state = fc.constantFrom("up", "down", "maint", "drain", "unknown") as fc.Arbitrary<
      AgentVerdict["state"]
    >;
    const health = fc.option(
      fc.constantFrom("up", "down", "unknown") as fc.Arbitrary<"up" | "down" | "unknown">,
      {
        nil: undefined,
      },
    );
    const reason = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 300 }));
    fc.assert(
      fc.property(state, reason, health, (s, r, h) => {
        const v: AgentVerdict =
          h === undefined ? { state: s, reason: r } : { state: s, reason: r, health: h };
        const out = formatAgentReply(v);
        assert.match(out, /^[\x20-\x7e]*\n$/);
        assert.ok(Buffer.byteLength(out) <= maxAgentReplyBytes);
        const read = haproxyReads(out);
        assert.deepEqual(read.errors, []);
        assert.equal(read.weight, undefined);
        const expected: Record<string, [string | undefined, string | undefined]> = {
          up: ["up", "ready"],
          down: ["down", "ready"],
          maint: [undefined, "maint"],
          drain: [h === "up" || h === "down" ? h : undefined, "drain"],
          unknown: [undefined, undefined],
        };
        assert.deepEqual([read.health, read.admin], expected[s]);
        assert.ok(read.desc.length <= maxAgentReasonChars);
      }),
      { numRuns: 500 },
    );
  });
});
