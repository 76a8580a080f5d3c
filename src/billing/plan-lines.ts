/**
 * A plan's lines on a tenant's invoice: what its included allowance
 * covers of the month's usage, and what the overage costs.
 *
 * The usage lines above them stay at list rates, so that the invoice
 * shows what was used and what it lists at. A plan then bills its own
 * way, in three lines:
 *
 * 1. `list_credit` takes the list charges back out. Its exact amount is
 *    −X, the month's exact list charges; it is rounded as the lines it
 *    credits were, to −(their rounded sum), so that it cancels them to
 *    the cent and no rounding of theirs reaches the total. (Crediting
 *    only min(X, A) would leave it there: six lines of half a cent list
 *    0.06 for 0.03 of charges, and a tenant within its allowance would
 *    pay 0.03.)
 * 2. `included` shows the allowance used, at no charge: min(X, A) USD of
 *    list charges for a money allowance A, min(T, N) tokens (every
 *    class, input and output) for a token allowance N.
 * 3. `overage` bills what is past it: (X − A)⁺ × the plan's multiple of
 *    list, or (T − N)⁺ × the plan's USD per 1M tokens, rounded half-up.
 *    Under `block` or `notify` it shows the overage at a price of 0: the
 *    plan bills nothing past its allowance.
 *
 * The total is then exactly the overage line: the rounding of one exact
 * amount, computed from the month's sums, so the order or grouping of
 * the month's requests cannot change it. Under a token plan list rates
 * bill nothing: the plan's fee (outside Tollgate) covers the included
 * tokens. Under a money plan, usage with no list price cannot be
 * admitted at all (a budget cannot bound it), and is not in X.
 */
import type { PlanConfig } from '../config/config-schema.js';
import {
  formatDecimal,
  formatFixed,
  parseDecimal,
  perMillion,
  ZERO,
  type Decimal,
} from '../money/decimal.js';
import { INVOICE_ROUNDING, roundLine } from './rounding.js';

/** Takes the usage lines' list charges back out of the total. */
export interface ListCreditLine {
  readonly kind: 'list_credit';
  /** −X: minus the exact list charges. */
  readonly amount: Decimal;
  /** Minus the sum of the usage lines' rounded amounts. */
  readonly amountRounded: Decimal;
}

/** The allowance used, or the overage past it, of a money allowance. */
export interface MoneyAllowanceLine {
  readonly kind: 'included' | 'overage';
  readonly measure: 'usd';
  /** USD of list charges. */
  readonly usd: Decimal;
  /** The multiple of list it is billed at: 0 when not billed. */
  readonly multiplier: Decimal;
  readonly amount: Decimal;
  readonly amountRounded: Decimal;
}

/** The allowance used, or the overage past it, of a token allowance. */
export interface TokenAllowanceLine {
  readonly kind: 'included' | 'overage';
  readonly measure: 'tokens';
  readonly tokens: number;
  /** USD per 1M tokens: 0 when not billed. */
  readonly unitPrice: Decimal;
  readonly amount: Decimal;
  readonly amountRounded: Decimal;
}

export type PlanLine = ListCreditLine | MoneyAllowanceLine | TokenAllowanceLine;

/** The month's usage, as the invoice's usage lines sum it. */
export interface PlanUsage {
  /** Exact list charges of the priced usage lines. */
  readonly listExact: Decimal;
  /** The same lines' rounded amounts, summed. */
  readonly listRounded: Decimal;
  /** Tokens of every class, priced or not. */
  readonly tokens: number;
}

/**
 * The plan's lines for a month's usage; none for a plan without an
 * allowance, whose tenant pays list charges.
 *
 * @example
 * // 60 USD of list charges against 50 included, overage at 1.25 × list:
 * // list_credit −60, included 50 USD at 0, overage 10 USD → 12.50.
 * planLines(plan, { listExact, listRounded, tokens })
 */
export function planLines(plan: PlanConfig, usage: PlanUsage): PlanLine[] {
  const { included, overage } = plan;
  if (included === undefined || overage === undefined) return [];
  const credit: ListCreditLine = {
    kind: 'list_credit',
    amount: ZERO.minus(usage.listExact),
    amountRounded: ZERO.minus(usage.listRounded),
  };
  // Only `bill` bills past the allowance; the others show it at 0.
  const rate = (stated: string | undefined) =>
    overage === 'bill' && stated !== undefined ? parseDecimal(stated) : ZERO;
  return included.usd !== undefined
    ? [
        credit,
        ...moneyLines(
          parseDecimal(included.usd),
          usage.listExact,
          rate(plan.overageMultiplier),
        ),
      ]
    : [
        credit,
        ...tokenLines(
          included.tokens ?? 0,
          usage.tokens,
          rate(plan.overageUsdPer1M),
        ),
      ];
}

/** Included min(X, A) at 0, and the overage (X − A)⁺ × `multiplier`. */
function moneyLines(
  allowance: Decimal,
  used: Decimal,
  multiplier: Decimal,
): MoneyAllowanceLine[] {
  const past = used.gt(allowance) ? used.minus(allowance) : ZERO;
  const line = (
    kind: MoneyAllowanceLine['kind'],
    usd: Decimal,
    times: Decimal,
  ): MoneyAllowanceLine => {
    const amount = usd.times(times);
    return {
      kind,
      measure: 'usd',
      usd,
      multiplier: times,
      amount,
      amountRounded: roundLine(amount),
    };
  };
  return [
    line('included', used.minus(past), ZERO),
    line('overage', past, multiplier),
  ];
}

/** Included min(T, N) at 0, and the overage (T − N)⁺ at `usdPer1M`. */
function tokenLines(
  allowance: number,
  used: number,
  usdPer1M: Decimal,
): TokenAllowanceLine[] {
  const past = Math.max(0, used - allowance);
  const line = (
    kind: TokenAllowanceLine['kind'],
    tokens: number,
    price: Decimal,
  ): TokenAllowanceLine => {
    const amount = perMillion(tokens, price);
    return {
      kind,
      measure: 'tokens',
      tokens,
      unitPrice: price,
      amount,
      amountRounded: roundLine(amount),
    };
  };
  return [line('included', used - past, ZERO), line('overage', past, usdPer1M)];
}

/** The terms of a plan with an allowance, as the invoice JSON states them. */
export function planToJson(plan: PlanConfig) {
  return {
    included:
      plan.included?.usd !== undefined
        ? { usd: plan.included.usd }
        : { tokens: plan.included?.tokens },
    overage: plan.overage,
    ...(plan.overageMultiplier !== undefined && {
      overage_multiplier: plan.overageMultiplier,
    }),
    ...(plan.overageUsdPer1M !== undefined && {
      overage_usd_per_1m: plan.overageUsdPer1M,
    }),
  };
}

/** A plan line as JSON: decimals as strings, tokens as a count. */
export function planLineToJson(line: PlanLine) {
  const amounts = {
    amount: formatDecimal(line.amount),
    amount_rounded: formatFixed(
      line.amountRounded,
      INVOICE_ROUNDING.minorUnitDigits,
    ),
  };
  switch (line.kind) {
    case 'list_credit':
      return { kind: line.kind, ...amounts };
    case 'included':
    case 'overage':
      return line.measure === 'usd'
        ? {
            kind: line.kind,
            usd: formatDecimal(line.usd),
            multiplier: formatDecimal(line.multiplier),
            ...amounts,
          }
        : {
            kind: line.kind,
            tokens: line.tokens,
            unit_price_per_1m: formatDecimal(line.unitPrice),
            ...amounts,
          };
  }
}
