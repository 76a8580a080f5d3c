/**
 * Reloading the configuration while the gateway runs (SIGHUP, or
 * `POST /admin/v1/config/reload`).
 *
 * What a reload can change: routes (`models`), operator `prices`,
 * `entitlements` and `limits`. They are checked together against the
 * running process and put in force together, or not at all: a config
 * that cannot be applied is refused with the reason, and the one in
 * force stays. Live limit counters are kept (DESIGN.md: a reload never
 * forgives spend), and so is what routing has learnt of deployments.
 *
 * Everything else (server, database, providers, counters, webhooks,
 * logging, metering) is read once at start; a reload that changes it
 * says which sections wait for a restart.
 */
import { isDeepStrictEqual } from 'node:util';

import type { Config } from '../config/config-schema.js';
import type { ProviderClient } from '../providers/provider-registry.js';
import { operatorPrices, RouteTable } from '../routing/route-table.js';

/** The sections a reload puts in force. */
export const RELOADABLE_SECTIONS = [
  'models',
  'prices',
  'entitlements',
  'limits',
] as const;

export class ConfigReloadError extends Error {
  override readonly name = 'ConfigReloadError';
}

export interface ReloadPlan {
  /** The running config with the reloadable sections replaced. */
  readonly config: Config;
  readonly routes: RouteTable;
  /** Whether operator prices changed, so a new price book is due. */
  readonly pricesChanged: boolean;
  /** Sections that differ but apply only on restart. */
  readonly needsRestart: readonly string[];
}

/**
 * Checks `next` against the running config and process, and builds what
 * it needs; throws ConfigReloadError with the reason when it cannot be
 * applied. Changes nothing.
 */
export function planReload(
  running: Config,
  next: Config,
  clients: ReadonlyMap<string, ProviderClient>,
): ReloadPlan {
  // Routes may only name providers this process runs, as it runs them:
  // a provider's client (credentials, endpoint) is built at start.
  for (const [alias, model] of Object.entries(next.models)) {
    model.deployments.forEach((deployment, i) => {
      const name = deployment.provider;
      if (
        !clients.has(name) ||
        !isDeepStrictEqual(running.providers[name], next.providers[name])
      ) {
        throw new ConfigReloadError(
          `models.${alias}.deployments.${i}.provider: provider "${name}" ` +
            `is new or changed; providers change only on restart`,
        );
      }
    });
  }
  const config = Object.freeze({
    ...running,
    models: next.models,
    prices: next.prices,
    entitlements: next.entitlements,
    limits: next.limits,
  });
  let routes: RouteTable;
  try {
    routes = RouteTable.fromConfig(config, clients);
  } catch (error) {
    throw new ConfigReloadError((error as Error).message);
  }
  const needsRestart = Object.keys(next).filter(
    (section) =>
      !(RELOADABLE_SECTIONS as readonly string[]).includes(section) &&
      !isDeepStrictEqual(
        (running as Record<string, unknown>)[section],
        (next as Record<string, unknown>)[section],
      ),
  );
  return {
    config,
    routes,
    pricesChanged: !isDeepStrictEqual(
      operatorPrices(running),
      operatorPrices(config),
    ),
    needsRestart,
  };
}
