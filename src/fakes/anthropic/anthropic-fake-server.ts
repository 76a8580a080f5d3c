/**
 * A fake Anthropic Messages API: a real `node:http` server answering
 * `POST /v1/messages` for tests and demos, so the gateway's Anthropic
 * client, stream decoder and translations run against real HTTP.
 *
 * Each request is checked as Anthropic checks it (`check-anthropic-request`)
 * and refused with Anthropic's 400 when wrong, so a bad translation fails.
 * A valid request takes the next item of a script the test enqueued:
 *
 * - `{ kind: 'recording', file }` replays a file of `../shared/data/wire`:
 *   `.sse` byte for byte, `.chunks.jsonl` rebuilt as
 *   `event: <type>\ndata: <line>\n\n`, `.json` as its JSON value. A
 *   request whose `stream` disagrees with the recording gets a 400.
 * - `{ kind: 'synthesize', usage, text?, thinking?, toolUse? }` builds an
 *   answer, streamed or not as the request asks, with exactly that usage.
 * - `{ kind: 'stream-error', type, message }` answers 200 with a stream
 *   whose first event is an `error` event;
 * - `{ kind: 'error', status, type, message, retryAfter? }` answers an
 *   Anthropic error.
 *
 * Any item can also delay, re-chunk, pace, stall or drop its delivery
 * (`DeliveryOptions`). A refused request leaves the script untouched. With the script empty the fake synthesises an
 * answer whose counts follow from the request: input is the UTF-8 bytes of
 * `system` and `messages` over 4, rounded up; output is
 * `min(max_tokens, 16)`. Demos run on that without recordings.
 *
 * @example
 * const fake = await startAnthropicFake({ recordingsDir });
 * fake.enqueue({ kind: 'synthesize', usage: { input: 10, output: 5 } });
 * const client = new Anthropic({ baseURL: fake.url, apiKey: 'k' });
 * await client.messages.create({ model, max_tokens: 64, messages });
 * await fake.close();
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';

import {
  checkAnthropicBody,
  checkAnthropicHeaders,
  FakeRequestError,
} from './check-anthropic-request.js';
import {
  deliverBody,
  type Answer,
  type DeliveryOptions,
} from './deliver-body.js';
import {
  synthesizeMessage,
  synthesizeStream,
  type SynthesizedAnswer,
} from './synthesize-anthropic-answer.js';
import { readBody } from '../../util/read-body.js';

export type AnthropicFakeItem = DeliveryOptions &
  (
    | { readonly kind: 'recording'; readonly file: string }
    | ({ readonly kind: 'synthesize' } & SynthesizedAnswer)
    | {
        readonly kind: 'error';
        readonly status: number;
        readonly type: string;
        readonly message: string;
        /** Sent as the `retry-after` header. */
        readonly retryAfter?: string;
      }
    | {
        /**
         * A 200 stream whose first event is an `error` event, as
         * Anthropic sends an overload that strikes once a stream began.
         */
        readonly kind: 'stream-error';
        readonly type: string;
        readonly message: string;
      }
  );

export interface AnthropicFakeOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0, an ephemeral port */
  readonly port?: number;
  /**
   * Where `recording` files are found when not absolute.
   * @default `$TOLLGATE_SHARED_DATA/wire`, else `../shared/data/wire` from the working directory
   */
  readonly recordingsDir?: string;
}

export interface AnthropicFakeRequest {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; the raw text when it is not JSON. */
  readonly body: unknown;
}

