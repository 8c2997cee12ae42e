import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  anyJsonValue,
  decodeDelta,
  decodeExchangeReply,
  decodeExchangeRequest,
  decodeLwwDelta,
  decodeLwwVersions,
  decodeVector,
  encodeDelta,
  encodeExchangeReply,
  encodeExchangeRequest,
  encodeLwwDelta,
  encodeLwwVersions,
  encodeVector,
  isBoundedJson,
  LwwMap,
  ObservationMap,
  type Register,
  stateLimits,
  vvCompare,
  vvCovers,
  vvDominates,
  vvMerge,
} from "../../src/core/state/index.ts";

interface Obs {
  state: "up" | "down";
  streak: number;
}

const decodeObs = (x: unknown): Obs | undefined => {
  if (typeof x !== "object" || x === null) return undefined;
  const o = x as Record<string, unknown>;
  if ((o.state !== "up" && o.state !== "down") || !Number.isSafeInteger(o.streak)) return undefined;
  return { state: o.state, streak: o.streak as number };
};

/** Through real JSON text, as the wire would carry it. */
const wire = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

const idArb = fc.string({ minLength: 1, maxLength: 20 });
const plain = { noNullPrototype: true };
const obsArb: fc.Arbitrary<Obs> = fc.record(
  { state: fc.constantFrom("up", "down"), streak: fc.nat() },
  plain,
);
const registerArb: fc.Arbitrary<Register<Obs>> = fc.record(
  {
    targetId: idArb,
    observer: idArb,
    counter: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    value: obsArb,
  },
  plain,
);

