/**
 * Invoices built from a real ledger: requests opened and settled through
 * the `Meter` into a `SqliteStore`, priced with the shipped catalog. Every
 * expected amount is worked out by hand in the comment beside it (rates
 * read off `src/pricing/catalog.json`), or, for the trace, with BigInt
 * arithmetic that does not touch the decimal module.
 */
import { readFileSync } from 'node:fs';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  INVOICE_ROUNDING,
  buildInvoice,
  invoiceToJson,
  type Invoice,
} from '../../src/billing/invoice.js';
import { Meter } from '../../src/metering/meter.js';
import { EMPTY_USAGE, type NormalizedUsage } from '../../src/metering/usage.js';
import {
  formatDecimal,
  parseDecimal,
  roundDecimal,
  sumDecimals,
  type Decimal,
} from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';
import { PriceBook } from '../../src/pricing/price-book.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type {
  OpenRequestRecord,
  TenantRecord,
} from '../../src/storage/store.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';

const book = PriceBook.create(shippedCatalog());

let store: SqliteStore;
let meter: Meter;

beforeEach(() => {
  store = new SqliteStore({ path: ':memory:' });
  meter = new Meter(store, book, createLogger('silent'));
});

afterEach(async () => {
  await store.close();
});

async function tenant(name: string, timezone: string): Promise<TenantRecord> {
  const record: TenantRecord = {
    id: `ten_${name}`,
    name,
    timezone,
    createdAt: Date.parse('2020-01-01T00:00:00Z'),
  };
  await store.createTenant(record);
  return record;
}

let sequence = 0;

interface Served {
  readonly model: string;
  readonly priceKey?: string;
  readonly at: string;
  readonly usage: Partial<NormalizedUsage>;
}

function openRecord(owner: TenantRecord, served: Served): OpenRequestRecord {
  const priceKey = served.priceKey ?? served.model;
  return {
    id: `req_${++sequence}`,
    tenantId: owner.id,
    keyId: 'key_test',
    endUser: null,
    model: served.model,
    deploymentId: `dep/${priceKey}`,
    provider: 'openai',
    upstreamModel: priceKey,
    priceKey,
    stream: false,
    servedAt: Date.parse(served.at),
    reservedInputTokens: 0,
    reservedOutputTokens: 0,
    reservedCost: null,
    instanceId: 'test',
  };
}

/** Admits and settles requests through the meter; returns their ids. */
async function serve(
  owner: TenantRecord,
  requests: readonly Served[],
): Promise<string[]> {
  const records = requests.map((served) => openRecord(owner, served));
  await Promise.all(records.map((record) => meter.open(record)));
  await Promise.all(
    records.map((record, i) =>
      meter.settle(record, {
        attempt: 1,
        usage: {
          kind: 'reported',
          usage: { ...EMPTY_USAGE, ...requests[i]?.usage },
          raw: {},
        },
        statusCode: 200,
        errorCode: null,
        upstreamRequestId: null,
      }),
    ),
  );
  return records.map((record) => record.id);
}

const money = (value: Decimal | null) =>
  value === null ? null : formatDecimal(value);

/** Lines as plain rows of text, for whole-table comparisons. */
function rows(invoice: Invoice) {
  return invoice.lines.map((line) => [
    line.model,
    line.tokenClass,
    line.tokens,
    money(line.unitPrice),
    money(line.amount),
    money(line.amountRounded),
  ]);
}

