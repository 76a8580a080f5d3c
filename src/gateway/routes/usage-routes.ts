/**
 * Usage and cost read back: per request, as summaries, and as invoices.
 *
 * A tenant key sees only its tenant's data. The admin token sees any
 * tenant's, or all of them. Tenants see what they are charged; only the
 * admin sees what the providers bill (the margin is the operator's).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

import { planOf } from '../../admission/entitlements.js';
import { buildInvoice, invoiceToJson } from '../../billing/invoice.js';
import {
  dayWindows,
  MAX_DAY_WINDOWS,
  parseInstant,
  PeriodError,
} from '../../billing/periods.js';
import { decimalOrNull, summarize } from '../../metering/usage-report.js';
import type {
  RequestDetail,
  TenantRecord,
  TenantScope,
  UsageDimension,
} from '../../storage/store.js';
import { requireTenant } from '../../tenants/tenants.js';
import { ApiError } from '../api-error.js';
import type { Caller } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';
import { parseWithSchema } from '../parse-with-schema.js';

const DIMENSIONS: Record<string, UsageDimension> = {
  tenant: 'tenant',
  model: 'model',
  end_user: 'endUser',
  day: 'day',
};

const usageQuerySchema = z
  .object({
    from: z.string().optional(),
    to: z.string().optional(),
    group_by: z.string().optional(),
    tenant: z.string().optional(),
  })
  .strict();

/** Without `from`, a day-grouped query covers the last 31 local days. */
const DEFAULT_DAYS = 31;

export function registerUsageRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  app.get('/v1/usage', async (request) => {
    const caller = await ctx.auth.tenantOrAdmin(request);
    const query = parseWithSchema(usageQuerySchema, request.query);
    const tenant = await tenantInScope(ctx, caller, query.tenant);
    const zone = tenant?.timezone ?? 'UTC';
    const groupBy = parseGroupBy(query.group_by, caller);

    const now = Date.now();
    const to = query.to === undefined ? now + 1 : instant(query.to, zone, 'to');
    let from = query.from === undefined ? 0 : instant(query.from, zone, 'from');
    if (groupBy.includes('day') && query.from === undefined) {
      from = dayWindows(to - DEFAULT_DAYS * 86_400_000, to, zone)[0]?.from ?? 0;
    }
    if (from >= to) {
      throw new ApiError('invalid_value', "'from' must be before 'to'.", {
        param: 'from',
      });
    }
    // Checked before cutting the days, which costs time per day. A local
    // day is at most 25 hours, so this bounds the count from above.
    if (
      groupBy.includes('day') &&
      (to - from) / 86_400_000 > MAX_DAY_WINDOWS - 2
    ) {
      throw new ApiError(
        'invalid_value',
        `Grouping by day covers at most ${MAX_DAY_WINDOWS} days; narrow ` +
          "'from' and 'to'.",
        { param: 'from' },
      );
    }
    const days = groupBy.includes('day')
      ? dayWindows(from, to, zone)
      : undefined;

    const scope: TenantScope = tenant
      ? { tenantId: tenant.id }
      : { allTenants: true };
    const rows = await ctx.store.summarizeUsage({
      scope,
      from,
      to,
      groupBy,
      ...(days && { days }),
      // A tenant sees what it is billed for; the admin also sees the
      // retries and fallbacks the provider billed us.
      servedOnly: caller.kind === 'tenant',
    });
    const isAdmin = caller.kind === 'admin';
    return {
      object: 'list',
      currency: 'USD',
      timezone: zone,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      group_by: groupBy.map(wireDimension),
      data: summarize(rows, groupBy).map((s) => ({
        ...(s.tenantId !== undefined && { tenant_id: s.tenantId }),
        ...(s.model !== undefined && { model: s.model }),
        ...(s.endUser !== undefined && { end_user: s.endUser }),
        ...(s.day !== undefined && { day: s.day }),
        requests: s.requests,
        estimated_requests: s.estimatedRequests,
        input_tokens: s.tokens.input,
        cache_read_tokens: s.tokens.cacheRead,
        cache_write_tokens: s.tokens.cacheWrite,
        cache_write_1h_tokens: s.tokens.cacheWrite1h,
        output_tokens: s.tokens.output,
        reasoning_tokens: s.tokens.reasoning,
        cost: decimalOrNull(s.charge),
        ...(isAdmin && { provider_cost: decimalOrNull(s.providerCost) }),
      })),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/requests/:id', async (request) => {
    const caller = await ctx.auth.tenantOrAdmin(request);
    const scope: TenantScope =
      caller.kind === 'tenant'
        ? { tenantId: caller.tenant.id }
        : { allTenants: true };
    const detail = await ctx.store.findRequest(scope, request.params.id);
    if (!detail) {
      throw new ApiError('not_found', `No request "${request.params.id}".`);
    }
    return requestToJson(detail, caller.kind === 'admin');
  });

  app.get<{ Params: { period: string } }>(
    '/v1/invoices/:period',
    async (request) => {
      const caller = await ctx.auth.tenant(request);
      return invoiceFor(ctx, caller.tenant, request.params.period);
    },
  );

  app.get<{ Params: { tenant: string; period: string } }>(
    '/admin/v1/tenants/:tenant/invoices/:period',
    async (request) => {
      ctx.auth.admin(request);
      const tenant = await requireTenant(ctx.store, request.params.tenant);
      return invoiceFor(ctx, tenant, request.params.period);
    },
  );
}

