/**
 * Exact decimals for money. Every expected value is worked out by hand in
 * the comment beside it (long multiplication, then a shift of the decimal
 * point), never read back from the module.
 */
import { describe, expect, it } from 'vitest';

import {
  InvalidDecimalError,
  ZERO,
  formatDecimal,
  formatFixed,
  fromInteger,
  isDecimalString,
  parseDecimal,
  perMillion,
  roundDecimal,
  sumDecimals,
  type RoundingMode,
} from '../../src/money/decimal.js';

/** Canonical text of a decimal given as text; the shape every test reads. */
function canonical(text: string): string {
  return formatDecimal(parseDecimal(text));
}

describe('parseDecimal', () => {
  it.each([
    ['0', '0'],
    ['7', '7'],
    ['2.50', '2.5'],
    ['-0.000125', '-0.000125'],
    ['0.035', '0.035'],
    ['100', '100'],
    ['-1.50', '-1.5'],
    [
      '123456789012345678901234567890.123456789012345678901234567890',
      '123456789012345678901234567890.12345678901234567890123456789',
    ],
  ])('reads %j as %s', (text, expected) => {
    expect(canonical(text)).toBe(expected);
  });

  it.each([
    ['an exponent', '1e3'],
    ['a capital exponent', '1E-6'],
    ["litellm's per-token notation", '2.5e-06'],
    ['a leading plus', '+1'],
    ['a leading zero', '01'],
    ['a leading zero before the point', '00.5'],
    ['a negative leading zero', '-01'],
    ['a bare leading dot', '.5'],
    ['a bare trailing dot', '5.'],
    ['an empty string', ''],
    ['a leading space', ' 1'],
    ['a trailing space', '1 '],
    ['a thousands separator', '1,000'],
    ['a digit separator', '1_000'],
    ['hexadecimal', '0x10'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['a double sign', '--1'],
    ['a lone sign', '-'],
    ['a decimal comma', '2,5'],
  ])('refuses %s (%j)', (_, text) => {
    expect(() => parseDecimal(text)).toThrow(InvalidDecimalError);
    expect(isDecimalString(text)).toBe(false);
  });

  it('says which text it refused', () => {
    expect(() => parseDecimal('1e3')).toThrow(/"1e3"/);
  });

  it('recognises decimal strings, and only strings', () => {
    expect(isDecimalString('2.50')).toBe(true);
    expect(isDecimalString('-0.000125')).toBe(true);
    expect(isDecimalString(2.5)).toBe(false);
    expect(isDecimalString(null)).toBe(false);
    expect(isDecimalString(undefined)).toBe(false);
  });
});

describe('strict mode: a JS number never becomes money', () => {
  it('refuses a number handed to parseDecimal', () => {
    // The regex alone would accept String(2.5); big.js strict mode must not.
    expect(() => parseDecimal(2.5 as unknown as string)).toThrow();
    expect(() => parseDecimal(0.1 as unknown as string)).toThrow();
  });

  it('refuses numbers as operands', () => {
    const one = parseDecimal('1');
    expect(() => one.plus(0.1)).toThrow();
    expect(() => one.minus(1)).toThrow();
    expect(() => one.times(2)).toThrow();
    expect(() => one.eq(1)).toThrow();
  });

  it('refuses to turn back into a number', () => {
    const amount = parseDecimal('45.149935');
    expect(() => Number(amount)).toThrow();
    expect(() => +amount).toThrow();
    // toNumber is big.js's one escape hatch; strict mode still refuses it
    // when the float would not hold every digit.
    expect(() => parseDecimal('0.1000000000000000000001').toNumber()).toThrow();
  });

  it('still prints as a decimal string in text and JSON', () => {
    const amount = parseDecimal('1.50');
    expect(`${amount.toString()}`).toBe('1.5');
    expect(JSON.stringify({ amount })).toBe('{"amount":"1.5"}');
  });
});

describe('fromInteger', () => {
  it('takes whole counts exactly', () => {
    expect(formatDecimal(fromInteger(18_059_974))).toBe('18059974');
    expect(formatDecimal(fromInteger(0))).toBe('0');
    expect(formatDecimal(fromInteger(Number.MAX_SAFE_INTEGER))).toBe(
      '9007199254740991',
    );
    expect(formatDecimal(fromInteger(10n ** 30n))).toBe(
      '1000000000000000000000000000000',
    );
  });

  it.each([1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])(
    'refuses %s',
    (count) => {
      expect(() => fromInteger(count)).toThrow(InvalidDecimalError);
    },
  );
});

describe('perMillion', () => {
  it('prices the azure code trace input at gpt-4o $2.50 exactly', () => {
    // 18,059,974 × 2.5 = 45,149,935; ÷ 1,000,000 = 45.149935
    expect(formatDecimal(perMillion(18_059_974, parseDecimal('2.5')))).toBe(
      '45.149935',
    );
  });

  it('keeps every digit of a tiny price', () => {
    // 1 × 0.035 ÷ 10^6 = 0.000000035
    expect(formatDecimal(perMillion(1, parseDecimal('0.035')))).toBe(
      '0.000000035',
    );
    // 18,059,974 × 0.035 = 632,099.09; ÷ 10^6 = 0.63209909
    expect(formatDecimal(perMillion(18_059_974, parseDecimal('0.035')))).toBe(
      '0.63209909',
    );
    // 245,896 × 0.14 = 34,425.44; ÷ 10^6 = 0.03442544
    expect(formatDecimal(perMillion(245_896, parseDecimal('0.14')))).toBe(
      '0.03442544',
    );
  });

  it('stays exact at the largest safe token count', () => {
    // 9,007,199,254,740,991 × 35 = 315,251,973,915,934,685
    // × 0.001 (for 0.035) = 315,251,973,915,934.685; ÷ 10^6:
    expect(
      formatDecimal(perMillion(Number.MAX_SAFE_INTEGER, parseDecimal('0.035'))),
    ).toBe('315251973.915934685');
  });

  it('is zero for zero tokens', () => {
    expect(formatDecimal(perMillion(0, parseDecimal('2.5')))).toBe('0');
  });

  it('refuses a fractional token count', () => {
    expect(() => perMillion(1.5, parseDecimal('2.5'))).toThrow(
      InvalidDecimalError,
    );
  });
});

describe('sumDecimals', () => {
  it('adds without float error', () => {
    // 0.1 + 0.2 is 0.30000000000000004 in floats; 0.3 in decimals.
    expect(
      formatDecimal(sumDecimals([parseDecimal('0.1'), parseDecimal('0.2')])),
    ).toBe('0.3');
  });

  it('is zero when empty', () => {
    expect(formatDecimal(sumDecimals([]))).toBe('0');
    expect(sumDecimals([]).eq(ZERO)).toBe(true);
  });

  it('sums a generator', () => {
    function* amounts() {
      yield parseDecimal('45.149935');
      yield parseDecimal('2.45896');
    }
    // 45.149935 + 2.458960 = 47.608895
    expect(formatDecimal(sumDecimals(amounts()))).toBe('47.608895');
  });
});

describe('roundDecimal at the cent', () => {
  const cases: [RoundingMode, string, string][] = [
    // half-up: ties go away from zero, on both sides of zero.
    ['half-up', '0.125', '0.13'],
    ['half-up', '0.135', '0.14'],
    ['half-up', '-0.125', '-0.13'],
    ['half-up', '-0.005', '-0.01'],
    ['half-up', '0.005', '0.01'],
    ['half-up', '0.124999', '0.12'],
    ['half-up', '-0.124999', '-0.12'],
    ['half-up', '2.675', '2.68'], // (2.675).toFixed(2) is "2.67" in floats
    ['half-up', '1.005', '1.01'], // (1.005).toFixed(2) is "1.00" in floats
    ['half-up', '47.608895', '47.61'],
    ['half-up', '2.8565337', '2.86'],
    // half-even: ties go to the even cent.
    ['half-even', '0.125', '0.12'],
    ['half-even', '0.135', '0.14'],
    ['half-even', '-0.125', '-0.12'],
    ['half-even', '0.1251', '0.13'],
    // down: toward zero.
    ['down', '0.129', '0.12'],
    ['down', '-0.129', '-0.12'],
    // up: away from zero.
    ['up', '0.121', '0.13'],
    ['up', '-0.121', '-0.13'],
    ['up', '0.12', '0.12'],
  ];
  it.each(cases)('%s rounds %s to %s', (mode, value, expected) => {
    expect(
      roundDecimal(parseDecimal(value), 2, mode).eq(parseDecimal(expected)),
    ).toBe(true);
  });

  it('leaves its input untouched', () => {
    const value = parseDecimal('0.125');
    roundDecimal(value, 2, 'half-up');
    expect(formatDecimal(value)).toBe('0.125');
  });

  it('never prints a negative zero', () => {
    const rounded = roundDecimal(parseDecimal('-0.001'), 2, 'half-up');
    expect(formatDecimal(rounded)).toBe('0');
    expect(formatFixed(rounded, 2)).toBe('0.00');
  });
});

describe('formatDecimal', () => {
  it.each([
    ['2.50', '2.5'],
    ['0.000', '0'],
    ['-0', '0'],
    ['-0.000', '0'],
    ['100', '100'],
    ['100.000', '100'],
    // Beyond big.js's default exponent thresholds (1e21 and 1e-7).
    ['1000000000000000000000000', '1000000000000000000000000'],
    ['0.0000000000001', '0.0000000000001'],
    ['0.000000000000000000000000000001', '0.000000000000000000000000000001'],
  ])('writes %s as %s', (text, expected) => {
    expect(canonical(text)).toBe(expected);
  });

  it('writes a tiny product in plain notation', () => {
    // 1 token at $0.000001/1M is 10^-12 dollars.
    expect(formatDecimal(perMillion(1, parseDecimal('0.000001')))).toBe(
      '0.000000000001',
    );
  });

  it('round-trips every canonical string', () => {
    for (const text of ['0', '1', '-1', '0.5', '-0.000125', '45.149935']) {
      expect(formatDecimal(parseDecimal(text))).toBe(text);
      expect(isDecimalString(formatDecimal(parseDecimal(text)))).toBe(true);
    }
  });
});

describe('formatFixed', () => {
  it('pads to the minor unit', () => {
    expect(formatFixed(parseDecimal('12.3'), 2)).toBe('12.30');
    expect(formatFixed(parseDecimal('0'), 2)).toBe('0.00');
    expect(formatFixed(parseDecimal('-4.1'), 2)).toBe('-4.10');
  });
});
