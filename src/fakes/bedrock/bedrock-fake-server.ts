/**
 * A fake Bedrock runtime: a real HTTP server speaking Converse
 * (`POST /model/{modelId}/converse`, JSON) and ConverseStream
 * (`POST /model/{modelId}/converse-stream`, binary event stream), for
 * tests and demos without AWS.
 *
 * It speaks HTTP/1.1 and cleartext HTTP/2 on one port, because the AWS SDK
 * talks HTTP/2 to Bedrock by default. It checks each request as Bedrock
 * does (an `Authorization` header of SigV4 or a bearer key; the body's
 * shape) and answers a ValidationException in Bedrock's format when it is
 * wrong, so a wrong translation fails here as it would on AWS.
 *
 * Answers follow a FIFO script that a test fills with `enqueue`; with the
 * script empty, each request gets a synthesised answer whose counts follow
 * from the request (`defaultUsage`). A request refused as invalid does not
 * use up a scripted answer.
 *
 * @example
 * const fake = await startBedrockFake();
 * fake.enqueue({ kind: 'synthesize', usage: { input: 12, output: 3 } });
 * fake.enqueue({ kind: 'error', status: 429, type: 'ThrottlingException',
 *   message: 'Too many requests, please wait before trying again.' });
 * const sdk = new BedrockRuntimeClient({ region: 'us-east-1',
 *   endpoint: fake.url, token: { token: 'key' },
 *   authSchemePreference: ['httpBearerAuth'] });
 * await fake.close();
 */
import { randomUUID } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
} from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Socket,
} from 'node:net';
import type { Readable } from 'node:stream';

import { isRecord } from '../../metering/usage.js';
import { InvalidRequestError } from '../../protocol/canonical.js';
import { readConverseRequest } from '../../protocol/bedrock/decode-converse-request.js';
import { encodeEventObject } from '../../protocol/bedrock/event-stream-frames.js';
import { deliver, type Delivery, type FakeResponse } from './deliver-bytes.js';
import {
  errorAnswer,
  failingStream,
  jsonAnswer,
  recordedAnswer,
  streamAnswer,
  synthesizedEvents,
  synthesizedJson,
  type FakeAnswer,
  type FakeUsage,
  type SynthesizedAnswer,
} from './fake-converse-answers.js';
import { readBody } from '../../util/read-body.js';

export type { FakeUsage, SynthesizedAnswer } from './fake-converse-answers.js';
export type { Delivery } from './deliver-bytes.js';

/** One scripted answer, with how to deliver it. */
export type BedrockFakeItem = Delivery &
  (
    | {
        readonly kind: 'recording';
        /** A path to a `.json`, `.events.jsonl` or `.eventstream.bin`. */
        readonly file: string;
        /** For a JSON recording of an error. @default 200 */
        readonly status?: number;
        /** The error type of such a recording, sent in `x-amzn-errortype`. */
        readonly errorType?: string;
      }
    | ({ readonly kind: 'synthesize' } & SynthesizedAnswer)
    | {
        readonly kind: 'error';
        readonly status: number;
        /** Bedrock's error type, such as `ThrottlingException`. */
        readonly type: string;
        readonly message: string;
        /**
         * On ConverseStream, answer 200 and fail inside the stream, with
         * an exception frame after `afterEvents` events. @default false
         */
        readonly inStream?: boolean;
        /** @default 2 (messageStart and a first delta) */
        readonly afterEvents?: number;
      }
    | {
        /** Exactly these bytes, such as a gateway encoder's output. */
        readonly kind: 'raw';
        readonly status: number;
        readonly headers: Readonly<Record<string, string>>;
        readonly body: Buffer;
      }
  );

export interface BedrockFakeOptions extends Delivery {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0, an ephemeral port */
  readonly port?: number;
}

export interface RecordedBedrockRequest {
  readonly method: string;
  /** Path as received, model id URL-encoded. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; the raw text if it is not JSON. */
  readonly body: unknown;
}

export interface BedrockFake {
  /** The endpoint, for the SDK's `endpoint` or BedrockClient's. */
  readonly url: string;
  /** Adds an answer to the end of the script. */
  enqueue(item: BedrockFakeItem): void;
  /** Script items not yet used. */
  readonly queued: number;
  /** Drops the script items not yet used; returns how many there were. */
  clear(): number;
  /** Every request received, in order. */
  readonly requests: readonly RecordedBedrockRequest[];
  /** Stops listening and ends every connection, stalled ones included. */
  close(): Promise<void>;
}

const ROUTE = /^\/model\/([^/]+)\/(converse|converse-stream)$/;
const AUTHORIZATION = /^(?:AWS4-HMAC-SHA256 Credential=\S+|Bearer \S+)/;
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** The default answer's output: `min(maxTokens ?? 16, 16)`. */
const DEFAULT_OUTPUT_TOKENS = 16;

/**
 * The counts of the answer the fake synthesises for a request when its
 * script is empty: input is the UTF-8 bytes of `JSON.stringify(messages)`
 * divided by 4, rounded up; output is `min(maxTokens ?? 16, 16)`.
 */
