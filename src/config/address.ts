// "host:port" addresses as written in config and in API paths: IPv4, bracketed IPv6, or an
// RFC 1123 host name. The canonical key is what identifies a target inside its pool, so two
// spellings of one address ("[::0:1]:80", "[::1]:80"; "Web.Local:80", "web.local:80") must
// produce the same key or duplicates slip through.

import { isIPv6 } from "node:net";
import type { TargetAddr } from "./types.ts";

/** Why an address was refused, in the "expected …, got …" form. */
export class AddressProblem extends Error {
  override name = "AddressProblem";
}

export interface AddressOptions {
  /** Listen addresses may ask for an ephemeral port (0); targets and join addresses may not. */
  allowPortZero?: boolean;
}

const maxAddressChars = 300;
const maxDnsNameChars = 253;

const ipv4Pattern = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const hostLabelPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// Query names (for dns checks) may hold underscores: "_http._tcp.example.com".
const queryLabelPattern = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

export function isIPv4(s: string): boolean {
  return ipv4Pattern.test(s);
}

/** An RFC 1123 host name (letters, digits, hyphens; labels of 1–63; at most 253 characters). */
export function isHostName(s: string): boolean {
  if (s === "" || s.length > maxDnsNameChars) return false;
  const labels = s.toLowerCase().split(".");
  // An all-numeric last label would read as a (malformed) IPv4 address, not a name.
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return false;
  return labels.every((label) => hostLabelPattern.test(label));
}

/** A DNS name to query: like a host name but underscores allowed and a trailing dot accepted. */
export function isDnsQueryName(s: string): boolean {
  const name = s.endsWith(".") ? s.slice(0, -1) : s;
  if (name === "" || name.length > maxDnsNameChars) return false;
  return name
    .toLowerCase()
    .split(".")
    .every((label) => queryLabelPattern.test(label));
}

/** The compressed lowercase form of a valid IPv6 address ("0:0::1" → "::1"). */
export function canonicalIPv6(s: string): string {
  // The WHATWG URL parser implements RFC 5952 compression; no need to write our own.
  return new URL(`http://[${s}]/`).hostname.slice(1, -1);
}

const hostKinds = "an IPv4 address, an IPv6 address in brackets, or a host name";

/** Parses "host:port"; throws AddressProblem with a message saying what was wrong. */
export function parseHostPort(text: string, options: AddressOptions = {}): TargetAddr {
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  if (text.length > maxAddressChars) throw new AddressProblem(`expected a "host:port" address, got ${shown}`);
  let hostText: string;
  let portText: string;
  let host: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new AddressProblem(`expected "]" closing the IPv6 address, got ${shown}`);
    hostText = text.slice(1, close);
    if (text[close + 1] !== ":") {
      throw new AddressProblem(`expected "[ipv6]:port" with a port after the bracket, got ${shown}`);
    }
    portText = text.slice(close + 2);
    if (hostText.includes("%")) {
      throw new AddressProblem(`expected an IPv6 address without a zone id, got ${shown}`);
    }
    if (!isIPv6(hostText))
      throw new AddressProblem(`expected a valid IPv6 address in brackets, got ${shown}`);
    host = canonicalIPv6(hostText);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new AddressProblem(`expected "host:port" with a port, got ${shown}`);
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(":")) {
      throw new AddressProblem(`expected an IPv6 address in brackets like "[::1]:80", got ${shown}`);
    }
    if (/^[\d.]+$/.test(hostText)) {
      if (!isIPv4(hostText)) throw new AddressProblem(`expected a valid IPv4 address, got ${shown}`);
      host = hostText;
    } else {
      if (!isHostName(hostText))
        throw new AddressProblem(`expected a host that is ${hostKinds}, got ${shown}`);
      host = hostText.toLowerCase();
    }
  }
  const minPort = options.allowPortZero === true ? 0 : 1;
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= minPort && port <= 65_535)) {
    throw new AddressProblem(`expected a port from ${minPort} to 65535, got ${shown}`);
  }
  return { host, port, key: formatHostPort(host, port) };
}

/** "host:port", with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
