/**
 * Rating one request's usage against the rates in force. The applied
 * prices are written out here by hand, so these tests do not lean on the
 * price book; every amount is worked out in a comment.
 */
import { describe, expect, it } from 'vitest';

import {
  TOKEN_CLASSES,
  type NormalizedUsage,
} from '../../src/metering/usage.js';
import {
  formatDecimal,
  parseDecimal,
  type Decimal,
} from '../../src/money/decimal.js';
import type { AppliedPrice } from '../../src/pricing/price-book.js';
import {
  describeUnknown,
  formatRate,
  rateUsage,
} from '../../src/pricing/rate-usage.js';

function usage(counts: Partial<NormalizedUsage>): NormalizedUsage {
  return {
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 0,
    reasoningTokens: 0,
    units: {},
    ...counts,
  };
}

function text(value: Decimal | null): string | null {
  return value === null ? null : formatDecimal(value);
}

/** Claude Sonnet 4.5's base rates, as the catalog states them. */
const SONNET: AppliedPrice = {
  rateId: 'claude-sonnet-4-5-20250929@2025-09-29',
  rates: {
    input: parseDecimal('3'),
    cacheRead: parseDecimal('0.3'),
    cacheWrite: parseDecimal('3.75'),
    cacheWrite1h: parseDecimal('6'),
    output: parseDecimal('15'),
  },
};

/** A price with no cache rates at all, as Nova's. */
const NO_CACHE: AppliedPrice = {
  rateId: 'nova@2024-12-03',
  rates: {
    input: parseDecimal('0.035'),
    cacheRead: null,
    cacheWrite: null,
    cacheWrite1h: null,
    output: parseDecimal('0.14'),
  },
};

describe('rateUsage', () => {
  it('charges every class at its own rate, exactly', () => {
    const rating = rateUsage(
      usage({
        inputTokens: 1_234,
        cacheReadTokens: 5_000,
        cacheWriteTokens: 777,
        cacheWrite1hTokens: 3,
        outputTokens: 321,
      }),
      SONNET,
    );
    // input 1,234 × 3 = 3,702 → 0.003702
    // cacheRead 5,000 × 0.3 = 1,500 → 0.0015
    // cacheWrite 777 × 3.75 = 2,913.75 → 0.00291375
    // cacheWrite1h 3 × 6 = 18 → 0.000018
    // output 321 × 15 = 4,815 → 0.004815
    expect(
      rating.charges.map((c) => [c.tokenClass, c.tokens, text(c.amount)]),
    ).toEqual([
      ['input', 1_234, '0.003702'],
      ['cacheRead', 5_000, '0.0015'],
      ['cacheWrite', 777, '0.00291375'],
      ['cacheWrite1h', 3, '0.000018'],
      ['output', 321, '0.004815'],
    ]);
    // 0.003702 + 0.0015 + 0.00291375 + 0.000018 + 0.004815 = 0.01294875
    expect(text(rating.total)).toBe('0.01294875');
    expect(rating.rateId).toBe(SONNET.rateId);
    expect(rating.unknown).toEqual([]);
  });

  it('lists the classes in the order usage names them', () => {
    const rating = rateUsage(usage({}), SONNET);
    expect(rating.charges.map((c) => c.tokenClass)).toEqual([...TOKEN_CLASSES]);
  });

  it('does not charge reasoning tokens on top of output', () => {
    const rating = rateUsage(
      usage({ outputTokens: 100, reasoningTokens: 40 }),
      SONNET,
    );
    // Reasoning is part of output: 100 × 15 = 1,500 → 0.0015, not 140 × 15.
    expect(text(rating.total)).toBe('0.0015');
  });

  it('prices the code trace on Nova Micro to the last digit', () => {
    const rating = rateUsage(
      usage({ inputTokens: 18_059_974, outputTokens: 245_896 }),
      NO_CACHE,
    );
    // 18,059,974 × 0.035 = 632,099.09 → 0.63209909
    // 245,896 × 0.14 = 34,425.44 → 0.03442544
    // total 0.66652453 (data README: $0.666524530)
    expect(rating.total?.eq(parseDecimal('0.66652453'))).toBe(true);
  });

  it('makes the total unknown, never zero, for tokens in a class without a rate', () => {
    const rating = rateUsage(
      usage({ inputTokens: 10, cacheReadTokens: 5, outputTokens: 1 }),
      NO_CACHE,
    );
    expect(rating.total).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual(['no_rate:cacheRead']);
    // The known classes still carry their amounts for the record.
    // 10 × 0.035 = 0.35 → 0.00000035; 1 × 0.14 → 0.00000014
    const amounts = Object.fromEntries(
      rating.charges.map((c) => [c.tokenClass, text(c.amount)]),
    );
    expect(amounts).toEqual({
      input: '0.00000035',
      cacheRead: null,
      cacheWrite: null,
      cacheWrite1h: null,
      output: '0.00000014',
    });
  });

  it('treats zero tokens in a class without a rate as nothing owed', () => {
    const rating = rateUsage(
      usage({ inputTokens: 1_000_000, outputTokens: 1_000_000 }),
      NO_CACHE,
    );
    // 0.035 + 0.14 = 0.175
    expect(text(rating.total)).toBe('0.175');
    expect(rating.unknown).toEqual([]);
  });

  it('gives a zero amount for zero tokens in a priced class', () => {
    const rating = rateUsage(usage({ inputTokens: 1 }), SONNET);
    const output = rating.charges.find((c) => c.tokenClass === 'output');
    expect(text(output?.amount ?? null)).toBe('0');
  });

  it('has no price and no rate id when the key is unpriced', () => {
    const rating = rateUsage(
      usage({ inputTokens: 1, outputTokens: 1 }),
      undefined,
    );
    expect(rating.total).toBeNull();
    expect(rating.rateId).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual(['no_price']);
    expect(rating.charges.map((c) => c.rate)).toEqual([
      null,
      null,
      null,
      null,
      null,
    ]);
  });

  it('makes the total unknown for a named unit it cannot price', () => {
    const rating = rateUsage(
      usage({ inputTokens: 100, units: { web_search: 2 } }),
      SONNET,
    );
    expect(rating.total).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual([
      'no_rate:unit:web_search',
    ]);
  });

  it('ignores a named unit with a zero count', () => {
    const rating = rateUsage(
      usage({ inputTokens: 100, units: { web_search: 0 } }),
      SONNET,
    );
    // 100 × 3 = 300 → 0.0003
    expect(text(rating.total)).toBe('0.0003');
  });

  it('reports every reason at once', () => {
    const rating = rateUsage(
      usage({
        cacheReadTokens: 1,
        cacheWrite1hTokens: 1,
        units: { images: 1 },
      }),
      NO_CACHE,
    );
    expect(describeUnknown(rating.unknown)).toEqual([
      'no_rate:cacheRead',
      'no_rate:cacheWrite1h',
      'no_rate:unit:images',
    ]);
    expect(
      describeUnknown(
        rateUsage(usage({ units: { images: 1 } }), undefined).unknown,
      ),
    ).toEqual(['no_price', 'no_rate:unit:images']);
  });
});

describe('formatRate', () => {
  it('writes a rate canonically, and null as null', () => {
    expect(formatRate(parseDecimal('2.50'))).toBe('2.5');
    expect(formatRate(null)).toBeNull();
  });
});