export function defaultUsage(body: unknown): FakeUsage {
  const messages = isRecord(body) ? body['messages'] : undefined;
  const inference = isRecord(body) ? body['inferenceConfig'] : undefined;
  const maxTokens = isRecord(inference) ? inference['maxTokens'] : undefined;
  return {
    input: Math.ceil(Buffer.byteLength(JSON.stringify(messages ?? [])) / 4),
    output: Math.min(
      typeof maxTokens === 'number' ? maxTokens : DEFAULT_OUTPUT_TOKENS,
      DEFAULT_OUTPUT_TOKENS,
    ),
  };
}

export async function startBedrockFake(
  options: BedrockFakeOptions = {},
): Promise<BedrockFake> {
  const script: BedrockFakeItem[] = [];
  const requests: RecordedBedrockRequest[] = [];

  const handle = (request: Readable & FakeRequest, response: FakeResponse) => {
    readBody(request, MAX_BODY_BYTES, (text = '') => {
      const body = parseJson(text);
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: body ?? text,
      });
      const { answer, item } = answerFor(request, body, script);
      const requestId = randomUUID();
      deliver(
        response,
        {
          ...answer,
          headers: { 'x-amzn-requestid': requestId, ...answer.headers },
        },
        { ...options, ...item },
      );
    });
  };

  const http1 = createHttpServer((request, response) =>
    handle(request, response),
  );
  const http2 = createHttp2Server((request, response) =>
    handle(request as Readable & FakeRequest, response as FakeResponse),
  );
  const sockets = new Set<Socket>();
  // One port for both: an HTTP/2 client opens with the "PRI * HTTP/2.0"
  // preface, anything else is HTTP/1.1.
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('readable', () => {
      const first = socket.read() as Buffer | null;
      if (first === null) return;
      socket.unshift(first);
      const target = first.subarray(0, 3).toString() === 'PRI' ? http2 : http1;
      target.emit('connection', socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${host}:${port}`,
    enqueue(item) {
      script.push(item);
    },
    get queued() {
      return script.length;
    },
    clear: () => script.splice(0).length,
    requests,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

interface FakeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/**
 * The answer to a request: Bedrock's refusal when it is wrong, else the
 * next scripted answer, else the default one.
 */
function answerFor(
  request: FakeRequest,
  body: unknown,
  script: BedrockFakeItem[],
): { answer: FakeAnswer; item: BedrockFakeItem | undefined } {
  const route = ROUTE.exec(request.url ?? '');
  if (request.method !== 'POST' || route === null) {
    return {
      answer: errorAnswer(
        404,
        'UnknownOperationException',
        'Unknown operation',
      ),
      item: undefined,
    };
  }
  const authorization = request.headers.authorization;
  if (authorization === undefined) {
    return {
      answer: errorAnswer(
        403,
        'MissingAuthenticationTokenException',
        'Missing Authentication Token',
      ),
      item: undefined,
    };
  }
  if (!AUTHORIZATION.test(authorization)) {
    return {
      answer: errorAnswer(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      ),
      item: undefined,
    };
  }
  if (body === undefined) {
    return {
      answer: errorAnswer(400, 'SerializationException', 'Invalid JSON body'),
      item: undefined,
    };
  }

  const stream = route[2] === 'converse-stream';
  try {
    readConverseRequest(body, decodeURIComponent(route[1] as string), stream);
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    return {
      answer: errorAnswer(400, 'ValidationException', error.message),
      item: undefined,
    };
  }

  const item = script.shift();
  return { answer: scriptedAnswer(item, body, stream), item };
}

function scriptedAnswer(
  item: BedrockFakeItem | undefined,
  body: unknown,
  stream: boolean,
): FakeAnswer {
  if (item === undefined) {
    return synthesized({ usage: defaultUsage(body) }, stream, body);
  }
  switch (item.kind) {
    case 'recording':
      return recordedAnswer(
        item.file,
        stream,
        item.status ?? 200,
        item.errorType,
      );
    case 'synthesize':
      return synthesized(item, stream, body);
    case 'error':
      if (stream && item.inStream === true) {
        return failingStream(
          { usage: defaultUsage(body) },
          item.afterEvents ?? 2,
          item.type,
          item.message,
        );
      }
      return errorAnswer(item.status, item.type, item.message);
    case 'raw':
      return { status: item.status, headers: item.headers, body: item.body };
  }
}

function synthesized(
  answer: SynthesizedAnswer,
  stream: boolean,
  body: unknown,
): FakeAnswer {
  const inference = isRecord(body) ? body['inferenceConfig'] : undefined;
  const maxTokens = isRecord(inference) ? inference['maxTokens'] : undefined;
  const cut =
    answer.stopReason === undefined &&
    typeof maxTokens === 'number' &&
    maxTokens <= answer.usage.output;
  const final = cut ? { ...answer, stopReason: 'max_tokens' } : answer;
  return stream
    ? streamAnswer(synthesizedEvents(final).map(encodeEventObject))
    : jsonAnswer(synthesizedJson(final));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
