// The pool-name rule on its own, without the schema library: the agent-check codec needs it on
// the lookup thread (src/serve/lookup-thread-worker.ts), which should not load zod.

/** Lowercase letters, digits, "-" and "_", starting with a letter or digit, at most 62 chars. */
export const poolNamePattern = /^[a-z0-9][a-z0-9_-]{0,61}$/;
