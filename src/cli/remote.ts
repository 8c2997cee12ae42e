import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { ErrorCode, VigilError } from "../core/errors.ts";
import { ago, table } from "./format.ts";
import { UsageError } from "./usage.ts";

const DEFAULT_SERVER = "http://127.0.0.1:7000";

function serverFrom(v: string | undefined): string {
  const s = v ?? process.env.VIGIL_SERVER ?? DEFAULT_SERVER;
  const withScheme = /^https?:\/\//.test(s) ? s : `http://${s}`;
  try {
    return new URL(withScheme).toString().replace(/\/$/, "");
  } catch {
    throw new UsageError(`--server: "${s}" is not a URL like http://127.0.0.1:7000`);
  }
}

async function getJson(server: string, path: string): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(server + path, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new VigilError(ErrorCode.unavailable, `cannot reach ${server}: ${cause}`);
  }
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    throw new VigilError(
      ErrorCode.unavailable,
      `${server}${path} answered ${res.status} with a body that is not JSON`,
    );
  }
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
      options: { server: { type: "string" }, json: { type: "boolean" } },
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
  const server = serverFrom(values.server);
  const sel = positionals[0];
  const [poolName, ...targetParts] = sel === undefined ? [] : sel.split("/");
  const targetName = targetParts.length > 0 ? targetParts.join("/") : undefined;

  let pools: PoolView[];
  if (poolName === undefined || poolName === "") {
    const list = await getJson(server, "/v1/pools");
    if (list.status !== 200) throw new VigilError(ErrorCode.unavailable, apiError(list.body));
    const names = ((list.body as { pools: { name: string }[] }).pools ?? []).map((p) => p.name);
    pools = [];
    for (const n of names) {
      const r = await getJson(server, `/v1/pools/${encodeURIComponent(n)}`);
      if (r.status === 200) pools.push(r.body as PoolView);
    }
  } else {
    const r = await getJson(server, `/v1/pools/${encodeURIComponent(poolName)}`);
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
  const server = serverFrom(values.server);
  const r = await getJson(server, "/v1/members");
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
