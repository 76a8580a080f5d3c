/**
 * Invoices under a tenant's plan: the usage lines stay at list, and the
 * plan's lines take the list charges back out, show the allowance used,
 * and bill the overage at the plan's rate. Requests are opened and
 * settled through the `Meter` into a real `SqliteStore`, at rates this
 * file states (USD per 1M tokens, cache reads at the input rate):
 *
 *   alpha: input 2.5, output 10    beta: input 0.5, output 2
 *   gamma: input 1, output 4       mystery: no price at all
 *
 * Every expected amount is worked out by hand in the comment beside it,
 * or in BigInt picodollars (10^-12 USD) that share no code with the
 * decimal module.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  buildInvoice,
  invoiceToJson,
  type Invoice,
} from '../../src/billing/invoice.js';
import type { PlanLine } from '../../src/billing/plan-lines.js';
import { invoiceText } from '../../src/cli/invoice-command.js';
import type { PlanConfig } from '../../src/config/config-schema.js';
import { Meter } from '../../src/metering/meter.js';
import { EMPTY_USAGE, type NormalizedUsage } from '../../src/metering/usage.js';
import { formatDecimal, sumDecimals } from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';
import { PriceBook } from '../../src/pricing/price-book.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type {
  OpenRequestRecord,
  TenantRecord,
} from '../../src/storage/store.js';
import { testPrices } from '../helpers/test-prices.js';

/** The rates above, in micro-USD per 1M tokens (= picodollars a token). */
const PICO_RATES = {
  alpha: { input: 2_500_000n, output: 10_000_000n },
  beta: { input: 500_000n, output: 2_000_000n },
  gamma: { input: 1_000_000n, output: 4_000_000n },
} as const;
type PricedModel = keyof typeof PICO_RATES;

const book = PriceBook.create(shippedCatalog(), [
  { key: 'alpha', prices: testPrices('2.5', '10') },
  { key: 'beta', prices: testPrices('0.5', '2') },
  { key: 'gamma', prices: testPrices('1', '4') },
]);

let store: SqliteStore;
let meter: Meter;

beforeEach(() => {
  store = new SqliteStore({ path: ':memory:' });
  meter = new Meter(store, book, createLogger('silent'));
});

afterEach(async () => {
  await store.close();
});

async function tenant(name: string, timezone = 'UTC'): Promise<TenantRecord> {
  const record: TenantRecord = {
    id: `ten_${name}`,
    name,
    timezone,
    createdAt: Date.parse('2020-01-01T00:00:00Z'),
  };
  await store.createTenant(record);
  return record;
}

interface Served {
  readonly model: PricedModel | 'mystery';
  readonly at?: string;
  readonly usage: Partial<NormalizedUsage>;
}

let sequence = 0;

/** Admits and settles each request through the meter, one at a time. */
async function serve(owner: TenantRecord, requests: readonly Served[]) {
  for (const served of requests) {
    const record: OpenRequestRecord = {
      id: `req_${++sequence}`,
      tenantId: owner.id,
      keyId: 'key_test',
      endUser: null,
      model: served.model,
      deploymentId: `dep/${served.model}`,
      provider: 'openai',
      upstreamModel: served.model,
      priceKey: served.model,
      stream: false,
      servedAt: Date.parse(served.at ?? '2026-03-10T12:00:00Z'),
      reservedInputTokens: 0,
      reservedOutputTokens: 0,
      reservedCost: null,
      instanceId: 'test',
    };
    await meter.open(record);
    await meter.settle(record, {
      attempt: 1,
      usage: {
        kind: 'reported',
        usage: { ...EMPTY_USAGE, ...served.usage },
        raw: {},
      },
      statusCode: 200,
      errorCode: null,
      upstreamRequestId: null,
    });
  }
}

const moneyPlan = (
  usd: string,
  overage: 'block' | 'bill' | 'notify',
  overageMultiplier?: string,
): PlanConfig => ({
  included: { usd },
  overage,
  ...(overageMultiplier !== undefined && { overageMultiplier }),
});

const tokenPlan = (
  tokens: number,
  overage: 'block' | 'bill' | 'notify',
  overageUsdPer1M?: string,
): PlanConfig => ({
  included: { tokens },
  overage,
  ...(overageUsdPer1M !== undefined && { overageUsdPer1M }),
});

