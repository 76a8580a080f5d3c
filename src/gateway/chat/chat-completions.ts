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
import { worstCase } from '../../metering/reserve.js';
import { UsageParseError } from '../../metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import type { Deployment } from '../../routing/route-table.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { openAIChatInbound } from '../../protocol/openai/openai-chat-inbound.js';
import type { GatewayContext } from '../gateway-context.js';
import { admitAndOpen } from '../inference/admit.js';
import { deploymentFor, requestRecord } from '../inference/admission-record.js';
import { handleInference } from '../inference/handle-inference.js';
import {
  endUserOf,
  headerValue,
  isJson,
  parseObject,
  readAll,
  callUpstream,
  settleOrLeavePending,
  upstreamFailure,
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
  const chat = parseChatRequest(request.body);
  const deployment = deploymentFor(ctx, caller, chat.model);

  const body = upstreamChatBody(chat, deployment.upstreamModel);
  const bound = worstCase({
    bodyBytes: Buffer.byteLength(body),
    images: chat.images,
    maxOutputTokens: chat.maxOutputTokens,
    choices: chat.choices,
    defaultMaxOutputTokens: ctx.config.metering.defaultMaxOutputTokens,
  });
  const record = requestRecord(ctx, {
    request,
    caller,
    model: chat.model,
    deployment,
    stream: chat.stream,
    bound,
    endUser: endUserOf(request, chat.user ?? null),
  });
  await admitAndOpen(ctx, reply, caller.tenant, record);

  const abort = new AbortController();
  await ctx.inflight.track(
    abort,
    serve(ctx, { request, reply, chat, deployment, record, body, abort }),
  );
}

/**
 * Whether the model the body names is served through another API than
 * Chat Completions, so the request is translated (handle-inference.ts)
 * rather than passed through here.
 */
function servedByAnotherApi(ctx: GatewayContext, body: unknown): boolean {
  const model = (body as { model?: unknown } | null)?.model;
  if (typeof model !== 'string') return false;
  const deployment = ctx.routes.resolve(model)?.deployments[0];
  return deployment !== undefined && deployment.client.api !== 'openai-chat';
}

interface Attempt {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly chat: ChatRequest;
  readonly deployment: Deployment;
  readonly record: OpenRequestRecord;
  readonly body: string;
  readonly abort: AbortController;
}

async function serve(ctx: GatewayContext, attempt: Attempt): Promise<void> {
  const { deployment, record, abort } = attempt;
  const settle = (outcome: Omit<AttemptOutcome, 'attempt'>) =>
    settleOrLeavePending(ctx, record, { attempt: 1, ...outcome });

  // relayChatStream watches a streaming client once the stream starts;
  // until then, a client that hangs up is noticed here.
  const clientLeft = attempt.chat.stream
    ? watchClient(attempt.reply, abort)
    : () => false;
  const upstream = await callUpstream({
    reply: attempt.reply,
    settle,
    clientLeft,
    send: () =>
      deployment.client.sendChat({
        body: attempt.body,
        upstreamModel: deployment.upstreamModel,
        stream: attempt.chat.stream,
        signal: abort.signal,
      }),
    estimate: () => estimated(attempt.chat, '', record),
  });
  if (!upstream) return;
  const upstreamRequestId = upstream.upstreamRequestId;

  if (upstream.status !== 200) {
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

  if (!attempt.chat.stream) {
    await serveJson(ctx, attempt, upstream, settle);
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
    messages: attempt.chat.messages,
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

/** A non-streamed answer: read it whole, settle, then send it on. */
async function serveJson(
  ctx: GatewayContext,
  attempt: Attempt,
  upstream: UpstreamResponse,
  settle: (outcome: Omit<AttemptOutcome, 'attempt'>) => Promise<void>,
): Promise<void> {
  const { record, chat } = attempt;
  const upstreamRequestId = upstream.upstreamRequestId;
  let bytes: Buffer;
  try {
    bytes = await readAll(upstream.body);
  } catch (error) {
    const failure = upstreamFailure(error);
    await settle({
      usage: await estimated(chat, '', record),
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId,
    });
    throw failure;
  }

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
      chat.messages,
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
