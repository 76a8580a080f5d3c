/**
 * `tollgate tenants ...` and `tollgate keys ...`: the admin operations,
 * straight on the database (the admin HTTP API offers the same).
 */
import type { Config } from '../config/config-schema.js';
import type { Store } from '../storage/store.js';
import { parseKey } from '../tenants/api-keys.js';
import {
  createApiKey,
  createTenant,
  describeKey,
  describeTenant,
  requireTenant,
} from '../tenants/tenants.js';
import { formatTable } from './format-table.js';

export async function createTenantText(
  store: Store,
  name: string,
  timezone: string | undefined,
  json: boolean,
): Promise<string> {
  const tenant = await createTenant(store, {
    name,
    ...(timezone && { timezone }),
  });
  return json
    ? JSON.stringify(describeTenant(tenant), null, 2)
    : `created tenant ${tenant.name} (${tenant.id}, ${tenant.timezone})`;
}

export async function listTenantsText(
  store: Store,
  json: boolean,
): Promise<string> {
  const tenants = (await store.listTenants()).map(describeTenant);
  if (json) return JSON.stringify(tenants, null, 2);
  return formatTable(
    [
      { header: 'name' },
      { header: 'id' },
      { header: 'timezone' },
      { header: 'created' },
    ],
    tenants.map((t) => [t.name, t.id, t.timezone, t.created_at]),
  );
}

export async function createKeyText(
  store: Store,
  /** When given, the key's models must be among the ones it serves. */
  config: Config | undefined,
  tenantName: string,
  options: { name?: string; models?: string[] },
  json: boolean,
): Promise<string> {
  const unknown = config
    ? (options.models ?? []).filter((model) => !(model in config.models))
    : [];
  if (unknown.length > 0) {
    throw new Error(
      `the config serves no model ${unknown.join(', ')}; it serves ` +
        Object.keys(config?.models ?? {}).join(', '),
    );
  }
  const tenant = await requireTenant(store, tenantName);
  const created = await createApiKey(store, tenant, options);
  if (json)
    return JSON.stringify(
      { ...describeKey(created.record), key: created.key },
      null,
      2,
    );
  return [
    `created key ${created.record.id} for tenant ${tenant.name}.`,
    'It is shown this once; store it now:',
    '',
    created.key,
  ].join('\n');
}

export async function listKeysText(
  store: Store,
  tenantName: string,
  json: boolean,
): Promise<string> {
  const tenant = await requireTenant(store, tenantName);
  const keys = (await store.listApiKeys(tenant.id)).map(describeKey);
  if (json) return JSON.stringify(keys, null, 2);
  return formatTable(
    [
      { header: 'id' },
      { header: 'name' },
      { header: 'models' },
      { header: 'created' },
      { header: 'revoked' },
    ],
    keys.map((k) => [
      k.id,
      k.name ?? '',
      k.models?.join(',') ?? 'all',
      k.created_at,
      k.revoked_at ?? '',
    ]),
  );
}

export async function revokeKeyText(
  store: Store,
  tenantName: string,
  key: string,
): Promise<string> {
  // The whole key works as well as its id.
  const keyId = parseKey(key)?.id ?? key;
  const tenant = await requireTenant(store, tenantName);
  const revoked = await store.revokeApiKey(tenant.id, keyId, Date.now());
  if (!revoked) {
    throw new Error(
      `tenant ${tenant.name} has no live key ${keyId} ` +
        `(see: tollgate keys list --tenant ${tenant.name})`,
    );
  }
  return `revoked key ${keyId} of tenant ${tenant.name}`;
}
