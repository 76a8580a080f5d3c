/**
 * The price book: which entry is in force at an instant, operator prices
 * over the catalog, tiers, and the book's version. Expected rates are read
 * off `src/pricing/catalog.json` (or the small catalogs written here) by
 * hand; expected amounts are worked out in the comments.
 */
import { describe, expect, it } from 'vitest';

import {
  TOKEN_CLASSES,
  totalInputTokens,
  type NormalizedUsage,
  type TokenClass,
} from '../../src/metering/usage.js';
import {
  formatDecimal,
  parseDecimal,
  type Decimal,
} from '../../src/money/decimal.js';
import type { Catalog, PriceEntry } from '../../src/pricing/catalog-schema.js';
import {
  PriceBook,
  type AppliedPrice,
  type OperatorPrices,
} from '../../src/pricing/price-book.js';
import { describeUnknown, rateUsage } from '../../src/pricing/rate-usage.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';

const at = (iso: string): number => Date.parse(iso);

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

/** The rates of an applied price as text, `null` where unknown. */
function rateTexts(price: AppliedPrice | undefined) {
  if (!price) return undefined;
  const texts: Partial<Record<TokenClass, string | null>> = {};
  for (const tokenClass of TOKEN_CLASSES) {
    const rate = price.rates[tokenClass];
    texts[tokenClass] = rate === null ? null : formatDecimal(rate);
  }
  return texts;
}

function amount(value: Decimal | null): string | null {
  return value === null ? null : formatDecimal(value);
}

function entry(fields: Partial<PriceEntry>): PriceEntry {
  return {
    effectiveFrom: '2025-01-01',
    input: '1',
    output: '2',
    source: 'a test',
    ...fields,
  };
}

function catalogOf(model: string, prices: PriceEntry[]): Catalog {
  return {
    currency: 'USD',
    unit: 'per 1M tokens',
    models: [{ model, provider: 'other', prices }],
  };
}

const catalog = shippedCatalog();
const book = PriceBook.create(catalog);

describe('effective dates (gpt-4o moved from $5/$15 to $2.50/$10)', () => {
  it('serves the old price to the last millisecond of 2024-10-01', () => {
    const price = book.lookup('gpt-4o', at('2024-10-01T23:59:59.999Z'), 1_000);
    expect(price?.rateId).toBe('gpt-4o@2024-05-13');
    expect(rateTexts(price)).toEqual({
      input: '5',
      output: '15',
      // gpt-4o-2024-05-13 states no cache-read rate: unknown, not zero.
      cacheRead: null,
      cacheWrite: '5', // as-input
      cacheWrite1h: null,
    });
  });

  it('serves the new price from 2024-10-02T00:00:00Z', () => {
    const price = book.lookup('gpt-4o', at('2024-10-02T00:00:00Z'), 1_000);
    expect(price?.rateId).toBe('gpt-4o@2024-10-02');
    expect(rateTexts(price)).toEqual({
      input: '2.5',
      output: '10',
      cacheRead: '1.25',
      cacheWrite: '2.5', // as-input
      cacheWrite1h: null,
    });
  });

  it('prices the same usage differently on either side of the change', () => {
    const used = usage({ inputTokens: 1_000_000, outputTokens: 100_000 });
    const before = book.lookup('gpt-4o', at('2024-10-01T23:59:59.999Z'), 1e6);
    const after = book.lookup('gpt-4o', at('2024-10-02T00:00:00Z'), 1e6);
    // 1,000,000 × $5/1M + 100,000 × $15/1M = 5 + 1.5
    expect(amount(rateUsage(used, before).total)).toBe('6.5');
    // 1,000,000 × $2.50/1M + 100,000 × $10/1M = 2.5 + 1
    expect(amount(rateUsage(used, after).total)).toBe('3.5');
  });

  it('has no price before the first entry takes effect', () => {
    expect(
      book.lookup('gpt-4o', at('2024-05-12T23:59:59.999Z'), 1),
    ).toBeUndefined();
    expect(book.lookup('gpt-4o', at('2024-05-13T00:00:00Z'), 1)?.rateId).toBe(
      'gpt-4o@2024-05-13',
    );
  });

  it('ends an open catalog entry where the next one starts', () => {
    const twoOpen = PriceBook.create(
      catalogOf('m', [
        entry({ effectiveFrom: '2025-06-01', input: '3' }),
        entry({ effectiveFrom: '2025-01-01', input: '4' }),
      ]),
    );
    const lookupInput = (iso: string) =>
      amount(twoOpen.lookup('m', at(iso), 1)?.rates.input ?? null);
    expect(lookupInput('2025-05-31T23:59:59.999Z')).toBe('4');
    expect(lookupInput('2025-06-01T00:00:00Z')).toBe('3');
    expect(lookupInput('2099-01-01T00:00:00Z')).toBe('3');
  });
});

