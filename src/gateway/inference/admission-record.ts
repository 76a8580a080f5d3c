/**
 * What every inference route decides the same way before its upstream
 * call: which deployment serves the model for this key, and the durable
 * record of the admitted request with its worst case priced.
 */
import type { FastifyRequest } from 'fastify';

import { tenantMayUse } from '../../admission/entitlements.js';
import { worstCaseCost, type WorstCase } from '../../metering/reserve.js';
import { formatDecimal } from '../../money/decimal.js';
import type { Deployment } from '../../routing/route-table.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { keyAllows, type TenantCaller } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';

/**
 * The deployment serving `model`: 404 when it is unknown or the key may
 * not call it, 403 when the tenant's plan does not include it.
 */
export function deploymentFor(
  ctx: GatewayContext,
  caller: TenantCaller,
  model: string,
): Deployment {
  const deployment = ctx.routes.resolve(model)?.deployments[0];
  if (!deployment || !keyAllows(caller.key, model)) {
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
  return deployment;
}

/** The record of an admitted request, its worst case priced as of now. */
export function requestRecord(
  ctx: GatewayContext,
  args: {
    readonly request: FastifyRequest;
    readonly caller: TenantCaller;
    readonly model: string;
    readonly deployment: Deployment;
    readonly stream: boolean;
    readonly bound: WorstCase;
    readonly endUser: string | null;
  },
): OpenRequestRecord {
  const { deployment, bound } = args;
  const servedAt = Date.now();
  const price = ctx.meter.priceBook.lookup(
    deployment.priceKey,
    servedAt,
    bound.inputTokens,
  );
  const reservedCost = worstCaseCost(bound, price);
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
    stream: args.stream,
    servedAt,
    reservedInputTokens: bound.inputTokens,
    reservedOutputTokens: bound.outputTokens,
    reservedCost: reservedCost === null ? null : formatDecimal(reservedCost),
    instanceId: ctx.instanceId,
  };
}