/** Plan lines as rows of text: kind, quantity, rate, exact, rounded. */
function planRows(invoice: Invoice) {
  return invoice.planLines.map((line: PlanLine) => {
    const amounts = [
      formatDecimal(line.amount),
      formatDecimal(line.amountRounded),
    ];
    if (line.kind === 'list_credit') return [line.kind, ...amounts];
    return line.measure === 'usd'
      ? [
          line.kind,
          formatDecimal(line.usd),
          formatDecimal(line.multiplier),
          ...amounts,
        ]
      : [line.kind, line.tokens, formatDecimal(line.unitPrice), ...amounts];
  });
}

/** The invoice's total and the sum of its rounded lines, as text. */
function totals(invoice: Invoice) {
  const rounded = [
    ...invoice.lines.flatMap((l) => l.amountRounded ?? []),
    ...invoice.planLines.map((l) => l.amountRounded),
  ];
  return {
    total: formatDecimal(invoice.total),
    sumOfRoundedLines: formatDecimal(sumDecimals(rounded)),
    exact: formatDecimal(invoice.exactTotal),
  };
}

describe('a money allowance', () => {
  it('covers usage within it: the plan bills nothing', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      // 1,000,000 × 2.5 → 2.5; 200,000 × 10 → 2: list 4.5 of 50
      {
        model: 'alpha',
        usage: { inputTokens: 1_000_000, outputTokens: 200_000 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: moneyPlan('50', 'bill', '1.25'),
    });
    expect(invoice.lines.map((l) => formatDecimal(l.amount!))).toEqual([
      '2.5',
      '2',
    ]);
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-4.5', '-4.5'],
      ['included', '4.5', '0', '0', '0'],
      ['overage', '0', '1.25', '0', '0'],
    ]);
    expect(totals(invoice)).toEqual({
      total: '0',
      sumOfRoundedLines: '0',
      exact: '0',
    });
  });

  it('bills the overage at the stated multiple of list, rounded once', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      // input 2,000,123 × 2.5 = 5,000,307.5 → 5.0003075 → 5.00
      // output 150,007 × 10 = 1,500,070 → 1.50007 → 1.50
      { model: 'alpha', usage: { inputTokens: 1_000_000, outputTokens: 7 } },
      {
        model: 'alpha',
        usage: { inputTokens: 1_000_123, outputTokens: 150_000 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: moneyPlan('5', 'bill', '1.25'),
    });
    // X = 6.5003775, of which 5 included: 1.5003775 past it, × 1.25 =
    // 1.875471875 → 1.88.
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-6.5003775', '-6.5'],
      ['included', '5', '0', '0', '0'],
      ['overage', '1.5003775', '1.25', '1.875471875', '1.88'],
    ]);
    // 5.00 + 1.50 − 6.50 + 0 + 1.88
    expect(totals(invoice)).toEqual({
      total: '1.88',
      sumOfRoundedLines: '1.88',
      exact: '1.875471875',
    });
  });

  it('bills nothing when usage is exactly the allowance', async () => {
    const acme = await tenant('acme');
    // 2,000,000 × 2.5 → 5: all of it included.
    await serve(acme, [{ model: 'alpha', usage: { inputTokens: 2_000_000 } }]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: moneyPlan('5', 'bill', '2'),
    });
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-5', '-5'],
      ['included', '5', '0', '0', '0'],
      ['overage', '0', '2', '0', '0'],
    ]);
    expect(totals(invoice).total).toBe('0');
  });

  it('lets no rounding of the usage lines reach the total', async () => {
    // Six lines of exactly 0.005 each: 2,000 × 2.5, 500 × 10, 10,000 ×
    // 0.5, 2,500 × 2, 5,000 × 1, 1,250 × 4. Each rounds half-up to 0.01,
    // so the lines list 0.06 for 0.03 of exact charges.
    const sixHalfCents: Served[] = [
      { model: 'alpha', usage: { inputTokens: 2_000, outputTokens: 500 } },
      { model: 'beta', usage: { inputTokens: 10_000, outputTokens: 2_500 } },
      { model: 'gamma', usage: { inputTokens: 5_000, outputTokens: 1_250 } },
    ];
    const within = await tenant('within');
    await serve(within, sixHalfCents);
    const covered = await buildInvoice(store, within, '2026-03', {
      plan: moneyPlan('1', 'bill', '1'),
    });
    expect(covered.lines.map((l) => formatDecimal(l.amountRounded!))).toEqual([
      '0.01',
      '0.01',
      '0.01',
      '0.01',
      '0.01',
      '0.01',
    ]);
    expect(planRows(covered)[0]).toEqual(['list_credit', '-0.03', '-0.06']);
    // Under the allowance: zero, not the 0.03 the lines' rounding made.
    expect(totals(covered)).toEqual({
      total: '0',
      sumOfRoundedLines: '0',
      exact: '0',
    });

    const past = await tenant('past');
    await serve(past, sixHalfCents);
    const billed = await buildInvoice(store, past, '2026-03', {
      plan: moneyPlan('0.02', 'bill', '1'),
    });
    // (0.03 − 0.02) × 1 = 0.01, where list would have billed 0.06.
    expect(planRows(billed).slice(1)).toEqual([
      ['included', '0.02', '0', '0', '0'],
      ['overage', '0.01', '1', '0.01', '0.01'],
    ]);
    expect(totals(billed).total).toBe('0.01');
  });

  it('shows the overage of a notifying plan without billing it', async () => {
    const acme = await tenant('acme');
    // 4,000,000 × 2.5 → 10, of 5 included.
    await serve(acme, [{ model: 'alpha', usage: { inputTokens: 4_000_000 } }]);
    for (const overage of ['notify', 'block'] as const) {
      const invoice = await buildInvoice(store, acme, '2026-03', {
        plan: moneyPlan('5', overage),
      });
      expect(planRows(invoice)).toEqual([
        ['list_credit', '-10', '-10'],
        ['included', '5', '0', '0', '0'],
        ['overage', '5', '0', '0', '0'],
      ]);
      expect(totals(invoice).total).toBe('0');
    }
  });

  it('keeps usage with no price out of the allowance, and says so', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      { model: 'alpha', usage: { inputTokens: 4_000_000 } },
      { model: 'mystery', usage: { inputTokens: 1_000 } },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: moneyPlan('8', 'bill', '1.5'),
    });
    // (10 − 8) × 1.5 = 3; the unpriced line has no amount to count.
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-10', '-10'],
      ['included', '8', '0', '0', '0'],
      ['overage', '2', '1.5', '3', '3'],
    ]);
    expect(invoice.complete).toBe(false);
  });
});

