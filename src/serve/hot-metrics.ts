// Counters and histograms for the per-check path, scraped through a prom-client Registry like
// every other metric. prom-client hashes a child's labels into a string and turns the bucket
// bound into a property name on every observation: about 1 µs each, three times per check. Here
// a child is an object held by the caller; observing is a bucket search and a few additions.
// The exposition is prom-client's own (the registry formats what get() returns), so scrapes read
// exactly as before; test/serve/hot-metrics.test.ts compares the two byte for byte.

import type { Registry } from "prom-client";
import { assert } from "../core/assert.ts";

/** What prom-client's registry reads from a metric at scrape time (its get()). */
export interface ScrapedMetric {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

function scraped(
  m: { name: string; help: string; type: ScrapedMetric["type"] },
  values: ScrapedMetric["values"],
): Promise<ScrapedMetric> {
  return Promise.resolve({ name: m.name, help: m.help, type: m.type, values, aggregator: "sum" });
}

interface HotOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registers: Registry[];
}

/** Labels as prom-client reports them: one object per child, label name → value. */
function labelObject(names: readonly string[], values: readonly string[]): Record<string, string> {
  assert(values.length === names.length, `expected ${names.length} label values, got ${values.length}`);
  const out: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) out[names[i]!] = values[i]!;
  return out;
}

/** What both kinds share: the name, the children by label values, registration, reset. */
abstract class HotMetric<L extends string, C extends { readonly labels: Record<string, string> }> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = "sum";
  abstract readonly type: ScrapedMetric["type"];
  private readonly labelNames: readonly L[];
  /** By label values joined with a separator no label value holds in practice. */
  private readonly byKey = new Map<string, C>();
  /** Without labels the one series exists from the start (zero), as prom-client's does. */
  protected unlabelled: C | undefined;

  protected constructor(opts: HotOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
  }

  /** Called by a subclass's constructor once it can make children. */
  protected register(registers: readonly Registry[]): void {
    if (this.labelNames.length === 0) this.unlabelled = this.labels();
    for (const r of registers) r.registerMetric(this as never);
  }

  protected abstract child(labels: Record<string, string>): C;

  labels(...values: string[]): C {
    const key = values.join("\u0000");
    let c = this.byKey.get(key);
    if (c === undefined) {
      c = this.child(labelObject(this.labelNames, values));
      this.byKey.set(key, c);
    }
    return c;
  }

  protected children(): IterableIterator<C> {
    return this.byKey.values();
  }

  reset(): void {
    this.byKey.clear();
    this.unlabelled = undefined;
  }
}

export class HotCounterChild {
  value = 0;
  readonly labels: Record<string, string>;
  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }
  inc(by = 1): void {
    this.value += by;
  }
}

/** A counter whose children are kept by the caller: `labels(...)` once, `inc()` per event. */
export class HotCounter<L extends string = string> extends HotMetric<L, HotCounterChild> {
  readonly type = "counter";

  constructor(opts: HotOptions<L>) {
    super(opts);
    this.register(opts.registers);
  }

  protected child(labels: Record<string, string>): HotCounterChild {
    return new HotCounterChild(labels);
  }

  get(): Promise<ScrapedMetric> {
    const values: ScrapedMetric["values"] = [];
    for (const c of this.children()) values.push({ labels: c.labels, value: c.value });
    return scraped(this, values);
  }
}

export class HotHistogramChild {
  /** Observations per bucket (not cumulative); the last cell is +Inf. */
  readonly counts: Float64Array;
  readonly labels: Record<string, string>;
  private readonly bounds: Float64Array;
  sum = 0;
  count = 0;
  constructor(labels: Record<string, string>, bounds: Float64Array) {
    this.labels = labels;
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // A NaN would poison the sum for the life of the process; prom-client throws, a hot path
    // must not, so it is not counted.
    if (!Number.isFinite(value)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram whose children are kept by the caller: `labels(...)` once, `observe()` per event. */
export class HotHistogram<L extends string = string> extends HotMetric<L, HotHistogramChild> {
  readonly type = "histogram";
  private readonly bounds: Float64Array;

  constructor(opts: HotOptions<L> & { buckets: readonly number[] }) {
    super(opts);
    for (let i = 1; i < opts.buckets.length; i++)
      assert(opts.buckets[i]! > opts.buckets[i - 1]!, `${opts.name}: buckets must increase`);
    this.bounds = Float64Array.from(opts.buckets);
    this.register(opts.registers);
  }

  protected child(labels: Record<string, string>): HotHistogramChild {
    return new HotHistogramChild(labels, this.bounds);
  }

  /** For a histogram without labels. */
  observe(value: number): void {
    this.unlabelled ??= this.labels();
    this.unlabelled.observe(value);
  }

  get(): Promise<ScrapedMetric> {
    const values: ScrapedMetric["values"] = [];
    const bucketName = `${this.name}_bucket`;
    for (const c of this.children()) {
      // As prom-client reports them: `le` first, then the child's labels, cumulative counts.
      let acc = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        acc += c.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : "+Inf";
        values.push({ labels: { le, ...c.labels }, value: acc, metricName: bucketName });
      }
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return scraped(this, values);
  }
}
