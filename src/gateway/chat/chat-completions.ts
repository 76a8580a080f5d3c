/**
 * `POST /v1/chat/completions`: authenticate, validate, record the worst
 * case durably, call the upstream, relay its answer, settle the usage.
 *
 * From the moment the request is recorded it is settled exactly once,
 * whatever happens: success, upstream error, timeout, client disconnect or
 * shutdown. If even the settling write fails, the record stays pending and
 * the next start's recovery settles it; it is never silently dropped.
 */
import type { Readable } from 'node:stream';

import type { FastifyReply, FastifyRequest } from 'fastify';

import type { AttemptOutcome, AttemptUsage } from '../../metering/meter.js';
import { worstCase, worstCaseCost } from '../../metering/reserve.js';
import { UsageParseError } from '../../metering/usage.js';
import { formatDecimal } from '../../money/decimal.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { classifyUpstreamError } from '../../providers/upstream-error.js';
import type { Deployment } from '../../routing/route-table.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import { keyAllows } from '../authenticate.js';
import type { GatewayContext } from '../gateway-context.js';
import { estimateChatUsage } from './delivered-text.js';
import {
  parseChatRequest,
  upstreamChatBody,
  type ChatRequest,
} from './parse-chat-request.js';
import { CLIENT_CLOSED_REQUEST, relayChatStream } from './relay-chat-stream.js';
import { relayUpstreamError } from './relay-upstream-error.js';

/** Header naming the end user when the body's `user` field is not used. */
export const END_USER_HEADER = 'x-tollgate-end-user';

