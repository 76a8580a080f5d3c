/**
 * Limits managed at run time, through the admin API and the CLI, beside
 * the config file's. They are kept in the database, so every replica
 * sharing it sees them; each gateway reloads them every few seconds and
 * at once after a change it made itself. A limit of the config file,
 * or one a plan's allowance is enforced through, cannot be changed this
 * way: its id is taken.
 */
import type { Logger } from 'pino';

import type { Config } from '../config/config-schema.js';
import type { Store } from '../storage/store.js';
import type { Admission } from './admission.js';
import { PLAN_LIMIT_PREFIX, planLimits } from './entitlements.js';
import { limitProblems, limitSchema, type LimitConfig } from './limits.js';

/** How often a gateway reloads the managed limits. */
export const RELOAD_INTERVAL_MS = 5_000;

export class LimitError extends Error {
  override readonly name = 'LimitError';
  /** Which field is wrong, where one is. */
  readonly field: string | null;
  constructor(message: string, field: string | null = null) {
    super(message);
    this.field = field;
  }
}

/**
 * Checks a limit as given to the admin API or CLI, against the config it
 * will be in force with. Throws LimitError with every problem named.
 */
export function checkLimit(
  id: string,
  input: unknown,
  config: Config,
): LimitConfig {
  if (config.limits.some((limit) => limit.id === id)) {
    throw new LimitError(
      `the limit "${id}" is defined in the config file; change it there`,
      'id',
    );
  }
  const plan = planLimits(config).find((limit) => limit.id === id);
  if (plan?.tenant !== undefined) {
    throw new LimitError(
      `the limit "${id}" enforces the allowance of the plan of ` +
        `"${plan.tenant}"; change entitlements.${plan.tenant} in the ` +
        'config file',
      'id',
    );
  }
  // The whole namespace, not only the plans in force today: a managed
  // limit under a plan's id would be shadowed by a plan added later.
  if (id.startsWith(PLAN_LIMIT_PREFIX)) {
    throw new LimitError(
      `limit ids starting "${PLAN_LIMIT_PREFIX}" are kept for plans' ` +
        'allowances; name the limit otherwise',
      'id',
    );
  }
  const given = (input as { id?: unknown } | null)?.id;
  if (given !== undefined && given !== id) {
    throw new LimitError(
      `the body names the limit ${JSON.stringify(given)}, the path "${id}"; ` +
        'leave id out of the body, or make the two agree',
      null,
    );
  }
  const body =
    typeof input === 'object' && input !== null && !Array.isArray(input)
      ? { ...input, id }
      : input;
  const parsed = limitSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || null;
    throw new LimitError(
      parsed.error.issues
        .map((i) => (i.path.length ? `${i.path.join('.')}: ` : '') + i.message)
        .join('; '),
      field,
    );
  }
  const problems = limitProblems(parsed.data, {
    models: Object.keys(config.models),
    webhooks: config.webhooks !== undefined,
  });
  if (problems[0]) {
    throw new LimitError(
      problems.map((p) => `${p.field}: ${p.message}`).join('; '),
      problems[0].field,
    );
  }
  return parsed.data;
}

/** A problem of a limit's scope, with the field it is in. */
export interface ScopeProblem {
  readonly field: 'tenant' | 'key';
  readonly message: string;
}

/**
 * What a limit's scope names that does not exist: a tenant (by id or
 * name, exactly, as admission matches it) or a key (by id), or a key of
 * another tenant than the limit's. Such a limit counts nothing, without
 * a word. Empty when the scope is fine. The key is taken to be shaped
 * as an id (limitSchema), so naming it cannot echo a secret.
 */
export async function scopeProblems(
  limit: LimitConfig,
  store: Store,
): Promise<ScopeProblem[]> {
  const problems: ScopeProblem[] = [];
  const tenant =
    limit.tenant === undefined
      ? undefined
      : await store.findTenant(limit.tenant);
  if (limit.tenant !== undefined && tenant === undefined) {
    problems.push({
      field: 'tenant',
      message:
        `no tenant has the name or id "${limit.tenant}"` +
        (await nearTenant(limit.tenant, store)),
    });
  }
  if (limit.key !== undefined) {
    const key = await store.findApiKey(limit.key);
    if (!key) {
      problems.push({ field: 'key', message: `no key "${limit.key}"` });
    } else if (key.revokedAt !== null) {
      problems.push({
        field: 'key',
        message: `the key "${limit.key}" is revoked: no request can use it`,
      });
    } else if (tenant && key.tenantId !== tenant.id) {
      problems.push({
        field: 'key',
        message:
          `the key "${limit.key}" is not a key of the tenant ` +
          `"${limit.tenant ?? ''}": no request can match both`,
      });
    }
  }
  return problems;
}