describe('buildInvoice', () => {
  it('has a line per model, class and price, rounded half-up per line', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'gpt-4o',
        at: '2026-03-02T10:00:00Z',
        usage: {
          inputTokens: 20_000,
          cacheReadTokens: 2_000,
          outputTokens: 567,
        },
      },
      {
        model: 'gpt-4o',
        at: '2026-03-20T10:00:00Z',
        usage: { inputTokens: 30_000, outputTokens: 1_000 },
      },
      {
        model: 'claude-sonnet-4-5',
        priceKey: 'claude-sonnet-4-5-20250929',
        at: '2026-03-05T10:00:00Z',
        usage: {
          inputTokens: 100_000,
          cacheWriteTokens: 20_000,
          outputTokens: 5_000,
        },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03');

    expect(rows(invoice)).toEqual([
      // 100,000 × 3 = 300,000 → 0.3
      ['claude-sonnet-4-5', 'input', 100_000, '3', '0.3', '0.3'],
      // 20,000 × 3.75 = 75,000 → 0.075, a tie: half-up gives 0.08
      ['claude-sonnet-4-5', 'cacheWrite', 20_000, '3.75', '0.075', '0.08'],
      // 5,000 × 15 = 75,000 → 0.075 → 0.08
      ['claude-sonnet-4-5', 'output', 5_000, '15', '0.075', '0.08'],
      // 50,000 × 2.5 = 125,000 → 0.125: half-up 0.13 (half-even: 0.12)
      ['gpt-4o', 'input', 50_000, '2.5', '0.125', '0.13'],
      // 2,000 × 1.25 = 2,500 → 0.0025 → 0.00
      ['gpt-4o', 'cacheRead', 2_000, '1.25', '0.0025', '0'],
      // 1,567 × 10 = 15,670 → 0.01567 → 0.02
      ['gpt-4o', 'output', 1_567, '10', '0.01567', '0.02'],
    ]);
    // 0.30 + 0.08 + 0.08 + 0.13 + 0.00 + 0.02
    expect(money(invoice.total)).toBe('0.61');
    // 0.3 + 0.075 + 0.075 + 0.125 + 0.0025 + 0.01567
    expect(money(invoice.exactTotal)).toBe('0.59317');
    expect(invoice).toMatchObject({
      requests: 3,
      estimatedRequests: 0,
      complete: true,
      period: '2026-03',
      from: Date.parse('2026-03-01T00:00:00Z'),
      to: Date.parse('2026-04-01T00:00:00Z'),
    });
  });

  it('totals the rounded lines, not the rounded sum', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'gpt-4o',
        at: '2026-03-02T10:00:00Z',
        usage: { inputTokens: 2_000, outputTokens: 500 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03');
    // input 2,000 × 2.5 → 0.005 → 0.01; output 500 × 10 → 0.005 → 0.01.
    expect(rows(invoice).map((r) => r.slice(4))).toEqual([
      ['0.005', '0.01'],
      ['0.005', '0.01'],
    ]);
    // Sum of rounded lines: 0.02. Rounding the exact sum 0.01 gives 0.01.
    expect(invoice.total.eq(parseDecimal('0.02'))).toBe(true);
    expect(invoice.exactTotal.eq(parseDecimal('0.01'))).toBe(true);
    const roundedSum = roundDecimal(invoice.exactTotal, 2, 'half-up');
    expect(invoice.total.eq(roundedSum)).toBe(false);
  });

  it('rounds with the stated rule', () => {
    expect(INVOICE_ROUNDING).toEqual({
      place: 'line',
      minorUnitDigits: 2,
      mode: 'half-up',
    });
  });

  it('splits a model and class at a mid-month price change', async () => {
    // gpt-4o: $5/$15 until 2024-10-02, then $2.50/$10 (catalog).
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'gpt-4o',
        at: '2024-10-01T23:59:59.999Z',
        usage: { inputTokens: 1_000_000, outputTokens: 100_000 },
      },
      {
        model: 'gpt-4o',
        at: '2024-10-02T00:00:00Z',
        usage: { inputTokens: 2_000_000, outputTokens: 300_000 },
      },
      {
        model: 'gpt-4o',
        at: '2024-10-20T00:00:00Z',
        usage: { inputTokens: 400_000 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2024-10');
    expect(rows(invoice)).toEqual([
      // 2,400,000 × 2.5 → 6
      ['gpt-4o', 'input', 2_400_000, '2.5', '6', '6'],
      // 1,000,000 × 5 → 5
      ['gpt-4o', 'input', 1_000_000, '5', '5', '5'],
      // 300,000 × 10 → 3
      ['gpt-4o', 'output', 300_000, '10', '3', '3'],
      // 100,000 × 15 → 1.5
      ['gpt-4o', 'output', 100_000, '15', '1.5', '1.5'],
    ]);
    expect(money(invoice.total)).toBe('15.5');
  });

  it('puts usage in the month of the tenant zone, not of UTC', async () => {
    const paris = await tenant('paris', 'Europe/Paris');
    const london = await tenant('london', 'UTC');
    for (const owner of [paris, london]) {
      await serve(owner, [
        // 23:30 on 31 December in Paris; 22:30 UTC, also 31 December.
        {
          model: 'gpt-4o',
          at: '2026-12-31T23:30:00+01:00',
          usage: { inputTokens: 1_000 },
        },
        // 00:30 on 1 January in Paris; 23:30 UTC, still 31 December.
        {
          model: 'gpt-4o',
          at: '2027-01-01T00:30:00+01:00',
          usage: { inputTokens: 2_000 },
        },
      ]);
    }
    const inputTokens = async (owner: TenantRecord, period: string) =>
      (await buildInvoice(store, owner, period)).lines.map((l) => l.tokens);

    expect(await inputTokens(paris, '2026-12')).toEqual([1_000]);
    expect(await inputTokens(paris, '2027-01')).toEqual([2_000]);
    // For a UTC tenant both are on 31 December.
    expect(await inputTokens(london, '2026-12')).toEqual([3_000]);
    expect(await inputTokens(london, '2027-01')).toEqual([]);
  });

  it('shows unpriced usage with no amount, outside the total', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'gpt-4o',
        at: '2026-03-02T10:00:00Z',
        usage: { inputTokens: 2_000, outputTokens: 500 },
      },
      {
        model: 'mystery',
        priceKey: 'no-such-model-in-the-catalog',
        at: '2026-03-03T10:00:00Z',
        usage: { inputTokens: 1_000, outputTokens: 10 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03');
    expect(rows(invoice)).toEqual([
      ['gpt-4o', 'input', 2_000, '2.5', '0.005', '0.01'],
      ['gpt-4o', 'output', 500, '10', '0.005', '0.01'],
      ['mystery', 'input', 1_000, null, null, null],
      ['mystery', 'output', 10, null, null, null],
    ]);
    expect(invoice.complete).toBe(false);
    expect(invoice.requests).toBe(2);
    expect(money(invoice.total)).toBe('0.02');
    expect(money(invoice.exactTotal)).toBe('0.01');

    const json = invoiceToJson(invoice);
    expect(json.complete).toBe(false);
    expect(json.total).toBe('0.02');
    expect(json.lines[2]).toEqual({
      model: 'mystery',
      token_class: 'input',
      tokens: 1_000,
      unit_price_per_1m: null,
      amount: null,
      amount_rounded: null,
    });
  });

  it('is incomplete when a priced model has usage in an unpriced class', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'nova-micro',
        priceKey: 'amazon.nova-micro-v1:0',
        at: '2026-03-02T10:00:00Z',
        usage: { inputTokens: 1_000_000, cacheReadTokens: 10 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03');
    expect(rows(invoice)).toEqual([
      // 1,000,000 × 0.035 → 0.035 → 0.04
      ['nova-micro', 'input', 1_000_000, '0.035', '0.035', '0.04'],
      ['nova-micro', 'cacheRead', 10, null, null, null],
    ]);
    expect(invoice.complete).toBe(false);
  });

  it('prices a long request at the tier its cache reads push it into', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(acme, [
      {
        model: 'claude',
        priceKey: 'claude-sonnet-4-5-20250929',
        at: '2026-03-02T10:00:00Z',
        // 150,000 + 50,001 = 200,001 input tokens: above 200,000.
        usage: { inputTokens: 150_000, cacheReadTokens: 50_001 },
      },
    ]);
    const invoice = await buildInvoice(store, acme, '2026-03');
    expect(rows(invoice)).toEqual([
      // 150,000 × 6 → 0.9
      ['claude', 'input', 150_000, '6', '0.9', '0.9'],
      // 50,001 × 0.6 = 30,000.6 → 0.0300006 → 0.03
      ['claude', 'cacheRead', 50_001, '0.6', '0.0300006', '0.03'],
    ]);
  });

  it('is empty, zero and complete for a month without usage', async () => {
    const acme = await tenant('acme', 'Asia/Kolkata');
    const invoice = await buildInvoice(store, acme, '2026-03');
    expect(invoice.lines).toEqual([]);
    expect(money(invoice.total)).toBe('0');
    expect(invoice.complete).toBe(true);
    expect(invoiceToJson(invoice).total).toBe('0.00');
  });
});

