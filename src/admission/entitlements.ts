/**
 * Entitlements: which public models a tenant's plan includes. They are
 * checked with the key's own list, before any limit, and a model outside
 * them is refused with 403 `model_not_allowed`, never routed.
 */
import type { Config } from '../config/config-schema.js';
import type { TenantRecord } from '../storage/store.js';

/** Whether the tenant's plan includes `model` (true when it names none). */
export function tenantMayUse(
  config: Config,
  tenant: TenantRecord,
  model: string,
): boolean {
  const entitlement =
    config.entitlements[tenant.id] ?? config.entitlements[tenant.name];
  return entitlement === undefined || entitlement.models.includes(model);
}
