/**
 * Where and how invoices round (DESIGN.md, "Money"): each line's exact
 * amount is rounded once, to the cent, half-up (ties away from zero), and
 * an invoice total is the sum of its rounded lines. Nothing else rounds.
 */
import {
  roundDecimal,
  type Decimal,
  type RoundingMode,
} from '../money/decimal.js';

export const INVOICE_ROUNDING = {
  place: 'line',
  minorUnitDigits: 2,
  mode: 'half-up' satisfies RoundingMode,
} as const;

/** A line's exact amount, rounded as INVOICE_ROUNDING states. */
export function roundLine(amount: Decimal): Decimal {
  return roundDecimal(
    amount,
    INVOICE_ROUNDING.minorUnitDigits,
    INVOICE_ROUNDING.mode,
  );
}