/** Sums the tenant charge of each request, read back from the ledger. */
async function ledgerCharges(
  owner: TenantRecord,
  ids: readonly string[],
): Promise<Decimal> {
  const charges: Decimal[] = [];
  for (const id of ids) {
    const detail = await store.findRequest({ tenantId: owner.id }, id);
    for (const { rating } of detail?.events ?? []) {
      if (!rating?.tenantCharge) throw new Error(`${id} has no charge`);
      charges.push(parseDecimal(rating.tenantCharge));
    }
  }
  return sumDecimals(charges);
}

/**
 * Rates in thousandths of a dollar per 1M tokens, so that tokens × rate is
 * an integer count of 10^-9 dollars (catalog: gpt-4o 2.5/1.25/10, Sonnet
 * 4.5 3/0.3/15, Nova Micro 0.035/-/0.14).
 */
const MILLI_RATES = {
  'gpt-4o': { input: 2_500n, cacheRead: 1_250n, output: 10_000n },
  'claude-sonnet-4-5-20250929': {
    input: 3_000n,
    cacheRead: 300n,
    output: 15_000n,
  },
  'amazon.nova-micro-v1:0': { input: 35n, cacheRead: null, output: 140n },
} as const;
type TraceModel = keyof typeof MILLI_RATES;

