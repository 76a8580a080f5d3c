/**
 * Calls Bedrock Converse and ConverseStream through the AWS SDK, which
 * signs requests (SigV4, or a Bedrock API key as a bearer token), resolves
 * regional endpoints and parses the binary event stream.
 *
 * The gateway owns retries, so the SDK makes one attempt. An error answer
 * is not thrown: it resolves as Bedrock sent it (status, the error type in
 * `x-amzn-errortype`, a JSON `{message}` body) for
 * `bedrockUpstream.decodeError`. An exception inside a stream becomes the
 * stream's last event object (`{ throttlingException: { message } }`).
 * Only a call that got no answer throws, as an UpstreamError.
 *
 * Bodies are Bedrock's REST JSON, blobs as base64; they are turned into
 * the bytes the SDK wants here, so a Bedrock client's body can pass
 * through as it came.
 *
 * @example
 * const client = new BedrockClient({
 *   region: 'us-east-1',
 *   credentials: { apiKey: process.env.BEDROCK_API_KEY },
 *   headersTimeoutMs: 60_000,
 *   bodyTimeoutMs: 60_000,
 * });
 * const response = await client.sendChat({
 *   body: bedrockUpstream.encodeRequest(request, 'us.amazon.nova-lite-v1:0'),
 *   upstreamModel: 'us.amazon.nova-lite-v1:0',
 *   stream: true,
 *   signal,
 * });
 */
import { Readable } from 'node:stream';

import {
  BedrockRuntimeClient,
  BedrockRuntimeServiceException,
  ConverseCommand,
  ConverseStreamCommand,
  type BedrockRuntimeClientConfig,
  type ConverseCommandInput,
  type ConverseStreamCommandInput,
} from '@aws-sdk/client-bedrock-runtime';

import { isRecord } from '../../metering/usage.js';
import {
  blobsAsBase64,
  EVENT_STREAM_CONTENT_TYPE,
} from '../../protocol/bedrock/event-stream-frames.js';
import type {
  UpstreamChatCall,
  UpstreamClient,
  UpstreamResponse,
} from '../upstream.js';
import { classifyUpstreamError, UpstreamError } from '../upstream-error.js';

/** A Converse body with its model, as the SDK's commands take it. */
type ConverseInput = Record<string, unknown> & { readonly modelId: string };

/** Long-lived IAM keys, or temporary ones with their session token. */
export interface BedrockSigV4Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** A Bedrock API key, sent as `Authorization: Bearer <key>`. */
export interface BedrockApiKey {
  readonly apiKey: string;
}

export interface BedrockClientOptions {
  readonly region: string;
  /** Another endpoint than the region's: a VPC endpoint, or a fake. */
  readonly endpoint?: string;
  /** Absent: the SDK's default chain (environment, profile, role). */
  readonly credentials?: BedrockSigV4Credentials | BedrockApiKey;
  /** How long to wait for the answer's status and headers. */
  readonly headersTimeoutMs: number;
  /** How long a stream may go without an event. */
  readonly bodyTimeoutMs: number;
}

export class BedrockClient implements UpstreamClient {
  readonly api = 'bedrock-converse';
  readonly #sdk: BedrockRuntimeClient;
  readonly #options: BedrockClientOptions;

  constructor(options: BedrockClientOptions) {
    this.#options = options;
    this.#sdk = new BedrockRuntimeClient(sdkConfig(options));
  }

  async sendChat(call: UpstreamChatCall): Promise<UpstreamResponse> {
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    if (call.signal.aborted) abort();
    call.signal.addEventListener('abort', abort, { once: true });
    const detach = (): void => call.signal.removeEventListener('abort', abort);
    const body =
      typeof call.body === 'string'
        ? (JSON.parse(call.body) as Record<string, unknown>)
        : call.body;
    const input = { ...withSdkBlobs(body), modelId: call.upstreamModel };

    try {
      return call.stream
        ? await this.#converseStream(input, controller, detach)
        : await this.#converse(input, controller, detach);
    } catch (error) {
      detach();
      if (error instanceof BedrockRuntimeServiceException) {
        return errorResponse(error);
      }
      throw classifyUpstreamError(error);
    }
  }

