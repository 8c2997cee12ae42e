import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Spread } from "../../src/config/types.ts";
import {
  computeOwners,
  type OwnerChange,
  Placement,
  type PlacementMember,
  type PlacementTarget,
} from "../../src/core/placement/index.ts";

const nameArb = fc.integer({ min: 0, max: 11 }).map((i) => `n${i}`);
const zoneArb = fc.constantFrom("", "za", "zb", "zc");
const memberArb: fc.Arbitrary<PlacementMember> = fc.record({
  name: nameArb,
  weight: fc.constantFrom(0.5, 1, 1, 2, 3),
  zone: zoneArb,
});
const targetArb: fc.Arbitrary<PlacementTarget> = fc.record({
  id: fc.integer({ min: 0, max: 24 }).map((i) => `pool/10.0.0.${i}:80`),
  k: fc.integer({ min: 1, max: 4 }),
  spread: fc.constantFrom<Spread>("none", "zone"),
});

type Op =
  | { kind: "addMember"; member: PlacementMember }
  | { kind: "removeMember"; name: string }
  | { kind: "addTarget"; target: PlacementTarget }
  | { kind: "removeTarget"; id: string }
  | { kind: "sync"; members: PlacementMember[] };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: memberArb.map((member) => ({ kind: "addMember" as const, member })) },
  { weight: 3, arbitrary: nameArb.map((name) => ({ kind: "removeMember" as const, name })) },
  { weight: 4, arbitrary: targetArb.map((target) => ({ kind: "addTarget" as const, target })) },
  { weight: 1, arbitrary: targetArb.map((t) => ({ kind: "removeTarget" as const, id: t.id })) },
  {
    weight: 1,
    arbitrary: fc
      .uniqueArray(memberArb, { selector: (m) => m.name, maxLength: 8 })
      .map((members) => ({ kind: "sync" as const, members })),
  },
);

/** The model: plain maps, owners from scratch. */
class Model {
  readonly members = new Map<string, PlacementMember>();
  readonly targets = new Map<string, PlacementTarget>();

  apply(op: Op): void {
    switch (op.kind) {
      case "addMember":
        this.members.set(op.member.name, op.member);
        break;
      case "removeMember":
        this.members.delete(op.name);
        break;
      case "addTarget":
        this.targets.set(op.target.id, op.target);
        break;
      case "removeTarget":
        this.targets.delete(op.id);
        break;
      case "sync":
        this.members.clear();
        for (const m of op.members) this.members.set(m.name, m);
        break;
    }
  }

  owners(id: string): string[] {
    const t = this.targets.get(id);
    return t === undefined ? [] : computeOwners([...this.members.values()], id, t.k, t.spread);
  }

  allOwners(): Map<string, string[]> {
    return new Map([...this.targets.keys()].map((id) => [id, this.owners(id)]));
  }
}

function run(p: Placement, op: Op): OwnerChange[] {
  switch (op.kind) {
    case "addMember":
      return p.addMember(op.member);
    case "removeMember":
      return p.removeMember(op.name);
    case "addTarget":
      return p.addTarget(op.target);
    case "removeTarget":
      return p.removeTarget(op.id);
    case "sync":
      return p.syncMembers(op.members);
  }
}

/** The changes a mutation should report: every target whose owners differ. */
function diff(before: Map<string, string[]>, after: Map<string, string[]>): Map<string, OwnerChange> {
  const out = new Map<string, OwnerChange>();
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    const b = before.get(id) ?? [];
    const a = after.get(id) ?? [];
    if (b.join("\u0000") !== a.join("\u0000")) out.set(id, { targetId: id, before: b, after: a });
  }
  return out;
}

