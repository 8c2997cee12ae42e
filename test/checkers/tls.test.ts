// HTTPS and TLS checks against servers with certificates made by openssl at test time.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createSecureContext,
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from "node:tls";
import { createProber } from "../../src/checkers/index.ts";
import { expiryReason } from "../../src/checkers/tls.ts";
import type { TlsCheckSpec } from "../../src/config/types.ts";
import { closedPort, httpSpec, listen, loopback, makeCerts, removeCerts, type TestCerts } from "./helpers.ts";

const dayMs = 24 * 3600 * 1000;

function close(s: HttpsServer | TlsServer): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

function tlsSpec(over: Partial<TlsCheckSpec> = {}): TlsCheckSpec {
  return { type: "tls", minDays: 7, tlsVerify: true, ...over };
}

describe("https and tls checkers", () => {
  let certs: TestCerts | undefined;
  let https: HttpsServer;
  let tls: TlsServer;
  let expired: TlsServer;
  let httpsPort = 0;
  let tlsPort = 0;
  let expiredPort = 0;
  let sniPort = 0;
  let sni: TlsServer;
  /** The SNI of each HTTPS request, recorded when the request arrives (after the handshake). */
  const servernames: (string | false | null)[] = [];
  const prober = createProber();

  before(async () => {
    certs = makeCerts();
    const key = readFileSync(certs.key);
    const cert = readFileSync(certs.cert);
    https = createHttpsServer({ key, cert }, (req, res) => {
      servernames.push((req.socket as TLSSocket).servername);
      res.end("secure ok");
    });
    tls = createTlsServer({ key, cert }, (s) => s.end());
    expired = createTlsServer({ key, cert: readFileSync(certs.expiredCert) }, (s) => s.end());
    // Presents the good certificate only to a client that asks for "localhost" by SNI, so
    // the check's own verdict shows what SNI it sent.
    const good = createSecureContext({ key, cert });
    sni = createTlsServer(
      {
        key,
        cert: readFileSync(certs.expiredCert),
        SNICallback: (name, cb) => cb(null, name === "localhost" ? good : undefined),
      },
      (s) => s.end(),
    );
    [httpsPort, tlsPort, expiredPort, sniPort] = await Promise.all([
      listen(https),
      listen(tls),
      listen(expired),
      listen(sni),
    ]);
  });

  after(async () => {
    await prober.close();
    await Promise.all([https, tls, expired, sni].filter((s) => s !== undefined).map(close));
    removeCerts(certs);
  });

  describe("https", () => {
    const ok = { status: [{ lo: 200, hi: 299 }], bodyContains: "secure ok" };

    it("fails verification of a self-signed certificate by default, naming the problem", async () => {
      const r = await prober.check({
        spec: httpSpec({ type: "https" }),
        target: loopback(httpsPort),
        timeoutMs: 2000,
      });
      assert.equal(r.ok, false);
      assert.match(r.reason, /self-signed certificate/);
    });

    it("passes with tlsCa pointing at the certificate, and with tlsVerify false", async () => {
      const withCa = httpSpec({ type: "https", tlsCa: certs!.cert, expect: ok });
      const r1 = await prober.check({ spec: withCa, target: loopback(httpsPort), timeoutMs: 2000 });
      assert.deepEqual([r1.ok, r1.reason], [true, "status 200"]);
      const noVerify = httpSpec({ type: "https", tlsVerify: false, expect: ok });
      const r2 = await prober.check({ spec: noVerify, target: loopback(httpsPort), timeoutMs: 2000 });
      assert.deepEqual([r2.ok, r2.reason], [true, "status 200"]);
    });

    it("sends SNI for a name (spec.host or spec.sni) and none for an IP target", async () => {
      servernames.length = 0;
      const target = loopback(httpsPort);
      const tlsCa = certs!.cert;
      await prober.check({ spec: httpSpec({ type: "https", tlsCa }), target, timeoutMs: 2000 });
      await prober.check({
        spec: httpSpec({ type: "https", tlsCa, host: "localhost" }),
        target,
        timeoutMs: 2000,
      });
      const r = await prober.check({
        spec: httpSpec({ type: "https", tlsCa, sni: "localhost" }),
        target,
        timeoutMs: 2000,
      });
      assert.equal(r.ok, true);
      assert.deepEqual(servernames, [false, "localhost", "localhost"]);
    });

    it("fails a name the certificate does not carry", async () => {
      const spec = httpSpec({ type: "https", tlsCa: certs!.cert, host: "other.example" });
      const r = await prober.check({ spec, target: loopback(httpsPort), timeoutMs: 2000 });
      assert.equal(r.ok, false);
      assert.match(r.reason, /^certificate name mismatch: .*other\.example/);
    });

    it("fails, naming the file, when tlsCa cannot be read", async () => {
      const missing = join(certs!.dir, "missing.pem");
      const r = await prober.check({
        spec: httpSpec({ type: "https", tlsCa: missing }),
        target: loopback(httpsPort),
        timeoutMs: 2000,
      });
      assert.equal(r.ok, false);
      assert.equal(r.reason, `tls_ca ${missing}: open ENOENT`);
    });

    it("fails, naming the TLS problem, when the server does not speak TLS", async () => {
      // resume(): a paused socket never reads the client's FIN and would hold close() open.
      const plain = createNetServer((s) => s.resume().end("HTTP/1.1 400 Bad Request\r\n\r\n"));
      try {
        const r = await prober.check({
          spec: httpSpec({ type: "https" }),
          target: loopback(await listen(plain)),
          timeoutMs: 2000,
        });
        assert.deepEqual([r.ok, r.reason], [false, "tls packet length too long"]);
      } finally {
        await new Promise((resolve) => plain.close(resolve));
      }
    });
  });

  describe("tls", () => {
    it("is down when the certificate expires within minDays, naming the days left", async () => {
      const r = await prober.check({
        spec: tlsSpec({ tlsCa: certs!.cert }),
        target: loopback(tlsPort),
        timeoutMs: 2000,
      });
      assert.equal(r.ok, false);
      assert.match(r.reason, /^certificate expires in (1\.9|2\.0) days \(< 7\)$/);
    });

    it("is up when more than minDays remain", async () => {
      const spec = tlsSpec({ tlsCa: certs!.cert, minDays: 1 });
      const r = await prober.check({ spec, target: loopback(tlsPort), timeoutMs: 2000 });
      assert.deepEqual([r.ok, r.reason], [true, "certificate valid 1 day"]);
    });

    it("reports a self-signed certificate as untrusted unless verification is off", async () => {
      const r = await prober.check({
        spec: tlsSpec({ minDays: 1 }),
        target: loopback(tlsPort),
        timeoutMs: 2000,
      });
      assert.deepEqual(
        [r.ok, r.reason],
        [false, "certificate not trusted: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)"],
      );
      const off = await prober.check({
        spec: tlsSpec({ minDays: 1, tlsVerify: false }),
        target: loopback(tlsPort),
        timeoutMs: 2000,
      });
      assert.equal(off.ok, true);
    });

    it("reports an expired certificate as expired, verified or not", async () => {
      for (const spec of [tlsSpec({ tlsCa: certs!.expiredCert }), tlsSpec({ tlsVerify: false })]) {
        const r = await prober.check({ spec, target: loopback(expiredPort), timeoutMs: 2000 });
        assert.equal(r.ok, false);
        assert.match(r.reason, /^certificate expired \d+\.\d days ago$/);
      }
    });

    it("sends spec.sni, and no SNI to an IP target without one", async () => {
      const target = loopback(sniPort);
      const named = await prober.check({
        spec: tlsSpec({ tlsVerify: false, sni: "localhost" }),
        target,
        timeoutMs: 2000,
      });
      assert.match(named.reason, /^certificate expires in/);
      const bare = await prober.check({ spec: tlsSpec({ tlsVerify: false }), target, timeoutMs: 2000 });
      assert.match(bare.reason, /^certificate expired/);
    });

    it("reports a refused connection", async () => {
      const r = await prober.check({
        spec: tlsSpec(),
        target: loopback(await closedPort()),
        timeoutMs: 2000,
      });
      assert.deepEqual([r.ok, r.reason], [false, "connect ECONNREFUSED"]);
    });
  });

  it("judges expiry against minDays at the edges", () => {
    const now = 1_700_000_000_000;
    assert.deepEqual(expiryReason(now + 364.5 * dayMs, now, 7), {
      ok: true,
      reason: "certificate valid 364 days",
    });
    assert.deepEqual(expiryReason(now + 7 * dayMs, now, 7), {
      ok: false,
      reason: "certificate expires in 7.0 days (< 7)",
    });
    assert.equal(expiryReason(now + 7 * dayMs + 1000, now, 7).ok, true);
    assert.deepEqual(expiryReason(now - 3 * dayMs, now, 7), {
      ok: false,
      reason: "certificate expired 3.0 days ago",
    });
    assert.equal(expiryReason(now + 1000, now, 0).ok, true);
  });
});