describe('a token allowance', () => {
  it('bills tokens past it at the stated rate, and no list charges', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      {
        model: 'alpha',
        usage: {
          inputTokens: 700_000,
          cacheReadTokens: 50_000,
          outputTokens: 100_000,
        },
      },
      // Tokens count whatever their list price, known or not.
      {
        model: 'mystery',
        usage: { inputTokens: 300_000, outputTokens: 12_345 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: tokenPlan(1_000_000, 'bill', '2.50'),
    });
    // List: 700,000 × 2.5 → 1.75, 50,000 × 2.5 → 0.125 (0.13), 100,000 ×
    // 10 → 1; exact 2.875, lines 2.88. Tokens: 850,000 + 312,345 =
    // 1,162,345, of which 162,345 past the 1M: × 2.5 / 10^6 = 0.4058625.
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-2.875', '-2.88'],
      ['included', 1_000_000, '0', '0', '0'],
      ['overage', 162_345, '2.5', '0.4058625', '0.41'],
    ]);
    expect(totals(invoice)).toEqual({
      total: '0.41',
      sumOfRoundedLines: '0.41',
      exact: '0.4058625',
    });
  });

  it('bills nothing within it, and shows what it covered', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      { model: 'beta', usage: { inputTokens: 40_000, outputTokens: 2_000 } },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: tokenPlan(5_000_000, 'bill', '2.50'),
    });
    // 40,000 × 0.5 → 0.02; 2,000 × 2 → 0.004 (0.00)
    expect(planRows(invoice)).toEqual([
      ['list_credit', '-0.024', '-0.02'],
      ['included', 42_000, '0', '0', '0'],
      ['overage', 0, '2.5', '0', '0'],
    ]);
    expect(totals(invoice).total).toBe('0');
  });

  it('shows the overage of a blocking plan at no charge', async () => {
    const acme = await tenant('acme');
    await serve(acme, [{ model: 'beta', usage: { inputTokens: 1_500 } }]);
    const invoice = await buildInvoice(store, acme, '2026-03', {
      plan: tokenPlan(1_000, 'block'),
    });
    expect(planRows(invoice).slice(1)).toEqual([
      ['included', 1_000, '0', '0', '0'],
      ['overage', 500, '0', '0', '0'],
    ]);
    expect(totals(invoice).total).toBe('0');
  });
});

