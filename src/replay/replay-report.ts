/**
 * Runs a replay and reports, per tenant, what was sent and what the gateway
 * metered and charged.
 *
 * Tenants created for the replay have no other traffic, so their usage
 * over the run's window is the replay's. Existing tenants (`--keys`) may
 * have other traffic at the same time; for them the replay adds up the
 * gateway's record of each of its own requests instead.
 */
import {
  fetchRequestsUsage,
  fetchTenantUsage,
  type MeteredUsage,
} from './tenant-usage.js';
import { runReplay, type ReplayOptions, type RowResult } from './run-replay.js';

export interface TenantReport {
  readonly name: string;
  readonly sent: number;
  readonly completed: number;
  readonly failed: number;
  /** What the gateway metered; undefined if it could not be read. */
  readonly metered: MeteredUsage | undefined;
  readonly meteredError: string | undefined;
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
  options: ReplayOptions & {
    /** The tenants carry no traffic but the replay's. */
    readonly exclusiveTenants: boolean;
  },
): Promise<ReplayReport> {
  // Usage is dated when the gateway serves it; the window brackets the run
  // with a second of slack for clocks that tick between processes.
  const startedAt = Date.now() - 1_000;
  const results = await runReplay(options);
  const finishedAt = Date.now() + 1_000;

  const tenants = await Promise.all(
    options.tenants.map(async (tenant, i): Promise<TenantReport> => {
      const mine = results.filter((r) => r.tenant === i);
      const report = {
        name: tenant.name,
        sent: mine.length,
        completed: mine.filter((r) => r.completed).length,
        failed: mine.filter((r) => !r.completed).length,
      };
      try {
        const metered = options.exclusiveTenants
          ? await fetchTenantUsage(
              options.gatewayUrl,
              tenant,
              startedAt,
              finishedAt,
            )
          : await fetchRequestsUsage(
              options.gatewayUrl,
              tenant,
              mine.flatMap((r) => (r.requestId === null ? [] : [r.requestId])),
            );
        return { ...report, metered, meteredError: undefined };
      } catch (error) {
        return {
          ...report,
          metered: undefined,
          meteredError: error instanceof Error ? error.message : String(error),
        };
      }
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
