/**
 * Reads back what the gateway metered for each replay tenant, through the
 * same usage API any tenant uses.
 */
import { request } from 'undici';

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
  const response = await request(`${gatewayUrl}/v1/usage?${query.toString()}`, {
    headers: { authorization: `Bearer ${tenant.key}` },
  });
  const body = (await response.body.json()) as { data?: UsageRow[] };
  if (response.statusCode !== 200 || !body.data) {
    throw new Error(
      `usage for ${tenant.name}: HTTP ${response.statusCode} ${JSON.stringify(body)}`,
    );
  }
  const row = body.data[0];
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
