import type { Clock } from "../core/clock.ts";

/** The real clock: only the shell reads it; the core gets time as arguments. */
export const systemClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
};