async function invoiceFor(
  ctx: GatewayContext,
  tenant: TenantRecord,
  period: string,
) {
  try {
    const plan = planOf(ctx.config, tenant);
    return invoiceToJson(
      await buildInvoice(ctx.store, tenant, period, { plan }),
    );
  } catch (error) {
    if (error instanceof PeriodError) {
      throw new ApiError('invalid_value', error.message, { param: 'period' });
    }
    throw error;
  }
}

async function tenantInScope(
  ctx: GatewayContext,
  caller: Caller,
  requested: string | undefined,
): Promise<TenantRecord | undefined> {
  if (caller.kind === 'tenant') {
    if (
      requested !== undefined &&
      requested !== caller.tenant.id &&
      requested !== caller.tenant.name
    ) {
      throw new ApiError('not_found', `No tenant "${requested}".`);
    }
    return caller.tenant;
  }
  return requested === undefined
    ? undefined
    : requireTenant(ctx.store, requested);
}

function parseGroupBy(
  text: string | undefined,
  caller: Caller,
): UsageDimension[] {
  if (text === undefined || text === '') return [];
  const dimensions = text.split(',').map((name) => {
    const dimension = DIMENSIONS[name.trim()];
    if (!dimension || (dimension === 'tenant' && caller.kind !== 'admin')) {
      throw new ApiError(
        'invalid_value',
        `Cannot group by "${name}"; use model, end_user or day` +
          (caller.kind === 'admin' ? ', or tenant.' : '.'),
        { param: 'group_by' },
      );
    }
    return dimension;
  });
  return [...new Set(dimensions)];
}

function instant(text: string, zone: string, param: 'from' | 'to'): number {
  try {
    return parseInstant(text, zone);
  } catch (error) {
    if (error instanceof PeriodError) {
      throw new ApiError('invalid_value', error.message, { param });
    }
    throw error;
  }
}

function wireDimension(dimension: UsageDimension): string {
  return dimension === 'endUser' ? 'end_user' : dimension;
}

function requestToJson(detail: RequestDetail, isAdmin: boolean) {
  const { request } = detail;
  return {
    id: request.id,
    object: 'request',
    tenant_id: request.tenantId,
    end_user: request.endUser,
    model: request.model,
    deployment: request.deploymentId,
    upstream_model: request.upstreamModel,
    stream: request.stream,
    state: request.state,
    served_at: new Date(request.servedAt).toISOString(),
    finished_at:
      request.finishedAt === null
        ? null
        : new Date(request.finishedAt).toISOString(),
    status_code: request.statusCode,
    error_code: request.errorCode,
    ...(isAdmin && { upstream_request_id: request.upstreamRequestId }),
    reserved: {
      input_tokens: request.reservedInputTokens,
      output_tokens: request.reservedOutputTokens,
      ...(isAdmin && { cost: request.reservedCost }),
    },
    ...(isAdmin && {
      routing:
        request.routing === null
          ? null
          : (JSON.parse(request.routing) as unknown),
    }),
    // A tenant sees the attempt it was served (and billed for); the admin
    // also sees the retries and fallbacks the provider billed us.
    attempts: detail.events
      .filter(({ event }) => isAdmin || event.served)
      .map(({ event, rating }) => ({
        attempt: event.attempt,
        deployment: event.deploymentId,
        /** Whether the client received this attempt's answer. */
        served: event.served,
        estimated: event.estimated,
        source: event.source,
        usage: {
          input_tokens: event.usage.inputTokens,
          cache_read_tokens: event.usage.cacheReadTokens,
          cache_write_tokens: event.usage.cacheWriteTokens,
          cache_write_1h_tokens: event.usage.cacheWrite1hTokens,
          output_tokens: event.usage.outputTokens,
          reasoning_tokens: event.usage.reasoningTokens,
          units: event.usage.units,
        },
        cost: rating?.tenantCharge ?? null,
        ...(isAdmin && {
          provider_cost: rating?.providerCost ?? null,
          price_book_version: rating?.priceBookVersion ?? null,
          rate_id: rating?.providerRateId ?? null,
          unknown_price: rating?.unknown ?? [],
          raw_usage: event.rawUsage ?? null,
        }),
      })),
  };
}
