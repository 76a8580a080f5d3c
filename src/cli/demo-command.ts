/**
 * `tollgate demo`: the whole path on one machine with nothing to set up.
 *
 * Starts an embedded gateway (SQLite in a fresh temporary folder) in front
 * of the simulated upstream, creates three tenants, replays a workload
 * through the official `openai` SDK across a few models (one of them
 * Amazon Nova), and prints what each tenant was metered and invoiced.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DateTime } from 'luxon';

import { planOf } from '../admission/entitlements.js';
import { buildInvoice, invoiceToJson } from '../billing/invoice.js';
import { BUILT_IN_CONFIG, parseConfig } from '../config/load-config.js';
import { startGateway } from '../gateway/gateway.js';
import { provisionTenants } from '../replay/provision-tenants.js';
import { requireTenant } from '../tenants/tenants.js';
import { formatInvoice } from './invoice-command.js';
import {
  formatReport,
  loadRows,
  replayWithProgress,
  reportJson,
} from './replay-command.js';

export interface DemoFlags {
  readonly trace?: string;
  readonly requests: string;
  readonly limit?: string;
  readonly concurrency: string;
  readonly json?: boolean;
}

export const DEMO_TENANTS = ['acme', 'globex', 'initech'] as const;
export const DEMO_MODELS = [
  'gpt-4o-mini',
  'nova-lite',
  'claude-sonnet-4-5',
  'gpt-4o',
] as const;

export async function demoCommand(flags: DemoFlags): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-demo-'));
  const database = join(folder, 'tollgate.db');
  const config = parseConfig(
    {
      ...BUILT_IN_CONFIG,
      server: { port: 0 },
      database: { path: database },
      logging: { level: 'warn' },
    },
    'the demo config',
  );
  const adminToken = randomBytes(24).toString('base64url');
  const gateway = await startGateway({ config, adminToken });
  try {
    const rows = await loadRows(flags);
    const say = (text: string) => {
      if (!flags.json) console.log(text);
    };
    say(
      `Tollgate demo: gateway ${gateway.url}, database ${database}\n` +
        `Replaying ${rows.length} requests ` +
        `(${flags.trace ?? 'built-in workload, seed 2024'}) for tenants ` +
        `${DEMO_TENANTS.join(', ')} across ${DEMO_MODELS.join(', ')}.\n`,
    );
    const tenants = await provisionTenants(
      gateway.url,
      adminToken,
      DEMO_TENANTS,
    );
    const report = await replayWithProgress({
      gatewayUrl: gateway.url,
      tenants,
      models: DEMO_MODELS,
      rows,
      concurrency: Number(flags.concurrency),
      speed: 'max',
      stream: 'mixed',
      progress: !flags.json,
      exclusiveTenants: true,
    });

    const period = DateTime.utc().toFormat('yyyy-MM');
    const invoices = await Promise.all(
      DEMO_TENANTS.map(async (name) => {
        const tenant = await requireTenant(gateway.store, name);
        return buildInvoice(gateway.store, tenant, period, {
          plan: planOf(config, tenant),
        });
      }),
    );
    if (flags.json) {
      console.log(
        JSON.stringify(
          { replay: reportJson(report), invoices: invoices.map(invoiceToJson) },
          null,
          2,
        ),
      );
    } else {
      say(formatReport(report));
      for (const invoice of invoices) say(`\n${formatInvoice(invoice)}`);
      say(
        `\nThe ledger is in ${database}; inspect it with\n` +
          `  npx tollgate invoice --db ${database} --tenant acme --period ${period}`,
      );
    }
    if (report.failed > 0) process.exitCode = 1;
  } finally {
    await gateway.close();
  }
}