describe("Placement properties", () => {
  it("incremental state equals the from-scratch computation, and changes are exactly the diffs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.array(opArb, { maxLength: 60 }), (margin, ops) => {
        const p = new Placement({ candidateMargin: margin });
        const model = new Model();
        for (const op of ops) {
          const before = model.allOwners();
          model.apply(op);
          const after = model.allOwners();
          const changes = run(p, op);
          assert.deepEqual(new Map(changes.map((c) => [c.targetId, c])), diff(before, after), op.kind);
          for (const [id, owners] of after) assert.deepEqual(p.owners(id), owners, id);
          assert.equal(p.targetCount, model.targets.size);
          assert.equal(p.memberCount, model.members.size);
        }
        for (const m of model.members.keys()) {
          const owned = [...model.targets.keys()].filter((id) => model.owners(id).includes(m));
          assert.deepEqual(new Set(p.ownedBy(m)), new Set(owned));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("gives the same owners whatever the order members and targets arrive in", () => {
    const setup = fc
      .record({
        members: fc.uniqueArray(memberArb, { selector: (m) => m.name, minLength: 1, maxLength: 10 }),
        targets: fc.uniqueArray(targetArb, { selector: (t) => t.id, minLength: 1, maxLength: 20 }),
      })
      .chain(({ members, targets }) => {
        const items: Op[] = [
          ...members.map((member) => ({ kind: "addMember" as const, member })),
          ...targets.map((target) => ({ kind: "addTarget" as const, target })),
        ];
        return fc.tuple(
          fc.constant(targets),
          fc.shuffledSubarray(items, { minLength: items.length }),
          fc.shuffledSubarray(items, { minLength: items.length }),
        );
      });
    fc.assert(
      fc.property(setup, ([targets, order1, order2]) => {
        const p1 = new Placement();
        const p2 = new Placement({ candidateMargin: 0 });
        for (const op of order1) run(p1, op);
        for (const op of order2) run(p2, op);
        for (const t of targets) assert.deepEqual(p1.owners(t.id), p2.owners(t.id));
      }),
      { numRuns: 200 },
    );
  });

  it("a leave changes only targets the leaver owned; a join only targets where the joiner becomes an owner", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(memberArb, { selector: (m) => m.name, minLength: 2, maxLength: 10 }),
        fc.uniqueArray(targetArb, { selector: (t) => t.id, minLength: 1, maxLength: 25 }),
        fc.nat(),
        (members, targets, pick) => {
          const leaver = members[pick % members.length]!;
          const p = new Placement();
          for (const m of members) p.addMember(m);
          for (const t of targets) p.addTarget(t);
          const owned = new Set(p.ownedBy(leaver.name));
          const before = new Map(targets.map((t) => [t.id, p.owners(t.id)]));
          const left = p.removeMember(leaver.name);
          for (const c of left) assert.ok(owned.has(c.targetId), `${c.targetId} was not the leaver's`);
          for (const t of targets) {
            if (!owned.has(t.id)) assert.deepEqual(p.owners(t.id), before.get(t.id));
            assert.ok(!p.owners(t.id).includes(leaver.name));
          }
          const joined = p.addMember(leaver);
          for (const c of joined)
            assert.ok(c.after.includes(leaver.name), `${c.targetId} changed without the joiner`);
          for (const t of targets) assert.deepEqual(p.owners(t.id), before.get(t.id));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("spread zone gives k distinct zones whenever k zones exist", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            name: nameArb,
            weight: fc.constantFrom(1, 2, 5),
            zone: fc.constantFrom("z0", "z1", "z2", "z3", "z4"),
          }),
          { selector: (m) => m.name, minLength: 1, maxLength: 12 },
        ),
        fc.uniqueArray(targetArb, { selector: (t) => t.id, minLength: 1, maxLength: 20 }),
        (members, targets) => {
          const zoneOf = new Map(members.map((m) => [m.name, m.zone]));
          const zones = new Set(members.map((m) => m.zone)).size;
          const p = new Placement();
          for (const m of members) p.addMember(m);
          for (const t of targets) {
            p.addTarget({ ...t, spread: "zone" });
            const owners = p.owners(t.id);
            assert.equal(owners.length, Math.min(t.k, members.length));
            const distinct = new Set(owners.map((o) => zoneOf.get(o))).size;
            assert.equal(distinct, Math.min(t.k, zones), `${owners.join(",")}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
