/**
 * Exact decimal arithmetic for money and prices.
 *
 * Tollgate never holds an amount in a JS `number` (DESIGN.md, "Money"). This
 * module wraps big.js in strict mode: constructing a `Decimal` from a number
 * throws, and so does coercing one back with `valueOf`, so a float cannot
 * leak in or out by accident. Addition, subtraction and multiplication are
 * exact in big.js; division rounds to `DIVISION_PLACES`, and Tollgate's own
 * money paths never divide (per-token prices are shifts of the decimal
 * point, see `perMillion`).
 *
 * Decimals travel as strings (JSON, SQL TEXT) in the canonical form given by
 * `formatDecimal`: plain notation, no exponent, no trailing zeros.
 */
import BigModule from 'big.js';

type BigConstructor = typeof BigModule;
export type Decimal = InstanceType<BigConstructor>;

/** Places kept by a division; nothing on a money path divides. */
const DIVISION_PLACES = 40;

/** An isolated big.js constructor so no other package's settings leak in. */
const D: BigConstructor = BigModule();
D.strict = true;
D.DP = DIVISION_PLACES;
D.RM = BigModule.roundHalfEven;
// Never switch to exponential notation in toString().
D.NE = -1_000_000;
D.PE = 1_000_000;

const DECIMAL_PATTERN = /^-?(0|[1-9]\d*)(\.\d+)?$/;

/** Rounding modes, named as in IEEE 754 and most invoicing rules. */
export type RoundingMode = 'half-up' | 'half-even' | 'down' | 'up';

const ROUNDING: Record<RoundingMode, 0 | 1 | 2 | 3> = {
  down: BigModule.roundDown,
  'half-up': BigModule.roundHalfUp,
  'half-even': BigModule.roundHalfEven,
  up: BigModule.roundUp,
};

export class InvalidDecimalError extends Error {
  override readonly name = 'InvalidDecimalError';
}

/**
 * Parses a decimal string such as `"2.50"` or `"-0.000125"`.
 *
 * Only plain notation is accepted: exponents, leading `+`, leading zeros and
 * bare dots are refused, so every stored amount reads the same way.
 *
 * @example parseDecimal('2.50').times(parseDecimal('3')) // 7.5
 */
export function parseDecimal(text: string): Decimal {
  if (!DECIMAL_PATTERN.test(text)) {
    throw new InvalidDecimalError(
      `not a decimal string: ${JSON.stringify(text)}`,
    );
  }
  return new D(text);
}

export function isDecimalString(text: unknown): text is string {
  return typeof text === 'string' && DECIMAL_PATTERN.test(text);
}

/** A whole count (tokens, requests) as a Decimal, exactly. */
export function fromInteger(count: number | bigint): Decimal {
  if (typeof count === 'number' && !Number.isSafeInteger(count)) {
    throw new InvalidDecimalError(`not a safe integer: ${count}`);
  }
  return new D(count.toString());
}

export const ZERO: Decimal = new D('0');

/** Canonical text: plain notation, no trailing zeros, `0` for zero. */
export function formatDecimal(value: Decimal): string {
  const text = value.toFixed();
  return text === '-0' ? '0' : text;
}

/** Rounds to `places` decimal places with an explicit mode. */
export function roundDecimal(
  value: Decimal,
  places: number,
  mode: RoundingMode,
): Decimal {
  return value.round(places, ROUNDING[mode]);
}

/**
 * Fixed-point text with exactly `places` decimals, e.g. `"12.30"`, for an
 * amount already rounded to that place. Anything with more decimals is
 * refused rather than rounded again: rounding happens in one stated place
 * (`roundDecimal`), never as a side effect of formatting.
 */
export function formatFixed(value: Decimal, places: number): string {
  if (!value.eq(value.round(places, BigModule.roundDown))) {
    throw new InvalidDecimalError(
      `${formatDecimal(value)} has more than ${places} decimals; round it first`,
    );
  }
  return value.toFixed(places);
}

/** Sum of decimals; the empty sum is zero. */
export function sumDecimals(values: Iterable<Decimal>): Decimal {
  let total = ZERO;
  for (const value of values) total = total.plus(value);
  return total;
}

/**
 * `count` units at a price stated per one million units, exactly.
 *
 * Dividing by 10^6 only moves the decimal point, so it is done as a
 * multiplication by `1e-6`, which big.js performs without rounding.
 */
export function perMillion(count: number, pricePerMillion: Decimal): Decimal {
  return fromInteger(count).times(pricePerMillion).times(MILLIONTH);
}

const MILLIONTH: Decimal = new D('0.000001');
