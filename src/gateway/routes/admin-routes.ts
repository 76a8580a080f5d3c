/**
 * The admin API: tenants and their virtual keys. Every route takes the
 * admin token; a new key is returned once, in the creating response.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

import {
  createApiKey,
  createTenant,
  describeKey,
  describeTenant,
  requireTenant,
} from '../../tenants/tenants.js';
import { ConfigError } from '../../config/load-config.js';
import { ApiError } from '../api-error.js';
import { ConfigReloadError } from '../config-reload.js';
import type { GatewayContext } from '../gateway-context.js';
import { parseWithSchema } from '../parse-with-schema.js';

const newTenantSchema = z
  .object({ name: z.string(), timezone: z.string().optional() })
  .strict();

const newKeySchema = z
  .object({
    name: z.string().max(128).optional(),
    models: z.array(z.string().min(1)).optional(),
  })
  .strict();

export function registerAdminRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  // Re-reads the config file and puts its routes, prices, entitlements
  // and limits in force, or refuses it with the reason.
  app.post('/admin/v1/config/reload', async (request) => {
    ctx.auth.admin(request);
    try {
      const outcome = await ctx.reloadConfig();
      return {
        object: 'config.reload',
        price_book: outcome.priceBook,
        models: outcome.models,
        needs_restart: outcome.needsRestart,
      };
    } catch (error) {
      if (error instanceof ConfigReloadError || error instanceof ConfigError) {
        throw new ApiError(
          'invalid_config',
          `The config was not reloaded; the one in force stays. ` +
            error.message,
        );
      }
      throw error;
    }
  });

  app.post('/admin/v1/tenants', async (request, reply) => {
    ctx.auth.admin(request);
    const input = parseWithSchema(newTenantSchema, request.body);
    const tenant = await createTenant(ctx.store, input);
    return reply.code(201).send(describeTenant(tenant));
  });

  app.get('/admin/v1/tenants', async (request) => {
    ctx.auth.admin(request);
    const tenants = await ctx.store.listTenants();
    return { object: 'list', data: tenants.map(describeTenant) };
  });

  app.get<{ Params: { tenant: string } }>(
    '/admin/v1/tenants/:tenant',
    async (request) => {
      ctx.auth.admin(request);
      return describeTenant(
        await requireTenant(ctx.store, request.params.tenant),
      );
    },
  );

  app.post<{ Params: { tenant: string } }>(
    '/admin/v1/tenants/:tenant/keys',
    async (request, reply) => {
      ctx.auth.admin(request);
      const tenant = await requireTenant(ctx.store, request.params.tenant);
      const input = parseWithSchema(newKeySchema, request.body);
      for (const model of input.models ?? []) {
        if (!ctx.router.resolve(model)) {
          throw new ApiError('invalid_value', `Unknown model "${model}".`, {
            param: 'models',
          });
        }
      }
      const created = await createApiKey(ctx.store, tenant, input);
      return reply
        .code(201)
        .send({ ...describeKey(created.record), key: created.key });
    },
  );

  app.get<{ Params: { tenant: string } }>(
    '/admin/v1/tenants/:tenant/keys',
    async (request) => {
      ctx.auth.admin(request);
      const tenant = await requireTenant(ctx.store, request.params.tenant);
      const keys = await ctx.store.listApiKeys(tenant.id);
      return { object: 'list', data: keys.map(describeKey) };
    },
  );

  app.post<{ Params: { tenant: string; key: string } }>(
    '/admin/v1/tenants/:tenant/keys/:key/revoke',
    async (request) => {
      ctx.auth.admin(request);
      const tenant = await requireTenant(ctx.store, request.params.tenant);
      const revoked = await ctx.store.revokeApiKey(
        tenant.id,
        request.params.key,
        Date.now(),
      );
      if (!revoked) {
        throw new ApiError(
          'not_found',
          `Tenant "${tenant.name}" has no live key "${request.params.key}".`,
        );
      }
      return { id: request.params.key, revoked: true };
    },
  );
}