/** A count of 10^-9 dollars as canonical decimal text. */
function nanoDollars(count: bigint): string {
  const text = count.toString().padStart(10, '0');
  const whole = text.slice(0, -9).replace(/^0+(?=\d)/, '');
  const fraction = text.slice(-9).replace(/0+$/, '');
  return fraction === '' ? whole : `${whole}.${fraction}`;
}

describe('reconciliation', () => {
  it('checks the nano-dollar helper', () => {
    expect(nanoDollars(47_608_895_000n)).toBe('47.608895');
    expect(nanoDollars(35n)).toBe('0.000000035');
    expect(nanoDollars(0n)).toBe('0');
  });

  it('has an exact total equal to the sum of every event charge', async () => {
    const acme = await tenant('acme', 'America/New_York');
    // A deterministic spread of sizes over two models, with cache reads.
    const served: Served[] = Array.from({ length: 300 }, (_, i) => ({
      model: (['gpt-4o', 'claude-sonnet-4-5-20250929'] as const)[i % 2]!,
      at: new Date(
        Date.parse('2026-03-01T05:00:00Z') + i * 7_919_000,
      ).toISOString(),
      usage: {
        inputTokens: (i * 7_919) % 50_000,
        cacheReadTokens: (i * 104_729) % 9_000,
        outputTokens: (i * 1_299_709) % 4_000,
      },
    }));
    const ids = await serve(acme, served);
    const invoice = await buildInvoice(store, acme, '2026-03');

    expect(invoice.requests).toBe(300);
    expect(invoice.complete).toBe(true);
    const charges = await ledgerCharges(acme, ids);
    expect(formatDecimal(invoice.exactTotal)).toBe(formatDecimal(charges));

    let expected = 0n;
    for (const { model, usage } of served) {
      const rates = MILLI_RATES[model as TraceModel];
      expected +=
        BigInt(usage.inputTokens ?? 0) * rates.input +
        BigInt(usage.cacheReadTokens ?? 0) * (rates.cacheRead ?? 0n) +
        BigInt(usage.outputTokens ?? 0) * rates.output;
    }
    expect(formatDecimal(invoice.exactTotal)).toBe(nanoDollars(expected));
  });
});

