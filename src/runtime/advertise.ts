// The address a node gives its peers. A node that binds 0.0.0.0 (or ::) listens on every
// interface, but "0.0.0.0" is no address a peer can reach: gossiping it would leave every other
// node unable to probe or sync with this one (and to call its API for history). As memberlist
// does, the node then advertises one of its own interface addresses — a private IPv4 address
// first — unless `node.advertise` names one.
import { isIP } from "node:net";
import type { NetworkInterfaceInfo } from "node:os";
import { ErrorCode, VigilError } from "../core/errors.ts";

export function isUnspecified(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]" || host === "";
}

function isPrivateV4(a: string): boolean {
  const [p, q] = a.split(".").map(Number) as [number, number];
  return (
    p === 10 ||
    (p === 172 && q >= 16 && q <= 31) ||
    (p === 192 && q === 168) ||
    (p === 100 && q >= 64 && q <= 127)
  );
}

/**
 * The host peers should use for a service bound to `bindHost`: `configured` when given, the bind
 * host when it is a specific address, else an interface address (private IPv4, then any
 * non-loopback IPv4, then a global IPv6). Throws a config error naming `node.advertise` when
 * none is usable.
 */
export function advertiseHost(
  bindHost: string,
  configured: string | undefined,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
): string {
  if (configured !== undefined) return configured;
  if (!isUnspecified(bindHost)) return bindHost;
  const all = Object.values(interfaces)
    .flatMap((l) => l ?? [])
    .filter((i) => !i.internal);
  const v4 = all.filter((i) => i.family === "IPv4").map((i) => i.address);
  const v6 = all
    .filter((i) => i.family === "IPv6" && !/^fe80:/i.test(i.address) && isIP(i.address) === 6)
    .map((i) => i.address);
  const pick = v4.find(isPrivateV4) ?? v4[0] ?? v6[0];
  if (pick === undefined) {
    throw new VigilError(
      ErrorCode.config,
      `node binds ${bindHost || "every interface"} but has no non-loopback interface address to give its peers: set node.advertise to the address they should use`,
    );
  }
  return pick;
}
