import type { FastifyInstance } from 'fastify';

import { tenantMayUse } from '../../admission/entitlements.js';
import { keyAllows } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';

/**
 * `GET /v1/models`: the public model names the caller's key may use and
 * the tenant's plan includes.
 */
export function registerModelRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  const created = Math.floor(Date.now() / 1000);
  app.get('/v1/models', async (request) => {
    const caller = await ctx.auth.tenant(request);
    return {
      object: 'list',
      data: ctx.router.table
        .aliases()
        .filter(
          (alias) =>
            keyAllows(caller.key, alias) &&
            tenantMayUse(ctx.config, caller.tenant, alias),
        )
        .map((alias) => ({
          id: alias,
          object: 'model',
          created,
          owned_by: 'tollgate',
        })),
    };
  });
}
