/**
 * A tenant's invoice for one calendar month in its time zone.
 *
 * One line per public model, token class and unit price. Each line keeps
 * its exact amount and that amount rounded to cents; rounding happens there
 * and only there, half-up (ties away from zero), and the invoice total is
 * the sum of the rounded lines (DESIGN.md, "Money"). Usage in a class with
 * no known price gets a line with no amount, and the invoice says it is
 * incomplete rather than counting that usage as free.
 *
 * A tenant whose plan includes an allowance gets the plan's lines after
 * the usage lines (plan-lines.ts): they take the list charges back out,
 * show what the allowance covered, and bill the overage at the plan's
 * rate. A tenant without one pays the usage lines as they stand.
 */
import type { PlanConfig } from '../config/config-schema.js';
import {
  formatDecimal,
  formatFixed,
  parseDecimal,
  perMillion,
  sumDecimals,
  type Decimal,
} from '../money/decimal.js';
import { TOKEN_CLASSES, type TokenClass } from '../metering/usage.js';
import type { Store, TenantRecord } from '../storage/store.js';
import { monthPeriod } from './periods.js';
import {
  planLines,
  planLineToJson,
  planToJson,
  type PlanLine,
} from './plan-lines.js';
import { INVOICE_ROUNDING, roundLine } from './rounding.js';

export { INVOICE_ROUNDING } from './rounding.js';

export interface InvoiceLine {
  readonly model: string;
  readonly tokenClass: TokenClass;
  readonly tokens: number;
  /** USD per 1M tokens; null when unknown. */
  readonly unitPrice: Decimal | null;
  readonly amount: Decimal | null;
  readonly amountRounded: Decimal | null;
}

export interface Invoice {
  readonly tenant: TenantRecord;
  readonly period: string;
  readonly from: number;
  readonly to: number;
  readonly lines: readonly InvoiceLine[];
  /** The tenant's plan, when it includes an allowance; else null. */
  readonly plan: PlanConfig | null;
  /** The plan's lines, after the usage lines; empty without a plan. */
  readonly planLines: readonly PlanLine[];
  /** Sum of the rounded line amounts, usage and plan lines alike. */
  readonly total: Decimal;
  /** Sum of the exact line amounts, before rounding (for reconciliation). */
  readonly exactTotal: Decimal;
  readonly requests: number;
  readonly estimatedRequests: number;
  /** False when some usage has no known price. */
  readonly complete: boolean;
}

export interface InvoiceOptions {
  /** The tenant's plan (planOf); without one, list charges are billed. */
  readonly plan?: PlanConfig | undefined;
}

