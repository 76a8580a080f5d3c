/**
 * The admin API for limits: list the limits in force, and create,
 * replace or delete the managed ones (the config file's are read-only
 * here). A change is in force on this gateway at once and on every other
 * gateway sharing the database within a few seconds; counters are kept.
 */
import type { FastifyInstance } from 'fastify';

import {
  checkManagedLimit,
  LimitError,
  limitSource,
} from '../../admission/managed-limits.js';
import { planLimits } from '../../admission/entitlements.js';
import type { LimitConfig } from '../../admission/limits.js';
import { ApiError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';

export function registerLimitRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  // The config in force at each call: a reload changes its limits.
  const fromConfig = (id: string) =>
    ctx.config.limits.some((limit) => limit.id === id);
  const planOf = (id: string) =>
    planLimits(ctx.config).find((limit) => limit.id === id)?.tenant;
  const describe = (limit: LimitConfig) => ({
    ...limit,
    source: limitSource(ctx.config, limit.id),
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
        limit = await checkManagedLimit(
          request.params.id,
          request.body,
          ctx.config,
          ctx.store,
        );
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
      if (fromConfig(id)) {
        throw new ApiError(
          'conflict',
          `The limit "${id}" is defined in the config file; remove it there.`,
        );
      }
      const tenant = planOf(id);
      if (tenant !== undefined) {
        throw new ApiError(
          'conflict',
          `The limit "${id}" enforces the allowance of the plan of ` +
            `"${tenant}"; change entitlements.${tenant} in the config file.`,
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