describe("observation codec", () => {
  it("round-trips deltas through JSON text, order kept", () => {
    fc.assert(
      fc.property(fc.array(registerArb, { maxLength: 30 }), (regs) => {
        const back = decodeDelta(wire(encodeDelta(regs)), decodeObs);
        assert.ok(back.ok);
        assert.deepEqual(back.value, regs);
      }),
      { numRuns: 300 },
    );
  });

  it("groups consecutive registers of one observer", () => {
    const a = new ObservationMap<Obs>({ self: "n1" });
    const regs = [
      ...a.localWrite("web/a:80", { state: "up", streak: 2 }),
      ...a.localWrite("web/b:80", { state: "down", streak: 3 }),
    ];
    assert.deepEqual(encodeDelta(regs), [
      1,
      ["n1", "web/a:80", 1, { state: "up", streak: 2 }, "web/b:80", 2, { state: "down", streak: 3 }],
    ]);
  });

  it("round-trips exchange replies, and a decoded page still pages", () => {
    const src = new ObservationMap<Obs>({ self: "src" });
    for (let i = 0; i < 5; i++) src.localWrite(`t${i}`, { state: "up", streak: i });
    const dst = new ObservationMap<Obs>({ self: "dst" });
    const reply = src.missingFor(dst.vector(), { maxRegisters: 3, maxBytes: 1e9 });
    const back = decodeExchangeReply(wire(encodeExchangeReply(reply)), decodeObs);
    assert.ok(back.ok);
    assert.deepEqual(back.value, reply);
    dst.mergeExchange(back.value.registers, back.value.vector, back.value.complete);
    assert.deepEqual(dst.vectorEntries(), [["src", 3]]);
  });

  it("round-trips exchange requests with and without a cursor, and rejects bad ones", () => {
    const vector = new Map([["a", 4]]);
    for (const req of [{ vector }, { vector, after: { observer: "a", counter: 9 } }]) {
      const back = decodeExchangeRequest(wire(encodeExchangeRequest(req)));
      assert.ok(back.ok);
      assert.deepEqual(back.value, req);
    }
    for (const raw of [
      [1, []],
      [1, [], ["a"]],
      [1, [], ["a", 0]],
      [1, [["a", 1]], 5],
      [2, [], null],
      [1, {}, null],
    ]) {
      assert.equal(decodeExchangeRequest(raw).ok, false, JSON.stringify(raw));
    }
  });

  it("round-trips vectors", () => {
    const vv = new Map([
      ["b", 3],
      ["a", 9],
    ]);
    const back = decodeVector(wire(encodeVector(vv)));
    assert.ok(back.ok);
    assert.deepEqual(back.value, vv);
  });

  it("rejects malformed deltas with a decode error naming where", () => {
    const cases: [unknown, RegExp][] = [
      [null, /delta is/],
      [[], /delta is/],
      [[2], /version/],
      [[1, "x"], /group/],
      [[1, ["o", "t", 1]], /group/],
      [[1, ["o", "t", 1, { state: "up", streak: 1 }, "t2"]], /group/],
      [[1, ["", "t", 1, { state: "up", streak: 1 }]], /observer/],
      [[1, ["o", "", 1, { state: "up", streak: 1 }]], /target id/],
      [[1, ["o", "t", 0, { state: "up", streak: 1 }]], /counter/],
      [[1, ["o", "t", -1, { state: "up", streak: 1 }]], /counter/],
      [[1, ["o", "t", 1.5, { state: "up", streak: 1 }]], /counter/],
      [[1, ["o", "t", "1", { state: "up", streak: 1 }]], /counter/],
      [[1, ["o", "t", 2 ** 53, { state: "up", streak: 1 }]], /counter/],
      [[1, ["o", "t", 1, { state: "sideways", streak: 1 }]], /value refused/],
      [[1, ["o", "x".repeat(stateLimits.maxIdChars + 1), 1, { state: "up", streak: 1 }]], /target id/],
    ];
    for (const [raw, message] of cases) {
      const r = decodeDelta(raw, decodeObs);
      assert.equal(r.ok, false, JSON.stringify(raw).slice(0, 80));
      if (!r.ok) {
        assert.equal(r.error.code, "VIGIL_ERR_DECODE");
        assert.match(r.error.message, message);
      }
    }
    const r = decodeDelta([1, ["o", "t", 1, { state: "up", streak: 1 }], ["p", "t", 0, null]], decodeObs);
    assert.ok(!r.ok && r.error.path === "[2][2]");
  });

  it("bounds what it decodes", () => {
    const many = [
      1,
      ["o", ...Array.from({ length: 11 }, (_, i) => [`t${i}`, i + 1, { state: "up", streak: 0 }]).flat()],
    ];
    const bounds = { maxRegisters: 10, maxVectorEntries: 10, maxIdChars: 64 };
    assert.match(
      (decodeDelta(many, decodeObs, bounds) as { error: Error }).error.message,
      /too many registers/,
    );
    assert.ok(decodeDelta(many, decodeObs).ok);
    const groups = [
      1,
      ...Array.from({ length: 11 }, (_, i) => [`o${i}`, "t", 1, { state: "up", streak: 0 }]),
    ];
    assert.match(
      (decodeDelta(groups, decodeObs, bounds) as { error: Error }).error.message,
      /too many groups/,
    );
    const vv = Array.from({ length: 11 }, (_, i) => [`o${i}`, 1]);
    assert.equal(decodeVector(vv, bounds).ok, false);
    assert.equal(decodeVector(vv).ok, true);
  });

  it("rejects malformed vectors and replies", () => {
    for (const raw of [
      null,
      {},
      [["a"]],
      [["a", 0]],
      [
        ["a", 1],
        ["a", 2],
      ],
      [["", 1]],
      [[1, 1]],
      [["a", 1.5]],
    ]) {
      assert.equal(decodeVector(raw).ok, false, JSON.stringify(raw));
    }
    for (const raw of [[], [1, 1], [1, 2, []], [2, 1, []], [1, 1, [["a", 0]]], [1, 0, [], ["o"]]]) {
      assert.equal(decodeExchangeReply(raw, decodeObs).ok, false, JSON.stringify(raw));
    }
    assert.equal(decodeExchangeReply([1, 1, []], decodeObs).ok, true);
  });

  it("never throws, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything(), (raw) => {
        for (const r of [
          decodeDelta(raw, anyJsonValue),
          decodeDelta([1, raw], anyJsonValue),
          decodeExchangeReply(raw, anyJsonValue),
          decodeExchangeReply([1, 1, [], raw], anyJsonValue),
          decodeVector(raw),
          decodeExchangeRequest(raw),
          decodeExchangeRequest([1, [], raw]),
          decodeLwwDelta(raw, anyJsonValue),
          decodeLwwDelta([1, raw], anyJsonValue),
          decodeLwwVersions(raw),
          decodeLwwVersions([1, raw]),
        ]) {
          assert.equal(typeof r.ok, "boolean");
        }
      }),
      { numRuns: 500 },
    );
    const hostile = new Proxy([], {
      get() {
        throw new Error("boom");
      },
    });
    assert.equal(decodeDelta(hostile, anyJsonValue).ok, false);
    assert.equal(decodeLwwDelta(hostile, anyJsonValue).ok, false);
    const throwingDecoder = (): never => {
      throw new Error("boom");
    };
    assert.equal(decodeDelta([1, ["o", "t", 1, {}]], throwingDecoder).ok, false);
  });
});

