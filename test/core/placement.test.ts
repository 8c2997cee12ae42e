import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  computeOwners,
  hash64,
  type OwnerChange,
  Placement,
  type PlacementMember,
  rankMembers,
  rendezvousScore,
} from "../../src/core/placement/index.ts";
import { SeededRandom } from "../../src/core/random.ts";

const equal = (names: string[], zone = ""): PlacementMember[] =>
  names.map((name) => ({ name, weight: 1, zone }));

function shares(p: Placement, members: readonly string[], targets: number): Map<string, number> {
  const count = new Map(members.map((m) => [m, 0]));
  for (let i = 0; i < targets; i++) {
    for (const o of p.owners(`pool/t${i}`)) count.set(o, (count.get(o) ?? 0) + 1);
  }
  return count;
}

describe("hash64", () => {
  it("is pinned: every node, every Node version, must compute the same placement", () => {
    // Golden values. If these change, mixed-version clusters disagree on owners.
    assert.equal(hash64("n1", "web/10.0.0.1:80"), 0.7674086223427264);
    assert.equal(hash64("n2", "web/10.0.0.1:80"), 0.6089126252771452);
    assert.equal(hash64("n1", "web/10.0.0.2:80"), 0.21667240062382642);
    assert.equal(hash64("zürich-1", "pool/[::1]:443"), hash64("zürich-1", "pool/[::1]:443"));
  });

  it("stays strictly inside (0, 1) and separates node from target", () => {
    for (let i = 0; i < 10_000; i++) {
      const h = hash64(`n${i % 7}`, `p/${i}`);
      assert.ok(h > 0 && h < 1, `h=${h}`);
    }
    // Swapping the roles must not give the same value: names and ids are hashed apart.
    assert.notEqual(hash64("a", "b"), hash64("b", "a"));
  });

  it("is uniform over targets and over nodes (16 bins, 160k draws, within 3%)", () => {
    const byTarget = new Array<number>(16).fill(0);
    const byNode = new Array<number>(16).fill(0);
    for (let i = 0; i < 160_000; i++) {
      byTarget[Math.floor(hash64("node-a", `pool/10.0.${i >> 8}.${i & 255}:80`) * 16)]! += 1;
      byNode[Math.floor(hash64(`node-${i}`, "pool/10.0.0.1:80") * 16)]! += 1;
    }
    for (const bins of [byTarget, byNode]) {
      for (const b of bins) assert.ok(Math.abs(b / 10_000 - 1) < 0.03, `bin ${b} of 10000`);
    }
  });

  it("weights scale the score", () => {
    assert.ok(rendezvousScore(2, 0.5) > rendezvousScore(1, 0.5));
    assert.ok(rendezvousScore(1, 0.9) > rendezvousScore(1, 0.5));
    assert.equal(rendezvousScore(2, 0.5), 2 * rendezvousScore(1, 0.5));
  });
});