export async function buildInvoice(
  store: Store,
  tenant: TenantRecord,
  period: string,
  options: InvoiceOptions = {},
): Promise<Invoice> {
  const { from, to } = monthPeriod(period, tenant.timezone);
  const rows = await store.summarizeUsage({
    scope: { tenantId: tenant.id },
    from,
    to,
    groupBy: ['model'],
    // Retries and fallbacks are ours to pay for, never the tenant's.
    servedOnly: true,
  });

  // Tokens summed per line: model, token class and unit price.
  const quantities = new Map<
    string,
    {
      model: string;
      tokenClass: TokenClass;
      rate: string | null;
      tokens: number;
    }
  >();
  let requests = 0;
  let estimatedRequests = 0;
  let complete = true;
  for (const row of rows) {
    requests += row.requests;
    estimatedRequests += row.estimatedEvents;
    if (!row.tenantChargeKnown) complete = false;
    for (const tokenClass of TOKEN_CLASSES) {
      const tokens = row.tokens[tokenClass];
      if (tokens === 0) continue;
      const model = row.model ?? '';
      const rate = row.tenantRates[tokenClass];
      const key = JSON.stringify([model, tokenClass, rate]);
      const line = quantities.get(key);
      if (line) line.tokens += tokens;
      else quantities.set(key, { model, tokenClass, rate, tokens });
    }
  }

  const priced = [...quantities.values()]
    .map(({ model, tokenClass, rate, tokens }): InvoiceLine => {
      if (rate === null) {
        complete = false;
        return {
          model,
          tokenClass,
          tokens,
          unitPrice: null,
          amount: null,
          amountRounded: null,
        };
      }
      const unitPrice = parseDecimal(rate);
      const amount = perMillion(tokens, unitPrice);
      return {
        model,
        tokenClass,
        tokens,
        unitPrice,
        amount,
        amountRounded: roundLine(amount),
      };
    })
    .sort(compareLines);

  const listExact = sumDecimals(priced.flatMap((l) => l.amount ?? []));
  const listRounded = sumDecimals(priced.flatMap((l) => l.amountRounded ?? []));
  const plan = options.plan?.included === undefined ? null : options.plan;
  const billed = plan
    ? planLines(plan, {
        listExact,
        listRounded,
        tokens: priced.reduce((sum, line) => sum + line.tokens, 0),
      })
    : [];

  return {
    tenant,
    period,
    from,
    to,
    lines: priced,
    plan,
    planLines: billed,
    total: listRounded.plus(sumDecimals(billed.map((l) => l.amountRounded))),
    exactTotal: listExact.plus(sumDecimals(billed.map((l) => l.amount))),
    requests,
    estimatedRequests,
    // Under a token plan the total counts tokens, priced or not, and no
    // list price reaches it: it is whole even where a list line is not.
    complete: plan?.included?.tokens !== undefined || complete,
  };
}

function compareLines(a: InvoiceLine, b: InvoiceLine): number {
  if (a.model !== b.model) return a.model < b.model ? -1 : 1;
  const byClass =
    TOKEN_CLASSES.indexOf(a.tokenClass) - TOKEN_CLASSES.indexOf(b.tokenClass);
  if (byClass !== 0) return byClass;
  if (a.unitPrice === null || b.unitPrice === null) {
    return a.unitPrice === null ? 1 : -1;
  }
  return a.unitPrice.cmp(b.unitPrice);
}

/** The invoice as JSON: decimals as strings, times as ISO 8601. */
export function invoiceToJson(invoice: Invoice) {
  const money = (value: Decimal | null) =>
    value === null ? null : formatDecimal(value);
  return {
    object: 'invoice',
    status: 'draft',
    tenant: { id: invoice.tenant.id, name: invoice.tenant.name },
    period: invoice.period,
    timezone: invoice.tenant.timezone,
    from: new Date(invoice.from).toISOString(),
    to: new Date(invoice.to).toISOString(),
    currency: 'USD',
    rounding: {
      place: INVOICE_ROUNDING.place,
      decimals: INVOICE_ROUNDING.minorUnitDigits,
      mode: INVOICE_ROUNDING.mode,
    },
    lines: invoice.lines.map((line) => ({
      model: line.model,
      token_class: TOKEN_CLASS_NAMES[line.tokenClass],
      tokens: line.tokens,
      unit_price_per_1m: money(line.unitPrice),
      amount: money(line.amount),
      amount_rounded:
        line.amountRounded === null
          ? null
          : formatFixed(line.amountRounded, INVOICE_ROUNDING.minorUnitDigits),
    })),
    // Only for a plan with an allowance: any other invoice reads as it
    // did before plans existed.
    ...(invoice.plan && {
      plan: planToJson(invoice.plan),
      plan_lines: invoice.planLines.map(planLineToJson),
    }),
    total: formatFixed(invoice.total, INVOICE_ROUNDING.minorUnitDigits),
    exact_total: formatDecimal(invoice.exactTotal),
    requests: invoice.requests,
    estimated_requests: invoice.estimatedRequests,
    complete: invoice.complete,
  };
}

/** Names of token classes on the wire and on invoices. */
export const TOKEN_CLASS_NAMES: Readonly<Record<TokenClass, string>> = {
  input: 'input',
  cacheRead: 'cache_read',
  cacheWrite: 'cache_write',
  cacheWrite1h: 'cache_write_1h',
  output: 'output',
};
