/**
 * The shipped catalog: it parses, its windows do not overlap, its numbers
 * are the litellm catalog's it cites, and it prices the Azure code trace to
 * the golden totals of `shared/data/README.md`.
 *
 * The litellm file writes per-token prices as JSON numbers such as
 * `2.5e-06`. Read through `JSON.parse` they become floats, and
 * `2.5e-06 * 1e6` is not reliably `2.5`, so the suite reads each number's
 * source text and moves its decimal point by string arithmetic instead.
 */
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { AS_INPUT, catalogSchema } from '../../src/pricing/catalog-schema.js';
import catalogJson from '../../src/pricing/catalog.json' with { type: 'json' };
import {
  EMPTY_USAGE,
  totalInputTokens,
  type NormalizedUsage,
} from '../../src/metering/usage.js';
import {
  formatDecimal,
  parseDecimal,
  perMillion,
  sumDecimals,
  type Decimal,
} from '../../src/money/decimal.js';
import { PriceBook } from '../../src/pricing/price-book.js';
import { rateUsage } from '../../src/pricing/rate-usage.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';

/** An instant after every current catalog entry took effect. */
const NOW = Date.parse('2026-01-15T00:00:00Z');

const PLAIN_DECIMAL = /^(0|[1-9]\d*)(\.\d+)?$/;
const LITELLM_SOURCE =
  /^litellm model_prices_and_context_window\.json @667b9122 key (\S+)$/;

/**
 * `text` (plain or exponent notation) × 10^`shift`, as canonical plain
 * text: no exponent, no leading or trailing zeros. Pure string arithmetic.
 */
function shiftDecimal(text: string, shift: number): string {
  const match = /^(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) throw new Error(`not a non-negative number: ${text}`);
  const [, whole = '', fraction = '', exponent = '0'] = match;
  const digits = whole + fraction;
  // The value is digits × 10^point.
  const point = Number(exponent) - fraction.length + shift;
  let plain: string;
  if (point >= 0) {
    plain = digits + '0'.repeat(point);
  } else {
    const padded = digits.padStart(-point + 1, '0');
    plain = `${padded.slice(0, point)}.${padded.slice(point)}`;
  }
  const [intPart = '', fracPart = ''] = plain.split('.');
  const int = intPart.replace(/^0+(?=\d)/, '');
  const frac = fracPart.replace(/0+$/, '');
  return frac === '' ? int : `${int}.${frac}`;
}

describe('shiftDecimal (the test helper itself)', () => {
  it.each([
    ['2.5e-06', 6, '2.5'],
    ['1e-05', 6, '10'],
    ['3.5e-08', 6, '0.035'],
    ['1.875e-05', 6, '18.75'],
    ['0.0', 6, '0'],
    ['0.000003', 6, '3'],
    ['2.50', 0, '2.5'],
    ['007', 0, '7'],
    ['1.25', -6, '0.00000125'],
  ])('%s × 10^%i is %s', (text, shift, expected) => {
    expect(shiftDecimal(text, shift)).toBe(expected);
  });
});

const catalog = shippedCatalog();

type RateField =
  'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cacheWrite1h';
const RATE_FIELDS: readonly RateField[] = [
  'input',
  'output',
  'cacheRead',
  'cacheWrite',
  'cacheWrite1h',
];

