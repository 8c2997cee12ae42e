// Windowing for the overview's list: only the rows on screen (and a few around them) exist in
// the DOM, and only the pages of rows they need are fetched. Pure: node tests cover it.

export interface RowRange {
  /** First row index shown (inclusive). */
  first: number;
  /** One past the last row index shown. */
  end: number;
}

/** Rows to render for a scroll position, with `overscan` rows either side. */
export function visibleRange(
  scrollTopPx: number,
  viewportPx: number,
  rowPx: number,
  total: number,
  overscan: number,
): RowRange {
  if (total <= 0 || rowPx <= 0) return { first: 0, end: 0 };
  const top = Math.max(0, Math.floor(scrollTopPx / rowPx));
  const shown = Math.ceil(Math.max(viewportPx, rowPx) / rowPx) + 1;
  const first = Math.min(Math.max(0, top - overscan), Math.max(0, total - 1));
  const end = Math.min(total, top + shown + overscan);
  return { first, end: Math.max(first, end) };
}

/** Page numbers holding rows [first, end). */
export function pagesCovering(range: RowRange, pageSize: number): number[] {
  if (range.end <= range.first) return [];
  const out: number[] = [];
  for (let p = Math.floor(range.first / pageSize); p <= Math.floor((range.end - 1) / pageSize); p++)
    out.push(p);
  return out;
}

/**
 * Rows of one query, by page. A refresh marks pages stale but keeps showing them until the new
 * rows arrive, so a live update never blanks the screen.
 */
export class RowPages<T> {
  readonly pageSize: number;
  /** Pages kept at most; the farthest from the last ones asked for go first. */
  readonly maxPages: number;
  total = 0;
  private readonly pages = new Map<number, T[]>();
  private readonly stale = new Set<number>();
  private readonly inFlight = new Set<number>();
  private generation = 0;

  constructor(pageSize: number, maxPages = 50) {
    this.pageSize = pageSize;
    this.maxPages = maxPages;
  }

  /** Forgets everything: the query changed. Answers to older requests are then ignored. */
  reset(): void {
    this.pages.clear();
    this.stale.clear();
    this.inFlight.clear();
    this.total = 0;
    this.generation++;
  }

  /** Keeps the rows but asks for them again (live updates). */
  invalidate(): void {
    for (const p of this.pages.keys()) this.stale.add(p);
  }

  row(i: number): T | undefined {
    return this.pages.get(Math.floor(i / this.pageSize))?.[i % this.pageSize];
  }

  /** Of `wanted`, the pages to fetch now (missing or stale, not already being fetched). */
  toFetch(wanted: readonly number[]): number[] {
    return wanted.filter((p) => !this.inFlight.has(p) && (!this.pages.has(p) || this.stale.has(p)));
  }

  /** Marks a fetch as started; returns the token to hand back to `put`. */
  begin(page: number): number {
    this.inFlight.add(page);
    return this.generation;
  }

  /** Stores a fetched page; false (and nothing stored) when the query changed meanwhile. */
  put(page: number, rows: T[], total: number, token: number, keepNear: readonly number[] = [page]): boolean {
    if (token !== this.generation) return false;
    this.inFlight.delete(page);
    this.pages.set(page, rows);
    this.stale.delete(page);
    this.total = total;
    if (this.pages.size > this.maxPages) {
      const far = [...this.pages.keys()].sort(
        (a, b) => distance(b, keepNear) - distance(a, keepNear) || b - a,
      );
      for (const p of far.slice(0, this.pages.size - this.maxPages)) {
        this.pages.delete(p);
        this.stale.delete(p);
      }
    }
    return true;
  }

  /** A fetch failed: it may be retried. */
  fail(page: number, token: number): void {
    if (token === this.generation) this.inFlight.delete(page);
  }

  /** Applies `fn` to every loaded row that `match`es (live patch before the refetch lands). */
  patch(match: (row: T) => boolean, fn: (row: T) => T): number {
    let n = 0;
    for (const rows of this.pages.values()) {
      for (let i = 0; i < rows.length; i++) {
        if (match(rows[i]!)) {
          rows[i] = fn(rows[i]!);
          n++;
        }
      }
    }
    return n;
  }

  get loadedPages(): number {
    return this.pages.size;
  }
}

function distance(p: number, near: readonly number[]): number {
  let d = Number.POSITIVE_INFINITY;
  for (const q of near) d = Math.min(d, Math.abs(p - q));
  return d;
}