describe("LWW codec", () => {
  it("round-trips deltas (writes and tombstones) and versions", () => {
    const m = new LwwMap<unknown>({ node: "n1" });
    const delta = [
      ...m.set("web", { check: { type: "http" }, targets: ["a:1"] }, 1000),
      ...m.delete("old", 1001),
    ];
    const back = decodeLwwDelta(wire(encodeLwwDelta(delta)), anyJsonValue);
    assert.ok(back.ok);
    assert.deepEqual(back.value, delta);
    const versions = decodeLwwVersions(wire(encodeLwwVersions(m.versions())));
    assert.ok(versions.ok);
    assert.deepEqual(versions.value, m.versions());
  });

  it("rejects malformed entries and runaway clocks", () => {
    const bad: unknown[] = [
      null,
      [2],
      [1, ["k", 1, 0]],
      [1, ["", 1, 0, "n"]],
      [1, ["k", -1, 0, "n"]],
      [1, ["k", 1.5, 0, "n"]],
      [1, ["k", 1, stateLimits.maxHlcLogical + 1, "n"]],
      [1, ["k", 1, 0, ""]],
      [1, ["k", 1, 0, "n", undefined, 1]],
    ];
    for (const raw of bad) assert.equal(decodeLwwDelta(raw, anyJsonValue).ok, false, JSON.stringify(raw));
    assert.equal(decodeLwwDelta([1, ["k", 1, 0, "n", "v"]], () => undefined).ok, false);
    assert.equal(decodeLwwVersions([1, ["k", 1, 0]]).ok, false);
    assert.equal(decodeLwwDelta([1, ["k", 1, 0, "n"], ["k2", 1, 0, "n"]], anyJsonValue, 1).ok, false);
  });
});

describe("bounded JSON values", () => {
  it("accepts plain JSON and refuses what is not, or too big", () => {
    assert.ok(isBoundedJson({ a: [1, "x", null, true, { b: 2.5 }] }));
    for (const bad of [
      undefined,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      () => 1,
      new Date(),
      new Map(),
      1n,
      Symbol("s"),
    ]) {
      assert.equal(isBoundedJson(bad), false, String(bad));
    }
    let deep: unknown = 1;
    for (let i = 0; i < stateLimits.maxValueDepth + 1; i++) deep = [deep];
    assert.equal(isBoundedJson(deep), false);
    assert.equal(
      isBoundedJson({ s: "x".repeat(10) }, { maxDepth: 4, maxNodes: 10, maxStringChars: 5 }),
      false,
    );
    assert.equal(
      isBoundedJson(
        Array.from({ length: 20 }, () => 1),
        { maxDepth: 4, maxNodes: 10, maxStringChars: 5 },
      ),
      false,
    );
    const getter = Object.defineProperty({}, "x", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    assert.equal(isBoundedJson(getter), false);
  });
});

describe("version vectors", () => {
  it("merge, compare, dominate and cover", () => {
    const a = new Map([
      ["x", 2],
      ["y", 1],
    ]);
    const b = new Map([["x", 3]]);
    assert.equal(vvCompare(a, b), "concurrent");
    assert.equal(vvCompare(a, new Map(a)), "equal");
    assert.equal(vvCompare(new Map([["x", 1]]), b), "before");
    assert.equal(vvCompare(b, new Map([["x", 1]])), "after");
    assert.ok(vvCovers(a, { observer: "x", counter: 2 }));
    assert.ok(!vvCovers(a, { observer: "z", counter: 1 }));
    const m = new Map(a);
    assert.equal(vvMerge(m, b), true);
    assert.equal(vvMerge(m, b), false);
    assert.deepEqual(
      m,
      new Map([
        ["x", 3],
        ["y", 1],
      ]),
    );
    assert.ok(vvDominates(m, a) && vvDominates(m, b));
  });
});