describe('operator prices', () => {
  const contract: OperatorPrices = {
    key: 'gpt-4o',
    prices: [
      entry({
        effectiveFrom: '2025-01-01',
        effectiveTo: '2025-02-01',
        input: '2',
        output: '8',
        cacheRead: '1',
        source: 'enterprise contract',
      }),
    ],
  };
  const withContract = PriceBook.create(catalog, [contract]);

  it('win over the catalog inside their window', () => {
    for (const iso of ['2025-01-01T00:00:00Z', '2025-01-31T23:59:59.999Z']) {
      const price = withContract.lookup('gpt-4o', at(iso), 1);
      expect(price?.rateId).toBe('operator:gpt-4o@2025-01-01');
      expect(rateTexts(price)).toMatchObject({
        input: '2',
        output: '8',
        cacheRead: '1',
        cacheWrite: null,
      });
    }
  });

  it('fall back to the catalog outside their window', () => {
    for (const iso of ['2024-12-31T23:59:59.999Z', '2025-02-01T00:00:00Z']) {
      const price = withContract.lookup('gpt-4o', at(iso), 1);
      expect(price?.rateId).toBe('gpt-4o@2024-10-02');
      expect(amount(price?.rates.input ?? null)).toBe('2.5');
    }
  });

  it('leave the catalog alone for other keys', () => {
    const price = withContract.lookup('gpt-4o-mini', at('2025-01-15'), 1);
    expect(price?.rateId).toBe('gpt-4o-mini@2024-07-18');
  });

  it('price a self-hosted model at an explicit zero, which is known', () => {
    const selfHosted = PriceBook.create(catalog, [
      {
        key: 'llama-on-our-gpus',
        prices: [entry({ input: '0', output: '0', cacheRead: '0' })],
      },
    ]);
    const price = selfHosted.lookup('llama-on-our-gpus', at('2025-03-01'), 9);
    const rating = rateUsage(
      usage({ inputTokens: 5, cacheReadTokens: 4, outputTokens: 7 }),
      price,
    );
    expect(rating.unknown).toEqual([]);
    expect(amount(rating.total)).toBe('0');
    expect(selfHosted.has('llama-on-our-gpus')).toBe(true);
    expect(book.has('llama-on-our-gpus')).toBe(false);
  });

  it('are refused when two of a key overlap', () => {
    expect(() =>
      PriceBook.create(catalog, [
        {
          key: 'gpt-4o',
          prices: [
            entry({ effectiveFrom: '2025-01-01', effectiveTo: '2025-03-01' }),
            entry({ effectiveFrom: '2025-02-01' }),
          ],
        },
      ]),
    ).toThrow(/overlap/);
  });

  it('are refused when two of a key start on the same day', () => {
    expect(() =>
      PriceBook.create(catalog, [
        {
          key: 'gpt-4o',
          prices: [
            entry({ effectiveFrom: '2025-01-01', input: '2' }),
            entry({ effectiveFrom: '2025-01-01', input: '3' }),
          ],
        },
      ]),
    ).toThrow(/overlap/);
  });

  it('are refused when an entry ends before it starts', () => {
    const backwards = entry({
      effectiveFrom: '2025-03-01',
      effectiveTo: '2025-02-01',
    });
    expect(() =>
      PriceBook.create(catalog, [{ key: 'gpt-4o', prices: [backwards] }]),
    ).toThrow(/ends before it starts/);
    const empty = entry({
      effectiveFrom: '2025-03-01',
      effectiveTo: '2025-03-01',
    });
    expect(() =>
      PriceBook.create(catalog, [{ key: 'gpt-4o', prices: [empty] }]),
    ).toThrow(/ends before it starts/);
  });

  it('may sit back to back, and an open one closes at the next', () => {
    const book = PriceBook.create(catalog, [
      {
        key: 'house',
        prices: [
          entry({ effectiveFrom: '2025-02-01', input: '3' }),
          entry({
            effectiveFrom: '2025-01-01',
            effectiveTo: '2025-02-01',
            input: '1',
          }),
          entry({ effectiveFrom: '2025-03-01', input: '5' }),
        ],
      },
    ]);
    const inputAt = (iso: string) =>
      amount(book.lookup('house', at(iso), 1)?.rates.input ?? null);
    expect(inputAt('2025-01-31T23:59:59.999Z')).toBe('1');
    expect(inputAt('2025-02-01T00:00:00Z')).toBe('3');
    expect(inputAt('2025-02-28T23:59:59.999Z')).toBe('3');
    expect(inputAt('2025-03-01T00:00:00Z')).toBe('5');
    expect(book.lookup('house', at('2024-12-31T23:59:59Z'), 1)).toBeUndefined();
  });
});

