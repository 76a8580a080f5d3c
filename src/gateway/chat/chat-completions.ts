/**
 * `POST /v1/chat/completions`: authenticate, validate, record the worst
 * case durably, call the upstream, relay its answer, settle the usage.
 *
 * From the moment the request is recorded it is settled exactly once,
 * whatever happens: success, upstream error, timeout, client disconnect or
 * shutdown. If even the settling write fails, the record stays pending and
 * the next start's recovery settles it; it is never silently dropped.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

import type { AttemptOutcome, AttemptUsage } from '../../metering/meter.js';
import { countBodyImages, hiddenInput } from '../../metering/hidden-input.js';
import { worstCase, type WorstCase } from '../../metering/reserve.js';
import { UsageParseError } from '../../metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { runAttempts } from '../../routing/attempts.js';
import type { Deployment, Route } from '../../routing/route-table.js';
import type { RoutePlan } from '../../routing/router.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { openAIChatInbound } from '../../protocol/openai/openai-chat-inbound.js';
import type { GatewayContext } from '../gateway-context.js';
import { admitAndOpen } from '../inference/admit.js';
import {
  attemptDeployment,
  dearest,
  requestRecord,
  routeFor,
  worstCharge,
  worstProviderCost,
} from '../inference/admission-record.js';
import {
  attemptUpstream,
  discardAttempt,
} from '../inference/attempt-upstream.js';
import { capBody, outputCapFor } from '../inference/output-cap.js';
import { UPSTREAM_PROTOCOLS } from '../inference/protocols.js';
import { AttemptLedger, answerOf } from '../inference/routing-record.js';
import { handleInference } from '../inference/handle-inference.js';
import {
  endUserOf,
  headerValue,
  isJson,
  parseObject,
  readAll,
  settleClientGone,
  settleOrLeavePending,
  noticeClient,
  watchClient,
} from '../inference/lifecycle.js';
import { estimateChatUsage } from './delivered-text.js';
import {
  parseChatRequest,
  upstreamChatBody,
  type ChatRequest,
} from './parse-chat-request.js';
import { relayChatStream } from './relay-chat-stream.js';
import { relayUpstreamError } from './relay-upstream-error.js';

export async function handleChatCompletions(
  ctx: GatewayContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (ctx.isShuttingDown()) {
    throw new ApiError('shutting_down', 'The gateway is shutting down.');
  }
  if (servedByAnotherApi(ctx, request.body)) {
    await handleInference(ctx, openAIChatInbound, request, reply, null);
    return;
  }
  const caller = await ctx.auth.tenant(request);
  const asked = parseChatRequest(request.body);
  const route = routeFor(ctx, caller, asked.model);
  if (route.deployments.some((d) => d.client.api !== 'openai-chat')) {
    // A reload while the key was checked gave the model a deployment of
    // another API: the request is translated after all.
    await handleInference(ctx, openAIChatInbound, request, reply, null);
    return;
  }
  const endUser = endUserOf(request, asked.user ?? null);
  const servedAt = Date.now();
  // A request with no output cap, under a limit that counts its tokens or
  // cost, is sent one (output-cap.ts): its reservation must be a bound.
  const cap = outputCapFor(
    ctx,
    {
      tenant: caller.tenant,
      keyId: caller.key.id,
      endUser,
      model: asked.model,
    },
    // Chat Completions has no thinking budget.
    {
      maxOutputTokens: asked.maxOutputTokens ?? null,
      thinkingBudgetTokens: null,
    },
  );
  const chat: ChatRequest =
    cap === null
      ? asked
      : {
          ...asked,
          body: capBody('openai-chat', asked.body, cap),
          maxOutputTokens: cap,
        };

  // Every deployment speaks Chat Completions: only the model differs.
  const bodies = new Map(
    route.deployments.map((d) => [d, upstreamChatBody(chat, d.upstreamModel)]),
  );
  const hidden = hiddenInput('openai-chat', chat.body);
  const bounds = new Map(
    route.deployments.map((d) => [
      d,
      worstCase({
        bodyBytes: Buffer.byteLength(bodies.get(d) as string),
        images: countBodyImages(chat.body),
        hidden,
        unseenInputTokens: ctx.config.metering.unseenInputTokens,
        maxOutputTokens: chat.maxOutputTokens,
        choices: chat.choices,
        defaultMaxOutputTokens: ctx.config.metering.defaultMaxOutputTokens,
      }),
    ]),
  );
  const charge = (d: Deployment) =>
    worstCharge(ctx, route, d, bounds.get(d) as WorstCase, servedAt);
  const plan = ctx.router.plan(
    route,
    { tenantId: caller.tenant.id, tenantName: caller.tenant.name, endUser },
    // `cheapest` ranks by what the provider would bill.
    (d) => worstProviderCost(ctx, d, bounds.get(d) as WorstCase, servedAt),
  );
  const worst = dearest(
    plan.deployments.map((d) => ({
      bound: bounds.get(d) as WorstCase,
      charge: charge(d),
    })),
  );
  const record = requestRecord(ctx, {
    request,
    caller,
    model: chat.model,
    route,
    deployment: plan.deployments[0] as Deployment,
    stream: chat.stream,
    bound: worst.bound,
    reservedCost: worst.charge,
    servedAt,
    endUser,
  });
  await admitAndOpen(ctx, reply, caller.tenant, record, hidden.unseen);

  const abort = new AbortController();
  await ctx.inflight.track(
    abort,
    serve(ctx, { request, reply, chat, record, abort, route, plan, bodies }),
  );
}

/**
 * Whether the model the body names has a deployment served through
 * another API than Chat Completions, so the request is translated
 * (handle-inference.ts) rather than passed through here.
 */
