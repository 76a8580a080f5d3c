/**
 * Any inference API in front of any upstream: OpenAI Responses, Anthropic
 * Messages and Bedrock Converse from their own SDKs, and Chat Completions
 * for deployments that speak another API.
 *
 * The request is authenticated, decoded and checked by the client's API,
 * recorded durably with its worst case, and sent upstream: unchanged but
 * for the model when the deployment speaks the client's API, translated
 * through canonical form when not. The answer comes back the same way,
 * and the request is settled exactly once from the provider's usage
 * (DESIGN.md, "The request path" and "Usage, exactly once").
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

import type { AttemptUsage } from '../../metering/meter.js';
import {
  countBodyImages,
  hiddenInput,
  unmodelledText,
} from '../../metering/hidden-input.js';
import { worstCase, type WorstCase } from '../../metering/reserve.js';
import type { Decimal } from '../../money/decimal.js';
import { defaultMaxTokens } from '../../protocol/anthropic/anthropic-upstream.js';
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatRequest,
  type CanonicalChatResponse,
  type InboundProtocol,
  type UpstreamProtocol,
} from '../../protocol/canonical.js';
import { readChatAdmissionFields } from '../../protocol/openai/chat-admission-fields.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { runAttempts } from '../../routing/attempts.js';
import type { Deployment, Route } from '../../routing/route-table.js';
import type { RoutePlan } from '../../routing/router.js';
import type { OpenRequestRecord } from '../../storage/store.js';
import { ApiError, fromInvalidRequest } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';
import { countImages, estimatedAttempt } from './estimate-usage.js';
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
  isJson,
  parseObject,
  readAll,
  settleClientGone,
  settleOrLeavePending,
  noticeClient,
  watchClient,
  type Settle,
} from './lifecycle.js';
import {
  API_NAMES,
  firstUntranslatable,
  passthroughBody,
  UPSTREAM_PROTOCOLS,
} from './protocols.js';
import { capBody, capCanonical, outputCapFor } from './output-cap.js';
import { relayStream } from './relay-stream.js';
import { readUpstreamError } from './read-upstream-error.js';
import { upstreamErrorToApiError } from './upstream-errors.js';

/** One inference request on its way, from admission to settlement. */
export interface Exchange {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly inbound: InboundProtocol;
  /** The API of the deployment that answers (the last attempt's). */
  readonly upstream: UpstreamProtocol;
  /** The deployment speaks the client's API: bodies pass through. */
  readonly passthrough: boolean;
  readonly canonical: CanonicalChatRequest;
  readonly deployment: Deployment;
  readonly record: OpenRequestRecord;
  readonly body: string;
  readonly abort: AbortController;
}

/** A request made ready for one deployment: its body and worst case. */
interface Prepared {
  readonly deployment: Deployment;
  readonly upstream: UpstreamProtocol;
  readonly passthrough: boolean;
  readonly body: string;
  readonly bound: WorstCase;
  /** The most the tenant may be charged if it serves. */
  readonly charge: Decimal | null;
  /** The most the provider may bill if it serves: `cheapest` ranks by it. */
  readonly cost: Decimal | null;
}

/**
 * Serves one request of the `inbound` API. `pathModel` is the model a
 * path names (Bedrock's `/model/{modelId}/converse`), else null.
 */
