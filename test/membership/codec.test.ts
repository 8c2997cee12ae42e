import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DECODE_ERROR_REASONS } from "../../src/core/codec/bytes.ts";
import {
  decodePacket,
  decodeStream,
  encodeMessage,
  encodePacket,
  encodeStream,
  MAX_NODE_NAME_BYTES,
  MessageCode,
  messageSize,
  type PacketMessage,
  PROTOCOL_VERSION,
  type PushPullMsg,
} from "../../src/core/codec/membership-wire.ts";
import { limits } from "../../src/core/limits.ts";

// ── generators ──

const rec = { noNullPrototype: true } as const;
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
// Names include multi-byte characters: lengths are in bytes, not characters.
const name = fc
  .string({ minLength: 1, maxLength: 40, unit: "grapheme" })
  .filter((s) => Buffer.byteLength(s) <= MAX_NODE_NAME_BYTES);
const addr = fc
  .tuple(fc.string({ minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 65535 }))
  .map(([h, p]) => `${h}:${p}`);
const meta = fc.uint8Array({ maxLength: limits.maxMetaBytes });

const packetMessage: fc.Arbitrary<PacketMessage> = fc.oneof(
  fc.record({ type: fc.constant("ping" as const), seq: u32, target: name, source: name }, rec),
  fc.record(
    { type: fc.constant("ping_req" as const), seq: u32, target: name, targetAddr: addr, nack: fc.boolean() },
    rec,
  ),
  fc.record({ type: fc.constant("ack" as const), seq: u32 }, rec),
  fc.record({ type: fc.constant("nack" as const), seq: u32 }, rec),
  fc.record({ type: fc.constant("suspect" as const), incarnation: u32, node: name, from: name }, rec),
  fc.record({ type: fc.constant("dead" as const), incarnation: u32, node: name, from: name }, rec),
  fc.record({ type: fc.constant("alive" as const), incarnation: u32, node: name, addr, meta }, rec),
  fc.record({ type: fc.constant("app" as const), payload: fc.uint8Array({ maxLength: 300 }) }, rec),
);

const pushPull: fc.Arbitrary<PushPullMsg> = fc.record(
  {
    type: fc.constant("push_pull" as const),
    join: fc.boolean(),
    members: fc.array(
      fc.record(
        {
          name,
          addr,
          incarnation: u32,
          state: fc.constantFrom("alive" as const, "suspect" as const, "dead" as const, "left" as const),
          meta,
        },
        rec,
      ),
      { maxLength: 20 },
    ),
    appState: fc.uint8Array({ maxLength: 2000 }),
  },
  rec,
);

/** Messages that together fit one packet. */
const packetParts = fc
  .array(packetMessage, { minLength: 1, maxLength: 12 })
  .map((ms) => {
    const out: PacketMessage[] = [];
    let size = 4;
    for (const m of ms) {
      const s = messageSize(m) + 2;
      if (size + s > limits.maxUdpPacketBytes) break;
      out.push(m);
      size += s;
    }
    return out;
  })
  .filter((ms) => ms.length > 0);

/** Anything a decoder may return must never throw; other errors (bugs) fail the property. */
function decodesTotally(bytes: Uint8Array): void {
  const p = decodePacket(bytes);
  if (!p.ok) assert.ok(DECODE_ERROR_REASONS.includes(p.reason));
  const s = decodeStream(bytes);
  if (!s.ok) assert.ok(DECODE_ERROR_REASONS.includes(s.reason));
}

// ── round trips ──