  async #converse(
    input: ConverseInput,
    controller: AbortController,
    detach: () => void,
  ): Promise<UpstreamResponse> {
    const output = await withinTime(
      this.#sdk.send(new ConverseCommand(input as ConverseCommandInput), {
        abortSignal: controller.signal,
      }),
      this.#options.headersTimeoutMs,
      controller,
    );
    detach();
    const { $metadata: metadata, ...answer } = output;
    const json = JSON.stringify(answer, blobsAsBase64);
    return {
      status: metadata.httpStatusCode ?? 200,
      headers: answerHeaders('application/json', metadata.requestId),
      body: Readable.from([Buffer.from(json)], { objectMode: false }),
      upstreamRequestId: metadata.requestId ?? null,
    };
  }

  async #converseStream(
    input: ConverseInput,
    controller: AbortController,
    detach: () => void,
  ): Promise<UpstreamResponse> {
    const output = await withinTime(
      this.#sdk.send(
        new ConverseStreamCommand(input as ConverseStreamCommandInput),
        { abortSignal: controller.signal },
      ),
      this.#options.headersTimeoutMs,
      controller,
    );
    const metadata = output.$metadata;
    if (output.stream === undefined) {
      throw new UpstreamError('unavailable', 'ConverseStream sent no stream');
    }
    const events = streamEvents(
      output.stream,
      this.#options.bodyTimeoutMs,
      controller,
      detach,
    );
    return {
      status: metadata.httpStatusCode ?? 200,
      headers: answerHeaders(EVENT_STREAM_CONTENT_TYPE, metadata.requestId),
      body: Readable.from(events, { objectMode: true }),
      upstreamRequestId: metadata.requestId ?? null,
    };
  }

  /** Closes the SDK's connections. */
  close(): void {
    this.#sdk.destroy();
  }
}

function answerHeaders(
  contentType: string,
  requestId: string | undefined,
): Record<string, string> {
  return {
    'content-type': contentType,
    ...(requestId !== undefined && { 'x-amzn-requestid': requestId }),
  };
}

function sdkConfig(options: BedrockClientOptions): BedrockRuntimeClientConfig {
  const { credentials } = options;
  return {
    region: options.region,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    // Retries are the gateway's, with its own accounting per attempt.
    maxAttempts: 1,
    ...(credentials !== undefined &&
      ('apiKey' in credentials
        ? {
            token: { token: credentials.apiKey },
            authSchemePreference: ['httpBearerAuth'],
          }
        : { credentials: { ...credentials } })),
  };
}

/**
 * An SDK service exception as the answer Bedrock sent: its status, its
 * type, and a JSON `{message}` body.
 */
function errorResponse(
  error: BedrockRuntimeServiceException,
): UpstreamResponse {
  const retryAfter = error.$response?.headers['retry-after'];
  const requestId = error.$metadata.requestId ?? null;
  return {
    status: error.$metadata.httpStatusCode ?? 500,
    headers: {
      'content-type': 'application/json',
      'x-amzn-errortype': error.name,
      ...(retryAfter !== undefined && { 'retry-after': retryAfter }),
      ...(requestId !== null && { 'x-amzn-requestid': requestId }),
    },
    body: Readable.from(
      [Buffer.from(JSON.stringify({ message: error.message }))],
      {
        objectMode: false,
      },
    ),
    upstreamRequestId: requestId,
  };
}

/**
 * The SDK's stream as event objects. A modelled exception ends it as an
 * event object of its member (`throttlingException`); a stream that goes
 * quiet longer than `idleMs`, or breaks, fails with an UpstreamError.
 * Closing the stream early aborts the call.
 */
