/**
 * Decides, for one request, the order in which a route's deployments are
 * tried: a per-tenant override, else the first flag that takes the
 * request, else the route's strategy for the first place; the rest follow
 * in the route's listed order, as fallbacks.
 *
 * The table in force can be replaced at any time (a config reload): a
 * request keeps the route it resolved, and the next one sees the new
 * table. What the router has learnt of deployments (breakers, latency)
 * outlives a reload.
 */
import { hash } from 'node:crypto';

import type { Decimal } from '../money/decimal.js';
import { DeploymentHealth } from './deployment-health.js';
import type { Deployment, Route, RouteTable } from './route-table.js';

/** Who a request is for, as routing sees it. */
export interface RoutingSubject {
  readonly tenantId: string;
  readonly tenantName: string;
  readonly endUser: string | null;
}

/** Why a plan's first deployment is first. */
export type RouteDecision =
  | { readonly by: 'tenant'; readonly tenant: string }
  | { readonly by: 'flag'; readonly flag: string; readonly bucket: number }
  | { readonly by: 'ordered' }
  | { readonly by: 'weighted'; readonly weight: number; readonly of: number }
  | {
      readonly by: 'cheapest';
      /** Per-request worst-case cost of the first, as a decimal string. */
      readonly cost: string | null;
      readonly p95Ms: number | null;
      /**
       * Deployments put last: they miss the objective or the quality
       * floor, or their breaker is open.
       */
      readonly missed: readonly string[];
    }
  | { readonly by: 'fastest'; readonly p50Ms: number | null };

export interface RoutePlan {
  readonly alias: string;
  /** In the order they are to be tried. */
  readonly deployments: readonly Deployment[];
  readonly decision: RouteDecision;
}

/** Flag buckets: a subject falls in one of 10,000. */
const BUCKETS = 10_000;

export class Router {
  #table: RouteTable;
  readonly health: DeploymentHealth;
  readonly #random: () => number;

  constructor(
    table: RouteTable,
    random: () => number = Math.random,
    health: DeploymentHealth = new DeploymentHealth(),
  ) {
    this.#table = table;
    this.#random = random;
    this.health = health;
  }

  get table(): RouteTable {
    return this.#table;
  }

  /** Puts a new table in force for every request from now on. */
  replace(table: RouteTable): void {
    this.#table = table;
  }

  resolve(alias: string): Route | undefined {
    return this.#table.resolve(alias);
  }

  /**
   * The order to try `route`'s deployments in for `subject`. `costOf`
   * gives a deployment's worst-case cost for this request (null when
   * unpriced or it cannot serve it); `cheapest` ranks by it.
   */
  plan(
    route: Route,
    subject: RoutingSubject,
    costOf: (deployment: Deployment) => Decimal | null = () => null,
  ): RoutePlan {
    const override =
      route.tenants.get(subject.tenantId) ??
      route.tenants.get(subject.tenantName);
    if (override) {
      return {
        alias: route.alias,
        ...(this.#flagged(route, subject, override) ?? {
          deployments: override,
          decision: { by: 'tenant', tenant: subject.tenantName },
        }),
      };
    }
    const flagged = this.#flagged(route, subject, route.deployments);
    if (flagged) return { alias: route.alias, ...flagged };
    return { alias: route.alias, ...this.#byStrategy(route, costOf) };
  }