export interface AnthropicFake {
  /** Base URL without `/v1`, as `@anthropic-ai/sdk`'s `baseURL` wants it. */
  readonly url: string;
  /** Queues the answer for the next valid request. */
  enqueue(item: AnthropicFakeItem): void;
  /** Script items not yet used. */
  readonly queued: number;
  /** Drops the script items not yet used; returns how many there were. */
  clear(): number;
  /** Every request received, in order, valid or not. */
  readonly requests: readonly AnthropicFakeRequest[];
  /** Stops listening and destroys every open socket, stalled ones included. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const DEFAULT_OUTPUT_TOKENS = 16;

const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream; charset=utf-8';

export async function startAnthropicFake(
  options: AnthropicFakeOptions = {},
): Promise<AnthropicFake> {
  const recordingsDir =
    options.recordingsDir ??
    resolve(process.env['TOLLGATE_SHARED_DATA'] ?? '../shared/data', 'wire');
  const script: AnthropicFakeItem[] = [];
  const requests: AnthropicFakeRequest[] = [];

  const server = createServer((request, response) => {
    readBody(request, MAX_BODY_BYTES, (text = '') => {
      const body = parseJson(text);
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: body ?? text,
      });
      const requestId = `req_fake${randomUUID().replace(/-/g, '')}`;
      let answer: Answer;
      let delivery: DeliveryOptions = {};
      try {
        const checked = checkRequest(request, body);
        // A refused request leaves the script as it was.
        const item = script[0];
        answer = answerFor(item, checked, requestId, recordingsDir);
        script.shift();
        delivery = item ?? {};
      } catch (error) {
        // A broken script (a missing file) is the fake's own 500.
        const refusal =
          error instanceof FakeRequestError
            ? error
            : new FakeRequestError(String(error), 500, 'api_error');
        answer = errorAnswer(
          refusal.status,
          refusal.type,
          refusal.message,
          requestId,
        );
      }
      deliverBody(response, answer, delivery).catch(() => response.destroy());
    });
  });

  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', fail);
      done();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${host}:${port}`,
    enqueue: (item) => void script.push(item),
    get queued() {
      return script.length;
    },
    clear: () => script.splice(0).length,
    requests,
    close() {
      closing ??= new Promise<void>((done, fail) => {
        server.close((error) => (error ? fail(error) : done()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

interface CheckedRequest {
  readonly model: string;
  readonly stream: boolean;
  readonly body: Readonly<Record<string, unknown>>;
}

function checkRequest(request: IncomingMessage, body: unknown): CheckedRequest {
  const path = (request.url ?? '').split('?', 1)[0];
  if (request.method !== 'POST' || path !== '/v1/messages') {
    throw new FakeRequestError(
      `${request.method} ${path}: the fake serves only POST /v1/messages`,
      404,
      'not_found_error',
    );
  }
  checkAnthropicHeaders(request.headers);
  if (body === undefined) {
    throw new FakeRequestError('The request body is not valid JSON.');
  }
  const checked = checkAnthropicBody(body);
  return {
    model: checked['model'] as string,
    stream: checked['stream'] === true,
    body: checked,
  };
}

function answerFor(
  item: AnthropicFakeItem | undefined,
  request: CheckedRequest,
  requestId: string,
  recordingsDir: string,
): Answer {
  const messageId = `msg_fake${requestId.slice('req_fake'.length, 32)}`;
  const headers = { 'request-id': requestId };
  switch (item?.kind) {
    case 'error':
      return errorAnswer(
        item.status,
        item.type,
        item.message,
        requestId,
        item.retryAfter,
      );
    case 'stream-error':
      return {
        status: 200,
        headers: { 'content-type': 'text/event-stream', ...headers },
        body: Buffer.from(
          `event: error\ndata: ${JSON.stringify({
            type: 'error',
            error: { type: item.type, message: item.message },
          })}\n\n`,
        ),
      };
    case 'recording':
      return recordingAnswer(item.file, request, recordingsDir, headers);
    case 'synthesize':
    case undefined: {
      const answer = item ?? defaultAnswer(request.body);
      return request.stream
        ? {
            status: 200,
            headers: { ...headers, 'content-type': SSE_TYPE },
            body: synthesizeStream(answer, request.model, messageId),
          }
        : {
            status: 200,
            headers: { ...headers, 'content-type': JSON_TYPE },
            body: Buffer.from(
              JSON.stringify(
                synthesizeMessage(answer, request.model, messageId),
              ),
            ),
          };
    }
  }
}

/** Counts that follow from the request, for runs with no script. */
function defaultAnswer(
  body: Readonly<Record<string, unknown>>,
): SynthesizedAnswer {
  const prompt = JSON.stringify([body['system'] ?? '', body['messages']]);
  return {
    usage: {
      input: Math.ceil(Buffer.byteLength(prompt, 'utf8') / 4),
      output: Math.min(body['max_tokens'] as number, DEFAULT_OUTPUT_TOKENS),
    },
  };
}

function recordingAnswer(
  file: string,
  request: CheckedRequest,
  recordingsDir: string,
  headers: Record<string, string>,
): Answer {
  const path = isAbsolute(file) ? file : join(recordingsDir, file);
  const isStream = file.endsWith('.sse') || file.endsWith('.chunks.jsonl');
  if (
    !isStream &&
    (!file.endsWith('.json') || file.endsWith('.request.json'))
  ) {
    throw new Error(`${file} is not an Anthropic answer recording`);
  }
  if (request.stream !== isStream) {
    throw new FakeRequestError(
      `the fake's scripted recording ${file} is a ` +
        `${isStream ? 'streamed' : 'non-streamed'} answer, but the request ` +
        `has stream: ${request.stream}`,
    );
  }

  const bytes = readFileSync(path);
  if (file.endsWith('.sse')) {
    return {
      status: 200,
      headers: { ...headers, 'content-type': SSE_TYPE },
      body: bytes,
    };
  }
  if (file.endsWith('.chunks.jsonl')) {
    const events = bytes
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const type = (JSON.parse(line) as { type: string }).type;
        return `event: ${type}\ndata: ${line}\n\n`;
      });
    return {
      status: 200,
      headers: { ...headers, 'content-type': SSE_TYPE },
      body: Buffer.from(events.join(''), 'utf8'),
    };
  }
  return {
    status: 200,
    headers: { ...headers, 'content-type': JSON_TYPE },
    body: Buffer.from(JSON.stringify(JSON.parse(bytes.toString('utf8')))),
  };
}

/** An error in Anthropic's shape, with its request id. */
function errorAnswer(
  status: number,
  type: string,
  message: string,
  requestId: string,
  retryAfter?: string,
): Answer {
  return {
    status,
    headers: {
      'content-type': JSON_TYPE,
      'request-id': requestId,
      ...(retryAfter !== undefined && { 'retry-after': retryAfter }),
    },
    body: Buffer.from(
      JSON.stringify({
        type: 'error',
        error: { type, message },
        request_id: requestId,
      }),
    ),
  };
}

/** The whole body as text, once drained; past the limit, an empty one. */

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
