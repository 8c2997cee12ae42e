// A dot names one write: the observer that made it and that observer's counter at the time.
// Counters start at 1 and only grow, across all registers of one observer, so a dot is unique
// cluster-wide and "newer" means a larger counter from the same observer.

export interface Dot {
  readonly observer: string;
  readonly counter: number;
}

/** Counters are positive safe integers; 0 means "nothing yet" in a version vector. */
export function isCounter(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 1;
}

export function dot(observer: string, counter: number): Dot {
  return { observer, counter };
}

export function dotEquals(a: Dot, b: Dot): boolean {
  return a.observer === b.observer && a.counter === b.counter;
}

/** Total order for canonical listings: observer name, then counter. */
export function compareDots(a: Dot, b: Dot): number {
  if (a.observer !== b.observer) return a.observer < b.observer ? -1 : 1;
  return a.counter - b.counter;
}