describe("membership wire codec round trips", () => {
  test("a packet of one or many messages decodes to the same messages", () => {
    fc.assert(
      fc.property(packetParts, (ms) => {
        const bytes = encodePacket(ms.map(encodeMessage));
        assert.ok(bytes.length <= limits.maxUdpPacketBytes);
        const r = decodePacket(bytes);
        assert.ok(r.ok, !r.ok ? `${r.reason}: ${r.detail}` : "");
        assert.deepEqual(r.value.messages, ms);
        assert.deepEqual(
          r.value.sizes,
          ms.map((m) => messageSize(m)),
        );
      }),
      { numRuns: 500 },
    );
  });

  test("a push-pull frame decodes to the same state", () => {
    fc.assert(
      fc.property(pushPull, (m) => {
        const r = decodeStream(encodeStream(m));
        assert.ok(r.ok, !r.ok ? `${r.reason}: ${r.detail}` : "");
        assert.deepEqual(r.value, m);
      }),
      { numRuns: 200 },
    );
  });

  test("stream ping and ack round-trip", () => {
    const ping = { type: "ping" as const, seq: 7, target: "n1", source: "n2" };
    assert.deepEqual(decodeStream(encodeStream(ping)), { ok: true, value: ping });
    const ack = { type: "ack" as const, seq: 0xffff_ffff };
    assert.deepEqual(decodeStream(encodeStream(ack)), { ok: true, value: ack });
  });

  test("the single-message layout is version, type, body", () => {
    const bytes = encodePacket([encodeMessage({ type: "ack", seq: 258 })]);
    assert.deepEqual([...bytes], [PROTOCOL_VERSION, MessageCode.ack, 0, 0, 1, 2]);
  });
});

// ── typed errors ──

