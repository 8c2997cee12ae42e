// The state machine driven by hand, one input at a time, on virtual time.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  decodePacket,
  decodeStream,
  encodeMessage,
  encodePacket,
  encodeStream,
  type PacketMessage,
  type PushPullMsg,
} from "../../src/core/codec/membership-wire.ts";
import { VigilError } from "../../src/core/errors.ts";
import { limits } from "../../src/core/limits.ts";
import { membershipConfig } from "../../src/core/membership/config.ts";
import { Membership, type MembershipOptions } from "../../src/core/membership/membership.ts";
import type { AppDelegate, MembershipEvent, Output } from "../../src/core/membership/types.ts";
import { SeededRandom } from "../../src/core/random.ts";

function node(opts: Partial<MembershipOptions> = {}): Membership {
  return new Membership({ name: "me", addr: "10.0.0.1:7946", now: 0, random: new SeededRandom(1), ...opts });
}

function drain(m: Membership): Output[] {
  const out: Output[] = [];
  for (let o = m.poll(); o !== undefined; o = m.poll()) out.push(o);
  return out;
}

function sent(outs: Output[]): Array<{ to: string; messages: PacketMessage[] }> {
  return outs.flatMap((o) => {
    if (o.kind !== "send") return [];
    const r = decodePacket(o.bytes);
    assert.ok(r.ok);
    return [{ to: o.to, messages: r.value.messages }];
  });
}

function events(outs: Output[]): MembershipEvent[] {
  return outs.flatMap((o) => (o.kind === "event" ? [o.event] : []));
}

const packet = (...ms: PacketMessage[]): Uint8Array => encodePacket(ms.map(encodeMessage));

/** Teaches `m` about a member through an alive message. */
function learn(m: Membership, now: number, name: string, incarnation = 1, meta = new Uint8Array(0)): void {
  m.handlePacket(now, "x:1", packet({ type: "alive", incarnation, node: name, addr: `${name}:7946`, meta }));
}

