/**
 * Soft thresholds: when a settlement carries a counter to a percentage of
 * its limit's maximum that the limit lists, a `limit.threshold` webhook
 * is queued in the store's outbox, which the delivery worker sends
 * (src/webhooks/webhook-worker.ts).
 *
 * Each event's id is `<limit>|<scope>|<window>|<percent>`, and the outbox
 * ignores an id it has seen: a threshold fires once per counter and
 * window, across restarts and across replicas sharing the database.
 *
 * A counter's used amount only grows within its window, so every
 * threshold at or below it has been crossed: checking what is reached,
 * rather than what one settlement just crossed, also catches a crossing
 * that a crash, a lost counter store or a concurrent settlement hid.
 *
 * A rolling window has no thresholds (limits.ts refuses them): its span
 * moves with every request and its count falls as buckets leave, so
 * there is no window for a threshold to fire once in, and nothing that
 * only grows. Admission shows this watcher no rolling counter.
 */
import type { Store } from '../storage/store.js';
import {
  formatNano,
  type CounterObserver,
  type CounterReading,
} from './admission.js';
import { thresholdsOf, type LimitConfig } from './limits.js';

/** The body of a `limit.threshold` webhook. */
export interface ThresholdEvent {
  readonly id: string;
  readonly type: 'limit.threshold';
  readonly limit: string;
  readonly tenant: string;
  /** The counter's scope: `t=<tenant>`, then `k=`, `m=`, `u=` as named. */
  readonly scope: string;
  readonly window: { readonly start: string; readonly end: string };
  readonly percent: number;
  readonly measure: 'requests' | 'tokens' | 'budget';
  /** What the counter has used: a count, or USD for a budget. */
  readonly used: string;
  readonly max: string;
  /** When the crossing was seen. */
  readonly at: string;
}

/** How often counters whose window has ended are forgotten. */
const SWEEP_EVERY_MS = 60_000;

export class ThresholdWatcher implements CounterObserver {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #onQueued: () => void;
  /** Per counter, how many of its thresholds are known to be queued. */
  readonly #queued = new Map<string, { count: number; end: number }>();
  /** Each limit's thresholds, worked out once: asked on every settle. */
  readonly #percents = new Map<LimitConfig, readonly number[]>();
  #sweepAt = 0;

  /** `onQueued` runs after new events are queued: wake the worker. */
  constructor(
    store: Store,
    options: { readonly now?: () => number; readonly onQueued?: () => void },
  ) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#onQueued = options.onQueued ?? (() => undefined);
  }

  watches(limit: LimitConfig): boolean {
    return this.#percentsOf(limit).length > 0;
  }

  async observe(readings: readonly CounterReading[]): Promise<void> {
    const now = this.#now();
    const events: ThresholdEvent[] = [];
    const counts: { counter: string; count: number; end: number }[] = [];
    for (const reading of readings) {
      const { limit, scope, window, state, max } = reading;
      const percents = this.#percentsOf(limit);
      const counter = `${limit.id}|${scope}|${window.id}`;
      const known = this.#queued.get(counter)?.count ?? 0;
      const reached = percents.filter(
        (percent) => state.used * 100n >= BigInt(percent) * max,
      ).length;
      if (reached <= known) continue;
      for (const percent of percents.slice(known, reached)) {
        events.push(thresholdEvent(reading, counter, percent, now));
      }
      counts.push({ counter, count: reached, end: window.end });
    }
    if (events.length === 0) return;

    // If one fails, none counts as queued: the next settlement tries them
    // all again, and the outbox ignores those it already has.
    const added = await Promise.all(
      events.map((event) =>
        this.#store.enqueueWebhook({
          id: event.id,
          tenantId: event.tenant,
          type: event.type,
          body: JSON.stringify(event),
          createdAt: now,
        }),
      ),
    );
    for (const { counter, ...known } of counts) {
      this.#queued.set(counter, known);
    }
    this.#sweep(now);
    if (added.includes(true)) this.#onQueued();
  }

  #percentsOf(limit: LimitConfig): readonly number[] {
    let percents = this.#percents.get(limit);
    if (!percents) {
      percents = thresholdsOf(limit);
      this.#percents.set(limit, percents);
    }
    return percents;
  }

  #sweep(now: number): void {
    if (now < this.#sweepAt) return;
    this.#sweepAt = now + SWEEP_EVERY_MS;
    for (const [counter, { end }] of this.#queued) {
      if (end <= now) this.#queued.delete(counter);
    }
  }
}

function thresholdEvent(
  reading: CounterReading,
  counter: string,
  percent: number,
  now: number,
): ThresholdEvent {
  const { limit, measure, state, max, window } = reading;
  if (measure === 'concurrent') {
    throw new Error(`the concurrency limit '${limit.id}' has no thresholds`);
  }
  const amount = (n: bigint) =>
    measure === 'budget' ? formatNano(n) : String(n);
  return {
    id: `${counter}|${percent}`,
    type: 'limit.threshold',
    limit: limit.id,
    tenant: reading.tenantId,
    scope: reading.scope,
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
    },
    percent,
    measure,
    used: amount(state.used),
    max: amount(max),
    at: new Date(now).toISOString(),
  };
}
