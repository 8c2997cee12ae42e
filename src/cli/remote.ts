import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { readCertFile, readTokenFile, tokenProblem } from "../config/secrets.ts";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { getText } from "../serve/api/peer-client.ts";
import { ago, table } from "./format.ts";
import { UsageError } from "./usage.ts";

const DEFAULT_SERVER = "http://127.0.0.1:7000";
/** One answer of the API read by the CLI: a whole cluster's pools fit well within this. */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;
const TIMEOUT_MS = 10_000;

/** Where and how the CLI talks to a node: its URL, the token to send, the CA to trust. */
interface Remote {
  server: string;
  token?: string;
  ca?: string;
}

function serverFrom(v: string | undefined): string {
  const s = v ?? process.env.VIGIL_SERVER ?? DEFAULT_SERVER;
  const withScheme = /^https?:\/\//.test(s) ? s : `http://${s}`;
  try {
    return new URL(withScheme).toString().replace(/\/$/, "");
  } catch {
    throw new UsageError(`--server: "${s}" is not a URL like http://127.0.0.1:7000`);
  }
}

/**
 * The token: `--token`, else `--token-file`, else VIGIL_TOKEN. On a shared machine prefer the
 * file or the variable: a command line is visible to every user in `ps`.
 */
function tokenFrom(values: {
  token?: string | undefined;
  "token-file"?: string | undefined;
}): string | undefined {
  if (values.token !== undefined && values["token-file"] !== undefined) {
    throw new UsageError("give --token or --token-file, not both");
  }
  if (values["token-file"] !== undefined) return readTokenFile(values["token-file"]);
  const token = values.token ?? process.env.VIGIL_TOKEN;
  if (token === undefined || token === "") return undefined;
  const where = values.token !== undefined ? "--token" : "VIGIL_TOKEN";
  const problem = tokenProblem(token.trim(), "");
  if (problem !== undefined) throw new UsageError(`${where}: ${problem}`);
  return token.trim();
}

function remoteFrom(values: {
  server?: string | undefined;
  token?: string | undefined;
  "token-file"?: string | undefined;
  ca?: string | undefined;
}): Remote {
  const r: Remote = { server: serverFrom(values.server) };
  const token = tokenFrom(values);
  if (token !== undefined) r.token = token;
  if (values.ca !== undefined) r.ca = readCertFile(values.ca, "CA file").pem;
  return r;
}

/** TLS verification failures, where a private CA (--ca) is the usual fix. */
const untrustedCertificate = /certificate|self.signed|unable to (get|verify)/i;

