/**
 * Tenants and their keys: the operations the admin API and CLI share.
 */
import { ApiError } from '../gateway/api-error.js';
import {
  ConflictError,
  type ApiKeyRecord,
  type Store,
  type TenantRecord,
} from '../storage/store.js';
import { newId } from '../util/ids.js';
import { generateKey } from './api-keys.js';

const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export async function createTenant(
  store: Store,
  input: { name: string; timezone?: string },
): Promise<TenantRecord> {
  if (!TENANT_NAME.test(input.name)) {
    throw new ApiError(
      'invalid_value',
      'A tenant name is 1-64 letters, digits, dots, dashes or underscores, ' +
        'starting with a letter or digit.',
      { param: 'name' },
    );
  }
  // Names and ids share one lookup (`--tenant` takes either), so a name
  // must never be mistaken for another tenant's id.
  if (input.name.startsWith('ten_')) {
    throw new ApiError(
      'invalid_value',
      'A tenant name may not start with "ten_", which marks tenant ids.',
      { param: 'name' },
    );
  }
  const timezone = input.timezone ?? 'UTC';
  if (!isValidTimeZone(timezone)) {
    throw new ApiError(
      'invalid_value',
      `Unknown time zone "${timezone}"; use an IANA name such as ` +
        '"Europe/Paris" or "UTC".',
      { param: 'timezone' },
    );
  }
  const tenant: TenantRecord = {
    id: newId('ten'),
    name: input.name,
    timezone,
    createdAt: Date.now(),
  };
  try {
    await store.createTenant(tenant);
  } catch (error) {
    if (error instanceof ConflictError) {
      throw new ApiError('conflict', error.message, { param: 'name' });
    }
    throw error;
  }
  return tenant;
}

/** Finds a tenant by id or name, or refuses with 404. */
export async function requireTenant(
  store: Store,
  idOrName: string,
): Promise<TenantRecord> {
  const tenant = await store.findTenant(idOrName);
  if (!tenant) {
    throw new ApiError('not_found', `No tenant "${idOrName}".`);
  }
  return tenant;
}

export interface CreatedKey {
  readonly record: ApiKeyRecord;
  /** The full key; this is the only time it exists outside its owner. */
  readonly key: string;
}

export async function createApiKey(
  store: Store,
  tenant: TenantRecord,
  input: { name?: string; models?: readonly string[] },
): Promise<CreatedKey> {
  const { id, key, secretHash } = generateKey(newId('key'));
  const record: ApiKeyRecord = {
    id,
    tenantId: tenant.id,
    name: input.name ?? null,
    secretHash,
    models: input.models ? [...input.models] : null,
    createdAt: Date.now(),
    revokedAt: null,
  };
  await store.createApiKey(record);
  return { record, key };
}

/** What may be shown of a key: never its secret or hash. */
export function describeKey(record: ApiKeyRecord) {
  return {
    id: record.id,
    tenant_id: record.tenantId,
    name: record.name,
    models: record.models,
    created_at: new Date(record.createdAt).toISOString(),
    revoked_at:
      record.revokedAt === null
        ? null
        : new Date(record.revokedAt).toISOString(),
  };
}

export function describeTenant(tenant: TenantRecord) {
  return {
    id: tenant.id,
    name: tenant.name,
    timezone: tenant.timezone,
    created_at: new Date(tenant.createdAt).toISOString(),
  };
}