async function* streamEvents(
  stream: AsyncIterable<unknown>,
  idleMs: number,
  controller: AbortController,
  done: () => void,
): AsyncGenerator<Record<string, unknown>> {
  const iterator = stream[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const next = await withinTime(iterator.next(), idleMs, controller);
      if (next.done === true) break;
      if (isRecord(next.value)) yield next.value;
    }
    finished = true;
  } catch (error) {
    if (!(error instanceof BedrockRuntimeServiceException)) {
      throw classifyUpstreamError(error);
    }
    finished = true;
    yield exceptionEvent(error);
  } finally {
    done();
    if (!finished) controller.abort();
  }
}

/** `ThrottlingException` → `{ throttlingException: { message } }`. */
function exceptionEvent(
  error: BedrockRuntimeServiceException,
): Record<string, unknown> {
  // A stream can only end with an exception member; an error the SDK
  // could not name is told as the service's internal error.
  const name = error.name.endsWith('Exception')
    ? error.name
    : 'InternalServerException';
  const member = name.charAt(0).toLowerCase() + name.slice(1);
  const { originalStatusCode, originalMessage } = error as {
    originalStatusCode?: unknown;
    originalMessage?: unknown;
  };
  return {
    [member]: {
      message: error.message,
      ...(originalStatusCode !== undefined && { originalStatusCode }),
      ...(originalMessage !== undefined && { originalMessage }),
    },
  };
}

/**
 * Waits for `promise` at most `ms`; past that, aborts the call and fails
 * with a timeout.
 */
async function withinTime<T>(
  promise: Promise<T>,
  ms: number,
  controller: AbortController,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new UpstreamError('timeout', `Bedrock sent nothing for ${ms} ms`));
      controller.abort();
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Content-block members whose `source.bytes` is a blob. */
const SOURCED_MEMBERS = ['image', 'document', 'video', 'audio'] as const;

/**
 * A Converse body with its base64 blobs as bytes, the form the SDK
 * serialises. Only blob positions are touched: a tool's input that
 * happens to hold `source.bytes` stays text.
 */
export function withSdkBlobs(
  body: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const messages = body['messages'];
  const system = body['system'];
  return {
    ...body,
    ...(Array.isArray(messages) && {
      messages: messages.map((message: unknown) =>
        isRecord(message) && Array.isArray(message['content'])
          ? { ...message, content: message['content'].map(blockWithBytes) }
          : message,
      ),
    }),
    ...(Array.isArray(system) && { system: system.map(blockWithBytes) }),
  };
}

function blockWithBytes(block: unknown): unknown {
  if (!isRecord(block)) return block;
  const copy: Record<string, unknown> = { ...block };
  for (const member of SOURCED_MEMBERS) {
    copy[member] = sourceWithBytes(copy[member]);
  }
  const reasoning = copy['reasoningContent'];
  if (isRecord(reasoning) && typeof reasoning['redactedContent'] === 'string') {
    copy['reasoningContent'] = {
      ...reasoning,
      redactedContent: Buffer.from(reasoning['redactedContent'], 'base64'),
    };
  }
  const result = copy['toolResult'];
  if (isRecord(result) && Array.isArray(result['content'])) {
    copy['toolResult'] = {
      ...result,
      content: result['content'].map(blockWithBytes),
    };
  }
  const guard = copy['guardContent'];
  if (isRecord(guard)) {
    copy['guardContent'] = { ...guard, image: sourceWithBytes(guard['image']) };
  }
  for (const key of Object.keys(copy)) {
    if (copy[key] === undefined) delete copy[key];
  }
  return copy;
}

function sourceWithBytes(value: unknown): unknown {
  if (!isRecord(value)) return value;
  const source = value['source'];
  if (!isRecord(source) || typeof source['bytes'] !== 'string') return value;
  return {
    ...value,
    source: { ...source, bytes: Buffer.from(source['bytes'], 'base64') },
  };
}
