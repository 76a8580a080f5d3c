/**
 * Entitlements: each tenant's plan, as `entitlements.<tenant>` in the
 * config states it. A plan names the public models the tenant may use,
 * and may include an allowance per billing period with a policy for what
 * happens past it.
 *
 * The models are checked with the key's own list, before any limit, and
 * a model outside them is refused with 403 `model_not_allowed`, never
 * routed. The allowance is enforced live as one more limit (planLimit),
 * so it reserves, settles, survives reloads and restarts, and sends its
 * threshold webhooks exactly as a configured budget does; the invoice
 * applies it to the month's usage (src/billing/plan-lines.ts).
 *
 * @example
 * entitlements:
 *   acme:                      # a tenant's name or id
 *     included: { tokens: 5000000 }
 *     overage: bill
 *     overageUsdPer1M: '2.50'  # per 1M tokens past the 5M
 */
import type {
  Config,
  OveragePolicy,
  PlanConfig,
} from '../config/config-schema.js';
import type { TenantRecord } from '../storage/store.js';
import type { LimitConfig } from './limits.js';

/**
 * The plan in force for a tenant: the entry under its id, else the one
 * under its name; undefined when it has none.
 */
export function planOf(
  config: Pick<Config, 'entitlements'>,
  tenant: TenantRecord,
): PlanConfig | undefined {
  return config.entitlements[tenant.id] ?? config.entitlements[tenant.name];
}

/** Whether the tenant's plan includes `model` (true when it names none). */
export function tenantMayUse(
  config: Config,
  tenant: TenantRecord,
  model: string,
): boolean {
  const models = planOf(config, tenant)?.models;
  return models === undefined || models.includes(model);
}

/** What every plan allowance's limit id starts with, and no other's. */
export const PLAN_LIMIT_PREFIX = 'plan.';

/** The id of the limit that enforces the allowance of `tenant`'s plan. */
export function planLimitId(tenant: string): string {
  return `${PLAN_LIMIT_PREFIX}${tenant}`;
}

/**
 * What the limit does past the allowance. `bill` serves (the invoice
 * bills the overage); `notify` serves and sends the 100 % webhook.
 */
const ON_EXCEED: Readonly<Record<OveragePolicy, LimitConfig['onExceed']>> = {
  block: 'block',
  bill: 'allow',
  notify: 'notify',
};

/**
 * The limit that enforces a plan's allowance, for the plan under
 * `tenant` (a name or id, as the config keys it): the tenant's money
 * (list charges) or tokens per calendar month in its time zone, the
 * period invoices use. Null for a plan without an allowance.
 *
 * Its id is stable (`plan.<tenant>`), and counters are named by limit
 * id, so a reload that changes the allowance or the policy keeps what
 * the month has counted.
 */
export function planLimit(
  tenant: string,
  plan: PlanConfig,
): LimitConfig | null {
  const { included, overage } = plan;
  if (included === undefined || overage === undefined) return null;
  return {
    id: planLimitId(tenant),
    tenant,
    ...(included.usd !== undefined
      ? { budgetUsd: included.usd }
      : { tokens: included.tokens }),
    per: 'month',
    onExceed: ON_EXCEED[overage],
    ...(plan.thresholds && { thresholds: [...plan.thresholds] }),
    // A plan that never refuses has nothing to protect by refusing while
    // its counter cannot be read: the ledger still records, and the
    // invoice still bills, every request. A blocking plan fails closed,
    // as a cap must.
    onStoreDown: overage === 'block' ? 'closed' : 'open',
  };
}

/** The limits every plan with an allowance derives, in the config's order. */
export function planLimits(
  config: Pick<Config, 'entitlements'>,
): LimitConfig[] {
  return Object.entries(config.entitlements).flatMap(
    ([tenant, plan]) => planLimit(tenant, plan) ?? [],
  );
}