describe('a tenant without an allowance', () => {
  it('gets the same invoice as before plans, models or not', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      { model: 'alpha', usage: { inputTokens: 2_000, outputTokens: 500 } },
    ]);
    const bare = invoiceToJson(await buildInvoice(store, acme, '2026-03'));
    const modelsOnly = invoiceToJson(
      await buildInvoice(store, acme, '2026-03', {
        plan: { models: ['alpha'] },
      }),
    );
    expect(modelsOnly).toEqual(bare);
    expect(Object.keys(bare)).not.toContain('plan');
    expect(Object.keys(bare)).not.toContain('plan_lines');
    expect(bare.total).toBe('0.02');
  });
});

describe('invoiceToJson', () => {
  it('states the plan and its lines, decimals as strings', async () => {
    const acme = await tenant('acme');
    await serve(acme, [
      { model: 'alpha', usage: { inputTokens: 1_000_123, outputTokens: 7 } },
    ]);
    const money = invoiceToJson(
      await buildInvoice(store, acme, '2026-03', {
        plan: moneyPlan('2', 'bill', '1.25'),
      }),
    );
    // 1,000,123 × 2.5 → 2.5003075 (2.50); 7 × 10 → 0.00007 (0.00).
    // X = 2.5003775, 0.5003775 past 2, × 1.25 = 0.625471875 → 0.63.
    expect(money).toMatchObject({
      plan: {
        included: { usd: '2' },
        overage: 'bill',
        overage_multiplier: '1.25',
      },
      plan_lines: [
        { kind: 'list_credit', amount: '-2.5003775', amount_rounded: '-2.50' },
        {
          kind: 'included',
          usd: '2',
          multiplier: '0',
          amount: '0',
          amount_rounded: '0.00',
        },
        {
          kind: 'overage',
          usd: '0.5003775',
          multiplier: '1.25',
          amount: '0.625471875',
          amount_rounded: '0.63',
        },
      ],
      total: '0.63',
      exact_total: '0.625471875',
    });

    const tokens = invoiceToJson(
      await buildInvoice(store, acme, '2026-03', {
        plan: tokenPlan(1_000_000, 'bill', '3'),
      }),
    );
    // 1,000,130 tokens, 130 past the 1M: × 3 / 10^6 = 0.00039 → 0.00.
    expect(tokens).toMatchObject({
      plan: { included: { tokens: 1_000_000 }, overage_usd_per_1m: '3' },
      plan_lines: [
        { kind: 'list_credit', amount_rounded: '-2.50' },
        { kind: 'included', tokens: 1_000_000, unit_price_per_1m: '0' },
        {
          kind: 'overage',
          tokens: 130,
          unit_price_per_1m: '3',
          amount: '0.00039',
          amount_rounded: '0.00',
        },
      ],
      total: '0.00',
    });
  });
});

describe('invoiceText', () => {
  it('applies the plan of the config it is given, and prints it', async () => {
    const acme = await tenant('acme');
    await serve(acme, [{ model: 'alpha', usage: { inputTokens: 4_000_000 } }]);
    const config = {
      entitlements: { acme: moneyPlan('5', 'bill', '1.25') },
    };
    const text = await invoiceText(store, 'acme', '2026-03', false, config);
    expect(text).toContain(
      'Plan: USD 5 of list charges included per month; overage billed at ' +
        '1.25 × list.',
    );
    // (10 − 5) × 1.25 = 6.25
    expect(text).toMatch(
      /overage \(USD of list charges\) +5 +× 1\.25 +6\.25 +6\.25/,
    );
    expect(text).toContain('Total: USD 6.25');

    const json = JSON.parse(
      await invoiceText(store, 'acme', '2026-03', true, config),
    ) as { total: string };
    expect(json.total).toBe('6.25');
    // Without the config, list charges: 4,000,000 × 2.5 = 10.
    const list = await invoiceText(store, 'acme', '2026-03', false);
    expect(list).not.toContain('Plan:');
    expect(list).toContain('Total: USD 10.00');
  });
});

