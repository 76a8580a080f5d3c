/**
 * The step between a request's worst case and its upstream call, shared
 * by every inference route: reserve the worst case in the tenant's limits
 * (or refuse in the caller's API), then record the request durably. A
 * reservation made is released if the record cannot be written.
 */
import type { FastifyReply } from 'fastify';

import { AdmissionRefusal } from '../../admission/admission.js';
import { parseDecimal } from '../../money/decimal.js';
import type { OpenRequestRecord, TenantRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';

export async function admitAndOpen(
  ctx: GatewayContext,
  reply: FastifyReply,
  tenant: TenantRecord,
  record: OpenRequestRecord,
): Promise<void> {
  let headers: Readonly<Record<string, string>>;
  try {
    headers = await ctx.admission.admit({
      requestId: record.id,
      tenant,
      keyId: record.keyId,
      endUser: record.endUser,
      model: record.model,
      worstTokens: record.reservedInputTokens + record.reservedOutputTokens,
      worstCost:
        record.reservedCost === null ? null : parseDecimal(record.reservedCost),
    });
  } catch (error) {
    if (error instanceof AdmissionRefusal) throw refusalError(error);
    throw error;
  }
  // On the raw response, so streamed answers (written past Fastify) carry
  // them too.
  for (const [name, value] of Object.entries(headers)) {
    reply.raw.setHeader(name, value);
  }
  try {
    await ctx.meter.open({
      ...record,
      reservations: ctx.admission.reservationsOf(record.id),
    });
  } catch (error) {
    await ctx.admission.settle(record.id, null);
    throw error;
  }
}

function refusalError(refusal: AdmissionRefusal): ApiError {
  return new ApiError(refusal.reason, refusal.message, {
    headers: refusal.headers,
    ...(refusal.retryAfterSeconds !== null && {
      retryAfter: String(refusal.retryAfterSeconds),
    }),
  });
}
