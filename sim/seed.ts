// Seeds for simulated runs. A run's seed comes from SIM_SEED when set (to replay a failure),
// otherwise from the fixed default of the test, so CI is deterministic. A failure names its seed.

export function simSeed(defaultSeed: number): number {
  const env = process.env.SIM_SEED;
  if (env === undefined || env === "") return defaultSeed;
  const seed = Number(env);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff)
    throw new Error(`SIM_SEED must be an integer in [0, 2^32), got "${env}"`);
  return seed;
}

/** Runs `fn` with the seed; any failure is re-thrown with `seed=<n>` at the front of its message. */
export async function withSeed<T>(defaultSeed: number, fn: (seed: number) => T | Promise<T>): Promise<T> {
  const seed = simSeed(defaultSeed);
  try {
    return await fn(seed);
  } catch (e) {
    // A new error rather than an edited message: reporters print the stack, captured at throw.
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`seed=${seed} (replay with SIM_SEED=${seed}): ${why}`, { cause: e });
  }
}