describe("Membership inputs", () => {
  test("announces itself on creation and answers a ping for its name with an ack", () => {
    const m = node();
    assert.deepEqual(
      events(drain(m)).map((e) => e.type),
      ["member.joined"],
    );
    m.handlePacket(10, "10.0.0.2:7946", packet({ type: "ping", seq: 42, target: "me", source: "other" }));
    const out = sent(drain(m));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.to, "10.0.0.2:7946");
    assert.deepEqual(out[0]!.messages[0], { type: "ack", seq: 42 });
  });

  test("ignores and counts a ping meant for another name (an old owner of this address)", () => {
    const m = node();
    drain(m);
    m.handlePacket(
      10,
      "10.0.0.2:7946",
      packet({ type: "ping", seq: 1, target: "someone-else", source: "o" }),
    );
    assert.equal(sent(drain(m)).length, 0);
    assert.equal(m.stats().misdirectedPings, 1);
  });

  test("learns members from alive messages and passes the news on", () => {
    const m = node();
    drain(m);
    learn(m, 5, "a");
    const outs = drain(m);
    assert.deepEqual(
      events(outs).map((e) => e.type),
      ["member.joined"],
    );
    assert.equal(m.member("a")?.state, "alive");
    // The news rides on the next packet we send.
    m.handlePacket(6, "a:7946", packet({ type: "ping", seq: 1, target: "me", source: "a" }));
    const msgs = sent(drain(m))[0]!.messages;
    assert.ok(msgs.some((x) => x.type === "alive" && x.node === "a"));
  });

  test("refutes a suspicion about itself with a higher incarnation, and counts it against its health", () => {
    const m = node();
    learn(m, 1, "a");
    drain(m);
    assert.equal(m.incarnation, 1);
    m.handlePacket(2, "a:7946", packet({ type: "suspect", incarnation: 5, node: "me", from: "a" }));
    assert.equal(m.incarnation, 6);
    assert.equal(m.member("me")?.state, "alive");
    assert.equal(m.healthScore, 1);
    assert.equal(m.stats().selfRefutations, 1);
    m.handlePacket(3, "a:7946", packet({ type: "ping", seq: 9, target: "me", source: "a" }));
    const msgs = sent(drain(m))[0]!.messages;
    assert.ok(msgs.some((x) => x.type === "alive" && x.node === "me" && x.incarnation === 6));
  });

  test("refutes a death notice about itself; an old one is ignored", () => {
    const m = node();
    m.handlePacket(1, "a:7946", packet({ type: "dead", incarnation: 3, node: "me", from: "a" }));
    assert.equal(m.incarnation, 4);
    m.handlePacket(2, "a:7946", packet({ type: "dead", incarnation: 2, node: "me", from: "a" }));
    assert.equal(m.incarnation, 4);
    assert.equal(m.member("me")?.state, "alive");
  });

  test("suspect, then dead, then back alive with a higher incarnation", () => {
    const m = node();
    learn(m, 1, "a");
    learn(m, 1, "b");
    drain(m);
    m.handlePacket(2, "b:7946", packet({ type: "suspect", incarnation: 1, node: "a", from: "b" }));
    assert.equal(m.member("a")?.state, "suspect");
    // Same incarnation cannot clear a suspicion: only the member itself can, by outbidding it.
    learn(m, 3, "a", 1);
    assert.equal(m.member("a")?.state, "suspect");
    learn(m, 4, "a", 2);
    assert.equal(m.member("a")?.state, "alive");
    m.handlePacket(5, "b:7946", packet({ type: "dead", incarnation: 2, node: "a", from: "b" }));
    assert.equal(m.member("a")?.state, "dead");
    learn(m, 6, "a", 3);
    assert.deepEqual(
      events(drain(m)).map((e) => e.type),
      ["member.suspect", "member.alive", "member.dead", "member.joined"],
    );
    const s = m.stats();
    assert.equal(s.suspicionsRaised, 1);
    assert.equal(s.suspicionsRefuted, 1);
  });

  test("a sender relaying an accusation older than the refutation we hold gets the current alive", () => {
    const m = node();
    learn(m, 0, "a", 1);
    learn(m, 1, "a", 2); // a refuted something at incarnation 1
    drain(m);
    m.handlePacket(2, "stale:7946", packet({ type: "dead", incarnation: 1, node: "a", from: "stale" }));
    assert.equal(m.member("a")?.state, "alive");
    const toStale = sent(drain(m)).filter((p) => p.to === "stale:7946");
    assert.equal(toStale.length, 1);
    assert.ok(toStale[0]!.messages.some((x) => x.type === "alive" && x.node === "a" && x.incarnation === 2));
    // A current accusation is no sign of staleness: nothing is sent back.
    m.handlePacket(3, "b:7946", packet({ type: "suspect", incarnation: 2, node: "a", from: "b" }));
    assert.equal(sent(drain(m)).filter((p) => p.to === "b:7946").length, 0);
    assert.equal(m.stats().staleCorrections, 1);
  });

  test("a dead message from the member itself means it left", () => {
    const m = node();
    learn(m, 1, "a");
    drain(m);
    m.handlePacket(2, "a:7946", packet({ type: "dead", incarnation: 1, node: "a", from: "a" }));
    assert.equal(m.member("a")?.state, "left");
    assert.deepEqual(
      events(drain(m)).map((e) => e.type),
      ["member.left"],
    );
  });

  test("an alive for a live name at another address is a conflict and ignored", () => {
    const m = node();
    learn(m, 1, "a");
    m.handlePacket(
      2,
      "x:1",
      packet({ type: "alive", incarnation: 9, node: "a", addr: "evil:1", meta: new Uint8Array() }),
    );
    assert.equal(m.member("a")?.addr, "a:7946");
    assert.equal(m.stats().addressConflicts, 1);
  });

  test("a dead name may come back at a new address only after deadNodeReclaimMs", () => {
    const m = node();
    learn(m, 0, "a");
    m.handlePacket(1_000, "b:1", packet({ type: "dead", incarnation: 1, node: "a", from: "b" }));
    const moved = (now: number): void =>
      m.handlePacket(
        now,
        "x:1",
        packet({ type: "alive", incarnation: 2, node: "a", addr: "new:7946", meta: new Uint8Array() }),
      );
    moved(1_000 + m.config.deadNodeReclaimMs);
    assert.equal(m.member("a")?.state, "dead");
    assert.equal(m.stats().addressConflicts, 1);
    moved(1_001 + m.config.deadNodeReclaimMs);
    assert.equal(m.member("a")?.state, "alive");
    assert.equal(m.member("a")?.addr, "new:7946");
  });

  test("metadata: updates raise the incarnation and announce; receivers see member.updated", () => {
    const m = node();
    drain(m);
    m.setMeta(1, new TextEncoder().encode("zone=z2"));
    assert.equal(m.incarnation, 2);
    assert.deepEqual(
      events(drain(m)).map((e) => e.type),
      ["member.updated"],
    );
    const other = node({ name: "o", addr: "o:1" });
    learn(other, 1, "me", 1);
    drain(other);
    learn(other, 2, "me", 2, new TextEncoder().encode("zone=z2"));
    assert.deepEqual(
      events(drain(other)).map((e) => e.type),
      ["member.updated"],
    );
    assert.equal(new TextDecoder().decode(other.member("me")!.meta), "zone=z2");
  });

  test("refuses oversized metadata and bad names as operating errors", () => {
    const m = node();
    assert.throws(() => m.setMeta(1, new Uint8Array(limits.maxMetaBytes + 1)), VigilError);
    assert.throws(() => node({ meta: new Uint8Array(limits.maxMetaBytes + 1) }), VigilError);
    assert.throws(() => node({ name: "" }), VigilError);
    assert.throws(() => node({ name: "x".repeat(200) }), VigilError);
  });

  test("time going backwards is a programmer error", () => {
    const m = node({ now: 100 });
    assert.throws(() => m.tick(99), /invariant/);
  });

  test("members beyond maxMembers are refused and counted", () => {
    const m = node({ config: membershipConfig("lan", { maxMembers: 3 }) });
    for (const n of ["a", "b", "c", "d"]) learn(m, 1, n);
    assert.equal(m.members().length, 3);
    assert.equal(m.stats().membersRefused, 2);
  });
});

