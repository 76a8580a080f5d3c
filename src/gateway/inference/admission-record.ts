/**
 * What every inference route decides the same way before its upstream
 * call: which route serves the model for this key, the worst case over
 * the deployments it may try, and the durable record of the admitted
 * request with that worst case priced.
 */
import type { FastifyRequest } from 'fastify';

import { tenantMayUse } from '../../admission/entitlements.js';
import { worstCaseCost, type WorstCase } from '../../metering/reserve.js';
import { formatDecimal, ZERO, type Decimal } from '../../money/decimal.js';
import type { Deployment, Route } from '../../routing/route-table.js';
import type {
  AttemptDeployment,
  OpenRequestRecord,
} from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { keyAllows, type TenantCaller } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';

/**
 * The route serving `model`: 404 when it is unknown or the key may not
 * call it, 403 when the tenant's plan does not include it.
 */
export function routeFor(
  ctx: GatewayContext,
  caller: TenantCaller,
  model: string,
): Route {
  const route = ctx.router.resolve(model);
  if (!route || !keyAllows(caller.key, model)) {
    throw new ApiError(
      'model_not_found',
      `The model '${model}' does not exist or you do not have access to it.`,
      { param: 'model' },
    );
  }
  if (!tenantMayUse(ctx.config, caller.tenant, model)) {
    throw new ApiError(
      'model_not_allowed',
      `The model '${model}' is not included in your plan.`,
      { param: 'model' },
    );
  }
  return route;
}

/**
 * What the tenant may be charged at most if `deployment` serves a request
 * of worst case `bound`: at the route's price when it sets one, else at
 * the deployment's. Null when that price is unknown.
 */
export function worstCharge(
  ctx: GatewayContext,
  route: Route,
  deployment: Deployment,
  bound: WorstCase,
  at: number,
): Decimal | null {
  const price = ctx.meter.priceBook.lookup(
    route.tenantPriceKey ?? deployment.priceKey,
    at,
    bound.inputTokens,
  );
  return worstCaseCost(bound, price);
}

/**
 * What the provider may bill at most if `deployment` serves a request of
 * worst case `bound`, at the deployment's own price: what `cheapest`
 * routing ranks by (a route's tenant price is the same everywhere).
 */
export function worstProviderCost(
  ctx: GatewayContext,
  deployment: Deployment,
  bound: WorstCase,
  at: number,
): Decimal | null {
  return worstCaseCost(
    bound,
    ctx.meter.priceBook.lookup(deployment.priceKey, at, bound.inputTokens),
  );
}

/**
 * The worst case over every deployment a request may be tried at: the
 * largest bounds, and the dearest charge (unknown if any is).
 */
export function dearest(
  cases: readonly { bound: WorstCase; charge: Decimal | null }[],
): { bound: WorstCase; charge: Decimal | null } {
  let inputTokens = 0;
  let outputTokens = 0;
  let charge: Decimal | null = ZERO;
  for (const c of cases) {
    inputTokens = Math.max(inputTokens, c.bound.inputTokens);
    outputTokens = Math.max(outputTokens, c.bound.outputTokens);
    if (charge !== null) {
      charge =
        c.charge === null ? null : c.charge.gt(charge) ? c.charge : charge;
    }
  }
  return { bound: { inputTokens, outputTokens }, charge };
}

/** The record of an admitted request, with its worst case priced. */
export function requestRecord(
  ctx: GatewayContext,
  args: {
    readonly request: FastifyRequest;
    readonly caller: TenantCaller;
    readonly model: string;
    readonly route: Route;
    /** The first deployment it is to be tried at. */
    readonly deployment: Deployment;
    readonly stream: boolean;
    readonly bound: WorstCase;
    readonly reservedCost: Decimal | null;
    readonly servedAt: number;
    readonly endUser: string | null;
  },
): OpenRequestRecord {
  const { deployment, bound, reservedCost } = args;
  return {
    id: args.request.id,
    tenantId: args.caller.tenant.id,
    keyId: args.caller.key.id,
    endUser: args.endUser,
    model: args.model,
    deploymentId: deployment.id,
    provider: deployment.providerId,
    upstreamModel: deployment.upstreamModel,
    priceKey: deployment.priceKey,
    tenantPriceKey: args.route.tenantPriceKey,
    attempt: 1,
    stream: args.stream,
    servedAt: args.servedAt,
    reservedInputTokens: bound.inputTokens,
    reservedOutputTokens: bound.outputTokens,
    reservedCost: reservedCost === null ? null : formatDecimal(reservedCost),
    instanceId: ctx.instanceId,
  };
}

/** The ledger's name for where an attempt went. */
export function attemptDeployment(deployment: Deployment): AttemptDeployment {
  return {
    deploymentId: deployment.id,
    provider: deployment.providerId,
    upstreamModel: deployment.upstreamModel,
    priceKey: deployment.priceKey,
  };
}