function servedByAnotherApi(ctx: GatewayContext, body: unknown): boolean {
  const model = (body as { model?: unknown } | null)?.model;
  if (typeof model !== 'string') return false;
  const route = ctx.router.resolve(model);
  return (
    route !== undefined &&
    route.deployments.some((d) => d.client.api !== 'openai-chat')
  );
}

interface Admitted {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly chat: ChatRequest;
  readonly record: OpenRequestRecord;
  readonly abort: AbortController;
  readonly route: Route;
  readonly plan: RoutePlan;
  readonly bodies: ReadonlyMap<Deployment, string>;
}

/** The request at the deployment whose answer the client gets. */
interface Attempt {
  readonly reply: FastifyReply;
  readonly chat: ChatRequest;
  readonly record: OpenRequestRecord;
  readonly abort: AbortController;
}

async function serve(ctx: GatewayContext, admitted: Admitted): Promise<void> {
  const { record, abort, chat, reply } = admitted;
  const attempts = new AttemptLedger(admitted.plan);
  const settle = (outcome: Omit<AttemptOutcome, 'attempt'>) =>
    settleOrLeavePending(
      ctx,
      record,
      attempts.final(outcome),
      attempts.context(),
    );

  // relayChatStream watches a streaming client once the stream starts;
  // until then, a client that hangs up is noticed here.
  const clientLeft = chat.stream ? watchClient(reply, abort) : () => false;
  // A streaming client that leaves aborts the signal; the watch above
  // must not be asked (asking ends it).
  const clientGone = chat.stream ? undefined : noticeClient(reply);
  const outcome = await runAttempts({
    route: admitted.route,
    plan: admitted.plan,
    health: ctx.router.health,
    discard: discardAttempt,
    signal: abort.signal,
    ...(clientGone && { clientGone }),
    begin: (n, d) => ctx.meter.beginAttempt(record, n, attemptDeployment(d)),
    attempt: (d, _n, context) =>
      attemptUpstream({
        send: (signal) =>
          d.client.sendChat({
            body: admitted.bodies.get(d) as string,
            upstreamModel: d.upstreamModel,
            stream: chat.stream,
            signal,
          }),
        stream: chat.stream,
        protocol: UPSTREAM_PROTOCOLS['openai-chat'],
        passOverFiltered: admitted.route.retry.fallbackOn.has('content_filter'),
        context,
        clientSignal: abort.signal,
        estimate: () => estimated(chat, '', record),
      }),
  });
  attempts.record(outcome);
  const value = await answerOf(outcome, settle, reply, clientLeft);
  if (!value) return;
  const attempt: Attempt = { reply, chat, record, abort };
  const upstream = value.response;
  if (clientLeft()) {
    // Answered, but nobody is there to read it; it may be charged.
    upstream.body.destroy();
    const usage: AttemptUsage =
      upstream.status === 200
        ? await estimated(chat, '', record)
        : { kind: 'none' };
    await settleClientGone(reply, settle, usage, upstream.upstreamRequestId);
    return;
  }
  const upstreamRequestId = upstream.upstreamRequestId;

  if (value.kind === 'status') {
    const relayed = await relayUpstreamError(
      upstream.status,
      upstream.headers,
      upstream.body,
    );
    const [status, code] =
      relayed.kind === 'gateway'
        ? [relayed.error.status, relayed.error.code]
        : [relayed.status, relayed.code];
    await settle({
      usage: { kind: 'none' },
      statusCode: status,
      errorCode: code,
      upstreamRequestId,
    });
    if (relayed.kind === 'gateway') throw relayed.error;
    if (relayed.retryAfter)
      attempt.reply.header('retry-after', relayed.retryAfter);
    await attempt.reply
      .code(relayed.status)
      .header('content-type', 'application/json')
      .send(relayed.body);
    return;
  }

  if (value.kind === 'json') {
    await serveJson(ctx, attempt, upstream, value.bytes, settle);
    return;
  }

  if (isJson(upstream.headers['content-type'])) {
    await serveNotAStream(ctx, attempt, upstream, settle);
    return;
  }

  attempt.reply.hijack();
  try {
    await relayStream(ctx, attempt, upstream, settle);
  } catch (error) {
    // The response is ours now: end it rather than leave the client
    // hanging. Whatever was not settled stays pending for recovery.
    ctx.logger.error(
      { err: error, requestId: record.id },
      'relaying a stream failed; the connection was closed',
    );
    attempt.reply.raw.destroy();
  }
}

