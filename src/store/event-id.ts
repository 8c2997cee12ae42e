import { createHash } from "node:crypto";

/** The fields that make two events the same fact. */
export interface EventIdentity {
  type: string;
  ts: number;
  pool?: string | undefined;
  target?: string | undefined;
  node?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

/**
 * A deterministic id for an event: every node that records the same transition computes the
 * same id, so a shared store keeps it once. 128 bits of SHA-256, base64url (22 chars).
 */
export function eventId(e: EventIdentity): string {
  // A JSON array keeps field boundaries unambiguous ("a","bc" vs "ab","c") and absent ≠ "".
  const key = JSON.stringify([
    e.type,
    e.ts,
    e.pool ?? null,
    e.target ?? null,
    e.node ?? null,
    e.from ?? null,
    e.to ?? null,
  ]);
  return createHash("sha256").update(key).digest().subarray(0, 16).toString("base64url");
}
