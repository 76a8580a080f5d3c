/**
 * Creates the tenants a replay sends as, through the admin API, each with
 * a fresh key, so a replay's usage is its own and nobody else's.
 */
import { request } from 'undici';

import type { ReplayTenant } from './run-replay.js';

export async function provisionTenants(
  gatewayUrl: string,
  adminToken: string,
  names: readonly string[],
): Promise<ReplayTenant[]> {
  const tenants: ReplayTenant[] = [];
  for (const name of names) {
    await adminPost(gatewayUrl, adminToken, '/admin/v1/tenants', { name });
    const key = (await adminPost(
      gatewayUrl,
      adminToken,
      `/admin/v1/tenants/${encodeURIComponent(name)}/keys`,
      { name: 'replay' },
    )) as { key: string };
    tenants.push({ name, key: key.key });
  }
  return tenants;
}

async function adminPost(
  gatewayUrl: string,
  adminToken: string,
  path: string,
  body: unknown,
): Promise<unknown> {
  const response = await request(`${gatewayUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${adminToken}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  const answer = await response.body.json();
  if (response.statusCode !== 201) {
    throw new Error(
      `POST ${path}: HTTP ${response.statusCode} ${JSON.stringify(answer)}`,
    );
  }
  return answer;
}
