/**
 * Relays an OpenAI Chat Completions stream to the client as it arrives.
 *
 * Each SSE event is forwarded byte for byte the moment it is complete,
 * with two exceptions that make metering exact:
 *
 * - the usage chunk (`choices: []` with a `usage` object), which the
 *   gateway always asks for, reaches the client only if the client asked;
 * - the end of the stream (that chunk and `data: [DONE]`) is held until
 *   the request's usage is durable, so no client sees a finished response
 *   whose usage could still be lost (DESIGN.md, "Durable first").
 *
 * A client that goes away aborts the upstream call; the usage is then
 * estimated from what was delivered, and marked so.
 */
import type { ServerResponse } from 'node:http';

import type { AttemptUsage } from '../../metering/meter.js';
import { UsageParseError } from '../../metering/usage.js';
import { normalizeOpenAIChatUsage } from '../../providers/openai/normalize-chat-usage.js';
import {
  SseEventTooLargeError,
  SseSplitter,
  type SseEvent,
} from '../../providers/sse-splitter.js';
import type { UpstreamResponse } from '../../providers/upstream.js';
import { classifyUpstreamError } from '../../providers/upstream-error.js';
import { ApiError, toOpenAIErrorBody } from '../api-error.js';
import {
  CLIENT_CLOSED_REQUEST,
  wasDelivered,
  write,
} from '../inference/lifecycle.js';
import { DeliveredText, estimateChatUsage } from './delivered-text.js';

export interface StreamOutcome {
  readonly usage: AttemptUsage;
  readonly statusCode: number;
  readonly errorCode: string | null;
}

export interface RelayChatStreamArgs {
  readonly response: ServerResponse;
  readonly upstream: UpstreamResponse;
  readonly requestId: string;
  /** The request as sent, for estimating its input if usage never comes. */
  readonly body: Readonly<Record<string, unknown>>;
  readonly inputBound: number;
  readonly clientWantsUsage: boolean;
  readonly abort: AbortController;
  /** Records the outcome durably; awaited before the stream's last bytes. */
  readonly settle: (outcome: StreamOutcome) => Promise<void>;
  readonly onUsageParseError: (error: UsageParseError) => void;
}

export async function relayChatStream(
  args: RelayChatStreamArgs,
): Promise<void> {
  const { response, upstream, requestId, abort } = args;
  let clientGone = false;
  response.on('error', () => {
    clientGone = true;
  });
  response.on('close', () => {
    if (!wasDelivered(response)) {
      clientGone = true;
      abort.abort();
    }
  });

  response.writeHead(200, {
    'content-type':
      headerValue(upstream.headers['content-type']) ??
      'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': requestId,
  });
  response.flushHeaders();

  const splitter = new SseSplitter();
  const delivered = new DeliveredText();
  const tail: Buffer[] = [];
  let rawUsage: unknown;
  let sawDone = false;
  let failure: ApiError | undefined;

  const relay = async (event: SseEvent): Promise<void> => {
    // Nothing after the end of the stream is passed on or metered.
    if (sawDone) return;
    if (event.data === '[DONE]') {
      sawDone = true;
      tail.push(event.raw);
      return;
    }
    const parsed = parseJson(event.data);
    if (parsed && 'error' in parsed) {
      failure = new ApiError(
        'upstream_error',
        'The upstream provider failed during the stream.',
      );
      return;
    }
    let raw = event.raw;
    if (parsed && isUsageObject(parsed['usage'])) {
      rawUsage = parsed['usage'];
      if (isEmptyArray(parsed['choices'])) {
        if (args.clientWantsUsage) tail.push(raw);
        return;
      }
      // Usage riding on a content chunk: the content goes on, the usage
      // only to a client that asked for it.
      if (!args.clientWantsUsage) raw = withoutUsage(parsed);
    }
    if (parsed) delivered.addChunk(parsed);
    if (tail.length > 0) {
      // Content after the usage chunk: keep the order, release it all.
      tail.push(raw);
      return;
    }
    const wait = write(response, raw, abort.signal);
    if (wait) await wait;
  };

  try {
    for await (const chunk of upstream.body) {
      for (const event of splitter.push(chunk as Buffer)) await relay(event);
    }
    // A last event the upstream did not close with a blank line is still
    // read (and passed on closed), as lenient SSE clients would.
    if (splitter.rest().toString('utf8').trim() !== '') {
      for (const event of splitter.push(Buffer.from('\n\n'))) {
        await relay(event);
      }
    }
  } catch (error) {
    if (clientGone) {
      // Nobody to tell; the usage is settled below as the client's leaving.
    } else if (abort.signal.aborted) {
      failure = new ApiError(
        'shutting_down',
        'The gateway stopped this stream while shutting down.',
      );
    } else if (error instanceof SseEventTooLargeError) {
      failure = new ApiError(
        'upstream_error',
        `The upstream sent ${error.message}.`,
      );
    } else {
      const upstreamError = classifyUpstreamError(error);
      failure =
        upstreamError.failure === 'timeout'
          ? new ApiError(
              'upstream_timeout',
              'The upstream provider stopped sending during the stream.',
            )
          : new ApiError(
              'upstream_error',
              'The upstream connection broke during the stream.',
            );
    }
  }

  const usage = await meteredUsage(args, rawUsage, delivered.text);
  if (clientGone) {
    await args.settle({
      usage,
      statusCode: CLIENT_CLOSED_REQUEST,
      errorCode: 'client_disconnected',
    });
    return;
  }
  if (!failure && !sawDone) {
    failure = new ApiError(
      'upstream_error',
      'The upstream stream ended before it was complete.',
    );
  }
  if (failure) {
    await args.settle({ usage, statusCode: 200, errorCode: failure.code });
    const body = JSON.stringify(toOpenAIErrorBody(failure, requestId));
    response.end(`data: ${body}\n\n`);
    return;
  }
  await args.settle({ usage, statusCode: 200, errorCode: null });
  response.end(Buffer.concat(tail));
}

async function meteredUsage(
  args: RelayChatStreamArgs,
  rawUsage: unknown,
  deliveredText: string,
): Promise<AttemptUsage> {
  if (rawUsage !== undefined) {
    try {
      return {
        kind: 'reported',
        usage: normalizeOpenAIChatUsage(rawUsage),
        raw: rawUsage,
      };
    } catch (error) {
      if (!(error instanceof UsageParseError)) throw error;
      args.onUsageParseError(error);
    }
  }
  return {
    kind: 'estimated',
    usage: await estimateChatUsage(args.body, deliveredText, args.inputBound),
    raw: rawUsage,
  };
}

/** A chunk's SSE event with its `usage` field taken out. */
function withoutUsage(chunk: Record<string, unknown>): Buffer {
  const { usage: _usage, ...rest } = chunk;
  return Buffer.from(`data: ${JSON.stringify(rest)}\n\n`);
}

function parseJson(
  data: string | undefined,
): Record<string, unknown> | undefined {
  if (data === undefined) return undefined;
  try {
    const parsed = JSON.parse(data) as unknown;
    return typeof parsed === 'object' &&
      parsed !== null &&
      !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function isUsageObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

function isEmptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length === 0;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
