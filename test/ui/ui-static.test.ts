import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { type ApiBackend, type ApiServer, startApiServer } from "../../src/serve/api/server.ts";
import { createUiStatic, isUiPath } from "../../src/serve/ui-static.ts";

// The dashboard's static files, served through the real API server (whose path decoding is
// what a traversal attempt has to get past).

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw request: fetch would normalise `..` and `%2e%2e` before they reach the server. */
function raw(
  base: string,
  path: string,
  method = "GET",
  headers: Record<string, string> = {},
): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

function serverFor(root: string): Promise<ApiServer> {
  const ui = createUiStatic(root);
  const none = () => {
    throw new Error("not in this test");
  };
  const backend: ApiBackend = {
    health: () => ({ name: "t" }),
    members: () => [],
    listPools: () => [],
    getPool: () => undefined,
    putPool: none,
    deletePool: () => false,
    getTarget: () => undefined,
    setAdmin: none,
    queryEvents: () => ({ events: [], next: 0 }),
    metricsText: async () => ({ contentType: "text/plain", text: "" }),
    extraRoute: (req, res, segments) => ui.route(req, res, segments),
  };
  return startApiServer({ host: "127.0.0.1", port: 0, backend });
}

describe("dashboard static files", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-ui-"));
  const root = join(dir, "dist");
  const bigJs = `console.log(${JSON.stringify("x".repeat(5000))});\n`;
  let api: ApiServer;

  before(async () => {
    mkdirSync(join(root, "assets"), { recursive: true });
    writeFileSync(join(root, "index.html"), "<!doctype html><title>Vigil</title>");
    writeFileSync(join(root, "assets", "app-ABCDEFGH.js"), bigJs);
    writeFileSync(join(root, "assets", "app-ABCDEFGH.css"), "body{color:red}");
    writeFileSync(join(root, "assets", "notes.txt"), "plain");
    writeFileSync(join(root, "assets", "data.bin"), Buffer.from([1, 2, 3]));
    writeFileSync(join(root, "assets", ".hidden"), "secret");
    writeFileSync(join(dir, "outside.txt"), "outside the root");
    symlinkSync(join(dir, "outside.txt"), join(root, "assets", "link.txt"));
    mkdirSync(join(root, "assets", "sub"));
    api = await serverFor(root);
  });
  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("GET / is index.html, revalidated on every load, with a same-origin-only policy", async () => {
    const r = await raw(api.url, "/");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(r.body.toString(), "<!doctype html><title>Vigil</title>");
    assert.equal(r.headers["cache-control"], "no-cache");
    assert.match(String(r.headers["content-security-policy"]), /default-src 'self'/);
    assert.match(String(r.headers["content-security-policy"]), /connect-src 'self'/);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.ok(r.headers.etag);
  });

  it("hashed assets get their content type and a year of immutable caching", async () => {
    const js = await raw(api.url, "/ui/assets/app-ABCDEFGH.js");
    assert.equal(js.status, 200);
    assert.equal(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert.equal(js.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.equal(js.body.toString(), bigJs);
    const css = await raw(api.url, "/ui/assets/app-ABCDEFGH.css");
    assert.equal(css.headers["content-type"], "text/css; charset=utf-8");
    assert.equal(css.headers["content-security-policy"], undefined, "the page policy is for pages");
    const txt = await raw(api.url, "/ui/assets/notes.txt");
    assert.equal(txt.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(txt.headers["cache-control"], "no-cache", "an unhashed name may change: revalidate");
    const bin = await raw(api.url, "/ui/assets/data.bin");
    assert.equal(bin.headers["content-type"], "application/octet-stream");
  });

  it("answers 304 to a matching If-None-Match, and gzip to clients that accept it", async () => {
    const first = await raw(api.url, "/ui/assets/app-ABCDEFGH.js");
    const again = await raw(api.url, "/ui/assets/app-ABCDEFGH.js", "GET", {
      "if-none-match": String(first.headers.etag),
    });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    const gz = await raw(api.url, "/ui/assets/app-ABCDEFGH.js", "GET", { "accept-encoding": "gzip, br" });
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.ok(gz.body.length < bigJs.length / 5);
    assert.equal(gunzipSync(gz.body).toString(), bigJs);
    assert.equal(gz.headers.vary, "accept-encoding");
  });

  it("serves a rebuilt file's new content (the cache follows the file's mtime)", async () => {
    const p = join(root, "assets", "notes.txt");
    writeFileSync(p, "changed");
    const later = new Date(Date.now() + 5_000);
    utimesSync(p, later, later);
    assert.equal((await raw(api.url, "/ui/assets/notes.txt")).body.toString(), "changed");
  });

  it("HEAD has the headers and no body", async () => {
    const r = await raw(api.url, "/ui/assets/app-ABCDEFGH.js", "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers["content-length"], String(Buffer.byteLength(bigJs)));
  });

  it("404s missing files, directories, dotfiles and bare /ui/", async () => {
    for (const path of [
      "/ui/assets/nope.js",
      "/ui/assets/sub",
      "/ui/assets",
      "/ui/",
      "/ui/assets/.hidden",
      "/ui/index.html/x",
    ]) {
      const r = await raw(api.url, path);
      assert.equal(r.status, 404, path);
      assert.equal(JSON.parse(r.body.toString()).error.code, "VIGIL_ERR_NOT_FOUND", path);
    }
  });

  it("never leaves the root: dot segments, encoded slashes and symbolic links out are 404", async () => {
    for (const path of [
      "/ui/../outside.txt",
      "/ui/%2e%2e/outside.txt",
      "/ui/assets/%2e%2e%2f%2e%2e%2foutside.txt",
      "/ui/..%2foutside.txt",
      "/ui/assets/..%5c..%5coutside.txt",
      "/ui/assets/link.txt",
      "/ui/%00",
    ]) {
      const r = await raw(api.url, path);
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /outside the root/, path);
    }
  });

  it("refuses other methods with 405 and an Allow header", async () => {
    const r = await raw(api.url, "/", "POST");
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, "GET, HEAD");
  });

  it("says how to build when there is no build, and leaves other paths alone", async () => {
    const empty = await serverFor(join(dir, "not-built"));
    try {
      const r = await raw(empty.url, "/");
      assert.equal(r.status, 503);
      assert.match(r.body.toString(), /npm run build/);
      assert.equal((await raw(empty.url, "/ui/assets/app.js")).status, 404);
    } finally {
      await empty.close();
    }
    assert.equal(isUiPath([]), true);
    assert.equal(isUiPath(["ui", "assets", "x.js"]), true);
    assert.equal(isUiPath(["v1", "health"]), false);
    assert.equal(isUiPath(["uix"]), false);
  });
});