describe('cache rates', () => {
  it('bill "as-input" cache writes at the input rate', () => {
    const price = book.lookup('gpt-4o', at('2025-06-01T00:00:00Z'), 3_000);
    const rating = rateUsage(
      usage({ inputTokens: 1_000, cacheWriteTokens: 2_000, outputTokens: 10 }),
      price,
    );
    // 1,000 × 2.5 = 2,500 → 0.0025; 2,000 × 2.5 = 5,000 → 0.005;
    // 10 × 10 = 100 → 0.0001. Total 0.0076.
    const byClass = Object.fromEntries(
      rating.charges.map((c) => [c.tokenClass, amount(c.amount)]),
    );
    expect(byClass['cacheWrite']).toBe('0.005');
    expect(amount(rating.total)).toBe('0.0076');
  });

  it('resolve "as-input" in a tier to the tier input rate', () => {
    const tiered = PriceBook.create(
      catalogOf('m', [
        entry({
          input: '1',
          cacheWrite: 'as-input',
          tiers: [
            {
              inputTokensAbove: 100,
              input: '4',
              output: '2',
              cacheWrite: 'as-input',
            },
          ],
        }),
      ]),
    );
    const base = tiered.lookup('m', at('2025-02-01'), 100);
    const high = tiered.lookup('m', at('2025-02-01'), 101);
    expect(amount(base?.rates.cacheWrite ?? null)).toBe('1');
    expect(amount(high?.rates.cacheWrite ?? null)).toBe('4');
  });

  it('leave cost unknown when cache reads have no rate', () => {
    // Before 2024-10-02 gpt-4o has no cache-read rate.
    const price = book.lookup('gpt-4o', at('2024-09-01T00:00:00Z'), 2_000);
    const rating = rateUsage(
      usage({ inputTokens: 1_000, cacheReadTokens: 1_000, outputTokens: 5 }),
      price,
    );
    expect(rating.total).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual(['no_rate:cacheRead']);
    const cacheRead = rating.charges.find((c) => c.tokenClass === 'cacheRead');
    expect(cacheRead).toMatchObject({
      tokens: 1_000,
      rate: null,
      amount: null,
    });
    expect(rating.rateId).toBe('gpt-4o@2024-05-13');
  });

  it('do the same for Nova, whose catalog entry states no cache rate', () => {
    const price = book.lookup(
      'amazon.nova-micro-v1:0',
      at('2025-06-01T00:00:00Z'),
      600,
    );
    const rating = rateUsage(
      usage({ inputTokens: 100, cacheReadTokens: 200, cacheWriteTokens: 300 }),
      price,
    );
    expect(rating.total).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual([
      'no_rate:cacheRead',
      'no_rate:cacheWrite',
    ]);
  });

  it('do not make cost unknown for zero tokens in an unknown class', () => {
    const price = book.lookup('gpt-4o', at('2024-09-01T00:00:00Z'), 1_000);
    const rating = rateUsage(
      usage({ inputTokens: 1_000, cacheReadTokens: 0, outputTokens: 20 }),
      price,
    );
    // 1,000 × 5 = 5,000 → 0.005; 20 × 15 = 300 → 0.0003. Total 0.0053.
    expect(rating.unknown).toEqual([]);
    expect(amount(rating.total)).toBe('0.0053');
  });
});

describe('an unknown model', () => {
  it('has no price, and its cost is null with reason no_price', () => {
    expect(book.has('no-such-model')).toBe(false);
    const price = book.lookup('no-such-model', at('2025-06-01'), 10);
    expect(price).toBeUndefined();
    const rating = rateUsage(
      usage({ inputTokens: 10, cacheReadTokens: 3, outputTokens: 2 }),
      price,
    );
    expect(rating.total).toBeNull();
    expect(rating.rateId).toBeNull();
    expect(describeUnknown(rating.unknown)).toEqual(['no_price']);
    expect(rating.charges.every((c) => c.amount === null)).toBe(true);
  });

  it('is not looked up by the dated name a response reports', () => {
    // The catalog prices gpt-4o and gpt-4o-2024-08-06 as separate keys;
    // there is no fuzzy match from one name to another.
    expect(
      book.lookup('gpt-4o-2024-08-06-preview', at('2025-06-01'), 1),
    ).toBeUndefined();
  });
});

