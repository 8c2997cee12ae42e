// The URL forms of `vigil check <url>`: one string names a check type, its target and the
// few settings worth giving on a command line. Everything else takes the spec defaults.
// The authority is split here rather than by WHATWG URL, which accepts things a target
// cannot be (credentials, empty hosts for non-special schemes) and reports bad ports as a
// bare "Invalid URL".

import { isIPv6 } from "node:net";
import { canonicalIPv6, formatHostPort, isDnsQueryName, isHostName, isIPv4 } from "../config/address.ts";
import type { CheckSpec, DnsCheckSpec, HttpCheckSpec, TargetAddr } from "../config/types.ts";
import { assert } from "../core/assert.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";

const schemes = ["http", "https", "tcp", "dns", "grpc", "tls"] as const;
type Scheme = (typeof schemes)[number];

const recordTypes: readonly DnsCheckSpec["recordType"][] = [
  "A",
  "AAAA",
  "CNAME",
  "MX",
  "TXT",
  "NS",
  "SRV",
  "SOA",
  "PTR",
];

/**
 * The canonical target, as config builds it: host without brackets, IPv6 compressed and
 * names lower-cased, key "host:port" with IPv6 in brackets.
 */
export function targetAddr(host: string, port: number): TargetAddr {
  assert(Number.isInteger(port) && port >= 1 && port <= 65535, `port ${port} out of range`);
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const canonical = isIPv6(bare) ? canonicalIPv6(bare) : bare.toLowerCase();
  return { host: canonical, port, key: formatHostPort(canonical, port) };
}

function usage(url: string, message: string): VigilError {
  return new VigilError(ErrorCode.usage, `${url}: ${message}`);
}

interface Parts {
  scheme: Scheme;
  host: string;
  port: number | undefined;
  /** Path and query as written, "" when absent; the fragment is dropped. */
  pathQuery: string;
  path: string;
  query: URLSearchParams;
}

function split(url: string): Parts {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (m === null) {
    throw usage(url, `expected <scheme>://…, with a scheme among ${schemes.join(", ")}`);
  }
  const scheme = m[1]!.toLowerCase();
  if (!(schemes as readonly string[]).includes(scheme)) {
    throw usage(url, `unknown scheme "${scheme}" (expected ${schemes.join(", ")})`);
  }
  const rest = url.slice(m[0].length);
  const hash = rest.indexOf("#");
  const noFragment = hash === -1 ? rest : rest.slice(0, hash);
  const authorityEnd = noFragment.search(/[/?]/);
  const authority = authorityEnd === -1 ? noFragment : noFragment.slice(0, authorityEnd);
  const pathQuery = authorityEnd === -1 ? "" : noFragment.slice(authorityEnd);
  if (authority.includes("@")) throw usage(url, "credentials in the URL are not supported");

  let host: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close === -1) throw usage(url, "unterminated IPv6 address (missing ']')");
    host = authority.slice(1, close);
    if (!isIPv6(host)) throw usage(url, `"${host}" is not an IPv6 address`);
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":"))
      throw usage(url, `unexpected "${after}" after the IPv6 address`);
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = authority.indexOf(":");
    host = colon === -1 ? authority : authority.slice(0, colon);
    portText = colon === -1 ? undefined : authority.slice(colon + 1);
    if (host === "") throw usage(url, "missing host");
    const valid = /^[\d.]+$/.test(host) ? isIPv4(host) : isHostName(host);
    if (!valid) throw usage(url, `bad host "${host}" (expected an IPv4 address, [IPv6] or a host name)`);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw usage(url, `bad port "${portText}" (expected 1-65535)`);
    }
    port = Number(portText);
  }
  const q = pathQuery.indexOf("?");
  const path = q === -1 ? pathQuery : pathQuery.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : pathQuery.slice(q + 1));
  return { scheme: scheme as Scheme, host, port, pathQuery, path, query };
}

function onlyParams(url: string, p: Parts, allowed: string[]): void {
  for (const name of p.query.keys()) {
    if (!allowed.includes(name)) {
      const expected = allowed.length === 0 ? "none" : allowed.join(", ");
      throw usage(url, `unknown parameter "${name}" for ${p.scheme}:// (expected ${expected})`);
    }
  }
}

function noPath(url: string, p: Parts): void {
  if (p.path !== "" && p.path !== "/") throw usage(url, `${p.scheme}:// takes no path (got "${p.path}")`);
}

function needPort(url: string, p: Parts, form: string): number {
  if (p.port === undefined) throw usage(url, `${p.scheme}:// needs a port: ${form}`);
  return p.port;
}