describe("Placement", () => {
  it("gives the top-k members of the reference order, best first", () => {
    const members = equal(["a", "b", "c", "d", "e"]);
    const p = new Placement();
    for (const m of members) p.addMember(m);
    for (let i = 0; i < 200; i++) {
      const id = `web/10.0.0.${i}:80`;
      p.addTarget({ id, k: 3, spread: "none" });
      assert.deepEqual(p.owners(id), computeOwners(members, id, 3, "none"));
      assert.equal(p.owners(id).length, 3);
    }
  });

  it("gives every member when k exceeds the membership, and nothing for unknown targets", () => {
    const p = new Placement();
    p.addTarget({ id: "t", k: 4, spread: "none" });
    assert.deepEqual(p.owners("t"), []);
    p.addMember({ name: "a", weight: 1, zone: "" });
    p.addMember({ name: "b", weight: 1, zone: "" });
    assert.deepEqual([...p.owners("t")].sort(), ["a", "b"]);
    assert.deepEqual(p.owners("nope"), []);
    assert.equal(p.isOwner("nope", "a"), false);
  });

  it("shares work by weight: 1,1,2,4 → 12.5/12.5/25/50% of 100k targets (±2%)", () => {
    const p = new Placement();
    const weights: [string, number][] = [
      ["a", 1],
      ["b", 1],
      ["c", 2],
      ["d", 4],
    ];
    for (const [name, weight] of weights) p.addMember({ name, weight, zone: "" });
    const n = 100_000;
    for (let i = 0; i < n; i++) p.addTarget({ id: `pool/t${i}`, k: 1, spread: "none" });
    const got = shares(p, ["a", "b", "c", "d"], n);
    for (const [name, weight] of weights) {
      const share = got.get(name)! / n;
      assert.ok(Math.abs(share - weight / 8) < 0.02, `${name}: ${share}`);
    }
  });

  it("moves only the leaver's targets, spread evenly over the others", () => {
    const names = Array.from({ length: 10 }, (_, i) => `n${i}`);
    const p = new Placement();
    for (const m of equal(names)) p.addMember(m);
    const n = 30_000;
    for (let i = 0; i < n; i++) p.addTarget({ id: `pool/t${i}`, k: 2, spread: "none" });
    const before = new Map<string, readonly string[]>();
    for (let i = 0; i < n; i++) before.set(`pool/t${i}`, p.owners(`pool/t${i}`));
    const owned = new Set(p.ownedBy("n3"));
    const changes = p.removeMember("n3");
    assert.deepEqual(new Set(changes.map((c) => c.targetId)), owned);
    const gained = new Map<string, number>();
    for (const [id, was] of before) {
      const now = p.owners(id);
      if (!owned.has(id)) {
        assert.deepEqual(now, was);
        continue;
      }
      // The surviving owner stays; the leaver's place goes to the next in line.
      assert.ok(was.includes("n3"));
      for (const o of was) if (o !== "n3") assert.ok(now.includes(o), `${id}: ${o} kept its place`);
      for (const o of now) if (!was.includes(o)) gained.set(o, (gained.get(o) ?? 0) + 1);
    }
    const total = [...gained.values()].reduce((a, b) => a + b, 0);
    assert.equal(total, owned.size);
    assert.equal(gained.size, 9);
    for (const [name, g] of gained)
      assert.ok(Math.abs(g / total - 1 / 9) < 0.02, `${name} took ${g}/${total}`);
  });

  it("a join takes only the targets where the newcomer enters the top k, and reports them", () => {
    const p = new Placement();
    for (const m of equal(["a", "b", "c", "d"])) p.addMember(m);
    const n = 5_000;
    for (let i = 0; i < n; i++) p.addTarget({ id: `pool/t${i}`, k: 2, spread: "none" });
    const before = new Map<string, readonly string[]>();
    for (let i = 0; i < n; i++) before.set(`pool/t${i}`, p.owners(`pool/t${i}`));
    const changes = p.addMember({ name: "e", weight: 1, zone: "" });
    const changed = new Map(changes.map((c) => [c.targetId, c]));
    let took = 0;
    for (const [id, was] of before) {
      const now = p.owners(id);
      const c = changed.get(id);
      if (now.includes("e")) {
        took++;
        assert.deepEqual(c, { targetId: id, before: was, after: now });
      } else {
        assert.equal(c, undefined);
        assert.deepEqual(now, was);
      }
    }
    // k/N of the targets: 2/5.
    assert.ok(Math.abs(took / n - 0.4) < 0.03, `took ${took}`);
    assert.deepEqual(new Set(p.ownedBy("e")), new Set(changes.map((c) => c.targetId)));
  });

  it("spreads owners over distinct zones first, then fills by score", () => {
    const members: PlacementMember[] = [
      ...equal(["a1", "a2", "a3", "a4"], "za"),
      ...equal(["b1", "b2"], "zb"),
      ...equal(["c1"], "zc"),
    ];
    const p = new Placement();
    for (const m of members) p.addMember(m);
    for (let i = 0; i < 500; i++) {
      const id = `pool/t${i}`;
      p.addTarget({ id, k: 3, spread: "zone" });
      const zones = p.owners(id).map((o) => o[0]);
      assert.deepEqual([...zones].sort(), ["a", "b", "c"]);
      p.addTarget({ id: `${id}/k5`, k: 5, spread: "zone" });
      const five = p.owners(`${id}/k5`);
      assert.deepEqual(five, computeOwners(members, `${id}/k5`, 5, "zone"));
      // The three leaders come first.
      assert.deepEqual([...five.slice(0, 3).map((o) => o[0])].sort(), ["a", "b", "c"]);
    }
  });

  it("zone order is leaders by score, then the rest by score", () => {
    const members: PlacementMember[] = [
      ...equal(["a1", "a2", "a3"], "za"),
      ...equal(["b1", "b2", "b3"], "zb"),
    ];
    for (let i = 0; i < 50; i++) {
      const id = `t${i}`;
      const plain = rankMembers(members, id, "none");
      const zoned = rankMembers(members, id, "zone");
      const leaders = [plain.find((n) => n[0] === "a")!, plain.find((n) => n[0] === "b")!];
      leaders.sort((x, y) => plain.indexOf(x) - plain.indexOf(y));
      assert.deepEqual(zoned, [...leaders, ...plain.filter((n) => !leaders.includes(n))]);
    }
  });

  it("rescans a target whose candidate list runs out (no margin)", () => {
    const members = equal(["a", "b", "c", "d", "e", "f"]);
    const p = new Placement({ candidateMargin: 0 });
    for (const m of members) p.addMember(m);
    for (let i = 0; i < 300; i++) p.addTarget({ id: `t${i}`, k: 2, spread: i % 2 === 0 ? "none" : "zone" });
    const left = [...members];
    for (const gone of ["c", "a", "f"]) {
      p.removeMember(gone);
      left.splice(
        left.findIndex((m) => m.name === gone),
        1,
      );
      for (let i = 0; i < 300; i++) {
        const spread = i % 2 === 0 ? "none" : "zone";
        assert.deepEqual(p.owners(`t${i}`), computeOwners(left, `t${i}`, 2, spread));
      }
    }
  });

  it("stays equal to the reference through heavy churn of weighted, zoned members", () => {
    const rng = new SeededRandom(42);
    const p = new Placement();
    const members = new Map<string, PlacementMember>();
    const targets = Array.from({ length: 400 }, (_, i) => ({
      id: `pool${i % 7}/10.0.${i >> 8}.${i & 255}:443`,
      k: 1 + (i % 4),
      spread: i % 3 === 0 ? ("zone" as const) : ("none" as const),
    }));
    for (const t of targets) p.addTarget(t);
    const check = (): void => {
      const all = [...members.values()];
      for (const t of targets)
        assert.deepEqual(p.owners(t.id), computeOwners(all, t.id, t.k, t.spread), t.id);
    };
    for (let step = 0; step < 300; step++) {
      const name = `node-${rng.int(40)}`;
      if (rng.next() < 0.6) {
        const m = { name, weight: [0.5, 1, 1, 2, 4][rng.int(5)]!, zone: `zone-${rng.int(5)}` };
        members.set(name, m);
        p.addMember(m);
      } else {
        members.delete(name);
        p.removeMember(name);
      }
      if (step % 50 === 49) check();
    }
    check();
  });

  it("keeps working when its internal zone marks wrap around", () => {
    const p = new Placement();
    (p as unknown as { stamp: number }).stamp = 0x7fffffff - 5;
    const members: PlacementMember[] = [
      ...equal(["a1", "a2", "a3"], "za"),
      ...equal(["b1", "b2"], "zb"),
      ...equal(["c1"], "zc"),
    ];
    for (const m of members) p.addMember(m);
    for (let i = 0; i < 50; i++) p.addTarget({ id: `t${i}`, k: 2, spread: "zone" });
    p.removeMember("a1");
    const left = members.filter((m) => m.name !== "a1");
    for (let i = 0; i < 50; i++) assert.deepEqual(p.owners(`t${i}`), computeOwners(left, `t${i}`, 2, "zone"));
    assert.ok((p as unknown as { stamp: number }).stamp < 1000);
  });

  it("changing a member's weight or zone is a leave and a join with merged changes", () => {
    const p = new Placement();
    for (const m of equal(["a", "b", "c"])) p.addMember(m);
    for (let i = 0; i < 1000; i++) p.addTarget({ id: `t${i}`, k: 1, spread: "none" });
    assert.deepEqual(p.addMember({ name: "a", weight: 1, zone: "" }), []);
    const before = new Map(Array.from({ length: 1000 }, (_, i) => [`t${i}`, p.owners(`t${i}`)]));
    const changes = p.addMember({ name: "a", weight: 3, zone: "" });
    assert.ok(changes.length > 100);
    for (const c of changes) {
      assert.deepEqual(c.before, before.get(c.targetId));
      assert.deepEqual(c.after, ["a"]);
      assert.notDeepEqual(c.before, c.after);
    }
    const members = [
      { name: "a", weight: 3, zone: "" },
      { name: "b", weight: 1, zone: "" },
      { name: "c", weight: 1, zone: "" },
    ];
    for (let i = 0; i < 1000; i++)
      assert.deepEqual(p.owners(`t${i}`), computeOwners(members, `t${i}`, 1, "none"));
  });

  it("syncMembers applies a whole membership view at once", () => {
    const p = new Placement();
    for (const m of equal(["a", "b", "c"])) p.addMember(m);
    for (let i = 0; i < 500; i++) p.addTarget({ id: `t${i}`, k: 2, spread: "zone" });
    const view: PlacementMember[] = [
      { name: "b", weight: 1, zone: "z1" },
      { name: "c", weight: 2, zone: "" },
      { name: "d", weight: 1, zone: "z1" },
    ];
    const before = new Map(Array.from({ length: 500 }, (_, i) => [`t${i}`, p.owners(`t${i}`)]));
    const changes: OwnerChange[] = p.syncMembers(view);
    const byId = new Map(changes.map((c) => [c.targetId, c]));
    for (let i = 0; i < 500; i++) {
      const id = `t${i}`;
      const want = computeOwners(view, id, 2, "zone");
      assert.deepEqual(p.owners(id), want);
      const c = byId.get(id);
      if (c === undefined) assert.deepEqual(before.get(id), want);
      else assert.deepEqual(c, { targetId: id, before: before.get(id), after: want });
    }
    assert.deepEqual(
      p
        .members()
        .map((m) => m.name)
        .sort(),
      ["b", "c", "d"],
    );
  });

  it("re-adding a target with a new k reports the change; the same k reports nothing", () => {
    const p = new Placement();
    for (const m of equal(["a", "b", "c"])) p.addMember(m);
    const added = p.addTarget({ id: "t", k: 1, spread: "none" });
    assert.equal(added.length, 1);
    assert.deepEqual(added[0]!.before, []);
    assert.deepEqual(p.addTarget({ id: "t", k: 1, spread: "none" }), []);
    const grown = p.addTarget({ id: "t", k: 3, spread: "none" });
    assert.equal(grown[0]!.after.length, 3);
    assert.deepEqual(grown[0]!.after.slice(0, 1), added[0]!.after);
    const removed = p.removeTarget("t");
    assert.deepEqual(removed, [{ targetId: "t", before: grown[0]!.after, after: [] }]);
    assert.equal(p.hasTarget("t"), false);
    assert.deepEqual(p.removeTarget("t"), []);
    assert.deepEqual(p.removeMember("zz"), []);
  });

  it("rejects invalid members and targets as programmer errors", () => {
    const p = new Placement();
    assert.throws(() => p.addMember({ name: "", weight: 1, zone: "" }), /invariant/);
    assert.throws(() => p.addMember({ name: "a", weight: 0, zone: "" }), /weight/);
    assert.throws(() => p.addMember({ name: "a", weight: Number.NaN, zone: "" }), /weight/);
    assert.throws(() => p.addMember({ name: "a", weight: Number.POSITIVE_INFINITY, zone: "" }), /weight/);
    assert.throws(() => p.addTarget({ id: "t", k: 0, spread: "none" }), /k must/);
    assert.throws(() => p.addTarget({ id: "t", k: 17, spread: "none" }), /k must/);
    assert.throws(() => p.addTarget({ id: "t", k: 1.5, spread: "none" }), /k must/);
    assert.throws(() => p.addTarget({ id: "", k: 1, spread: "none" }), /target id/);
    assert.throws(() => p.addTarget({ id: "t", k: 1, spread: "rack" as "zone" }), /spread/);
    assert.throws(() => new Placement({ candidateMargin: -1 }), /candidateMargin/);
    // Nothing half-applied.
    assert.equal(p.memberCount, 0);
    assert.equal(p.targetCount, 0);
  });
});
