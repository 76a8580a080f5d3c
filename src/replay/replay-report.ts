/**
 * Runs a replay and reports, per tenant, what was sent and what the gateway
 * metered and charged.
 */
import { fetchTenantUsage, type MeteredUsage } from './tenant-usage.js';
import { runReplay, type ReplayOptions, type RowResult } from './run-replay.js';

export interface TenantReport {
  readonly name: string;
  readonly sent: number;
  readonly completed: number;
  readonly failed: number;
  readonly metered: MeteredUsage;
}

export interface ReplayReport {
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly rows: number;
  readonly completed: number;
  readonly failed: number;
  readonly tenants: readonly TenantReport[];
  readonly results: readonly RowResult[];
}

export async function replayWithReport(
  options: ReplayOptions,
): Promise<ReplayReport> {
  // Usage is dated when the gateway serves it; the window brackets the run
  // with a second of slack for clocks that tick between processes.
  const startedAt = Date.now() - 1_000;
  const results = await runReplay(options);
  const finishedAt = Date.now() + 1_000;

  const tenants = await Promise.all(
    options.tenants.map(async (tenant, i): Promise<TenantReport> => {
      const mine = results.filter((r) => r.tenant === i);
      return {
        name: tenant.name,
        sent: mine.length,
        completed: mine.filter((r) => r.completed).length,
        failed: mine.filter((r) => !r.completed).length,
        metered: await fetchTenantUsage(
          options.gatewayUrl,
          tenant,
          startedAt,
          finishedAt,
        ),
      };
    }),
  );
  return {
    startedAt,
    finishedAt,
    rows: results.length,
    completed: results.filter((r) => r.completed).length,
    failed: results.filter((r) => !r.completed).length,
    tenants,
    results,
  };
}
