import type { FastifyInstance } from 'fastify';

import { keyAllows } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';

/** `GET /v1/models`: the public model names the caller's key may use. */
export function registerModelRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  const created = Math.floor(Date.now() / 1000);
  app.get('/v1/models', async (request) => {
    const caller = await ctx.auth.tenant(request);
    return {
      object: 'list',
      data: ctx.routes
        .aliases()
        .filter((alias) => keyAllows(caller.key, alias))
        .map((alias) => ({
          id: alias,
          object: 'model',
          created,
          owned_by: 'tollgate',
        })),
    };
  });
}
