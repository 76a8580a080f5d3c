/**
 * `tollgate invoice --tenant T --period YYYY-MM`: a tenant's invoice from
 * the ledger, as a table or (`--json`) as the API returns it.
 */
import {
  buildInvoice,
  invoiceToJson,
  TOKEN_CLASS_NAMES,
  type Invoice,
} from '../billing/invoice.js';
import { DateTime } from 'luxon';

import { formatDecimal, formatFixed } from '../money/decimal.js';
import type { Store } from '../storage/store.js';
import { requireTenant } from '../tenants/tenants.js';
import { formatTable } from './format-table.js';

export async function invoiceText(
  store: Store,
  tenantName: string,
  period: string | undefined,
  json: boolean,
): Promise<string> {
  const tenant = await requireTenant(store, tenantName);
  const month =
    period ?? DateTime.now().setZone(tenant.timezone).toFormat('yyyy-MM');
  const invoice = await buildInvoice(store, tenant, month);
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
    '',
    `Total: USD ${formatFixed(invoice.total, 2)}  ` +
      `(sum of lines rounded half-up to the cent; exact ` +
      `${formatDecimal(invoice.exactTotal)})`,
    ...(invoice.complete
      ? []
      : ['Incomplete: some usage has no known price and is not in the total.']),
  ].join('\n');
}

function plural(count: number, noun: string): string {
  return `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`;
}
