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
