/**
 * A price book: the shipped catalog plus the operator's own entries, with a
 * version that names its exact content.
 *
 * Prices are looked up by the price key of the deployment that served a
 * request (its upstream model id unless the operator says otherwise), never
 * by the public alias nor by the dated model name a response reports
 * (DESIGN.md, "Usage, exactly once"). Operator entries win over the catalog
 * wherever their effective windows apply.
 */
import { createHash } from 'node:crypto';

import { parseDecimal, type Decimal } from '../money/decimal.js';
import {
  AS_INPUT,
  type Catalog,
  type PriceEntry,
  type PriceTier,
} from './catalog-schema.js';
import type { TokenClass } from '../metering/usage.js';

/** Per-1M-token rates for each class; `null` where the rate is unknown. */
export type ClassRates = Readonly<Record<TokenClass, Decimal | null>>;

/** The rates in force for one request, and where they came from. */
export interface AppliedPrice {
  /** Stable name of the entry and tier, e.g. `gpt-4o@2024-10-02`. */
  readonly rateId: string;
  readonly rates: ClassRates;
}

/** Operator price entries for one price key. */
export interface OperatorPrices {
  readonly key: string;
  readonly prices: readonly PriceEntry[];
}

interface Window {
  readonly from: number;
  readonly to: number;
  readonly origin: 'operator' | 'catalog';
  readonly entry: PriceEntry;
}

const DAY_MS = 86_400_000;

export class PriceBook {
  /** `pb_` and the first 16 hex digits of the content's SHA-256. */
  readonly version: string;
  readonly #windows: ReadonlyMap<string, readonly Window[]>;

  private constructor(windows: Map<string, Window[]>, version: string) {
    this.#windows = windows;
    this.version = version;
  }

  static create(
    catalog: Catalog,
    operatorPrices: readonly OperatorPrices[] = [],
  ): PriceBook {
    const windows = new Map<string, Window[]>();
    const add = (key: string, entry: PriceEntry, origin: Window['origin']) => {
      const list = windows.get(key) ?? [];
      list.push({
        from: Date.parse(`${entry.effectiveFrom}T00:00:00Z`),
        to: entry.effectiveTo
          ? Date.parse(`${entry.effectiveTo}T00:00:00Z`)
          : Number.POSITIVE_INFINITY,
        origin,
        entry,
      });
      windows.set(key, list);
    };
    for (const model of catalog.models) {
      for (const entry of model.prices) add(model.model, entry, 'catalog');
    }
    for (const { key, prices } of operatorPrices) {
      for (const entry of prices) add(key, entry, 'operator');
    }
    for (const [key, list] of windows) {
      closeOpenWindows(list);
      assertNoOverlap(key, list);
    }
    const digest = createHash('sha256')
      .update(JSON.stringify({ catalog, operatorPrices }))
      .digest('hex');
    return new PriceBook(windows, `pb_${digest.slice(0, 16)}`);
  }

  /** Whether the book has any price at all for `key`. */
  has(key: string): boolean {
    return this.#windows.has(key);
  }

  /**
   * The rates for a request served at `at` (epoch ms) with `totalInput`
   * input tokens of every class, or `undefined` when no price is known.
   */
  lookup(
    key: string,
    at: number,
    totalInput: number,
  ): AppliedPrice | undefined {
    const list = this.#windows.get(key);
    if (!list) return undefined;
    const window =
      list.find((w) => w.origin === 'operator' && covers(w, at)) ??
      list.find((w) => w.origin === 'catalog' && covers(w, at));
    if (!window) return undefined;

    const { entry } = window;
    const tier = pickTier(entry.tiers ?? [], totalInput);
    const prefix = window.origin === 'operator' ? 'operator:' : '';
    const rateId = `${prefix}${key}@${entry.effectiveFrom}${
      tier ? `>${tier.inputTokensAbove}` : ''
    }`;
    return { rateId, rates: resolveRates(tier ?? entry) };
  }

  /** Entries with a date window, for listing and auditing. */
  entries(key: string): readonly PriceEntry[] {
    return (this.#windows.get(key) ?? []).map((w) => w.entry);
  }
}

function covers(window: Window, at: number): boolean {
  return window.from <= at && at < window.to;
}

/** An entry without an end date ends where the next one of its origin starts. */
function closeOpenWindows(list: Window[]): void {
  list.sort((a, b) => a.from - b.from);
  for (const origin of ['operator', 'catalog'] as const) {
    const own = list.filter((w) => w.origin === origin);
    own.forEach((window, i) => {
      const next = own[i + 1];
      if (next && window.to === Number.POSITIVE_INFINITY) {
        Object.assign(window, { to: next.from });
      }
    });
  }
}

/**
 * Two entries starting the same day overlap even though closing the first
 * at the second's start has left it empty; and every entry, the first
 * included, must last at least a day.
 */
function assertNoOverlap(key: string, list: readonly Window[]): void {
  for (const origin of ['operator', 'catalog'] as const) {
    const own = list.filter((w) => w.origin === origin);
    own.forEach((current, i) => {
      const previous = own[i - 1];
      if (
        previous &&
        (current.from < previous.to || current.from === previous.from)
      ) {
        throw new Error(
          `${origin} prices for ${key} overlap: ` +
            `${previous.entry.effectiveFrom} and ${current.entry.effectiveFrom}`,
        );
      }
    });
    for (const window of own) {
      if (window.to - window.from < DAY_MS) {
        throw new Error(`${origin} price for ${key} ends before it starts`);
      }
    }
  }
}

function pickTier(
  tiers: readonly PriceTier[],
  totalInput: number,
): PriceTier | undefined {
  let chosen: PriceTier | undefined;
  for (const tier of tiers) {
    if (
      totalInput > tier.inputTokensAbove &&
      (!chosen || tier.inputTokensAbove > chosen.inputTokensAbove)
    ) {
      chosen = tier;
    }
  }
  return chosen;
}

function resolveRates(rates: PriceEntry | PriceTier): ClassRates {
  const input = parseDecimal(rates.input);
  const cache = (rate: string | undefined): Decimal | null => {
    if (rate === undefined) return null;
    return rate === AS_INPUT ? input : parseDecimal(rate);
  };
  return {
    input,
    output: parseDecimal(rates.output),
    cacheRead: cache(rates.cacheRead),
    cacheWrite: cache(rates.cacheWrite),
    cacheWrite1h: cache(rates.cacheWrite1h),
  };
}
