/**
 * Prices one request's normalised usage against the rates in force.
 *
 * The amount of each class is `tokens × rate / 1,000,000`, exact. A class
 * with tokens but no known rate, or any named unit without a price, makes
 * the whole cost unknown (`null`), never zero (DESIGN.md: "Unknown price
 * makes cost unknown").
 */
import {
  formatDecimal,
  perMillion,
  sumDecimals,
  type Decimal,
} from '../money/decimal.js';
import {
  TOKEN_CLASSES,
  tokensOfClass,
  type NormalizedUsage,
  type TokenClass,
} from '../metering/usage.js';
import type { AppliedPrice } from './price-book.js';

export interface ClassCharge {
  readonly tokenClass: TokenClass;
  readonly tokens: number;
  /** USD per 1M tokens, or `null` when unknown. */
  readonly rate: Decimal | null;
  readonly amount: Decimal | null;
}

export type UnknownReason =
  | { readonly kind: 'no-price' }
  | { readonly kind: 'class'; readonly tokenClass: TokenClass }
  | { readonly kind: 'unit'; readonly unit: string };

export interface Rating {
  /** The entry used, or `null` when the key has no price in force. */
  readonly rateId: string | null;
  readonly charges: readonly ClassCharge[];
  /** Exact total in USD, or `null` when any part is unknown. */
  readonly total: Decimal | null;
  readonly unknown: readonly UnknownReason[];
}

export function rateUsage(
  usage: NormalizedUsage,
  price: AppliedPrice | undefined,
): Rating {
  const unknown: UnknownReason[] = [];
  const charges = TOKEN_CLASSES.map((tokenClass): ClassCharge => {
    const tokens = tokensOfClass(usage, tokenClass);
    const rate = price?.rates[tokenClass] ?? null;
    if (tokens === 0) {
      return { tokenClass, tokens, rate, amount: rate && perMillion(0, rate) };
    }
    if (rate === null) {
      if (price) unknown.push({ kind: 'class', tokenClass });
      return { tokenClass, tokens, rate, amount: null };
    }
    return { tokenClass, tokens, rate, amount: perMillion(tokens, rate) };
  });
  if (!price) unknown.push({ kind: 'no-price' });
  for (const [unit, count] of Object.entries(usage.units)) {
    // TODO(#3): price named units (audio tokens, images, web search calls)
    // once the catalog states per-unit rates; until then they are unknown.
    if (count > 0) unknown.push({ kind: 'unit', unit });
  }

  const total =
    unknown.length === 0
      ? sumDecimals(charges.map((c) => c.amount).filter(isDecimal))
      : null;
  return { rateId: price?.rateId ?? null, charges, total, unknown };
}

/** Short machine-readable description of why a cost is unknown. */
export function describeUnknown(reasons: readonly UnknownReason[]): string[] {
  return reasons.map((reason) => {
    switch (reason.kind) {
      case 'no-price':
        return 'no_price';
      case 'class':
        return `no_rate:${reason.tokenClass}`;
      case 'unit':
        return `no_rate:unit:${reason.unit}`;
    }
  });
}

export function formatRate(rate: Decimal | null): string | null {
  return rate === null ? null : formatDecimal(rate);
}

function isDecimal(value: Decimal | null): value is Decimal {
  return value !== null;
}