  #flagged(
    route: Route,
    subject: RoutingSubject,
    deployments: readonly Deployment[],
  ): Omit<RoutePlan, 'alias'> | undefined {
    for (const flag of route.flags) {
      if (
        flag.tenants &&
        !flag.tenants.has(subject.tenantId) &&
        !flag.tenants.has(subject.tenantName)
      ) {
        continue;
      }
      if (!deployments.includes(flag.deployment)) continue;
      const bucket =
        flag.stickyBy === 'request'
          ? Math.floor(this.#random() * BUCKETS)
          : stickyBucket(
              flag.id,
              flag.stickyBy === 'tenant' || subject.endUser === null
                ? `tenant\u0000${subject.tenantId}`
                : `user\u0000${subject.tenantId}\u0000${subject.endUser}`,
            );
      if (bucket >= flag.buckets) continue;
      return {
        deployments: first(deployments, flag.deployment),
        decision: { by: 'flag', flag: flag.id, bucket },
      };
    }
    return undefined;
  }

  #byStrategy(
    route: Route,
    costOf: (deployment: Deployment) => Decimal | null,
  ): Omit<RoutePlan, 'alias'> {
    const listed = route.deployments;
    switch (route.strategy) {
      case 'ordered':
        return { deployments: listed, decision: { by: 'ordered' } };
      case 'weighted': {
        const { total, upTo } = route.weights;
        const draw = this.#random() * total;
        let index = upTo.findIndex((sum) => draw < sum);
        // Only a draw of `total` itself (a random source that can return
        // 1) gets here: the last deployment with a weight above 0 takes it.
        if (index < 0) index = Math.max(0, upTo.indexOf(total));
        const chosen = listed[index] as Deployment;
        return {
          deployments: first(listed, chosen),
          decision: { by: 'weighted', weight: chosen.weight ?? 0, of: total },
        };
      }
      case 'cheapest':
        return this.#cheapest(route, costOf);
      case 'fastest': {
        const windowMs = route.objective.windowMs;
        // Unmeasured deployments go first, so that each gets measured.
        const p50 = new Map(
          listed.map((d) => [
            d,
            this.health.latency(d.id, 0.5, windowMs) ?? -1,
          ]),
        );
        const order = [...listed].sort(
          (a, b) => (p50.get(a) ?? 0) - (p50.get(b) ?? 0),
        );
        const measured = p50.get(order[0] as Deployment) ?? -1;
        return {
          deployments: order,
          decision: { by: 'fastest', p50Ms: measured < 0 ? null : measured },
        };
      }
    }
  }

  /**
   * The cheapest deployment for this request among those that meet the
   * quality floor and the latency objective (an unmeasured one is given
   * the benefit of the doubt), then the others that meet it by price,
   * then those that do not, in their listed order.
   */
  #cheapest(
    route: Route,
    costOf: (deployment: Deployment) => Decimal | null,
  ): Omit<RoutePlan, 'alias'> {
    const { latencyP95Ms, minQualityTier, windowMs } = route.objective;
    const meets: { d: Deployment; cost: Decimal | null; p95: number | null }[] =
      [];
    const missed: Deployment[] = [];
    for (const d of route.deployments) {
      const p95 = this.health.latency(d.id, 0.95, windowMs);
      const qualityOk =
        minQualityTier === null || (d.qualityTier ?? 0) >= minQualityTier;
      const latencyOk =
        latencyP95Ms === null || p95 === null || p95 <= latencyP95Ms;
      if (qualityOk && latencyOk && !this.health.isOpen(d.id)) {
        meets.push({ d, cost: costOf(d), p95 });
      } else {
        missed.push(d);
      }
    }
    // Unpriced last; a stable sort keeps the listed order among equals.
    meets.sort((a, b) => {
      if (a.cost === null || b.cost === null) {
        return (a.cost === null ? 1 : 0) - (b.cost === null ? 1 : 0);
      }
      return a.cost.cmp(b.cost);
    });
    const best = meets[0];
    return {
      deployments: [...meets.map((m) => m.d), ...missed],
      decision: {
        by: 'cheapest',
        cost: best?.cost?.toFixed() ?? null,
        p95Ms: best?.p95 ?? null,
        missed: missed.map((d) => d.id),
      },
    };
  }
}

/** `deployments` with `chosen` moved to the front. */
function first(
  deployments: readonly Deployment[],
  chosen: Deployment,
): readonly Deployment[] {
  if (deployments[0] === chosen) return deployments;
  return [chosen, ...deployments.filter((d) => d !== chosen)];
}

/**
 * A subject's bucket for a flag, 0 to 9,999: the same for the same flag
 * and subject on every replica and after every restart, and independent
 * between flags (the flag's id seeds the hash).
 */
export function stickyBucket(flagId: string, subject: string): number {
  // SHA-256 of `flag NUL subject` (UTF-8), its first four bytes big-endian.
  // One-shot `hash` is half the cost of a `createHash` chain, same digest.
  const digest = hash('sha256', `${flagId}\u0000${subject}`, 'buffer');
  return digest.readUInt32BE(0) % BUCKETS;
}