export async function handleInference(
  ctx: GatewayContext,
  inbound: InboundProtocol,
  request: FastifyRequest,
  reply: FastifyReply,
  pathModel: string | null,
): Promise<void> {
  if (ctx.isShuttingDown()) {
    throw new ApiError('shutting_down', 'The gateway is shutting down.');
  }
  const caller = await ctx.auth.tenant(request);
  const asked = decoded(() => inbound.decodeRequest(request.body, pathModel));
  refuseBackground(inbound, request.body);
  const route = routeFor(ctx, caller, asked.model);
  const endUser = endUserOf(request, asked.endUser);
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
    asked,
  );
  const unseen = hiddenInput(inbound.api, request.body).unseen;
  const unmodelled = unmodelledText(inbound.api, request.body);
  const canonical = {
    ...capCanonical(asked, cap),
    ...(unseen !== null && { unseenInput: unseen }),
    ...(unmodelled !== '' && { unmodelledText: unmodelled }),
  };
  const body =
    cap === null
      ? request.body
      : capBody(
          inbound.api,
          request.body as Readonly<Record<string, unknown>>,
          cap,
        );

  // Each deployment the route may try gets its own body (its API's) and
  // worst case; one that cannot express the request is passed over.
  const prepared = new Map<Deployment, Prepared | ApiError>();
  for (const deployment of route.deployments) {
    prepared.set(
      deployment,
      prepare(ctx, inbound, body, canonical, route, deployment, servedAt),
    );
  }
  const ready = (d: Deployment): Prepared | undefined => {
    const p = prepared.get(d);
    return p instanceof ApiError ? undefined : p;
  };
  const plan = ctx.router.plan(
    route,
    {
      tenantId: caller.tenant.id,
      tenantName: caller.tenant.name,
      endUser,
    },
    (d) => ready(d)?.cost ?? null,
  );
  const usable = plan.deployments.flatMap((d) => ready(d) ?? []);
  const first = usable[0];
  if (!first) {
    // Nothing can express it: the first deployment's refusal says why.
    throw prepared.get(plan.deployments[0] as Deployment) as ApiError;
  }
  const worst = dearest(usable);
  const record = requestRecord(ctx, {
    request,
    caller,
    model: canonical.model,
    route,
    deployment: first.deployment,
    stream: canonical.stream,
    bound: worst.bound,
    reservedCost: worst.charge,
    servedAt,
    endUser,
  });
  await admitAndOpen(
    ctx,
    reply,
    caller.tenant,
    record,
    canonical.unseenInput ?? null,
  );

  const abort = new AbortController();
  await ctx.inflight.track(
    abort,
    serve(ctx, {
      request,
      reply,
      inbound,
      canonical,
      record,
      abort,
      route,
      plan,
      ready,
    }),
  );
}