describe("Anthropic's long-context tier", () => {
  const key = 'claude-sonnet-4-5-20250929';
  const served = at('2025-12-01T12:00:00Z');

  function rate(used: NormalizedUsage) {
    const price = book.lookup(key, served, totalInputTokens(used));
    return { price, rating: rateUsage(used, price) };
  }

  it('switches every rate when input of all classes exceeds 200,000', () => {
    // 150,000 + 40,000 cache reads + 10,001 cache writes = 200,001 tokens:
    // only the cache classes push the request over the threshold.
    const { price, rating } = rate(
      usage({
        inputTokens: 150_000,
        cacheReadTokens: 40_000,
        cacheWriteTokens: 10_001,
        outputTokens: 1_000,
      }),
    );
    expect(price?.rateId).toBe(`${key}@2025-09-29>200000`);
    // 150,000 × 6 = 900,000 → 0.9; 40,000 × 0.6 = 24,000 → 0.024;
    // 10,001 × 7.5 = 75,007.5 → 0.0750075; 1,000 × 22.5 = 22,500 → 0.0225.
    // Total 0.9 + 0.024 + 0.0750075 + 0.0225 = 1.0215075.
    expect(amount(rating.total)).toBe('1.0215075');
  });

  it('stays on the base rate at exactly 200,000', () => {
    const { price, rating } = rate(
      usage({
        inputTokens: 150_000,
        cacheReadTokens: 40_000,
        cacheWriteTokens: 10_000,
        outputTokens: 1_000,
      }),
    );
    expect(price?.rateId).toBe(`${key}@2025-09-29`);
    // 150,000 × 3 → 0.45; 40,000 × 0.3 → 0.012; 10,000 × 3.75 → 0.0375;
    // 1,000 × 15 → 0.015. Total 0.5145.
    expect(amount(rating.total)).toBe('0.5145');
  });

  it('counts one-hour cache writes toward the threshold too', () => {
    const { price, rating } = rate(
      usage({ inputTokens: 100_000, cacheWrite1hTokens: 100_001 }),
    );
    expect(price?.rateId).toBe(`${key}@2025-09-29>200000`);
    // 100,000 × 6 → 0.6; 100,001 × 12 = 1,200,012 → 1.200012. Total 1.800012.
    expect(amount(rating.total)).toBe('1.800012');
  });

  it('picks the highest tier the input exceeds', () => {
    const tiers = PriceBook.create(
      catalogOf('m', [
        entry({
          input: '1',
          tiers: [
            { inputTokensAbove: 1_000, input: '3', output: '2' },
            { inputTokensAbove: 100, input: '2', output: '2' },
          ],
        }),
      ]),
    );
    const inputAt = (total: number) =>
      amount(tiers.lookup('m', at('2025-02-01'), total)?.rates.input ?? null);
    expect(inputAt(100)).toBe('1');
    expect(inputAt(101)).toBe('2');
    expect(inputAt(1_000)).toBe('2');
    expect(inputAt(1_001)).toBe('3');
  });
});

describe('the price book version', () => {
  const operator = (input: string): OperatorPrices[] => [
    { key: 'house', prices: [entry({ input })] },
  ];

  it('names the content: same content, same version', () => {
    expect(book.version).toMatch(/^pb_[0-9a-f]{16}$/);
    expect(PriceBook.create(shippedCatalog()).version).toBe(book.version);
    expect(PriceBook.create(catalog, operator('2')).version).toBe(
      PriceBook.create(catalog, operator('2')).version,
    );
  });

  it('changes when an operator price changes', () => {
    const a = PriceBook.create(catalog, operator('2'));
    const b = PriceBook.create(catalog, operator('2.1'));
    expect(a.version).not.toBe(b.version);
    expect(a.version).not.toBe(book.version);
  });

  it('changes when an effective date changes', () => {
    const a = PriceBook.create(catalog, [
      { key: 'house', prices: [entry({ effectiveFrom: '2025-01-01' })] },
    ]);
    const b = PriceBook.create(catalog, [
      { key: 'house', prices: [entry({ effectiveFrom: '2025-01-02' })] },
    ]);
    expect(a.version).not.toBe(b.version);
  });
});

describe('entries', () => {
  it('lists the windows of a key, and nothing for an unknown one', () => {
    expect(book.entries('gpt-4o').map((e) => e.effectiveFrom)).toEqual([
      '2024-05-13',
      '2024-10-02',
    ]);
    expect(book.entries('no-such-model')).toEqual([]);
  });

  it('keeps decimals exact through the book', () => {
    const price = book.lookup('amazon.nova-micro-v1:0', at('2025-01-01'), 1);
    expect(price?.rates.input?.eq(parseDecimal('0.035'))).toBe(true);
  });
});
