// A DNS client for tests: one query over UDP to a server on 127.0.0.1, as a resolver sends it.
import { createSocket } from "node:dgram";
import { type DecodedPacket, decode, encode } from "dns-packet";

let nextId = 1;

/** One UDP exchange; undefined when nothing came back within `timeoutMs` (dropped, or lost). */
export function udpExchange(port: number, packet: Buffer, timeoutMs = 500): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.on("message", (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      s.close();
      reject(e);
    });
    s.send(packet, port, "127.0.0.1");
  });
}

/**
 * Sends `junk`, then a query, from one socket, and returns the id of the first datagram that
 * comes back, with the query's id. One server socket takes datagrams in order, so when the
 * first reply is the query's, the junk got none: no waiting for a silence to prove it.
 */
export async function firstReplyAfterJunk(
  port: number,
  junk: Buffer,
  name: string,
): Promise<{ firstId: number | undefined; queryId: number }> {
  const queryId = nextId++ & 0xffff;
  const q = encode({ type: "query", id: queryId, flags: 0x0100, questions: [{ type: "A", name }] });
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => {
      s.close();
      resolve({ firstId: undefined, queryId }); // nothing at all came back
    }, 2_000);
    s.once("message", (m) => {
      clearTimeout(timer);
      s.close();
      resolve({ firstId: m.length >= 2 ? m.readUInt16BE(0) : -1, queryId });
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      s.close();
      reject(e);
    });
    s.send(junk, port, "127.0.0.1");
    s.send(q, port, "127.0.0.1");
  });
}

/** Asks `type` for `name`; rejects when no answer comes back. */
export async function dnsQuery(port: number, name: string, type: "A" | "SRV"): Promise<DecodedPacket> {
  const q = encode({ type: "query", id: nextId++ & 0xffff, flags: 0x0100, questions: [{ type, name }] });
  const reply = await udpExchange(port, q);
  if (reply === undefined) throw new Error(`no answer to ${type} ${name} on port ${port}`);
  return decode(reply);
}

export const rcodeOf = (p: DecodedPacket): string => (p as unknown as { rcode: string }).rcode;

/** The A records' addresses, sorted. */
export const addressesOf = (p: DecodedPacket): string[] =>
  (p.answers ?? [])
    .filter((r) => r.type === "A")
    .map((r) => String((r as { data: unknown }).data))
    .sort();