describe("Membership never throws on bad input", () => {
  test("random packets and stream frames are dropped and counted by reason", () => {
    const m = node();
    learn(m, 0, "a");
    let now = 1;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
        now++;
        m.handlePacket(now, "a:7946", bytes);
        m.handleStream(now, "a:5555", bytes);
        drain(m);
      }),
      { numRuns: 2000 },
    );
    const dropped = m.stats().droppedByReason;
    const total = Object.values(dropped).reduce((a, b) => a + b, 0);
    assert.ok(total >= 2000, `only ${total} drops counted`);
    assert.ok(dropped.truncated > 0 && dropped.bad_version > 0, JSON.stringify(dropped));
  });

  test("an unsolicited or garbled stream reply is ignored", () => {
    const m = node();
    m.handleStreamReply(1, 999, new Uint8Array([1, 2, 3]));
    assert.equal(m.stats().lateStreamReplies, 1);
  });
});

describe("Membership push-pull", () => {
  test("join sends our state to each seed; the reply merges theirs and join.done reports it", () => {
    const m = node();
    drain(m);
    const joinId = m.join(1, ["10.0.0.9:7946", "10.0.0.8:7946", "10.0.0.1:7946"]);
    const streams = drain(m).filter((o) => o.kind === "stream");
    assert.equal(streams.length, 2, "our own address is not a seed");
    const req = decodeStream(streams[0]!.bytes);
    assert.ok(req.ok && req.value.type === "push_pull" && req.value.join);
    assert.deepEqual(
      req.value.members.map((x) => x.name),
      ["me"],
    );
    const reply: PushPullMsg = {
      type: "push_pull",
      join: true,
      members: [
        { name: "s", addr: "10.0.0.9:7946", incarnation: 1, state: "alive", meta: new Uint8Array() },
        { name: "t", addr: "10.0.0.7:7946", incarnation: 4, state: "alive", meta: new Uint8Array() },
      ],
      appState: new Uint8Array(),
    };
    const s0 = streams[0]!;
    const s1 = streams[1]!;
    assert.ok(s0.kind === "stream" && s1.kind === "stream");
    m.handleStreamReply(2, s0.reqId, encodeStream(reply));
    m.handleStreamReply(3, s1.reqId, new Error("connection refused"));
    const evs = events(drain(m));
    assert.deepEqual(
      evs.map((e) => e.type),
      ["member.joined", "member.joined", "join.done"],
    );
    assert.deepEqual(evs[2], { type: "join.done", joinId, contacted: 1, failed: ["10.0.0.8:7946"] });
    assert.equal(m.member("t")?.incarnation, 4);
  });

  test("a stream that never answers fails after streamTimeoutMs", () => {
    const m = node();
    drain(m);
    m.join(0, ["10.0.0.9:7946"]);
    drain(m);
    let now = 0;
    while (now < 10_000) {
      now = m.nextDeadline()!;
      m.tick(now);
      const done = events(drain(m)).find((e) => e.type === "join.done");
      if (done !== undefined) {
        assert.equal(now, 10_000);
        assert.deepEqual(done, { type: "join.done", joinId: 1, contacted: 0, failed: ["10.0.0.9:7946"] });
        return;
      }
    }
    assert.fail("join never finished");
  });

  test("serving a push-pull merges first, so the reply carries our refutation", () => {
    const m = node();
    drain(m);
    const req: PushPullMsg = {
      type: "push_pull",
      join: false,
      members: [
        { name: "p", addr: "10.0.0.5:7946", incarnation: 2, state: "alive", meta: new Uint8Array() },
        { name: "me", addr: "10.0.0.1:7946", incarnation: 7, state: "dead", meta: new Uint8Array() },
      ],
      appState: new Uint8Array(),
    };
    const reply = m.handleStream(1, "10.0.0.5:40000", encodeStream(req));
    assert.ok(reply !== undefined);
    const r = decodeStream(reply);
    assert.ok(r.ok && r.value.type === "push_pull");
    const me = r.value.members.find((x) => x.name === "me");
    assert.equal(me?.state, "alive");
    assert.equal(me?.incarnation, 8);
    assert.ok(r.value.members.some((x) => x.name === "p"));
  });

  test("a fallback ping over a stream is answered with an ack", () => {
    const m = node();
    const reply = m.handleStream(1, "a:1", encodeStream({ type: "ping", seq: 5, target: "me", source: "a" }));
    assert.deepEqual(decodeStream(reply!), { ok: true, value: { type: "ack", seq: 5 } });
    assert.equal(
      m.handleStream(2, "a:1", encodeStream({ type: "ping", seq: 5, target: "nope", source: "a" })),
      undefined,
    );
  });
});