export async function handleChatCompletions(
  ctx: GatewayContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (ctx.isShuttingDown()) {
    throw new ApiError('shutting_down', 'The gateway is shutting down.');
  }
  const caller = await ctx.auth.tenant(request);
  const chat = parseChatRequest(request.body);
  const route = ctx.routes.resolve(chat.model);
  const deployment = route?.deployments[0];
  if (!deployment || !keyAllows(caller.key, chat.model)) {
    throw new ApiError(
      'model_not_found',
      `The model '${chat.model}' does not exist or you do not have access ` +
        'to it.',
      { param: 'model' },
    );
  }

  const body = upstreamChatBody(chat, deployment.upstreamModel);
  const bound = worstCase({
    bodyBytes: Buffer.byteLength(body),
    images: chat.images,
    maxOutputTokens: chat.maxOutputTokens,
    choices: chat.choices,
    defaultMaxOutputTokens: ctx.config.metering.defaultMaxOutputTokens,
  });
  const servedAt = Date.now();
  const price = ctx.meter.priceBook.lookup(
    deployment.priceKey,
    servedAt,
    bound.inputTokens,
  );
  const reservedCost = worstCaseCost(bound, price);
  const record: OpenRequestRecord = {
    id: request.id,
    tenantId: caller.tenant.id,
    keyId: caller.key.id,
    endUser: endUserOf(request, chat),
    model: chat.model,
    deploymentId: deployment.id,
    provider: deployment.providerId,
    upstreamModel: deployment.upstreamModel,
    priceKey: deployment.priceKey,
    stream: chat.stream,
    servedAt,
    reservedInputTokens: bound.inputTokens,
    reservedOutputTokens: bound.outputTokens,
    reservedCost: reservedCost === null ? null : formatDecimal(reservedCost),
    instanceId: ctx.instanceId,
  };
  await ctx.meter.open(record);

  const abort = new AbortController();
  await ctx.inflight.track(
    abort,
    serve(ctx, { request, reply, chat, deployment, record, body, abort }),
  );
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
  let upstream: UpstreamResponse;
  try {
    upstream = await deployment.client.chatCompletions({
      body: attempt.body,
      signal: abort.signal,
    });
  } catch (error) {
    if (clientLeft()) {
      await settleClientGone(attempt, settle, { kind: 'none' }, null);
      return;
    }
    const failure = upstreamFailure(error);
    await settle({
      usage: { kind: 'none' },
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId: null,
    });
    throw failure;
  }
  const upstreamRequestId = upstream.upstreamRequestId;
  if (clientLeft()) {
    // It answered as the client left: the prompt may be charged.
    upstream.body.destroy();
    const usage =
      upstream.status === 200
        ? await estimated(attempt.chat, '', record)
        : ({ kind: 'none' } as const);
    await settleClientGone(attempt, settle, usage, upstreamRequestId);
    return;
  }

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

/**
 * Only a body declared as JSON is taken for "not a stream": some servers
 * send their event stream with no content type, or a loose one.
 */
function isJson(contentType: string | string[] | undefined): boolean {
  const value = headerValue(contentType);
  return (
    value !== undefined && /^\s*application\/([\w.-]+\+)?json\b/i.test(value)
  );
}

function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof parsed === 'object' &&
      parsed !== null &&
      !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
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

/**
 * Settles the request; if the store cannot take the write, logs it loudly
 * and leaves the record pending for recovery rather than failing the
 * client's request after the fact.
 */
async function settleOrLeavePending(
  ctx: GatewayContext,
  record: OpenRequestRecord,
  outcome: AttemptOutcome,
): Promise<void> {
  try {
    await ctx.meter.settle(record, outcome);
  } catch (error) {
    // TODO(#4): spool the settlement locally and drain it when the store
    // is back, instead of leaving it for recovery's worst-case estimate.
    ctx.logger.error(
      { err: error, requestId: record.id, tenantId: record.tenantId },
      'could not settle a request; it stays pending for recovery',
    );
  }
}

/**
 * Aborts the upstream call if the client hangs up, from now until the
 * returned function is called; that function tells whether it did.
 */
function watchClient(
  reply: FastifyReply,
  abort: AbortController,
): () => boolean {
  const response = reply.raw;
  let gone = false;
  const onClose = () => {
    if (response.writableFinished) return;
    gone = true;
    abort.abort();
  };
  // A client gone before the watch began has already emitted 'close'.
  if (response.destroyed) onClose();
  else response.once('close', onClose);
  return () => {
    response.off('close', onClose);
    return gone;
  };
}

/** Settles a request whose client left before its answer began. */
async function settleClientGone(
  attempt: Attempt,
  settle: (outcome: Omit<AttemptOutcome, 'attempt'>) => Promise<void>,
  usage: AttemptUsage,
  upstreamRequestId: string | null,
): Promise<void> {
  await settle({
    usage,
    statusCode: CLIENT_CLOSED_REQUEST,
    errorCode: 'client_disconnected',
    upstreamRequestId,
  });
  // There is no one left to answer.
  attempt.reply.hijack();
}

function upstreamFailure(error: unknown): ApiError {
  const failure = classifyUpstreamError(error);
  switch (failure.failure) {
    case 'timeout':
      return new ApiError(
        'upstream_timeout',
        'The upstream provider did not answer in time.',
        { cause: error },
      );
    case 'aborted':
      return new ApiError(
        'shutting_down',
        'The gateway stopped this request while shutting down.',
        { cause: error },
      );
    case 'unavailable':
      return new ApiError(
        'upstream_unavailable',
        'The upstream provider could not be reached.',
        { cause: error },
      );
  }
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

function endUserOf(request: FastifyRequest, chat: ChatRequest): string | null {
  const header = request.headers[END_USER_HEADER];
  const raw = Array.isArray(header) ? header[0] : header;
  const fromHeader = raw === undefined ? undefined : utf8HeaderValue(raw);
  if (fromHeader !== undefined && fromHeader !== '') {
    if (fromHeader.length > 256) {
      throw new ApiError(
        'invalid_value',
        `The ${END_USER_HEADER} header is longer than 256 characters.`,
      );
    }
    return fromHeader;
  }
  return chat.user ?? null;
}

/**
 * Node reads header bytes as Latin-1; a client that sent UTF-8 (a name
 * with accents, say) gets its text back when the bytes are valid UTF-8.
 */
function utf8HeaderValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return value;
  }
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

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
