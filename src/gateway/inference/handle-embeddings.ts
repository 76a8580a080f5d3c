/**
 * `POST /v1/embeddings`, metered and routed like chat: the request is
 * recorded with its worst case (its input's UTF-8 size, no output), tried
 * at the route's OpenAI-family deployments (the others have no embeddings
 * endpoint) with the route's retries and fallbacks, passed unchanged but
 * for the model, and settled from the answer's `usage.prompt_tokens`.
 *
 * @see https://platform.openai.com/docs/api-reference/embeddings
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

import type { AttemptUsage } from '../../metering/meter.js';
import { estimateTokens } from '../../metering/estimate-tokens.js';
import { worstCase } from '../../metering/reserve.js';
import {
  EMPTY_USAGE,
  isRecord,
  UsageParseError,
} from '../../metering/usage.js';
import { normalizeOpenAIEmbeddingsUsage } from '../../providers/openai/normalize-embeddings-usage.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { runAttempts } from '../../routing/attempts.js';
import type { Deployment } from '../../routing/route-table.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { relayUpstreamError } from '../chat/relay-upstream-error.js';
import type { GatewayContext } from '../gateway-context.js';
import { admitAndOpen } from './admit.js';
import {
  attemptDeployment,
  dearest,
  requestRecord,
  routeFor,
  worstCharge,
  worstProviderCost,
} from './admission-record.js';
import { attemptUpstream, discardAttempt } from './attempt-upstream.js';
import { AttemptLedger, answerOf } from './routing-record.js';
import {
  endUserOf,
  headerValue,
  noticeClient,
  parseObject,
  readAll,
  settleOrLeavePending,
  upstreamFailure,
  type Settle,
} from './lifecycle.js';
import { API_NAMES, UPSTREAM_PROTOCOLS } from './protocols.js';

export async function handleEmbeddings(
  ctx: GatewayContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (ctx.isShuttingDown()) {
    throw new ApiError('shutting_down', 'The gateway is shutting down.');
  }
  const caller = await ctx.auth.tenant(request);
  const body = embeddingsBody(request.body);
  const model = body['model'] as string;
  const route = routeFor(ctx, caller, model);
  const endUser = endUserOf(
    request,
    typeof body['user'] === 'string' ? body['user'] : null,
  );
  const bodyFor = (d: Deployment) => ({ ...body, model: d.upstreamModel });
  const boundOf = (d: Deployment) =>
    worstCase({
      bodyBytes: Buffer.byteLength(JSON.stringify(bodyFor(d))),
      images: 0,
      maxOutputTokens: 0,
      choices: 1,
      defaultMaxOutputTokens: 0,
    });
  const servedAt = Date.now();
  const plan = ctx.router.plan(
    route,
    { tenantId: caller.tenant.id, tenantName: caller.tenant.name, endUser },
    (d) => worstProviderCost(ctx, d, boundOf(d), servedAt),
  );
  // Only OpenAI-family deployments have an embeddings endpoint; the
  // others are passed by.
  const usable = plan.deployments.filter(
    (d) => d.client.embeddings !== undefined,
  );
  const first = usable[0];
  if (!first) {
    const api = (plan.deployments[0] as Deployment).client.api;
    throw new ApiError(
      'untranslatable',
      `The model '${model}' is served through ${API_NAMES[api]}, ` +
        'which has no embeddings endpoint.',
      { param: 'model' },
    );
  }
  const worst = dearest(
    usable.map((d) => {
      const bound = boundOf(d);
      return { bound, charge: worstCharge(ctx, route, d, bound, servedAt) };
    }),
  );
  const record = requestRecord(ctx, {
    request,
    caller,
    model,
    route,
    deployment: first,
    stream: false,
    bound: worst.bound,
    reservedCost: worst.charge,
    servedAt,
    endUser,
  });
  await admitAndOpen(ctx, reply, caller.tenant, record);
  const attempts = new AttemptLedger(plan);
  const settle: Settle = (outcome) =>
    settleOrLeavePending(
      ctx,
      record,
      attempts.final(outcome),
      attempts.context(),
    );

  const abort = new AbortController();
  await ctx.inflight.track(
    abort,
    (async () => {
      const outcome = await runAttempts({
        route,
        plan,
        health: ctx.router.health,
        discard: discardAttempt,
        signal: abort.signal,
        clientGone: noticeClient(reply),
        usable: (d) => d.client.embeddings !== undefined,
        begin: (n, d) =>
          ctx.meter.beginAttempt(record, n, attemptDeployment(d)),
        attempt: (d, _n, context) =>
          attemptUpstream({
            send: (signal) => {
              const client = d.client;
              if (!client.embeddings) throw new Error('no embeddings');
              return client.embeddings(bodyFor(d), signal);
            },
            stream: false,
            protocol: UPSTREAM_PROTOCOLS[d.client.api],
            passOverFiltered: false,
            context,
            clientSignal: abort.signal,
            estimate: () => estimatedInput(body, record),
          }),
      });
      attempts.record(outcome);
      // A non-streamed answer: a client that leaves is noticed on reply.
      const value = await answerOf(outcome, settle, reply, () => false);
      if (!value) return;
      await answer(ctx, reply, record, body, value.response, settle);
    })(),
  );
}

async function answer(
  ctx: GatewayContext,
  reply: FastifyReply,
  record: OpenRequestRecord,
  body: Readonly<Record<string, unknown>>,
  upstream: UpstreamResponse,
  settle: Settle,
): Promise<void> {
  const upstreamRequestId = upstream.upstreamRequestId;
  if (upstream.status !== 200) {
    const relayed = await relayUpstreamError(
      upstream.status,
      upstream.headers,
      upstream.body,
    );
    const error = relayed.kind === 'gateway' ? relayed.error : undefined;
    await settle({
      usage: { kind: 'none' },
      statusCode: error?.status ?? upstream.status,
      errorCode: error?.code ?? `upstream_${upstream.status}`,
      upstreamRequestId,
    });
    if (relayed.kind === 'gateway') throw relayed.error;
    if (relayed.retryAfter) reply.header('retry-after', relayed.retryAfter);
    await reply
      .code(relayed.status)
      .header('content-type', 'application/json')
      .send(relayed.body);
    return;
  }

  let bytes: Buffer;
  try {
    bytes = await readAll(upstream.body);
  } catch (error) {
    const failure = upstreamFailure(error);
    await settle({
      usage: await estimatedInput(body, record),
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId,
    });
    throw failure;
  }
  const json = parseObject(bytes);
  let usage: AttemptUsage;
  try {
    usage = {
      kind: 'reported',
      usage: normalizeOpenAIEmbeddingsUsage(json?.['usage']),
      raw: json?.['usage'],
    };
  } catch (error) {
    if (!(error instanceof UsageParseError)) throw error;
    ctx.logger.warn(
      { requestId: record.id, reason: error.message },
      'upstream embeddings usage is malformed; usage will be estimated',
    );
    usage = await estimatedInput(body, record);
  }
  await settle({ usage, statusCode: 200, errorCode: null, upstreamRequestId });
  await reply
    .code(200)
    .header(
      'content-type',
      headerValue(upstream.headers['content-type']) ?? 'application/json',
    )
    .send(bytes);
}

/** The body, checked as far as the gateway reads it: `model` and `input`. */
function embeddingsBody(body: unknown): Readonly<Record<string, unknown>> {
  if (!isRecord(body)) {
    throw new ApiError(
      'invalid_type',
      'The request body must be a JSON object.',
    );
  }
  if (body['model'] === undefined) {
    throw new ApiError(
      'missing_required_parameter',
      "You must provide a 'model' parameter.",
      { param: 'model' },
    );
  }
  if (typeof body['model'] !== 'string' || body['model'] === '') {
    throw new ApiError('invalid_type', "'model' must be a non-empty string.", {
      param: 'model',
    });
  }
  const input = body['input'];
  if (input === undefined) {
    throw new ApiError(
      'missing_required_parameter',
      "You must provide an 'input' parameter.",
      { param: 'input' },
    );
  }
  if (!isEmbeddingsInput(input)) {
    throw new ApiError(
      'invalid_type',
      "'input' must be a string, an array of strings, an array of token " +
        'ids, or an array of arrays of token ids.',
      { param: 'input' },
    );
  }
  return body;
}