/**
 * "; did you mean …" for a tenant named but for case, else nothing:
 * names and ids match exactly, so "Acme" names no tenant "acme".
 */
async function nearTenant(name: string, store: Store): Promise<string> {
  const lower = name.toLowerCase();
  const near = (await store.listTenants())
    .flatMap((tenant) => [tenant.name, tenant.id])
    .filter((candidate) => candidate.toLowerCase() === lower);
  if (near.length === 0) return '';
  return (
    '; the match is case-sensitive: did you mean ' +
    near.map((candidate) => `"${candidate}"`).join(' or ') +
    '?'
  );
}

/**
 * checkLimit, and then the limit's scope against the tenants and keys
 * in `store`: what the admin API and the CLI accept. Throws LimitError
 * naming the first field at fault and every problem.
 */
export async function checkManagedLimit(
  id: string,
  input: unknown,
  config: Config,
  store: Store,
): Promise<LimitConfig> {
  const limit = checkLimit(id, input, config);
  const problems = await scopeProblems(limit, store);
  if (problems[0]) {
    throw new LimitError(
      problems.map((p) => `${p.field}: ${p.message}`).join('; '),
      problems[0].field,
    );
  }
  return limit;
}

/**
 * The limits in force: the config's, those its plans' allowances derive,
 * and the managed ones, as stored.
 */
/** Where a limit in force comes from: the config file, a plan, or the API. */
export function limitSource(
  config: Config,
  id: string,
): 'config' | 'plan' | 'managed' {
  if (config.limits.some((limit) => limit.id === id)) return 'config';
  return id.startsWith(PLAN_LIMIT_PREFIX) ? 'plan' : 'managed';
}

export async function limitsInForce(
  config: Config,
  store: Store,
  logger: Logger,
): Promise<LimitConfig[]> {
  const plans = await plansInForce(config, store, logger);
  const managed: LimitConfig[] = [];
  for (const stored of await store.listLimits()) {
    try {
      managed.push(
        checkLimit(stored.id, JSON.parse(stored.definition) as unknown, config),
      );
    } catch (error) {
      // A limit stored under an older config (a model since removed) is
      // left out rather than stopping the gateway, and said loudly.
      logger.error(
        { limit: stored.id, reason: (error as Error).message },
        'a managed limit does not fit this config and is not in force',
      );
    }
  }
  return [...config.limits, ...plans, ...managed];
}

const warnedShadowed = new WeakSet<Config>();

/**
 * The limits of the plans' allowances. A tenant keyed by both its id and
 * its name has the plan under its id (planOf), so the allowance under its
 * name is left out, or both would count its requests. Only a tenant that
 * exists can be keyed by id, so looking the ids up now is enough.
 */
async function plansInForce(
  config: Config,
  store: Store,
  logger: Logger,
): Promise<LimitConfig[]> {
  const limits = planLimits(config);
  const shadowed = new Set<string>();
  for (const key of Object.keys(config.entitlements)) {
    if (!key.startsWith('ten_')) continue;
    const tenant = await store.findTenant(key);
    if (tenant && tenant.id === key && tenant.name in config.entitlements) {
      shadowed.add(tenant.name);
    }
  }
  // Said once per config, not on every reload of the managed limits.
  if (shadowed.size > 0 && !warnedShadowed.has(config)) {
    warnedShadowed.add(config);
    logger.warn(
      { tenants: [...shadowed] },
      "a tenant's plan is given under both its id and its name; the one " +
        'under its id is in force',
    );
  }
  return limits.filter(
    (limit) => limit.tenant === undefined || !shadowed.has(limit.tenant),
  );
}

/** Reloads the managed limits into `admission` now and every few seconds. */
export function watchManagedLimits(
  /** The config in force, read afresh on each reload. */
  config: () => Config,
  store: Store,
  admission: Admission,
  logger: Logger,
): { reload(): Promise<void>; stop(): void } {
  let last = JSON.stringify(admission.limits);
  const reload = async () => {
    const limits = await limitsInForce(config(), store, logger);
    const text = JSON.stringify(limits);
    if (text === last) return;
    last = text;
    admission.setLimits(limits);
    logger.info({ limits: limits.map((l) => l.id) }, 'limits reloaded');
  };
  const timer = setInterval(() => {
    reload().catch((error: unknown) =>
      logger.error({ err: error }, 'could not reload the managed limits'),
    );
  }, RELOAD_INTERVAL_MS);
  timer.unref();
  return { reload, stop: () => clearInterval(timer) };
}
