// Assertions state invariants; a failure is a programmer error and crashes the process.
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(`invariant: ${message}`);
}

export function unreachable(x: never): never {
  throw new Error(`invariant: unreachable ${JSON.stringify(x)}`);
}
