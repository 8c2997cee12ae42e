// SRV targets must be names, not addresses (RFC 2782), so an IP target is given a name of its
// own under `addr.<domain>`: the address with "." or ":" turned into "-". The mapping is one
// to one in both directions: only the canonical spelling of an address is a name, so a
// resolver caching `10-0-1-10.addr.vigil.` never sees the same address under two names.

import { isIPv6 } from "node:net";
import { canonicalIPv6, isHostName, isIPv4 } from "../../config/address.ts";

export type AddressKind = "ipv4" | "ipv6" | "name";

export interface ClassifiedHost {
  kind: AddressKind;
  /** IPv4 dotted quad, canonical IPv6 (RFC 5952), or the lowercase host name. */
  value: string;
}

/**
 * What a target's host is, or undefined when it cannot appear in DNS data at all (an IPv6
 * address with a zone id, a name that is not a valid host name).
 */
export function classifyHost(host: string): ClassifiedHost | undefined {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIPv4(bare)) return { kind: "ipv4", value: bare };
  if (isIPv6(bare)) {
    // A zone id ("fe80::1%eth0") only means something on the host that wrote it.
    if (bare.includes("%")) return undefined;
    return { kind: "ipv6", value: canonicalIPv6(bare) };
  }
  const name = (bare.endsWith(".") ? bare.slice(0, -1) : bare).toLowerCase();
  return isHostName(name) ? { kind: "name", value: name } : undefined;
}

/** The `addr` label for an address: "10.0.1.10" → "10-0-1-10", "2001:db8::1" → "2001-db8--1". */
export function addrLabel(host: ClassifiedHost): string {
  return host.kind === "ipv4" ? host.value.replaceAll(".", "-") : host.value.replaceAll(":", "-");
}

/** The address an `addr` label names, or undefined when the label is not the canonical form of one. */
export function addressOfLabel(label: string): ClassifiedHost | undefined {
  if (!/^[0-9a-f-]{2,39}$/.test(label)) return undefined;
  const dotted = label.replaceAll("-", ".");
  if (isIPv4(dotted)) return { kind: "ipv4", value: dotted };
  const colons = label.replaceAll("-", ":");
  if (!isIPv6(colons) || canonicalIPv6(colons) !== colons) return undefined;
  return { kind: "ipv6", value: colons };
}
