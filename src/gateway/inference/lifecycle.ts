/**
 * The parts of a metered request's life that every inference route
 * shares: settling exactly once, noticing a client that hangs up, naming
 * upstream failures, attributing the end user.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

import type { FastifyReply, FastifyRequest } from 'fastify';

import type {
  AttemptOutcome,
  AttemptUsage,
  SettleContext,
  SettledRequest,
} from '../../metering/meter.js';
import { classifyUpstreamError } from '../../providers/upstream-error.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { ConflictError, type OpenRequestRecord } from '../../storage/store.js';
import { ApiError } from '../api-error.js';
import type { GatewayContext } from '../gateway-context.js';

/** Header naming the end user when the body's `user` field is not used. */
export const END_USER_HEADER = 'x-tollgate-end-user';

/** HTTP status recorded for a client that hung up (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499;

export type Settle = (
  outcome: Omit<AttemptOutcome, 'attempt'>,
) => Promise<void>;

/**
 * Only a body declared as JSON is taken for "not a stream": some servers
 * send their event stream with no content type, or a loose one.
 */
export function isJson(contentType: string | string[] | undefined): boolean {
  const value = headerValue(contentType);
  return (
    value !== undefined && /^\s*application\/([\w.-]+\+)?json\b/i.test(value)
  );
}

export function parseObject(
  bytes: Buffer,
): Record<string, unknown> | undefined {
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

/**
 * Settles the request, and then its reservation to what it used. A store
 * that cannot take the write has the exact settlement spooled by the
 * meter, which then resolves as usual: the limits are settled to the
 * actual usage here, and the spool drains into the ledger once the store
 * is back. Only when the spool cannot take it either is the record left
 * pending for recovery, logged loudly, rather than failing the client's
 * request after the fact.
 */
export async function settleOrLeavePending(
  ctx: GatewayContext,
  record: OpenRequestRecord,
  outcome: AttemptOutcome,
  context: SettleContext = {},
): Promise<void> {
  let settled: SettledRequest;
  try {
    settled = await ctx.meter.settle(record, outcome, context);
  } catch (error) {
    // Left as the ledger has it. A conflict says it is settled already;
    // otherwise it stays pending, and recovery will settle it at its
    // worst case. On shared counters recovery also releases its
    // reservations, so they are left for it (settling them here too
    // would count them twice). A process's own counters are settled now
    // at the worst case (never forgiving), freeing the slot.
    if (ctx.admission.countersShared) ctx.admission.forget(record.id);
    else {
      await ctx.admission.settle(record.id, 'worst');
    }
    ctx.logger.error(
      { err: error, requestId: record.id, tenantId: record.tenantId },
      error instanceof ConflictError
        ? 'could not settle a request: the ledger holds it settled already'
        : 'could not settle a request, nor spool its settlement; it stays ' +
            'pending for recovery',
    );
    return;
  }
  const { rating } = settled;
  const usage = outcome.usage;
  // Spooled or not, the settlement is durable and exact, so the limits
  // count what was used, not the worst case.
  await ctx.admission.settle(
    record.id,
    usage.kind === 'none'
      ? null
      : { tokens: usage.usage, cost: rating?.total ?? null },
  );
}

/**
 * Notices a client that hangs up, without aborting anything: a
 * non-streamed call in flight is left to finish so that its usage is
 * known, but no retry or fallback is made for a client that is gone.
 */
export function noticeClient(reply: FastifyReply): () => boolean {
  const response = reply.raw;
  let gone = response.destroyed;
  response.once('close', () => {
    if (!wasDelivered(response)) gone = true;
  });
  return () => gone;
}

/**
 * Aborts the upstream call if the client hangs up, from now until the
 * returned function is called; that function tells whether it did.
 */
export function watchClient(
  reply: FastifyReply,
  abort: AbortController,
): () => boolean {
  const response = reply.raw;
  let gone = false;
  const onClose = () => {
    if (wasDelivered(response)) return;
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

/**
 * Whether a closed response had been written to its end, rather than cut
 * off by the client. `writableFinished` alone cannot tell: Node's HTTP/2
 * compatibility layer reports a stream the client reset as finished (the
 * AWS SDK resets its HTTP/2 stream when a Bedrock caller aborts), so the
 * gateway must also have ended the response itself.
 */
export function wasDelivered(response: ServerResponse): boolean {
  return response.writableEnded && response.writableFinished;
}

/**
 * Makes the upstream call. Resolves with the answer; or, when the client
 * hung up meanwhile, settles the request as the client's leaving (the
 * prompt estimated when the upstream had answered, since it may be
 * charged) and resolves undefined. When no answer came, settles the
 * failure and throws it as a coded error.
 */
export async function callUpstream(args: {
  readonly reply: FastifyReply;
  readonly settle: Settle;
  readonly clientLeft: () => boolean;
  readonly send: () => Promise<UpstreamResponse>;
  readonly estimate: () => Promise<AttemptUsage>;
}): Promise<UpstreamResponse | undefined> {
  const { reply, settle, clientLeft } = args;
  let upstream: UpstreamResponse;
  try {
    upstream = await args.send();
  } catch (error) {
    if (clientLeft()) {
      await settleClientGone(reply, settle, { kind: 'none' }, null);
      return undefined;
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
  if (!clientLeft()) return upstream;
  upstream.body.destroy();
  const usage: AttemptUsage =
    upstream.status === 200 ? await args.estimate() : { kind: 'none' };
  await settleClientGone(reply, settle, usage, upstream.upstreamRequestId);
  return undefined;
}

/** Settles a request whose client left before its answer began. */
export async function settleClientGone(
  reply: FastifyReply,
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
  reply.hijack();
}

export function upstreamFailure(error: unknown): ApiError {
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

/**
 * The end user: the `x-tollgate-end-user` header if set, else the one the
 * body names (OpenAI `user`, Anthropic `metadata.user_id`, …); null when
 * neither names one, or names ''.
 */
export function endUserOf(
  request: FastifyRequest,
  bodyUser: string | null,
): string | null {
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
  // An empty name names nobody: such a request counts, and is recorded,
  // as one naming no end user (a limit's `endUser: ''`).
  return bodyUser === '' ? null : bodyUser;
}

/**
 * Node reads header bytes as Latin-1; a client that sent UTF-8 (a name
 * with accents, say) gets its text back when the bytes are valid UTF-8.
 */
export function utf8HeaderValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return value;
  }
}

export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function headerValue(
  value: string | string[] | undefined,
): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Writes; returns a promise only when the client is not keeping up, which
 * settles when it catches up, leaves, or the request is aborted (a client
 * that stops reading must not hold up shutdown).
 */
export function write(
  response: ServerResponse,
  bytes: Buffer,
  signal: AbortSignal,
): Promise<void> | undefined {
  if (response.destroyed || response.write(bytes)) return undefined;
  if (signal.aborted) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
    signal.addEventListener('abort', done);
  });
}