describe("Membership probing", () => {
  test("an unanswered probe asks helpers, pings over TCP, then suspects", () => {
    const m = node();
    for (const n of ["a", "b", "c", "d"]) learn(m, 0, n);
    drain(m);
    // Run to the first probe.
    let now = m.nextDeadline()!;
    let ping: { to: string; seq: number } | undefined;
    while (ping === undefined) {
      m.tick(now);
      for (const p of sent(drain(m)))
        for (const msg of p.messages) if (msg.type === "ping") ping = { to: p.to, seq: msg.seq };
      if (ping === undefined) now = m.nextDeadline()!;
    }
    const probeStart = now;
    const target = ping.to.split(":")[0]!;
    // Nobody answers. At the probe timeout: ping_req to helpers and a TCP ping to the target.
    const indirect: string[] = [];
    let tcp = false;
    while (now < probeStart + 500) {
      now = m.nextDeadline()!;
      m.tick(now);
      const outs = drain(m);
      for (const p of sent(outs))
        for (const msg of p.messages)
          if (msg.type === "ping_req" && msg.seq === ping.seq) indirect.push(p.to);
      if (outs.some((o) => o.kind === "stream" && o.to === ping.to)) tcp = true;
    }
    assert.equal(now, probeStart + 500);
    assert.equal(indirect.length, 3, "indirectChecks helpers asked");
    assert.ok(!indirect.includes(ping.to));
    assert.ok(tcp);
    // One helper nacks; two stay silent: at the deadline, suspect, and health +2.
    m.handlePacket(now + 10, indirect[0]!, packet({ type: "nack", seq: ping.seq }));
    while (m.member(target)?.state === "alive" && now < probeStart + 1000) {
      now = m.nextDeadline()!;
      m.tick(now);
    }
    assert.equal(now, probeStart + 1000);
    assert.equal(m.member(target)?.state, "suspect");
    assert.equal(m.healthScore, 2);
    assert.equal(m.stats().probes.failed, 1);
  });

  test("a direct ack is good news: RTT recorded, no suspicion", () => {
    const m = node();
    learn(m, 0, "a");
    drain(m);
    let now = m.nextDeadline()!;
    for (;;) {
      m.tick(now);
      const ping = sent(drain(m))
        .flatMap((p) => p.messages)
        .find((x) => x.type === "ping");
      if (ping?.type === "ping") {
        m.handlePacket(now + 3, "a:7946", packet({ type: "ack", seq: ping.seq }));
        break;
      }
      now = m.nextDeadline()!;
    }
    m.tick(now + 2000);
    assert.equal(m.member("a")?.state, "alive");
    assert.deepEqual(m.drainProbeRttSamplesMs(), [3]);
    assert.equal(m.stats().probes.ackedDirect, 1);
  });
});

