import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { cutReason, errorReason } from "../../src/checkers/attempt.ts";
import { NeedleScanner } from "../../src/checkers/scan.ts";
import { limits } from "../../src/core/limits.ts";

/** Splits `bytes` at the given cut points (taken modulo its length). */
function chunksOf(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort(
    (a, b) => a - b,
  );
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe("NeedleScanner", () => {
  it("finds the needle however the stream is cut, exactly when the whole contains it", () => {
    // A small alphabet makes near-misses and overlaps common.
    const text = fc.string({ unit: fc.constantFrom("a", "b", "ab"), maxLength: 60 });
    fc.assert(
      fc.property(text, text, fc.array(fc.nat(), { maxLength: 12 }), (hay, needle, cuts) => {
        const whole = Buffer.from(hay);
        const scanner = new NeedleScanner(Buffer.from(needle));
        let found = scanner.found;
        // Every chunk arrives in one reused buffer, as the HTTP checker's reads do (onread):
        // whatever the scanner keeps of a chunk must survive the next one overwriting it.
        const reused = Buffer.alloc(whole.length + 1);
        for (const chunk of chunksOf(whole, cuts)) {
          reused.fill(0x3f);
          chunk.copy(reused);
          found = scanner.push(reused.subarray(0, chunk.length));
        }
        assert.equal(found, hay.includes(needle), `${JSON.stringify(needle)} in ${JSON.stringify(hay)}`);
      }),
      { numRuns: 2000 },
    );
  });

  it("finds a needle cut into single bytes", () => {
    const scanner = new NeedleScanner(Buffer.from("NEEDLE"));
    const stream = Buffer.from("xxNEEDxNEEDLExx");
    const seen: boolean[] = [];
    for (let i = 0; i < stream.length; i++) seen.push(scanner.push(stream.subarray(i, i + 1)));
    assert.equal(seen.indexOf(true), 12);
  });
});

describe("reasons", () => {
  it("cuts long reasons to limits.maxReasonChars", () => {
    assert.equal(cutReason("short"), "short");
    const cut = cutReason("x".repeat(500));
    assert.equal(cut.length, limits.maxReasonChars);
    assert.ok(cut.endsWith("…"));
  });

  it("names socket errors by syscall and code, and unwraps causes", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
      syscall: "connect",
    });
    assert.equal(errorReason(refused), "connect ECONNREFUSED");
    assert.equal(errorReason(new Error("wrapper", { cause: refused })), "connect ECONNREFUSED");
    assert.equal(errorReason(Object.assign(new Error("aborted"), { code: "ECONNRESET" })), "read ECONNRESET");
    assert.equal(
      errorReason(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })),
      "socket hang up",
    );
    const selfSigned = Object.assign(new Error("self-signed certificate"), {
      code: "DEPTH_ZERO_SELF_SIGNED_CERT",
    });
    assert.equal(
      errorReason(selfSigned),
      "certificate not trusted: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)",
    );
    assert.equal(errorReason("plain"), "plain");
    const cyclic = new Error("outer") as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    assert.equal(errorReason(cyclic), "outer");
  });
});