function prepare(
  ctx: GatewayContext,
  inbound: InboundProtocol,
  raw: unknown,
  canonical: CanonicalChatRequest,
  route: Route,
  deployment: Deployment,
  at: number,
): Prepared | ApiError {
  const upstream = UPSTREAM_PROTOCOLS[deployment.client.api];
  const passthrough = deployment.client.api === inbound.api;
  let sent: Readonly<Record<string, unknown>>;
  let output: Output;
  try {
    sent = passthrough
      ? passthroughBody(
          inbound.api,
          raw as Readonly<Record<string, unknown>>,
          deployment.upstreamModel,
        )
      : translatedBody(inbound, upstream, raw, canonical, deployment);
    output = outputOf(inbound, passthrough, sent, canonical);
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  const body = JSON.stringify(sent);
  const bound = worstCase({
    bodyBytes: Buffer.byteLength(body),
    // Counted in the body as sent too: a decoder may not model every
    // place an image can sit (a content document, a developer message).
    images: Math.max(countImages(canonical), countBodyImages(sent)),
    // Scanned as sent: what the upstream's API adds or fetches.
    hidden: hiddenInput(upstream.api, sent),
    unseenInputTokens: ctx.config.metering.unseenInputTokens,
    maxOutputTokens: output.maxOutputTokens,
    choices: output.choices,
    // Translated to Anthropic without a cap, the request is sent the cap
    // Anthropic requires (above any thinking budget): that is its bound.
    defaultMaxOutputTokens:
      upstream.api === 'anthropic-messages' && !passthrough
        ? Math.max(
            ctx.config.metering.defaultMaxOutputTokens,
            defaultMaxTokens(canonical.thinkingBudgetTokens),
          )
        : ctx.config.metering.defaultMaxOutputTokens,
  });
  return {
    deployment,
    upstream,
    passthrough,
    body,
    bound,
    charge: worstCharge(ctx, route, deployment, bound, at),
    cost: worstProviderCost(ctx, deployment, bound, at),
  };
}

/** What a request may generate upstream: a cap for each of its choices. */
interface Output {
  readonly maxOutputTokens: number | undefined;
  readonly choices: number;
}

/**
 * The output a body as sent may generate. A Chat Completions body passed
 * through is read as the pure Chat path reads it: the larger of its two
 * caps, since an upstream may honour either, for each of its `n` choices.
 * Any other carries the canonical cap, once (translated, `n` above 1 is
 * refused).
 */
function outputOf(
  inbound: InboundProtocol,
  passthrough: boolean,
  sent: Readonly<Record<string, unknown>>,
  canonical: CanonicalChatRequest,
): Output {
  if (!passthrough || inbound.api !== 'openai-chat') {
    return {
      maxOutputTokens: canonical.maxOutputTokens ?? undefined,
      choices: 1,
    };
  }
  const chat = fromInvalidRequest(() => readChatAdmissionFields(sent));
  return {
    maxOutputTokens: chat.outputBound ?? undefined,
    choices: chat.choices,
  };
}

/**
 * A Responses request run in the background is answered before it runs,
 * with no usage: what it uses arrives later, on a poll the gateway does
 * not see, so it could be neither bounded nor metered.
 */
function refuseBackground(inbound: InboundProtocol, body: unknown): void {
  if (
    inbound.api !== 'openai-responses' ||
    (body as { background?: unknown } | null)?.background !== true
  ) {
    return;
  }
  throw new ApiError(
    'invalid_value',
    "Background responses ('background': true) are not supported through " +
      'the gateway, which meters usage as a response is served; send the ' +
      "request without 'background', streamed if it is long.",
    { param: 'background' },
  );
}

/** Runs a decoder, turning its refusals into coded API errors. */
function decoded<T>(decode: () => T): T {
  try {
    return fromInvalidRequest(decode);
  } catch (error) {
    if (error instanceof UntranslatableError) throw untranslatable(error);
    throw error;
  }
}

function translatedBody(
  inbound: InboundProtocol,
  upstream: UpstreamProtocol,
  body: unknown,
  canonical: CanonicalChatRequest,
  deployment: Deployment,
): Readonly<Record<string, unknown>> {
  const refusal = firstUntranslatable(inbound.api, body);
  if (refusal) throw untranslatable(refusal, deployment, upstream);
  try {
    return upstream.encodeRequest(canonical, deployment.upstreamModel);
  } catch (error) {
    if (error instanceof UntranslatableError) {
      throw untranslatable(error, deployment, upstream);
    }
    throw error;
  }
}

function untranslatable(
  error: UntranslatableError,
  deployment?: Deployment,
  upstream?: UpstreamProtocol,
): ApiError {
  const where =
    deployment && upstream
      ? ` The model '${deployment.alias}' is served through ` +
        `${API_NAMES[upstream.api]}, which cannot express it.`
      : '';
  const message = error.message.replace(/\.$/, '');
  return new ApiError('untranslatable', `${message}.${where}`, {
    ...(error.param !== null && { param: error.param }),
  });
}

/** An admitted request before its attempts. */
interface Admitted {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly inbound: InboundProtocol;
  readonly canonical: CanonicalChatRequest;
  readonly record: OpenRequestRecord;
  readonly abort: AbortController;
  readonly route: Route;
  readonly plan: RoutePlan;
  readonly ready: (deployment: Deployment) => Prepared | undefined;
}

async function serve(ctx: GatewayContext, admitted: Admitted): Promise<void> {
  let settled = false;
  const attempts = new AttemptLedger(admitted.plan);
  const settle: Settle = (outcome) => {
    settled = true;
    return settleOrLeavePending(
      ctx,
      admitted.record,
      attempts.final(outcome),
      attempts.context(),
    );
  };
  try {
    await serveSettling(ctx, admitted, attempts, settle);
  } catch (error) {
    // Every path settles; one that threw before it did (a bug, or an
    // error nobody foresaw) still must, or the request's reservation and
    // record would stay open until this process dies.
    if (!settled) {
      ctx.logger.error(
        { err: error, requestId: admitted.record.id },
        'a request failed before it was settled; settling it, estimated',
      );
      await settle({
        usage: await estimatedAttempt(
          admitted.canonical,
          null,
          '',
          admitted.record.reservedInputTokens,
        ),
        statusCode: 500,
        errorCode: 'internal_error',
        upstreamRequestId: null,
      });
    }
    // A stream already answered (and now closed) has no one to tell.
    if (admitted.reply.raw.headersSent) return;
    throw error;
  }
}

async function serveSettling(
  ctx: GatewayContext,
  admitted: Admitted,
  attempts: AttemptLedger,
  settle: Settle,
): Promise<void> {
  const { record, abort, reply, route, canonical } = admitted;

  // The stream relay watches a streaming client once the stream starts;
  // until then, a client that hangs up is noticed here.
  const clientLeft = canonical.stream ? watchClient(reply, abort) : () => false;
  // A streaming client that leaves aborts the signal; the watch above
  // must not be asked (asking ends it).
  const clientGone = canonical.stream ? undefined : noticeClient(reply);
  const outcome = await runAttempts({
    route,
    plan: admitted.plan,
    health: ctx.router.health,
    discard: discardAttempt,
    signal: abort.signal,
    ...(clientGone && { clientGone }),
    usable: (d) => admitted.ready(d) !== undefined,
    begin: (attempt, d) =>
      ctx.meter.beginAttempt(record, attempt, attemptDeployment(d)),
    attempt: (d, _attempt, context) => {
      const p = admitted.ready(d) as Prepared;
      return attemptUpstream({
        send: (signal) =>
          d.client.sendChat({
            body: p.body,
            upstreamModel: d.upstreamModel,
            stream: canonical.stream,
            signal,
          }),
        stream: canonical.stream,
        protocol: p.upstream,
        passOverFiltered: route.retry.fallbackOn.has('content_filter'),
        context,
        clientSignal: abort.signal,
        estimate: () =>
          estimatedAttempt(canonical, null, '', record.reservedInputTokens),
      });
    },
  });
  attempts.record(outcome);
  const value = await answerOf(outcome, settle, reply, clientLeft);
  if (!value || outcome.kind !== 'answered') return;
  const p = admitted.ready(outcome.deployment) as Prepared;
  const exchange: Exchange = {
    request: admitted.request,
    reply,
    inbound: admitted.inbound,
    upstream: p.upstream,
    passthrough: p.passthrough,
    canonical,
    deployment: p.deployment,
    record,
    body: p.body,
    abort,
  };
  const upstream = value.response;
  if (clientLeft()) {
    // Answered, but nobody is there to read it; it may be charged.
    upstream.body.destroy();
    const usage: AttemptUsage =
      upstream.status === 200
        ? await estimated(exchange, null, '')
        : { kind: 'none' };
    await settleClientGone(reply, settle, usage, upstream.upstreamRequestId);
    return;
  }
  const upstreamRequestId = upstream.upstreamRequestId;
  if (value.kind === 'status') {
    await serveUpstreamError(exchange, upstream, settle);
    return;
  }
  if (value.kind === 'json') {
    await serveJson(ctx, exchange, upstream, value.bytes, settle);
    return;
  }
  if (
    upstream.body.readableObjectMode === false &&
    isJson(upstream.headers['content-type'])
  ) {
    await serveNotAStream(exchange, upstream, settle);
    return;
  }

  reply.hijack();
  try {
    await relayStream(ctx, exchange, upstream, (outcome) =>
      settle({ ...outcome, upstreamRequestId }),
    );
  } catch (error) {
    // The response is ours now: end it rather than leave the client
    // hanging; serve() settles what was not settled.
    ctx.logger.error(
      { err: error, requestId: record.id },
      'relaying a stream failed; the connection was closed',
    );
    reply.raw.destroy();
    throw error;
  }
}

/**
 * An upstream error answer. To a client of the same API an error about
 * the request passes through as the provider wrote it; otherwise it is
 * told in the client's own format, with the status its kind implies.
 */
async function serveUpstreamError(
  exchange: Exchange,
  upstream: UpstreamResponse,
  settle: Settle,
): Promise<void> {
  const { bytes, parsed } = await readUpstreamError(upstream.body);
  const info = exchange.upstream.decodeError(
    upstream.status,
    upstream.headers,
    parsed,
  );
  const passOn =
    exchange.passthrough &&
    upstream.status >= 400 &&
    upstream.status < 500 &&
    info.kind !== 'authentication' &&
    info.kind !== 'permission' &&
    info.kind !== 'not_found' &&
    parsed !== null;
  if (!passOn) {
    const error = upstreamErrorToApiError(info);
    await settle({
      usage: { kind: 'none' },
      statusCode: error.status,
      errorCode: error.code,
      upstreamRequestId: upstream.upstreamRequestId,
    });
    throw error;
  }
  await settle({
    usage: { kind: 'none' },
    statusCode: upstream.status,
    errorCode: `upstream_${upstream.status}`,
    upstreamRequestId: upstream.upstreamRequestId,
  });
  for (const name of ['retry-after', 'x-amzn-errortype']) {
    const value = headerValue(upstream.headers[name]);
    if (value !== undefined) exchange.reply.header(name, value);
  }
  await exchange.reply
    .code(upstream.status)
    .header(
      'content-type',
      headerValue(upstream.headers['content-type']) ?? 'application/json',
    )
    .send(bytes);
}

/** A non-streamed answer, read whole: settle, then send it on. */
async function serveJson(
  ctx: GatewayContext,
  exchange: Exchange,
  upstream: UpstreamResponse,
  bytes: Buffer,
  settle: Settle,
): Promise<void> {
  const upstreamRequestId = upstream.upstreamRequestId;
  const fail = async (failure: ApiError, usage: AttemptUsage) => {
    await settle({
      usage,
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId,
    });
    throw failure;
  };

  const json = parseObject(bytes);
  let answer: CanonicalChatResponse;
  try {
    if (!json) throw new UpstreamProtocolError('the body is not a JSON object');
    answer = exchange.upstream.decodeResponse(json);
  } catch (error) {
    // Whatever the decoder refused (a malformed body, a usage block it
    // cannot read, tool arguments that are not JSON), the request is
    // settled, estimated.
    if (!(error instanceof Error)) throw error;
    warnMalformed(ctx, exchange, error);
    const usage = await estimated(exchange, null, '');
    if (exchange.passthrough && json) {
      // A client of the same API may well read what we could not.
      await settle({
        usage,
        statusCode: 200,
        errorCode: null,
        upstreamRequestId,
      });
      await exchange.reply
        .code(200)
        .header(
          'content-type',
          headerValue(upstream.headers['content-type']) ?? 'application/json',
        )
        .send(bytes);
      return;
    }
    return fail(
      new ApiError(
        'upstream_error',
        `The upstream provider's answer could not be read: ${error.message}.`,
      ),
      usage,
    );
  }
  const usage: AttemptUsage = {
    kind: 'reported',
    usage: answer.usage,
    raw: answer.rawUsage,
  };

  let out: Buffer;
  try {
    out = exchange.passthrough
      ? bytes
      : Buffer.from(
          JSON.stringify(
            exchange.inbound.encodeResponse(answer, {
              requestId: exchange.record.id,
              model: exchange.canonical.model,
            }),
          ),
        );
  } catch (error) {
    if (!(error instanceof UntranslatableError)) throw error;
    return fail(
      new ApiError(
        'upstream_error',
        `The upstream's answer cannot be expressed in this API: ` +
          `${error.message}.`,
      ),
      usage,
    );
  }
  await settle({ usage, statusCode: 200, errorCode: null, upstreamRequestId });
  await exchange.reply
    .code(200)
    .header(
      'content-type',
      exchange.passthrough
        ? (headerValue(upstream.headers['content-type']) ?? 'application/json')
        : 'application/json',
    )
    .send(out);
}

/**
 * A stream was asked for and the upstream answered 200 with a JSON body.
 * The client cannot use it as a stream, so it gets a 502; what the
 * upstream reports it served is still metered.
 */
async function serveNotAStream(
  exchange: Exchange,
  upstream: UpstreamResponse,
  settle: Settle,
): Promise<void> {
  const failure = new ApiError(
    'upstream_error',
    'The upstream provider answered a streaming request without a stream.',
  );
  let usage: AttemptUsage;
  try {
    const json = parseObject(await readAll(upstream.body));
    const answer = json ? exchange.upstream.decodeResponse(json) : undefined;
    usage = answer
      ? { kind: 'reported', usage: answer.usage, raw: answer.rawUsage }
      : await estimated(exchange, null, '');
  } catch {
    usage = await estimated(exchange, null, '');
  }
  await settle({
    usage,
    statusCode: failure.status,
    errorCode: failure.code,
    upstreamRequestId: upstream.upstreamRequestId,
  });
  throw failure;
}

/** Usage estimated from the request alone: the answer never came. */
function estimated(
  exchange: Exchange,
  early: null,
  deliveredText: string,
): Promise<AttemptUsage> {
  return estimatedAttempt(
    exchange.canonical,
    early,
    deliveredText,
    exchange.record.reservedInputTokens,
  );
}

export function warnMalformed(
  ctx: GatewayContext,
  exchange: Exchange,
  error: Error,
): void {
  ctx.logger.warn(
    {
      requestId: exchange.record.id,
      deployment: exchange.record.deploymentId,
      reason: error.message,
    },
    'upstream answer is malformed; usage will be estimated',
  );
}
