// Replicated state: the observation map (one-writer registers with dots and version vectors)
// and last-writer-wins maps ordered by hybrid logical clocks, with their plain wire forms.

export * from "./codec.ts";
export * from "./dots.ts";
export * from "./hlc.ts";
export * from "./json-value.ts";
export { stateLimits } from "./limits.ts";
export * from "./lww.ts";
export * from "./observations.ts";
export * from "./version-vector.ts";
