/**
 * Reads back what the gateway metered for a replay's tenants, through the
 * same APIs any tenant uses.
 */
import { request } from 'undici';

import { formatDecimal, parseDecimal, sumDecimals } from '../money/decimal.js';
import type { ReplayTenant } from './run-replay.js';

export interface MeteredUsage {
  readonly requests: number;
  readonly estimatedRequests: number;
  readonly inputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  /** Exact decimal string; null when some usage has no known price. */
  readonly cost: string | null;
}

interface UsageRow {
  requests: number;
  estimated_requests: number;
  input_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cache_write_1h_tokens: number;
  output_tokens: number;
  cost: string | null;
}

/** Usage of `tenant` in [from, to), as the gateway reports it. */
export async function fetchTenantUsage(
  gatewayUrl: string,
  tenant: ReplayTenant,
  from: number,
  to: number,
): Promise<MeteredUsage> {
  const query = new URLSearchParams({
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
  });
  const body = (await getJson(
    `${gatewayUrl}/v1/usage?${query.toString()}`,
    tenant,
  )) as { data?: UsageRow[] };
  const row = body.data?.[0];
  return {
    requests: row?.requests ?? 0,
    estimatedRequests: row?.estimated_requests ?? 0,
    inputTokens: row?.input_tokens ?? 0,
    cacheReadTokens: row?.cache_read_tokens ?? 0,
    cacheWriteTokens:
      (row?.cache_write_tokens ?? 0) + (row?.cache_write_1h_tokens ?? 0),
    outputTokens: row?.output_tokens ?? 0,
    cost: row ? row.cost : '0',
  };
}

interface RequestRecord {
  attempts: {
    estimated: boolean;
    usage: {
      input_tokens: number;
      cache_read_tokens: number;
      cache_write_tokens: number;
      cache_write_1h_tokens: number;
      output_tokens: number;
    };
    cost: string | null;
  }[];
}

/** Lookups in flight at once when reading requests one by one. */
const LOOKUPS_AT_ONCE = 16;

/** The sum of the gateway's records of these requests of `tenant`. */
export async function fetchRequestsUsage(
  gatewayUrl: string,
  tenant: ReplayTenant,
  requestIds: readonly string[],
): Promise<MeteredUsage> {
  const records: RequestRecord[] = [];
  let next = 0;
  const worker = async () => {
    while (next < requestIds.length) {
      const id = requestIds[next++];
      if (id === undefined) break;
      records.push(
        (await getJson(
          `${gatewayUrl}/v1/requests/${id}`,
          tenant,
        )) as RequestRecord,
      );
    }
  };
  await Promise.all(Array.from({ length: LOOKUPS_AT_ONCE }, worker));

  const attempts = records.flatMap((record) => record.attempts);
  const costs = attempts.map((a) => a.cost);
  const sum = (
    pick: (usage: RequestRecord['attempts'][number]['usage']) => number,
  ) => attempts.reduce((total, a) => total + pick(a.usage), 0);
  return {
    requests: records.filter((r) => r.attempts.length > 0).length,
    estimatedRequests: attempts.filter((a) => a.estimated).length,
    inputTokens: sum((u) => u.input_tokens),
    cacheReadTokens: sum((u) => u.cache_read_tokens),
    cacheWriteTokens: sum(
      (u) => u.cache_write_tokens + u.cache_write_1h_tokens,
    ),
    outputTokens: sum((u) => u.output_tokens),
    cost: costs.every((c): c is string => c !== null)
      ? formatDecimal(sumDecimals(costs.map(parseDecimal)))
      : null,
  };
}

async function getJson(url: string, tenant: ReplayTenant): Promise<unknown> {
  const response = await request(url, {
    headers: { authorization: `Bearer ${tenant.key}` },
  });
  const body: unknown = await response.body.json();
  if (response.statusCode !== 200) {
    throw new Error(
      `${tenant.name}: HTTP ${response.statusCode} ${JSON.stringify(body)}`,
    );
  }
  return body;
}