describe("membership wire codec rejects bad input with a typed reason", () => {
  const good = encodePacket([encodeMessage({ type: "suspect", incarnation: 3, node: "n1", from: "n2" })]);

  test("empty and truncated input", () => {
    assert.equal(reasonOf(decodePacket(new Uint8Array(0))), "truncated");
    for (let cut = 1; cut < good.length; cut++)
      assert.equal(reasonOf(decodePacket(good.subarray(0, cut))), "truncated", `cut at ${cut}`);
  });

  test("wrong version", () => {
    const b = good.slice();
    b[0] = PROTOCOL_VERSION + 1;
    assert.equal(reasonOf(decodePacket(b)), "bad_version");
    assert.equal(reasonOf(decodeStream(b)), "bad_version");
  });

  test("unknown message type, at the top and inside a compound", () => {
    assert.equal(reasonOf(decodePacket(Uint8Array.of(PROTOCOL_VERSION, 200, 0))), "unknown_type");
    const compound = Uint8Array.of(PROTOCOL_VERSION, MessageCode.compound, 0, 1, 0, 1, 99);
    assert.equal(reasonOf(decodePacket(compound)), "unknown_type");
  });

  test("oversized packet, stream frame, meta and name", () => {
    assert.equal(reasonOf(decodePacket(new Uint8Array(limits.maxUdpPacketBytes + 1))), "oversized");
    // An alive claiming 513 bytes of meta.
    const alive = encodeMessage({
      type: "alive",
      incarnation: 1,
      node: "a",
      addr: "b:1",
      meta: new Uint8Array(1),
    });
    const b = encodePacket([alive]).slice();
    const metaLenAt = b.length - 3;
    new DataView(b.buffer).setUint16(metaLenAt, limits.maxMetaBytes + 1);
    assert.equal(reasonOf(decodePacket(b)), "oversized");
    // A name longer than the limit.
    const long = Uint8Array.of(PROTOCOL_VERSION, MessageCode.dead, 0, 0, 0, 1, MAX_NODE_NAME_BYTES + 1);
    assert.equal(reasonOf(decodePacket(long)), "oversized");
    // A push-pull claiming more members than allowed.
    const pp = Uint8Array.of(PROTOCOL_VERSION, MessageCode.push_pull, 0, 0xff, 0xff, 0xff, 0xff);
    assert.equal(reasonOf(decodeStream(pp)), "oversized");
  });

  test("malformed: trailing bytes, nested compound, bad flag, bad state, bad UTF-8, wrong context", () => {
    const trailing = Uint8Array.of(...good, 0);
    assert.equal(reasonOf(decodePacket(trailing)), "malformed");
    const nested = Uint8Array.of(
      PROTOCOL_VERSION,
      MessageCode.compound,
      0,
      1,
      0,
      3,
      MessageCode.compound,
      0,
      0,
    );
    assert.equal(reasonOf(decodePacket(nested)), "malformed");
    const zeroParts = Uint8Array.of(PROTOCOL_VERSION, MessageCode.compound, 0, 0);
    assert.equal(reasonOf(decodePacket(zeroParts)), "malformed");
    const req = encodePacket([
      encodeMessage({ type: "ping_req", seq: 1, target: "t", targetAddr: "t:1", nack: true }),
    ]).slice();
    req[req.length - 1] = 2;
    assert.equal(reasonOf(decodePacket(req)), "malformed");
    const pp = encodeStream({
      type: "push_pull",
      join: false,
      members: [{ name: "a", addr: "a:1", incarnation: 1, state: "alive", meta: new Uint8Array(0) }],
      appState: new Uint8Array(0),
    }).slice();
    pp[3 + 4 + 2 + 4 + 4 + 1 - 1] = 9; // the member's state byte
    assert.equal(reasonOf(decodeStream(pp)), "malformed");
    const badUtf8 = Uint8Array.of(PROTOCOL_VERSION, MessageCode.dead, 0, 0, 0, 1, 1, 0xff, 1, 0x61);
    assert.equal(reasonOf(decodePacket(badUtf8)), "malformed");
    // A push-pull inside a UDP packet, and a suspect on a stream.
    const ppInPacket = Uint8Array.of(PROTOCOL_VERSION, MessageCode.push_pull, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert.equal(reasonOf(decodePacket(ppInPacket)), "malformed");
    assert.equal(reasonOf(decodeStream(good)), "malformed");
  });

  test("encode asserts sizes: an oversized message is a programmer error", () => {
    assert.throws(
      () =>
        encodeMessage({
          type: "alive",
          incarnation: 1,
          node: "a",
          addr: "a:1",
          meta: new Uint8Array(limits.maxMetaBytes + 1),
        }),
      /invariant/,
    );
    assert.throws(
      () =>
        encodeMessage({ type: "dead", incarnation: 1, node: "x".repeat(MAX_NODE_NAME_BYTES + 1), from: "a" }),
      /invariant/,
    );
    assert.throws(
      () => encodePacket([encodeMessage({ type: "app", payload: new Uint8Array(1400) })]),
      /invariant/,
    );
    assert.throws(() => encodeMessage({ type: "ack", seq: -1 }), /invariant/);
  });
});

// ── fuzzing ──

describe("membership wire decoders never throw", () => {
  test("on random bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1600 }), decodesTotally), { numRuns: 3000 });
  });

  test("on random bytes behind a valid header", () => {
    const header = fc
      .constantFrom(...Object.values(MessageCode))
      .map((t) => Uint8Array.of(PROTOCOL_VERSION, t));
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 600 }), (h, rest) =>
        decodesTotally(Uint8Array.of(...h, ...rest)),
      ),
      { numRuns: 3000 },
    );
  });

  test("on mutated valid packets and frames: flipped, cut, spliced", () => {
    const validPacket = packetParts.map((ms) => encodePacket(ms.map(encodeMessage)));
    const validFrame = pushPull.map(encodeStream);
    const mutation = fc.record({
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.option(fc.nat()),
      insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }))),
    });
    fc.assert(
      fc.property(fc.oneof(validPacket, validFrame), mutation, (valid, mut) => {
        let b = valid.slice();
        for (const [at, v] of mut.flips) if (b.length > 0) b[at % b.length] = v;
        if (mut.insert !== null) {
          const at = mut.insert[0] % (b.length + 1);
          b = Uint8Array.of(...b.subarray(0, at), ...mut.insert[1], ...b.subarray(at));
        }
        if (mut.cut !== null) b = b.subarray(0, mut.cut % (b.length + 1));
        decodesTotally(b);
      }),
      { numRuns: 2000 },
    );
  });
});

function reasonOf(r: { ok: true } | { ok: false; reason: string }): string {
  return r.ok ? "ok" : r.reason;
}