/** Picodollars as canonical decimal text. */
function picoText(pico: bigint): string {
  const sign = pico < 0n ? '-' : '';
  const abs = pico < 0n ? -pico : pico;
  const whole = abs / 10n ** 12n;
  const fraction = (abs % 10n ** 12n)
    .toString()
    .padStart(12, '0')
    .replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Non-negative picodollars rounded half-up to whole cents, as cents. */
function halfUpCents(pico: bigint): bigint {
  const cent = 10n ** 10n;
  return (pico + cent / 2n) / cent;
}

describe('reconciliation', () => {
  it('checks the picodollar helpers', () => {
    expect(picoText(1_875_471_875_000n)).toBe('1.875471875');
    expect(picoText(-5_000_000_000n)).toBe('-0.005');
    expect(halfUpCents(5_000_000_000n)).toBe(1n);
    expect(halfUpCents(4_999_999_999n)).toBe(0n);
  });

  it('totals the rounded lines to the cent, whatever the order', async () => {
    // A deterministic spread of 240 requests over three models.
    const models: PricedModel[] = ['alpha', 'beta', 'gamma'];
    const served: Served[] = Array.from({ length: 240 }, (_, i) => ({
      model: models[i % 3]!,
      at: new Date(
        Date.parse('2026-03-01T00:00:00Z') + i * 9_973_000,
      ).toISOString(),
      usage: {
        inputTokens: (i * 7_919) % 60_001,
        outputTokens: (i * 104_729) % 7_001,
      },
    }));
    // The plan: 0.75 USD included, overage at 1.375 × list.
    const plan = moneyPlan('0.75', 'bill', '1.375');

    // Expected, in picodollars: each line's exact sum and its rounding,
    // then the plan's lines from the month's sums.
    const perLine = new Map<string, bigint>();
    for (const { model, usage } of served) {
      const rates = PICO_RATES[model as PricedModel];
      const add = (key: string, amount: bigint) =>
        perLine.set(key, (perLine.get(key) ?? 0n) + amount);
      add(`${model}/input`, BigInt(usage.inputTokens ?? 0) * rates.input);
      add(`${model}/output`, BigInt(usage.outputTokens ?? 0) * rates.output);
    }
    const exact = [...perLine.values()].reduce((a, b) => a + b, 0n);
    const listCents = [...perLine.values()]
      .map(halfUpCents)
      .reduce((a, b) => a + b, 0n);
    const allowance = 750_000_000_000n;
    const past = exact > allowance ? exact - allowance : 0n;
    // × 1.375 = × 1,375 / 1,000: exact in picodollars only if it divides.
    const overageMilli = past * 1_375n;
    const overageCents = (overageMilli + 5n * 10n ** 12n) / 10n ** 13n;
    expect(exact).toBeGreaterThan(allowance);

    const forward = await tenant('forward');
    await serve(forward, served);
    const backward = await tenant('backward', 'UTC');
    await serve(backward, [...served].reverse());

    for (const owner of [forward, backward]) {
      const invoice = await buildInvoice(store, owner, '2026-03', { plan });
      expect(invoice.complete).toBe(true);
      expect(
        formatDecimal(sumDecimals(invoice.lines.map((l) => l.amount!))),
      ).toBe(picoText(exact));
      const [credit, included, overage] = invoice.planLines;
      expect(formatDecimal(credit!.amount)).toBe(picoText(-exact));
      expect(formatDecimal(credit!.amountRounded)).toBe(
        picoText(-listCents * 10n ** 10n),
      );
      expect(formatDecimal(included!.amountRounded)).toBe('0');
      expect(formatDecimal(overage!.amountRounded)).toBe(
        picoText(overageCents * 10n ** 10n),
      );
      expect(totals(invoice)).toEqual({
        total: picoText(overageCents * 10n ** 10n),
        sumOfRoundedLines: picoText(overageCents * 10n ** 10n),
        exact: formatDecimal(overage!.amount),
      });
    }
    const json = async (owner: TenantRecord) => {
      const { tenant: _, ...rest } = invoiceToJson(
        await buildInvoice(store, owner, '2026-03', { plan }),
      );
      return rest;
    };
    expect(await json(backward)).toEqual(await json(forward));
  });
});