function decode(url: string, s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw usage(url, `bad percent-encoding in the ${what}`);
  }
}

function boolParam(url: string, p: Parts, name: string, dflt: boolean): boolean {
  const v = p.query.get(name);
  if (v === null) return dflt;
  if (v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw usage(url, `bad ${name} "${v}" (expected true or false)`);
}

function httpSpec(url: string, p: Parts): { spec: HttpCheckSpec; port: number } {
  // Node refuses to send a path with spaces or control characters; say so here instead.
  if (!/^[\x21-\x7e]*$/.test(p.pathQuery)) {
    throw usage(url, "the path must be URL-encoded (no spaces or non-ASCII characters)");
  }
  const https = p.scheme === "https";
  const spec: HttpCheckSpec = {
    type: https ? "https" : "http",
    method: "GET",
    path: p.pathQuery === "" ? "/" : p.pathQuery.startsWith("?") ? `/${p.pathQuery}` : p.pathQuery,
    headers: {},
    expect: { status: [{ lo: 200, hi: 399 }] },
    maxBodyBytes: limits.maxBodyBytesDefault,
    tlsVerify: true,
    keepalive: false,
  };
  return { spec, port: p.port ?? (https ? 443 : 80) };
}

/**
 * Parses the forms `http(s)://host[:port]/path?query`, `tcp://host:port[?send=…&expect=…]`,
 * `dns://server[:port]/name[?type=AAAA&expect=…&protocol=tcp]`, `grpc://host:port[/service][?tls=1]`,
 * `tls://host[:port][?min_days=N&sni=name]`. Throws VigilError(usage) naming what is wrong.
 */
export function parseCheckUrl(url: string): { spec: CheckSpec; target: TargetAddr } {
  if (url.trim() === "") throw new VigilError(ErrorCode.usage, "empty URL");
  const p = split(url);
  switch (p.scheme) {
    case "http":
    case "https": {
      const { spec, port } = httpSpec(url, p);
      return { spec, target: targetAddr(p.host, port) };
    }
    case "tcp": {
      const port = needPort(url, p, "tcp://host:port");
      noPath(url, p);
      onlyParams(url, p, ["send", "expect"]);
      const send = p.query.get("send");
      const expect = p.query.get("expect");
      return {
        spec: { type: "tcp", ...(send === null ? {} : { send }), ...(expect === null ? {} : { expect }) },
        target: targetAddr(p.host, port),
      };
    }
    case "dns": {
      onlyParams(url, p, ["type", "expect", "protocol"]);
      const name = decode(url, p.path.replace(/^\//, ""), "name");
      if (name === "") throw usage(url, "dns:// needs a name to query: dns://server[:port]/name");
      if (!isDnsQueryName(name)) throw usage(url, `bad DNS name "${name}"`);
      const typeText = (p.query.get("type") ?? "A").toUpperCase();
      const recordType = recordTypes.find((t) => t === typeText);
      if (recordType === undefined) {
        throw usage(url, `unknown record type "${typeText}" (expected ${recordTypes.join(", ")})`);
      }
      const protocol = p.query.get("protocol") ?? "udp";
      if (protocol !== "udp" && protocol !== "tcp")
        throw usage(url, `bad protocol "${protocol}" (expected udp or tcp)`);
      const expect = p.query.get("expect");
      const spec: DnsCheckSpec = { type: "dns", name, recordType, protocol };
      if (expect !== null) spec.expectAnswer = expect;
      return { spec, target: targetAddr(p.host, p.port ?? 53) };
    }
    case "grpc": {
      const port = needPort(url, p, "grpc://host:port[/service]");
      onlyParams(url, p, ["tls"]);
      const service = decode(url, p.path.replace(/^\//, ""), "service");
      const tls = boolParam(url, p, "tls", false);
      return { spec: { type: "grpc", service, tls, tlsVerify: true }, target: targetAddr(p.host, port) };
    }
    case "tls": {
      noPath(url, p);
      onlyParams(url, p, ["min_days", "sni"]);
      const minDaysText = p.query.get("min_days");
      let minDays = 7;
      if (minDaysText !== null) {
        minDays = Number(minDaysText);
        if (minDaysText.trim() === "" || !Number.isFinite(minDays) || minDays < 0) {
          throw usage(url, `bad min_days "${minDaysText}" (expected a number of days, 0 or more)`);
        }
      }
      const sni = p.query.get("sni");
      return {
        spec: { type: "tls", minDays, tlsVerify: true, ...(sni === null ? {} : { sni }) },
        target: targetAddr(p.host, p.port ?? 443),
      };
    }
  }
}