async function getJson(remote: Remote, path: string): Promise<{ status: number; body: unknown }> {
  const { server } = remote;
  let res: { status: number; text: string };
  try {
    res = await getText(server + path, {
      timeoutMs: TIMEOUT_MS,
      maxBytes: MAX_ANSWER_BYTES,
      ...(remote.token === undefined ? {} : { token: remote.token }),
      ...(remote.ca === undefined ? {} : { ca: remote.ca }),
    });
  } catch (e) {
    const why = (e as Error).message;
    const hint =
      server.startsWith("https:") && remote.ca === undefined && untrustedCertificate.test(why)
        ? " (for a private CA, pass its certificate with --ca FILE)"
        : "";
    throw new VigilError(ErrorCode.unavailable, `cannot reach ${server}: ${why}${hint}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new VigilError(
      ErrorCode.unavailable,
      `${server}${path} answered ${res.status} with a body that is not JSON`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    const hint =
      res.status === 403
        ? ""
        : remote.token === undefined
          ? " (give a token with --token-file FILE, VIGIL_TOKEN or --token)"
          : " (the token was refused)";
    throw new VigilError(ErrorCode.unavailable, `${server}: ${apiError(body)}${hint}`);
  }
  return { status: res.status, body };
}

function apiError(body: unknown): string {
  const e = (body as { error?: { message?: string } }).error;
  return e?.message ?? "unexpected answer";
}

interface TargetView {
  target: string;
  verdict: string;
  state: string;
  since?: number | null;
  reason?: string;
  observers?: { node: string; state: string; reason?: string; voting?: boolean }[];
}
interface PoolView {
  name: string;
  targets: TargetView[];
}

function parseStatusArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: {
        server: { type: "string" },
        json: { type: "boolean" },
        token: { type: "string" },
        "token-file": { type: "string" },
        ca: { type: "string" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * `vigil status [pool[/target]]`: a table of verdicts. Exit 1 when the server cannot be
 * reached or the named pool/target does not exist, or when a single named target is not up
 * (so scripts can gate on it); 0 otherwise.
 */
export async function cmdStatus(args: string[]): Promise<number> {
  const { values, positionals } = parseStatusArgs(args);
  if (positionals.length > 1) throw new UsageError("status takes at most one pool[/target]");
  const remote = remoteFrom(values);
  const sel = positionals[0];
  const [poolName, ...targetParts] = sel === undefined ? [] : sel.split("/");
  const targetName = targetParts.length > 0 ? targetParts.join("/") : undefined;

  let pools: PoolView[];
  if (poolName === undefined || poolName === "") {
    const list = await getJson(remote, "/v1/pools");
    if (list.status !== 200) throw new VigilError(ErrorCode.unavailable, apiError(list.body));
    const names = ((list.body as { pools: { name: string }[] }).pools ?? []).map((p) => p.name);
    pools = [];
    for (const n of names) {
      const r = await getJson(remote, `/v1/pools/${encodeURIComponent(n)}`);
      if (r.status === 200) pools.push(r.body as PoolView);
    }
  } else {
    const r = await getJson(remote, `/v1/pools/${encodeURIComponent(poolName)}`);
    if (r.status !== 200) {
      process.stderr.write(`vigil: ${apiError(r.body)}\n`);
      return 1;
    }
    pools = [r.body as PoolView];
  }

  let rows = pools.flatMap((p) => p.targets.map((t) => ({ pool: p.name, t })));
  if (targetName !== undefined) {
    rows = rows.filter((r) => r.t.target === targetName);
    if (rows.length === 0) {
      process.stderr.write(`vigil: pool "${poolName}" has no target "${targetName}"\n`);
      return 1;
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(targetName === undefined ? { pools } : rows[0]!.t, null, 2)}\n`);
  } else {
    const now = Date.now();
    process.stdout.write(
      `${table(
        ["POOL", "TARGET", "STATE", "SINCE", "OBSERVERS", "REASON"],
        rows.map(({ pool, t }) => [
          pool,
          t.target,
          t.state.toUpperCase(),
          ago(t.since, now),
          (t.observers ?? [])
            .filter((o) => o.voting !== false)
            .map((o) => `${o.node}:${o.state}`)
            .join(",") || "-",
          t.reason ?? "",
        ]),
      )}\n`,
    );
  }
  if (targetName !== undefined) return rows[0]!.t.state === "up" ? 0 : 1;
  return 0;
}

interface MemberView {
  name: string;
  state: string;
  incarnation: number;
  zone?: string;
  gossip?: string;
  api?: string;
}

export async function cmdMembers(args: string[]): Promise<number> {
  const { values, positionals } = parseStatusArgs(args);
  if (positionals.length > 0) throw new UsageError("members takes no arguments");
  const remote = remoteFrom(values);
  const r = await getJson(remote, "/v1/members");
  if (r.status !== 200) throw new VigilError(ErrorCode.unavailable, apiError(r.body));
  const members = (r.body as { members: MemberView[] }).members;
  if (values.json) {
    process.stdout.write(`${JSON.stringify(members, null, 2)}\n`);
  } else {
    process.stdout.write(
      `${table(
        ["NAME", "STATE", "INCARNATION", "ZONE", "GOSSIP", "API"],
        members.map((m) => [
          m.name,
          m.state,
          String(m.incarnation),
          m.zone ?? "-",
          m.gossip ?? "-",
          m.api ?? "-",
        ]),
      )}\n`,
    );
  }
  return 0;
}

/** `vigil keygen`: 32 random bytes, base64 — one entry of `node.encrypt_keys`. */
export function cmdKeygen(args: string[]): number {
  if (args.length > 0) throw new UsageError("keygen takes no arguments");
  process.stdout.write(`${randomBytes(32).toString("base64")}\n`);
  return 0;
}