function relayStream(
  ctx: GatewayContext,
  attempt: Attempt,
  upstream: UpstreamResponse,
  settle: (outcome: Omit<AttemptOutcome, 'attempt'>) => Promise<void>,
): Promise<void> {
  const { record, abort } = attempt;
  const upstreamRequestId = upstream.upstreamRequestId;
  return relayChatStream({
    response: attempt.reply.raw,
    upstream,
    requestId: record.id,
    body: attempt.chat.body,
    inputBound: record.reservedInputTokens,
    clientWantsUsage: attempt.chat.includeUsage,
    abort,
    settle: (outcome) => settle({ ...outcome, upstreamRequestId }),
    onUsageParseError: (error) => warnUsageParse(ctx, record, error),
  });
}

/**
 * A stream was asked for and the upstream answered 200 with something
 * else (a JSON completion, say). The client cannot use it as a stream, so
 * it gets a 502; what the upstream reports it served is still metered.
 */
async function serveNotAStream(
  ctx: GatewayContext,
  attempt: Attempt,
  upstream: UpstreamResponse,
  settle: (outcome: Omit<AttemptOutcome, 'attempt'>) => Promise<void>,
): Promise<void> {
  const { record, chat } = attempt;
  const failure = new ApiError(
    'upstream_error',
    'The upstream provider answered a streaming request without a stream.',
  );
  let usage: AttemptUsage;
  try {
    const completion = parseObject(await readAll(upstream.body));
    usage = completion
      ? await completionUsage(ctx, record, chat, completion)
      : await estimated(chat, '', record);
  } catch {
    usage = await estimated(chat, '', record);
  }
  await settle({
    usage,
    statusCode: failure.status,
    errorCode: failure.code,
    upstreamRequestId: upstream.upstreamRequestId,
  });
  throw failure;
}

/** A non-streamed answer, read whole: settle, then send it on. */
async function serveJson(
  ctx: GatewayContext,
  attempt: Attempt,
  upstream: UpstreamResponse,
  bytes: Buffer,
  settle: (outcome: Omit<AttemptOutcome, 'attempt'>) => Promise<void>,
): Promise<void> {
  const { record, chat } = attempt;
  const upstreamRequestId = upstream.upstreamRequestId;

  const completion = parseObject(bytes);
  if (!completion) {
    const failure = new ApiError(
      'upstream_error',
      'The upstream provider answered with a body that is not JSON.',
    );
    await settle({
      usage: await estimated(chat, '', record),
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId,
    });
    throw failure;
  }

  await settle({
    usage: await completionUsage(ctx, record, chat, completion),
    statusCode: 200,
    errorCode: null,
    upstreamRequestId,
  });
  await attempt.reply
    .code(200)
    .header(
      'content-type',
      headerValue(upstream.headers['content-type']) ?? 'application/json',
    )
    .send(bytes);
}

async function completionUsage(
  ctx: GatewayContext,
  record: OpenRequestRecord,
  chat: ChatRequest,
  completion: Record<string, unknown>,
): Promise<AttemptUsage> {
  const raw = completion['usage'];
  if (raw !== undefined && raw !== null) {
    try {
      return { kind: 'reported', usage: normalizeOpenAIChatUsage(raw), raw };
    } catch (error) {
      if (!(error instanceof UsageParseError)) throw error;
      warnUsageParse(ctx, record, error);
    }
  }
  return estimated(chat, choicesText(completion), record);
}

async function estimated(
  chat: ChatRequest,
  outputText: string,
  record: OpenRequestRecord,
): Promise<AttemptUsage> {
  return {
    kind: 'estimated',
    usage: await estimateChatUsage(
      chat.body,
      outputText,
      record.reservedInputTokens,
    ),
    raw: undefined,
  };
}

function warnUsageParse(
  ctx: GatewayContext,
  record: OpenRequestRecord,
  error: UsageParseError,
): void {
  ctx.logger.warn(
    {
      requestId: record.id,
      deployment: record.deploymentId,
      reason: error.message,
    },
    'upstream usage block is malformed; usage will be estimated',
  );
}

function choicesText(completion: Record<string, unknown>): string {
  const choices = completion['choices'];
  if (!Array.isArray(choices)) return '';
  return choices
    .map((choice: unknown) => {
      const message = (choice as { message?: { content?: unknown } } | null)
        ?.message;
      return typeof message?.content === 'string' ? message.content : '';
    })
    .join('');
}