describe.skipIf(!sharedDataPresent)('the Azure code trace, billed', () => {
  function trace(): { input: number; output: number }[] {
    const text = readFileSync(
      sharedFile('traces/azure_llm_2023_code.csv'),
      'utf8',
    );
    return text
      .trim()
      .split(/\r?\n/)
      .slice(1)
      .map((line) => {
        const [, input = '', output = ''] = line.split(',');
        return { input: Number(input), output: Number(output) };
      });
  }
  const rowsOfTrace = sharedDataPresent ? trace() : [];
  const start = Date.parse('2026-03-16T18:17:03Z');

  it('bills the whole trace on gpt-4o at the golden $47.608895', async () => {
    const acme = await tenant('acme', 'UTC');
    await serve(
      acme,
      rowsOfTrace.map(({ input, output }, i) => ({
        model: 'gpt-4o',
        at: new Date(start + i * 400).toISOString(),
        usage: { inputTokens: input, outputTokens: output },
      })),
    );
    const invoice = await buildInvoice(store, acme, '2026-03');
    // data README: sum_in 18,059,974 and sum_out 245,896 → $47.6088950.
    expect(invoice.exactTotal.eq(parseDecimal('47.6088950'))).toBe(true);
    expect(rows(invoice)).toEqual([
      // 18,059,974 × 2.5 → 45.149935 → 45.15
      ['gpt-4o', 'input', 18_059_974, '2.5', '45.149935', '45.15'],
      // 245,896 × 10 → 2.45896 → 2.46
      ['gpt-4o', 'output', 245_896, '10', '2.45896', '2.46'],
    ]);
    expect(money(invoice.total)).toBe('47.61');
    expect(invoice.requests).toBe(8_819);
  });

  it('reconciles a mixed, cached, multi-model trace to the last digit', async () => {
    const acme = await tenant('acme', 'Pacific/Chatham');
    const models: TraceModel[] = [
      'gpt-4o',
      'claude-sonnet-4-5-20250929',
      'amazon.nova-micro-v1:0',
    ];
    // Every seventh row keeps the test fast; each is read back one by one.
    const sample = rowsOfTrace.filter((_, i) => i % 7 === 0);
    const served = sample.map(({ input, output }, i): Served => {
      const model = models[i % 3]!;
      // Every fifth cacheable request read a quarter of its prompt.
      const cached =
        model !== 'amazon.nova-micro-v1:0' && i % 5 === 0
          ? Math.floor(input / 4)
          : 0;
      return {
        model,
        at: new Date(start + i * 400).toISOString(),
        usage: {
          inputTokens: input - cached,
          cacheReadTokens: cached,
          outputTokens: output,
        },
      };
    });
    const ids = await serve(acme, served);
    const invoice = await buildInvoice(store, acme, '2026-03');
    expect(invoice.complete).toBe(true);

    let expected = 0n;
    for (const { model, usage } of served) {
      const rates = MILLI_RATES[model as TraceModel];
      expected +=
        BigInt(usage.inputTokens ?? 0) * rates.input +
        BigInt(usage.cacheReadTokens ?? 0) * (rates.cacheRead ?? 0n) +
        BigInt(usage.outputTokens ?? 0) * rates.output;
    }
    expect(formatDecimal(invoice.exactTotal)).toBe(nanoDollars(expected));
    const charges = await ledgerCharges(acme, ids);
    expect(formatDecimal(charges)).toBe(nanoDollars(expected));

    // The total is the sum of the rounded lines, each within half a cent.
    const rounded = invoice.lines.map((line) => line.amountRounded!);
    expect(invoice.total.eq(sumDecimals(rounded))).toBe(true);
    for (const line of invoice.lines) {
      expect(
        line
          .amount!.minus(line.amountRounded!)
          .abs()
          .lte(parseDecimal('0.005')),
      ).toBe(true);
    }
  });
});
