/**
 * The admin API for limits: list the limits in force, and create,
 * replace or delete the managed ones (the config file's are read-only
 * here). A change is in force on this gateway at once and on every other
 * gateway sharing the database within a few seconds; counters are kept.
 */
import type { FastifyInstance } from 'fastify';

import { checkLimit, LimitError } from '../../admission/managed-limits.js';
import type { LimitConfig } from '../../admission/limits.js';
import { ApiError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';

export function registerLimitRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  const fromConfig = new Set(ctx.config.limits.map((limit) => limit.id));
  const describe = (limit: LimitConfig) => ({
    ...limit,
    source: fromConfig.has(limit.id) ? 'config' : 'managed',
  });

  app.get('/admin/v1/limits', async (request) => {
    ctx.auth.admin(request);
    await ctx.reloadLimits();
    return { object: 'list', data: ctx.admission.limits.map(describe) };
  });

  app.put<{ Params: { id: string } }>(
    '/admin/v1/limits/:id',
    async (request) => {
      ctx.auth.admin(request);
      let limit: LimitConfig;
      try {
        limit = checkLimit(request.params.id, request.body, ctx.config);
      } catch (error) {
        if (!(error instanceof LimitError)) throw error;
        throw new ApiError(
          error.field === 'id' ? 'conflict' : 'invalid_value',
          error.message,
          { ...(error.field !== null && { param: error.field }) },
        );
      }
      await ctx.store.putLimit({
        id: limit.id,
        definition: JSON.stringify(limit),
        updatedAt: Date.now(),
      });
      await ctx.reloadLimits();
      return describe(limit);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/admin/v1/limits/:id',
    async (request) => {
      ctx.auth.admin(request);
      const { id } = request.params;
      if (fromConfig.has(id)) {
        throw new ApiError(
          'conflict',
          `The limit "${id}" is defined in the config file; remove it there.`,
        );
      }
      if (!(await ctx.store.deleteLimit(id))) {
        throw new ApiError('not_found', `No managed limit "${id}".`);
      }
      await ctx.reloadLimits();
      return { id, deleted: true };
    },
  );
}
