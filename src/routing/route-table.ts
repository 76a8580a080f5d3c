/**
 * Public model names (aliases) and the deployments behind them, with the
 * rules that order them for each request: strategy, flags, per-tenant
 * overrides, and the retry, fallback and breaker policy that walks them.
 *
 * A table is built whole from a validated config and never changed; a
 * reload builds a new one and swaps it in (router.ts).
 */
import type {
  Config,
  DeploymentConfig,
  FallbackTrigger,
  ModelConfig,
} from '../config/config-schema.js';
import type { OperatorPrices } from '../pricing/price-book.js';
import type { ProviderClient } from '../providers/provider-registry.js';

export interface Deployment {
  readonly id: string;
  readonly alias: string;
  readonly providerId: string;
  /** The model id sent upstream. */
  readonly upstreamModel: string;
  /** Where its price is looked up in the price book. */
  readonly priceKey: string;
  readonly client: ProviderClient;
  /** Its share under `weighted`; null when the config gives none. */
  readonly weight: number | null;
  readonly qualityTier: number | null;
}

export type RouteStrategy = 'ordered' | 'weighted' | 'cheapest' | 'fastest';

export interface RouteFlag {
  readonly id: string;
  readonly deployment: Deployment;
  /** Buckets out of 10,000 that are flagged (percent × 100). */
  readonly buckets: number;
  readonly stickyBy: 'endUser' | 'tenant' | 'request';
  /** Tenant names and ids it applies to; null for all. */
  readonly tenants: ReadonlySet<string> | null;
}

export interface RetryPolicy {
  readonly retries: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxRetryAfterMs: number;
  readonly fallbackOn: ReadonlySet<FallbackTrigger>;
  readonly maxAttempts: number;
  readonly attemptTimeoutMs: number | null;
  readonly timeoutMs: number | null;
}

export interface BreakerPolicy {
  readonly failures: number;
  readonly openMs: number;
}

export interface Route {
  readonly alias: string;
  /** In their listed order: the fallback order. */
  readonly deployments: readonly Deployment[];
  readonly strategy: RouteStrategy;
  readonly flags: readonly RouteFlag[];
  /** By tenant name or id: the deployments serving it, in order. */
  readonly tenants: ReadonlyMap<string, readonly Deployment[]>;
  readonly objective: {
    readonly latencyP95Ms: number | null;
    readonly minQualityTier: number | null;
    readonly windowMs: number;
  };
  readonly retry: RetryPolicy;
  readonly breaker: BreakerPolicy | null;
  /**
   * The price key the tenant is charged at, whichever deployment served;
   * null to charge the served deployment's price.
   */
  readonly tenantPriceKey: string | null;
  /** Sum of weights and the running sums, for `weighted` picks. */
  readonly weights: { readonly total: number; readonly upTo: number[] };
}

export class RouteTable {
  readonly #routes: ReadonlyMap<string, Route>;

  private constructor(routes: Map<string, Route>) {
    this.#routes = routes;
  }

  static fromConfig(
    config: Config,
    clients: ReadonlyMap<string, ProviderClient>,
  ): RouteTable {
    const routes = new Map<string, Route>();
    for (const [alias, model] of Object.entries(config.models)) {
      routes.set(alias, buildRoute(alias, model, clients));
    }
    return new RouteTable(routes);
  }

  resolve(alias: string): Route | undefined {
    return this.#routes.get(alias);
  }

  aliases(): string[] {
    return [...this.#routes.keys()];
  }
}

function buildRoute(
  alias: string,
  model: ModelConfig,
  clients: ReadonlyMap<string, ProviderClient>,
): Route {
  const deployments = model.deployments.map((d): Deployment => {
    const client = clients.get(d.provider);
    if (!client) throw new Error(`no client for provider ${d.provider}`);
    return {
      id: deploymentId(alias, d),
      alias,
      providerId: d.provider,
      upstreamModel: d.model,
      priceKey: priceKeyOf(alias, d),
      client,
      weight: d.weight ?? null,
      qualityTier: d.qualityTier ?? null,
    };
  });
  const byId = new Map(deployments.map((d) => [d.id, d]));
  const find = (id: string): Deployment => {
    const deployment = byId.get(id);
    if (!deployment) throw new Error(`no deployment ${id} in ${alias}`);
    return deployment;
  };
  const upTo: number[] = [];
  let total = 0;
  for (const d of deployments) {
    total += d.weight ?? 0;
    upTo.push(total);
  }
  const retry = model.retry;
  return {
    alias,
    deployments,
    // Weights of 0 alone make every deployment a fallback: nothing to
    // draw between, so the listed order serves (`weighted` would put the
    // last one first).
    strategy: model.strategy ?? (total > 0 ? 'weighted' : 'ordered'),
    flags: model.flags.map((flag) => ({
      id: flag.id,
      deployment: find(flag.deployment),
      buckets: Math.round(flag.percent * 100),
      stickyBy: flag.stickyBy,
      tenants: flag.tenants ? new Set(flag.tenants) : null,
    })),
    tenants: new Map(
      Object.entries(model.tenants).map(([tenant, override]) => [
        tenant,
        override.deployments.map(find),
      ]),
    ),
    objective: {
      latencyP95Ms: model.objective.latencyP95Ms ?? null,
      minQualityTier: model.objective.minQualityTier ?? null,
      windowMs: model.objective.windowMs,
    },
    retry: {
      retries: retry.retries,
      initialBackoffMs: retry.initialBackoffMs,
      maxBackoffMs: retry.maxBackoffMs,
      maxRetryAfterMs: retry.maxRetryAfterMs,
      fallbackOn: new Set(retry.fallbackOn),
      maxAttempts: retry.maxAttempts,
      attemptTimeoutMs: retry.attemptTimeoutMs ?? null,
      timeoutMs: retry.timeoutMs ?? null,
    },
    breaker: model.circuitBreaker === false ? null : model.circuitBreaker,
    tenantPriceKey: model.tenantPrice === 'route' ? routePriceKey(alias) : null,
    weights: { total, upTo },
  };
}

/** A deployment's stable name: its own `id`, or `<alias>/<provider>`. */
export function deploymentId(alias: string, d: DeploymentConfig): string {
  return d.id ?? `${alias}/${d.provider}`;
}

/**
 * Where a deployment's price is looked up: its own operator prices, else
 * the model it is priced as, else its upstream model id.
 */
export function priceKeyOf(alias: string, d: DeploymentConfig): string {
  if (d.prices) return `deployment:${deploymentId(alias, d)}`;
  return d.priceAs ?? d.model;
}

/** Where a route's own tenant prices live in the price book. */
export function routePriceKey(alias: string): string {
  return `route:${alias}`;
}

/** Operator prices from the config: global, per deployment, per route. */
export function operatorPrices(config: Config): OperatorPrices[] {
  const prices: OperatorPrices[] = Object.entries(config.prices).map(
    ([key, entries]) => ({ key, prices: entries }),
  );
  for (const [alias, model] of Object.entries(config.models)) {
    for (const d of model.deployments) {
      if (d.prices)
        prices.push({ key: priceKeyOf(alias, d), prices: d.prices });
    }
    if (model.prices) {
      prices.push({ key: routePriceKey(alias), prices: model.prices });
    }
  }
  return prices;
}