describe('the shipped catalog', () => {
  it('parses against its schema, entry by entry', () => {
    expect(() => catalogSchema.parse(catalogJson)).not.toThrow();
    expect(catalog.models.length).toBe(catalogJson.models.length);
    expect(catalog.models.length).toBeGreaterThan(0);
  });

  it('lists each model once', () => {
    const ids = catalog.models.map((m) => m.model);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('states every rate as a plain decimal or "as-input"', () => {
    for (const model of catalog.models) {
      for (const entry of model.prices) {
        for (const rates of [entry, ...(entry.tiers ?? [])]) {
          for (const field of RATE_FIELDS) {
            const rate = rates[field];
            if (rate === undefined || rate === AS_INPUT) continue;
            expect(rate, `${model.model} ${field}`).toMatch(PLAIN_DECIMAL);
            expect(() => parseDecimal(rate)).not.toThrow();
          }
          expect(rates.input, model.model).not.toBe(AS_INPUT);
          expect(rates.output, model.model).not.toBe(AS_INPUT);
        }
      }
    }
  });

  it('has windows that start before they end and never overlap', () => {
    for (const model of catalog.models) {
      const windows = model.prices
        .map((p) => [p.effectiveFrom, p.effectiveTo ?? '9999-12-31'] as const)
        .sort(([a], [b]) => (a < b ? -1 : 1));
      windows.forEach(([from, to], i) => {
        expect(from < to, `${model.model} ${from}`).toBe(true);
        const next = windows[i + 1];
        if (next) expect(to <= next[0], `${model.model} ${from}`).toBe(true);
      });
    }
    expect(() => PriceBook.create(catalog)).not.toThrow();
  });

  it('prices every model now', () => {
    const book = PriceBook.create(catalog);
    for (const model of catalog.models) {
      expect(book.lookup(model.model, NOW, 0), model.model).toBeDefined();
    }
  });

  it('names where each number came from', () => {
    for (const model of catalog.models) {
      for (const entry of model.prices) {
        expect(entry.source, model.model).toMatch(LITELLM_SOURCE);
      }
    }
  });
});

/**
 * The litellm catalog with every JSON number kept as its source text,
 * prefixed with a marker no string in the file starts with.
 */
const NUMBER_MARK = '\u0001';

function readLitellm(): Record<string, Record<string, unknown>> {
  const raw = readFileSync(
    sharedFile('pricing/litellm_model_prices_and_context_window.json'),
    'utf8',
  );
  const marked = raw.replace(
    /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (token) =>
      token.startsWith('"') ? token : JSON.stringify(NUMBER_MARK + token),
  );
  return JSON.parse(marked) as Record<string, Record<string, unknown>>;
}

/** A litellm field's per-token number as text, or undefined if absent. */
function numberText(
  record: Record<string, unknown>,
  field: string,
): string | undefined {
  const value = record[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !value.startsWith(NUMBER_MARK)) {
    throw new Error(`${field} is not a JSON number`);
  }
  return value.slice(NUMBER_MARK.length);
}

describe.skipIf(!sharedDataPresent)('the catalog against litellm', () => {
  const litellm = sharedDataPresent ? readLitellm() : {};

  /** Catalog rate (per 1M) against litellm's per-token field. */
  function expectSameRate(
    where: string,
    catalogRate: string | undefined,
    record: Record<string, unknown>,
    field: string,
  ): void {
    const perToken = numberText(record, field);
    if (catalogRate === AS_INPUT) return;
    if (catalogRate === undefined) {
      // An unstated catalog rate must be one litellm does not state either,
      // or the catalog would be dropping a known price.
      expect(perToken, `${where}: litellm has ${field}`).toBeUndefined();
      return;
    }
    expect(perToken, `${where}: litellm lacks ${field}`).toBeDefined();
    expect(shiftDecimal(catalogRate, 0), `${where} vs ${field}`).toBe(
      shiftDecimal(perToken ?? '', 6),
    );
  }

  it('reads numbers as their exact source text', () => {
    // The one number every reader can check by eye in the file.
    expect(numberText(litellm['gpt-4o'] ?? {}, 'input_cost_per_token')).toBe(
      '2.5e-06',
    );
  });

  it('has every rate equal to its litellm key × 1,000,000', () => {
    let checked = 0;
    for (const model of catalog.models) {
      for (const entry of model.prices) {
        const key = LITELLM_SOURCE.exec(entry.source)?.[1];
        if (!key) continue;
        const record = litellm[key];
        const where = `${model.model}@${entry.effectiveFrom} (key ${key})`;
        expect(record, `${where}: no such litellm key`).toBeDefined();
        if (!record) continue;

        expectSameRate(where, entry.input, record, 'input_cost_per_token');
        expectSameRate(where, entry.output, record, 'output_cost_per_token');
        expectSameRate(
          where,
          entry.cacheRead,
          record,
          'cache_read_input_token_cost',
        );
        expectSameRate(
          where,
          entry.cacheWrite,
          record,
          'cache_creation_input_token_cost',
        );

        const longContext = numberText(
          record,
          'input_cost_per_token_above_200k_tokens',
        );
        const tiers = entry.tiers ?? [];
        if (longContext === undefined) {
          expect(tiers, where).toEqual([]);
        } else {
          expect(
            tiers.map((t) => t.inputTokensAbove),
            where,
          ).toEqual([200_000]);
          const [tier] = tiers;
          const above = `${where} >200k`;
          expectSameRate(
            above,
            tier?.input,
            record,
            'input_cost_per_token_above_200k_tokens',
          );
          expectSameRate(
            above,
            tier?.output,
            record,
            'output_cost_per_token_above_200k_tokens',
          );
          expectSameRate(
            above,
            tier?.cacheRead,
            record,
            'cache_read_input_token_cost_above_200k_tokens',
          );
          expectSameRate(
            above,
            tier?.cacheWrite,
            record,
            'cache_creation_input_token_cost_above_200k_tokens',
          );
        }
        checked++;
      }
    }
    const entries = catalog.models.reduce((n, m) => n + m.prices.length, 0);
    expect(checked).toBe(entries);
  });
});

/** Token sums of a trace, read from its CSV. */
function traceSums(file: string) {
  const lines = readFileSync(sharedFile(file), 'utf8').trim().split(/\r?\n/);
  expect(lines[0]).toBe('TIMESTAMP,ContextTokens,GeneratedTokens');
  const rows = lines.slice(1).map((line) => {
    const [, context = '', generated = ''] = line.split(',');
    expect(context).toMatch(/^\d+$/);
    expect(generated).toMatch(/^\d+$/);
    return { input: Number(context), output: Number(generated) };
  });
  return {
    rows,
    input: rows.reduce((sum, row) => sum + row.input, 0),
    output: rows.reduce((sum, row) => sum + row.output, 0),
  };
}

/** The golden totals, as `shared/data/README.md` writes them. */
const GOLDEN = {
  code: {
    'gpt-4o': '47.6088950',
    'gpt-4o-mini': '2.85653370',
    'claude-sonnet-4-5-20250929': '57.868362',
    'amazon.nova-micro-v1:0': '0.666524530',
    'amazon.nova-lite-v1:0': '1.14261348',
    'amazon.nova-pro-v1:0': '15.2348464',
  },
  conv: {
    'gpt-4o': '96.7913250',
    'gpt-4o-mini': '5.80747950',
    'claude-sonnet-4-5-20250929': '128.415585',
    'amazon.nova-micro-v1:0': '1.355078550',
    'amazon.nova-lite-v1:0': '2.32299180',
    'amazon.nova-pro-v1:0': '30.9732240',
  },
} as const;

function usageOf(input: number, output: number): NormalizedUsage {
  return { ...EMPTY_USAGE, inputTokens: input, outputTokens: output };
}

describe.skipIf(!sharedDataPresent)('golden totals of the Azure traces', () => {
  const book = PriceBook.create(catalog);
  const code = sharedDataPresent
    ? traceSums('traces/azure_llm_2023_code.csv')
    : { rows: [], input: 0, output: 0 };
  const conv = sharedDataPresent
    ? traceSums('traces/azure_llm_2023_conv.csv')
    : { rows: [], input: 0, output: 0 };

  it('sums the traces to the token counts the README states', () => {
    expect(code.rows.length).toBe(8_819);
    expect(code.input).toBe(18_059_974);
    expect(code.output).toBe(245_896);
    expect(conv.rows.length).toBe(19_366);
    expect(conv.input).toBe(22_361_870);
    expect(conv.output).toBe(4_088_665);
  });

  function totalOfSums(model: string, input: number, output: number): Decimal {
    const price = book.lookup(model, NOW, 0);
    if (!price) throw new Error(`no price for ${model}`);
    return perMillion(input, price.rates.input ?? parseDecimal('0')).plus(
      perMillion(output, price.rates.output ?? parseDecimal('0')),
    );
  }

  it.each(Object.entries(GOLDEN.code))(
    'prices the code trace on %s at $%s',
    (model, golden) => {
      expect(formatDecimal(totalOfSums(model, code.input, code.output))).toBe(
        formatDecimal(parseDecimal(golden)),
      );
    },
  );

  it.each(Object.entries(GOLDEN.conv))(
    'prices the conv trace on %s at $%s',
    (model, golden) => {
      const total = totalOfSums(model, conv.input, conv.output);
      expect(total.eq(parseDecimal(golden))).toBe(true);
    },
  );

  it.each(Object.entries(GOLDEN.code))(
    'reaches the same %s total rating each request on its own',
    (model, golden) => {
      const totals = code.rows.map(({ input, output }) => {
        const used = usageOf(input, output);
        const rating = rateUsage(
          used,
          book.lookup(model, NOW, totalInputTokens(used)),
        );
        if (rating.total === null) throw new Error('unknown cost');
        return rating.total;
      });
      expect(sumDecimals(totals).eq(parseDecimal(golden))).toBe(true);
    },
  );
});
