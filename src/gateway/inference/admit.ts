/**
 * The step between a request's worst case and its upstream call, shared
 * by every inference route: reserve the worst case in the tenant's limits
 * (or refuse in the caller's API), then record the request durably. A
 * reservation made is released if the record cannot be written, and the
 * request is refused with 503 `ledger_unavailable`: what could not be
 * recorded is never served.
 */
import type { FastifyReply } from 'fastify';

import { AdmissionRefusal } from '../../admission/admission.js';
import type { Measure } from '../../admission/limits.js';
import { parseDecimal } from '../../money/decimal.js';
import type { OpenRequestRecord, TenantRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';

export async function admitAndOpen(
  ctx: GatewayContext,
  reply: FastifyReply,
  tenant: TenantRecord,
  record: OpenRequestRecord,
  /**
   * Where the body makes the upstream read input it does not carry, for
   * which the worst case holds `metering.unseenInputTokens`: said in a
   * refusal no wait can help, as the client cannot lower it.
   */
  unseenInput: string | null = null,
): Promise<void> {
  let headers: Readonly<Record<string, string>>;
  try {
    headers = await ctx.admission.admit({
      requestId: record.id,
      tenant,
      keyId: record.keyId,
      endUser: record.endUser,
      model: record.model,
      worstInputTokens: record.reservedInputTokens,
      worstOutputTokens: record.reservedOutputTokens,
      worstCost:
        record.reservedCost === null ? null : parseDecimal(record.reservedCost),
      servedAt: record.servedAt,
    });
  } catch (error) {
    if (error instanceof AdmissionRefusal) {
      throw refusalError(
        error,
        ctx.config.metering.unseenInputTokens,
        unseenInput,
      );
    }
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
    ctx.logger.error(
      { err: error, requestId: record.id, tenantId: record.tenantId },
      'LEDGER DOWN: could not record a request before its upstream call; ' +
        'refused it',
    );
    throw new ApiError(
      'ledger_unavailable',
      'The gateway cannot record requests right now, so it made no ' +
        'upstream call; try again shortly.',
      { retryAfter: '1', cause: error },
    );
  }
}

/** OpenAI's error `type` for a refusal by each kind of limit. */
const OPENAI_REFUSAL_TYPES: Readonly<Record<Measure, string>> = {
  requests: 'requests',
  concurrent: 'requests',
  tokens: 'tokens',
  budget: 'insufficient_quota',
};

function refusalError(
  refusal: AdmissionRefusal,
  unseenTokens: number,
  unseenInput: string | null,
): ApiError {
  // A full limit that no wait can help: the request is larger than it.
  const neverFits =
    refusal.retryAfterSeconds === null &&
    (refusal.reason === 'rate_limit_exceeded' ||
      refusal.reason === 'budget_exceeded');
  const message =
    neverFits && unseenInput !== null
      ? `${refusal.message} Its worst case holds ` +
        `${unseenTokens.toLocaleString('en-US')} input tokens ` +
        `(metering.unseenInputTokens) for what '${unseenInput}' makes ` +
        "the upstream read beyond the request's body."
      : refusal.message;
  return new ApiError(refusal.reason, message, {
    ...(refusal.measure !== null && {
      openAIType: OPENAI_REFUSAL_TYPES[refusal.measure],
    }),
    // No wait helps a request larger than a whole limit: the official
    // SDKs, which retry a 429 by default, skip the retry on this header.
    headers: neverFits
      ? { ...refusal.headers, 'x-should-retry': 'false' }
      : refusal.headers,
    ...(refusal.retryAfterSeconds !== null && {
      retryAfter: String(refusal.retryAfterSeconds),
    }),
  });
}
