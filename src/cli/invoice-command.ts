/**
 * `tollgate invoice --tenant T --period YYYY-MM`: a tenant's invoice from
 * the ledger, as a table or (`--json`) as the API returns it. Plans live
 * in the config file, not the ledger: the tenant's plan applies when the
 * command is given the `--config` its gateway runs with.
 */
import { DateTime } from 'luxon';

import { planOf } from '../admission/entitlements.js';
import {
  buildInvoice,
  invoiceToJson,
  TOKEN_CLASS_NAMES,
  type Invoice,
} from '../billing/invoice.js';
import type { PlanLine } from '../billing/plan-lines.js';
import type { Config, PlanConfig } from '../config/config-schema.js';
import { formatDecimal, formatFixed } from '../money/decimal.js';
import type { Store } from '../storage/store.js';
import { requireTenant } from '../tenants/tenants.js';
import { formatTable } from './format-table.js';

export async function invoiceText(
  store: Store,
  tenantName: string,
  period: string | undefined,
  json: boolean,
  /** Where the tenant's plan is read from; without it, list charges. */
  config?: Pick<Config, 'entitlements'>,
): Promise<string> {
  const tenant = await requireTenant(store, tenantName);
  const month =
    period ?? DateTime.now().setZone(tenant.timezone).toFormat('yyyy-MM');
  const invoice = await buildInvoice(store, tenant, month, {
    plan: config && planOf(config, tenant),
  });
  return json
    ? JSON.stringify(invoiceToJson(invoice), null, 2)
    : formatInvoice(invoice);
}

export function formatInvoice(invoice: Invoice): string {
  const table = formatTable(
    [
      { header: 'model' },
      { header: 'class' },
      { header: 'tokens', align: 'right' },
      { header: 'USD/1M', align: 'right' },
      { header: 'exact amount', align: 'right' },
      { header: 'amount', align: 'right' },
    ],
    invoice.lines.map((line) => [
      line.model,
      TOKEN_CLASS_NAMES[line.tokenClass],
      line.tokens.toLocaleString('en-US'),
      line.unitPrice === null ? 'unknown' : formatDecimal(line.unitPrice),
      line.amount === null ? 'unknown' : formatDecimal(line.amount),
      line.amountRounded === null
        ? 'unknown'
        : formatFixed(line.amountRounded, 2),
    ]),
  );
  const header =
    `Invoice (draft) for ${invoice.tenant.name}, ${invoice.period} ` +
    `(${invoice.tenant.timezone}): ${plural(invoice.requests, 'request')}` +
    (invoice.estimatedRequests > 0
      ? `, ${invoice.estimatedRequests} of them with estimated usage`
      : '');
  return [
    header,
    '',
    invoice.lines.length > 0 ? table : '(no usage in this period)',
    ...(invoice.plan
      ? ['', ...formatPlan(invoice.plan, invoice.planLines)]
      : []),
    '',
    `Total: USD ${formatFixed(invoice.total, 2)}  ` +
      `(sum of lines rounded half-up to the cent; exact ` +
      `${formatDecimal(invoice.exactTotal)})`,
    ...(invoice.complete
      ? []
      : ['Incomplete: some usage has no known price and is not in the total.']),
  ].join('\n');
}

/** The plan's terms, then its lines, as a second table. */
function formatPlan(plan: PlanConfig, lines: readonly PlanLine[]): string[] {
  const included =
    plan.included?.usd !== undefined
      ? `USD ${plan.included.usd} of list charges`
      : `${(plan.included?.tokens ?? 0).toLocaleString('en-US')} tokens`;
  const past = {
    block: 'requests past it are refused',
    notify: 'requests past it are served, with a webhook, and not billed',
    bill:
      plan.overageMultiplier !== undefined
        ? `overage billed at ${plan.overageMultiplier} × list`
        : `overage billed at USD ${plan.overageUsdPer1M ?? ''} per 1M tokens`,
  }[plan.overage ?? 'block'];
  const rows = lines.map((line): string[] => {
    const amounts = [
      formatDecimal(line.amount),
      formatFixed(line.amountRounded, 2),
    ];
    if (line.kind === 'list_credit') {
      return ['list charges above, replaced by the plan', '', '', ...amounts];
    }
    return line.measure === 'usd'
      ? [
          `${line.kind} (USD of list charges)`,
          formatDecimal(line.usd),
          `× ${formatDecimal(line.multiplier)}`,
          ...amounts,
        ]
      : [
          `${line.kind} (tokens)`,
          line.tokens.toLocaleString('en-US'),
          `${formatDecimal(line.unitPrice)} USD/1M`,
          ...amounts,
        ];
  });
  return [
    `Plan: ${included} included per month; ${past}.`,
    '',
    formatTable(
      [
        { header: 'plan line' },
        { header: 'quantity', align: 'right' },
        { header: 'rate', align: 'right' },
        { header: 'exact amount', align: 'right' },
        { header: 'amount', align: 'right' },
      ],
      rows,
    ),
  ];
}

function plural(count: number, noun: string): string {
  return `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`;
}
