/**
 * Public model names (aliases) and the deployments behind them.
 *
 * Issue #5 adds weights, flags and fallbacks; today a route serves from its
 * first deployment.
 */
import type { Config, DeploymentConfig } from '../config/config-schema.js';
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
}

export interface Route {
  readonly alias: string;
  readonly deployments: readonly Deployment[];
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
        };
      });
      routes.set(alias, { alias, deployments });
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

/** Operator prices from the config: global ones and per deployment. */
export function operatorPrices(config: Config): OperatorPrices[] {
  const prices: OperatorPrices[] = Object.entries(config.prices).map(
    ([key, entries]) => ({ key, prices: entries }),
  );
  for (const [alias, model] of Object.entries(config.models)) {
    for (const d of model.deployments) {
      if (d.prices)
        prices.push({ key: priceKeyOf(alias, d), prices: d.prices });
    }
  }
  return prices;
}
