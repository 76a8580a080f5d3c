/**
 * `tollgate replay`: drives a running gateway from a trace (or the built-in
 * workload) and prints what each tenant was metered and charged.
 */
import { SingleBar } from 'cli-progress';

import { parseDecimal, sumDecimals, formatDecimal } from '../money/decimal.js';
import { provisionTenants } from '../replay/provision-tenants.js';
import {
  replayWithReport,
  type ReplayReport,
} from '../replay/replay-report.js';
import type { ReplayTenant, StreamMode } from '../replay/run-replay.js';
import {
  builtInWorkload,
  readAzureTrace,
  type TraceRow,
} from '../replay/trace.js';
import { newId } from '../util/ids.js';
import { formatTable } from './format-table.js';

export interface ReplayFlags {
  readonly trace?: string;
  readonly requests: string;
  readonly url: string;
  readonly adminToken?: string;
  readonly keys?: string;
  readonly tenants: string;
  readonly models: string;
  readonly concurrency: string;
  readonly speed: string;
  readonly stream: string;
  readonly limit?: string;
  readonly json?: boolean;
}

export async function replayCommand(flags: ReplayFlags): Promise<void> {
  const rows = await loadRows(flags);
  const tenants = await replayTenants(flags);
  const report = await replayWithProgress({
    gatewayUrl: flags.url.replace(/\/+$/, ''),
    tenants,
    models: list(flags.models, '--models'),
    rows,
    concurrency: positive(flags.concurrency, '--concurrency'),
    speed:
      flags.speed === 'max' ? 'max' : positiveNumber(flags.speed, '--speed'),
    stream: streamMode(flags.stream),
    progress: !flags.json,
    exclusiveTenants: !flags.keys,
  });
  console.log(
    flags.json
      ? JSON.stringify(reportJson(report), null, 2)
      : formatReport(report),
  );
  if (report.failed > 0) process.exitCode = 1;
}

export async function loadRows(flags: {
  trace?: string;
  requests: string;
  limit?: string;
}): Promise<TraceRow[]> {
  const limit =
    flags.limit === undefined ? undefined : positive(flags.limit, '--limit');
  return flags.trace
    ? readAzureTrace(flags.trace, limit)
    : builtInWorkload(limit ?? positive(flags.requests, '--requests'));
}

async function replayTenants(flags: ReplayFlags): Promise<ReplayTenant[]> {
  if (flags.keys) {
    return list(flags.keys, '--keys').map((key, i) => ({
      name: `key-${i}`,
      key,
    }));
  }
  const adminToken = flags.adminToken ?? process.env['TOLLGATE_ADMIN_TOKEN'];
  if (!adminToken) {
    throw new Error(
      'replay needs tenants: pass --admin-token (or set TOLLGATE_ADMIN_TOKEN) ' +
        'to create fresh ones, or --keys with existing tenant keys',
    );
  }
  const run = newId('run').slice(-6);
  const count = positive(flags.tenants, '--tenants');
  const names = Array.from({ length: count }, (_, i) => `replay-${run}-t${i}`);
  return provisionTenants(flags.url.replace(/\/+$/, ''), adminToken, names);
}

/** Runs the replay with a progress bar on a terminal's stderr. */
export async function replayWithProgress(
  options: Parameters<typeof replayWithReport>[0] & { progress: boolean },
): Promise<ReplayReport> {
  const bar =
    options.progress && process.stderr.isTTY
      ? new SingleBar({
          stream: process.stderr,
          format:
            'replay [{bar}] {value}/{total} requests  {failed} failed  {eta_formatted} left',
          hideCursor: true,
        })
      : undefined;
  let failed = 0;
  bar?.start(options.rows.length, 0, { failed });
  try {
    return await replayWithReport({
      ...options,
      onRow: (result) => {
        if (!result.completed) failed++;
        bar?.increment(1, { failed });
      },
    });
  } finally {
    bar?.stop();
  }
}

export function formatReport(report: ReplayReport): string {
  const count = (n: number) => n.toLocaleString('en-US');
  const rows = report.tenants.map((t) => {
    const m = t.metered;
    return [
      t.name,
      String(t.sent),
      String(t.failed),
      m ? String(m.requests) : 'unavailable',
      m ? count(m.inputTokens) : '',
      m ? count(m.cacheReadTokens + m.cacheWriteTokens) : '',
      m ? count(m.outputTokens) : '',
      m ? (m.cost ?? 'unknown') : '',
    ];
  });
  const costs = report.tenants.map((t) => t.metered?.cost ?? null);
  const total = costs.every((c): c is string => c !== null)
    ? `USD ${formatDecimal(sumDecimals(costs.map(parseDecimal)))}`
    : 'unknown (some usage is unpriced or could not be read)';
  const seconds = (report.finishedAt - report.startedAt - 2_000) / 1000;
  return [
    formatTable(
      [
        { header: 'tenant' },
        { header: 'sent', align: 'right' },
        { header: 'failed', align: 'right' },
        { header: 'metered', align: 'right' },
        { header: 'input tokens', align: 'right' },
        { header: 'cached tokens', align: 'right' },
        { header: 'output tokens', align: 'right' },
        { header: 'cost (USD, exact)', align: 'right' },
      ],
      rows,
    ),
    '',
    'sent: requests the replay made; failed: those whose response did not ' +
      'arrive in full; metered: requests the gateway recorded and charged.',
    `${report.rows} requests, ${report.failed} failed, in ` +
      `${seconds.toFixed(1)} s; total cost ${total}`,
    ...failureSummary(report),
  ].join('\n');
}

/** The distinct reasons requests failed, most frequent first. */
function failureSummary(report: ReplayReport): string[] {
  const reasons = new Map<string, number>();
  for (const result of report.results) {
    if (result.error !== null) {
      reasons.set(result.error, (reasons.get(result.error) ?? 0) + 1);
    }
  }
  for (const tenant of report.tenants) {
    if (tenant.meteredError) {
      reasons.set(`reading usage: ${tenant.meteredError}`, 1);
    }
  }
  if (reasons.size === 0) return [];
  return [
    '',
    'Failures:',
    ...[...reasons]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([reason, times]) => `  ${times} × ${reason}`),
  ];
}

export function reportJson(report: ReplayReport) {
  return {
    requests: report.rows,
    completed: report.completed,
    failed: report.failed,
    tenants: report.tenants.map((t) => ({
      name: t.name,
      sent: t.sent,
      completed: t.completed,
      failed: t.failed,
      metered: t.metered
        ? {
            requests: t.metered.requests,
            estimated_requests: t.metered.estimatedRequests,
            input_tokens: t.metered.inputTokens,
            cache_read_tokens: t.metered.cacheReadTokens,
            cache_write_tokens: t.metered.cacheWriteTokens,
            output_tokens: t.metered.outputTokens,
            cost: t.metered.cost,
          }
        : null,
      ...(t.meteredError && { metered_error: t.meteredError }),
    })),
    errors: report.results
      .filter((r) => !r.completed)
      .slice(0, 20)
      .map((r) => ({ row: r.index, request_id: r.requestId, error: r.error })),
  };
}

function list(text: string, flag: string): string[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new Error(`${flag} needs at least one value`);
  return items;
}

function positive(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${flag} ${text} is not a positive whole number`);
  }
  return value;
}

function positiveNumber(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${flag} must be "max" or a positive number, not ${text}`);
  }
  return value;
}

function streamMode(text: string): StreamMode {
  if (text === 'off' || text === 'on' || text === 'mixed') return text;
  throw new Error(`--stream must be off, on or mixed, not ${text}`);
}
