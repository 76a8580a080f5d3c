/**
 * Usage summaries with exact costs, from the store's rated rows.
 *
 * The store sums tokens per group and per set of rates; the cost of each
 * such row is `Σ tokens × rate` per class, exact, and a group's cost is the
 * sum of its rows. A row with tokens in a class whose rate is unknown makes
 * its group's cost unknown (null), never zero.
 */
import {
  formatDecimal,
  parseDecimal,
  perMillion,
  type Decimal,
  ZERO,
} from '../money/decimal.js';
import type {
  RateStrings,
  RatedUsageRow,
  UsageDimension,
} from '../storage/store.js';
import { TOKEN_CLASSES, type TokenClass } from './usage.js';

export interface UsageSummary {
  readonly tenantId?: string;
  readonly model?: string;
  readonly endUser?: string | null;
  readonly day?: string;
  readonly requests: number;
  readonly estimatedRequests: number;
  readonly tokens: Readonly<Record<TokenClass | 'reasoning', number>>;
  /** What the tenant is charged; null when any price is unknown. */
  readonly charge: Decimal | null;
  /** What the providers bill us; null when any price is unknown. */
  readonly providerCost: Decimal | null;
}

export function summarize(
  rows: readonly RatedUsageRow[],
  groupBy: readonly UsageDimension[],
): UsageSummary[] {
  const groups = new Map<string, MutableSummary>();
  for (const row of rows) {
    const key = JSON.stringify(groupBy.map((d) => dimensionValue(row, d)));
    let group = groups.get(key);
    if (!group) {
      group = {
        ...(row.tenantId !== undefined && { tenantId: row.tenantId }),
        ...(row.model !== undefined && { model: row.model }),
        ...(row.endUser !== undefined && { endUser: row.endUser }),
        ...(row.day !== undefined && { day: row.day }),
        requests: 0,
        estimatedRequests: 0,
        tokens: {
          input: 0,
          cacheRead: 0,
          cacheWrite: 0,
          cacheWrite1h: 0,
          output: 0,
          reasoning: 0,
        },
        charge: ZERO,
        providerCost: ZERO,
      };
      groups.set(key, group);
    }
    group.requests += row.requests;
    group.estimatedRequests += row.estimatedEvents;
    for (const tokenClass of [...TOKEN_CLASSES, 'reasoning'] as const) {
      group.tokens[tokenClass] += row.tokens[tokenClass];
    }
    group.charge = addCost(
      group.charge,
      row.tenantChargeKnown ? costOf(row, row.tenantRates) : null,
    );
    group.providerCost = addCost(
      group.providerCost,
      row.providerCostKnown ? costOf(row, row.providerRates) : null,
    );
  }
  return [...groups.values()];
}

/** Exact cost of a rated row: `Σ tokens × rate / 10^6`, or null. */
export function costOf(row: RatedUsageRow, rates: RateStrings): Decimal | null {
  let total = ZERO;
  for (const tokenClass of TOKEN_CLASSES) {
    const tokens = row.tokens[tokenClass];
    if (tokens === 0) continue;
    const rate = rates[tokenClass];
    if (rate === null) return null;
    total = total.plus(perMillion(tokens, parseDecimal(rate)));
  }
  return total;
}

/** Decimal for JSON: a canonical string, or null when unknown. */
export function decimalOrNull(value: Decimal | null): string | null {
  return value === null ? null : formatDecimal(value);
}

type MutableSummary = {
  -readonly [K in keyof UsageSummary]: K extends 'tokens'
    ? Record<TokenClass | 'reasoning', number>
    : UsageSummary[K];
};

function addCost(a: Decimal | null, b: Decimal | null): Decimal | null {
  return a === null || b === null ? null : a.plus(b);
}

function dimensionValue(row: RatedUsageRow, dimension: UsageDimension) {
  switch (dimension) {
    case 'tenant':
      return row.tenantId;
    case 'model':
      return row.model;
    case 'endUser':
      return row.endUser;
    case 'day':
      return row.day;
  }
}