describe("Membership packet budget", () => {
  test("membership broadcasts and application payloads each get their share of a packet", () => {
    const appPayload = new Uint8Array(100).fill(1);
    const app: AppDelegate = {
      getBroadcasts(overheadBytes, limitBytes) {
        const out: Uint8Array[] = [];
        for (
          let used = 0;
          used + overheadBytes + appPayload.length <= limitBytes;
          used += overheadBytes + 100
        )
          out.push(appPayload);
        return out;
      },
      notifyMsg() {},
      localState: () => new Uint8Array(),
      mergeRemoteState() {},
    };
    const m = node({ delegate: app });
    // Forty members with big metadata: far more membership news than one packet holds.
    for (let i = 0; i < 40; i++) learn(m, 1, `member-${i}`, 1, new Uint8Array(300));
    drain(m);
    m.handlePacket(2, "a:1", packet({ type: "ping", seq: 1, target: "me", source: "a" }));
    const out = drain(m).find((o) => o.kind === "send")!;
    assert.ok(out.kind === "send");
    const r = decodePacket(out.bytes);
    assert.ok(r.ok);
    let memberBytes = 0;
    let appBytes = 0;
    r.value.messages.forEach((msg, i) => {
      if (msg.type === "app") appBytes += r.value.sizes[i]!;
      if (msg.type === "alive") memberBytes += r.value.sizes[i]!;
    });
    const budget = m.config.packetBudgetBytes;
    assert.ok(out.bytes.length <= budget && out.bytes.length > budget - 350, `packet of ${out.bytes.length}`);
    assert.ok(memberBytes >= budget / 2 - 350, `membership got ${memberBytes}`);
    assert.ok(appBytes >= budget / 2 - 110, `app got ${appBytes}`);
  });

  test("a delegate that overfills its budget is a programmer error", () => {
    const greedy: AppDelegate = {
      getBroadcasts: () => [new Uint8Array(1390)],
      notifyMsg() {},
      localState: () => new Uint8Array(),
      mergeRemoteState() {},
    };
    const m = node({ delegate: greedy });
    assert.throws(
      () => m.handlePacket(1, "a:1", packet({ type: "ping", seq: 1, target: "me", source: "a" })),
      /invariant/,
    );
  });
});