function isEmbeddingsInput(input: unknown): boolean {
  if (typeof input === 'string') return true;
  if (!Array.isArray(input) || input.length === 0) return false;
  const isTokens = (value: unknown) =>
    Array.isArray(value) &&
    value.length > 0 &&
    value.every(
      (token) => Number.isSafeInteger(token) && (token as number) >= 0,
    );
  return (
    input.every((item) => typeof item === 'string') ||
    isTokens(input) ||
    input.every(isTokens)
  );
}

/** Input tokens estimated from the body, for an answer without usage. */
async function estimatedInput(
  body: Readonly<Record<string, unknown>>,
  record: OpenRequestRecord,
): Promise<AttemptUsage> {
  const input = body['input'];
  const tokens = Array.isArray(input)
    ? input.every((item) => typeof item === 'number')
      ? input.length
      : (
          await Promise.all(
            input.map((item: unknown) =>
              Array.isArray(item)
                ? Promise.resolve(item.length)
                : estimateTokens(String(item)),
            ),
          )
        ).reduce((a, b) => a + b, 0)
    : await estimateTokens(String(input));
  return {
    kind: 'estimated',
    usage: {
      ...EMPTY_USAGE,
      inputTokens: Math.min(tokens, record.reservedInputTokens),
    },
    raw: undefined,
  };
}
