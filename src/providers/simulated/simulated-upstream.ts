/**
 * The built-in simulated upstream: a real HTTP server that speaks OpenAI's
 * Chat Completions wire format, for demos, tests and benchmarks. The
 * gateway proxies to it exactly as it would to api.openai.com, so every
 * byte of the proxy path is exercised without a network or a bill.
 *
 * What it answers:
 *
 * - `POST /v1/chat/completions`, validated as OpenAI validates it, with
 *   token counts a test can predict or dictate (see `simulated-usage.ts`)
 *   and failures it can order (see `simulated-fault.ts`);
 * - `GET /v1/models`, a fixed list;
 * - anything else, OpenAI's 404 for an unknown URL.
 *
 * Every route wants `Authorization: Bearer <key>` with any non-empty key,
 * so a test can see that the gateway sends one; `lastRequest` shows what it
 * sent. The server is plain `node:http`, as lean as a fake can be, because
 * benchmarks measure the gateway through it.
 *
 * @example
 * const sim = await startSimulatedUpstream({ latencyMs: 20 });
 * const client = new OpenAI({ baseURL: sim.url, apiKey: 'sk-test' });
 * await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
 * await sim.close();
 */
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

import {
  answerChatCompletion,
  type ChatAnswerSettings,
} from './answer-chat-completion.js';
import { sendJson, sendWireError } from './send-json.js';
import { WireError } from './wire-error.js';
import { readBody } from '../../util/read-body.js';

export interface SimulatedUpstreamOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0, an ephemeral port */
  readonly port?: number;
  /** Delay before the first byte of an answer. @default 0 */
  readonly latencyMs?: number;
  /** Delay between streamed chunks. @default 0 */
  readonly chunkIntervalMs?: number;
  /** Tokens of text per streamed content chunk. @default 16 */
  readonly tokensPerChunk?: number;
}

export interface RecordedRequest {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; the raw text if it is not JSON; else undefined. */
  readonly body: unknown;
}

export interface SimulatedUpstream {
  /** Base URL ending in `/v1`, ready for an OpenAI client's `baseURL`. */
  readonly url: string;
  /** Requests received so far, of any kind. */
  readonly requests: number;
  /** The most recent request, for tests of what the gateway forwards. */
  readonly lastRequest: RecordedRequest | undefined;
  /** Stops listening and destroys every open socket, hung ones included. */
  close(): Promise<void>;
}

/** Far above any real prompt; bounds what a runaway client can buffer. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

const BODY_TOO_LARGE = new WireError(
  413,
  `Request body too large: the simulated upstream takes at most ` +
    `${MAX_BODY_BYTES} bytes.`,
);

const MODELS_BODY = JSON.stringify({
  object: 'list',
  data: ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-nano', 'o4-mini'].map((id) => ({
    id,
    object: 'model',
    created: 1_700_000_000,
    owned_by: 'system',
  })),
});

export async function startSimulatedUpstream(
  options: SimulatedUpstreamOptions = {},
): Promise<SimulatedUpstream> {
  const settings = resolveSettings(options);
  let requests = 0;
  let lastRequest: RecordedRequest | undefined;

  const server = createServer((request, response) => {
    requests++;
    response.setHeader('x-request-id', `req_${randomUUID().replace(/-/g, '')}`);
    readBody(request, MAX_BODY_BYTES, (text) => {
      if (text === undefined) {
        answerFailure(response, BODY_TOO_LARGE);
        return;
      }
      const body = parseBody(text);
      lastRequest = {
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: body.value,
      };
      try {
        route(request, response, body, settings);
      } catch (error) {
        answerFailure(response, error);
      }
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
    url: `http://${host}:${port}/v1`,
    get requests() {
      return requests;
    },
    get lastRequest() {
      return lastRequest;
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

interface ParsedBody {
  readonly value: unknown;
  /** False when there was a body and it was not JSON. */
  readonly json: boolean;
}

function route(
  request: IncomingMessage,
  response: ServerResponse,
  body: ParsedBody,
  settings: ChatAnswerSettings,
): void {
  const path = (request.url ?? '').split('?', 1)[0];
  const endpoint = `${request.method} ${path}`;
  if (
    endpoint !== 'POST /v1/chat/completions' &&
    endpoint !== 'GET /v1/models'
  ) {
    // OpenAI's wording for any URL it does not serve.
    throw new WireError(404, `Invalid URL (${endpoint})`);
  }
  checkAuthorization(request.headers.authorization);

  if (endpoint === 'GET /v1/models') {
    sendJson(response, 200, MODELS_BODY);
    return;
  }
  if (!body.json || body.value === undefined) {
    throw new WireError(
      400,
      'We could not parse the JSON body of your request. (HINT: This ' +
        "likely means you aren't using your HTTP library correctly. The " +
        'OpenAI API expects a JSON payload, but what was sent was not ' +
        'valid JSON.)',
    );
  }
  answerChatCompletion(response, body.value, settings);
}

function checkAuthorization(header: string | undefined): void {
  if (header === undefined || header === '') {
    throw new WireError(
      401,
      "You didn't provide an API key. You need to provide your API key in " +
        'an Authorization header using Bearer auth (i.e. Authorization: ' +
        'Bearer YOUR_KEY).',
      { code: 'invalid_api_key' },
    );
  }
  if (!/^Bearer +\S/i.test(header)) {
    throw new WireError(
      401,
      'Incorrect API key provided. The Authorization header must read ' +
        "'Bearer <key>'.",
      { code: 'invalid_api_key' },
    );
  }
}

function parseBody(text: string): ParsedBody {
  if (text === '') return { value: undefined, json: true };
  try {
    return { value: JSON.parse(text) as unknown, json: true };
  } catch {
    return { value: text, json: false };
  }
}

/** A refusal in OpenAI's shape; anything unforeseen becomes its 500. */
function answerFailure(response: ServerResponse, error: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const wireError =
    error instanceof WireError
      ? error
      : new WireError(
          500,
          'The server had an error while processing your request. Sorry ' +
            'about that!',
          { type: 'server_error' },
        );
  sendWireError(response, wireError);
}

function resolveSettings(options: SimulatedUpstreamOptions) {
  const settings: ChatAnswerSettings = {
    latencyMs: options.latencyMs ?? 0,
    chunkIntervalMs: options.chunkIntervalMs ?? 0,
    tokensPerChunk: options.tokensPerChunk ?? 16,
  };
  if (!(settings.latencyMs >= 0 && settings.chunkIntervalMs >= 0)) {
    throw new RangeError(
      'latencyMs and chunkIntervalMs must be non-negative numbers',
    );
  }
  if (
    !Number.isInteger(settings.tokensPerChunk) ||
    settings.tokensPerChunk < 1
  ) {
    throw new RangeError('tokensPerChunk must be a positive integer');
  }
  return settings;
}
