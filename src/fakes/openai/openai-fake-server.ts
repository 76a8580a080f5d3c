/**
 * A fake OpenAI and Azure OpenAI upstream over real HTTP, for tests and
 * demos: Chat Completions, Responses and embeddings, at OpenAI's paths and
 * at Azure's (deployment paths with `api-version`, and the v1 paths).
 *
 * Every request is checked against the API's request shape first and
 * refused with OpenAI's 400 when wrong, so a gateway that translates badly
 * fails here as it would upstream. A valid request takes the next item of
 * a FIFO script:
 *
 * - `recording`: a file of `../shared/data/wire` served as recorded: a
 *   `.sse` byte for byte, a `.chunks.jsonl` rebuilt into its stream as the
 *   wire README says, a `.json` as its JSON value;
 * - `synthesize`: an answer in the endpoint's format from token counts in
 *   canonical classes (see synthesize-answer.ts), text or a tool call;
 * - `error`: an OpenAI error body with a status and `retry-after`.
 *
 * With the script empty, the answer is synthesised from the request: one
 * input token per 4 UTF-8 bytes of its text (rounded up) and
 * `min(max tokens ?? 16, 16)` output tokens. Any item can say how its
 * bytes are delivered (deliver-body.ts), over the server-wide default.
 *
 * @example
 * const fake = await startOpenAIFake();
 * fake.enqueue({ kind: 'synthesize', usage: { input: 8, cacheRead: 4012, output: 4 } });
 * const client = new OpenAI({ baseURL: fake.url, apiKey: 'sk-test' });
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';

import { WireError } from '../../providers/simulated/wire-error.js';
import { deliverBody, type Delivery } from './deliver-body.js';
import {
  fillerText,
  synthesizeChat,
  synthesizeEmbeddings,
  synthesizeResponses,
  type SynthBody,
  type SynthToolCall,
  type SynthUsage,
} from './synthesize-answer.js';
import { validateChatRequest } from './validate-chat-request.js';
import { validateEmbeddingsRequest } from './validate-embeddings-request.js';
import { validateResponsesRequest } from './validate-responses-request.js';
import { readBody } from '../../util/read-body.js';

export type FakeItem =
  | {
      readonly kind: 'recording';
      /** Path of the recording (absolute, or from the working directory). */
      readonly file: string;
      /** @default 200 */
      readonly status?: number;
      readonly delivery?: Delivery;
    }
  | {
      readonly kind: 'synthesize';
      readonly usage: SynthUsage;
      /** The answer's text; filler text of `output` words by default. */
      readonly text?: string;
      /** A tool call to answer with (and no text unless `text` is set). */
      readonly toolCall?: SynthToolCall;
      /**
       * Chat Completions only: the `finish_reason` to report, such as
       * `content_filter`; by default the one the content implies.
       */
      readonly finishReason?: string;
      readonly delivery?: Delivery;
    }
  | {
      readonly kind: 'error';
      readonly status: number;
      readonly message: string;
      /** @default 'invalid_request_error' */
      readonly type?: string;
      readonly code?: string | null;
      readonly param?: string | null;
      /** Sent as the `retry-after` header, in seconds. */
      readonly retryAfter?: number;
      readonly delivery?: Delivery;
    };

export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body, the raw text when it is not JSON. */
  readonly body: unknown;
}

export interface OpenAIFakeOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0, an ephemeral port */
  readonly port?: number;
  /** Accept only this key (bearer or `api-key`); any non-empty by default. */
  readonly apiKey?: string;
  /** Delivery for every answer; an item's own delivery overrides it. */
  readonly delivery?: Delivery;
}

export interface OpenAIFake {
  /** Base URL ending in `/v1`, for the `openai` SDK's `baseURL`. */
  readonly url: string;
  /** The Azure endpoint root: `{azureUrl}/openai/deployments/…`. */
  readonly azureUrl: string;
  enqueue(item: FakeItem): void;
  /** Every request received, in order, valid or not. */
  readonly requests: readonly FakeRequest[];
  /** Script items not yet used. */
  readonly queued: number;
  /** Drops the script items not yet used; returns how many there were. */
  clear(): number;
  /** Stops listening and destroys every open socket, stalled ones too. */
  close(): Promise<void>;
}

type Operation = 'chat' | 'responses' | 'embeddings';

interface Route {
  readonly operation: Operation;
  readonly azure: boolean;
  /** Azure's dated paths, which require `api-version`. */
  readonly versioned: boolean;
  /** The Azure deployment named in the path, if any. */
  readonly deployment: string | null;
}

/** Far above any real prompt; bounds what a runaway client can buffer. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

export async function startOpenAIFake(
  options: OpenAIFakeOptions = {},
): Promise<OpenAIFake> {
  const queue: FakeItem[] = [];
  const requests: FakeRequest[] = [];
  let serial = 0;

  const server = createServer((request, response) => {
    readBody(request, MAX_BODY_BYTES, (text) => {
      const url = new URL(request.url ?? '/', 'http://fake');
      const body = parseJson(text);
      requests.push({
        method: request.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: request.headers,
        body,
      });
      serial++;
      const headers = responseHeaders(serial);
      try {
        const method = request.method ?? '';
        const route = routeOf(method, url.pathname);
        if (route === null) {
          // OpenAI's wording for any URL it does not serve.
          throw new WireError(404, `Invalid URL (${method} ${url.pathname})`);
        }
        checkAuth(request.headers, route, options.apiKey);
        if (route.versioned && !url.searchParams.get('api-version')) {
          throw new WireError(
            400,
            'Missing required query parameter: api-version.',
            { param: 'api-version', code: 'missing_required_parameter' },
          );
        }
        if (text === undefined) {
          throw new WireError(413, 'Request body too large.');
        }
        answer(response, route, body, serial, headers);
      } catch (error) {
        sendError(response, error, headers);
      }
    });
  });

  const answer = (
    response: ServerResponse,
    route: Route,
    body: unknown,
    id: number,
    headers: Record<string, string>,
  ): void => {
    const plan = planAnswer(route, body, id);
    const item = queue.shift();
    const delivery = { ...options.delivery, ...item?.delivery };
    let status = 200;
    let out: SynthBody;
    if (item === undefined) {
      out = plan.synthesize(plan.defaultUsage, null, null, null);
    } else if (item.kind === 'synthesize') {
      out = plan.synthesize(
        item.usage,
        item.text ?? null,
        item.toolCall ?? null,
        item.finishReason ?? null,
      );
    } else if (item.kind === 'recording') {
      status = item.status ?? 200;
      out = recordingBody(item.file);
    } else {
      status = item.status;
      const error = new WireError(item.status, item.message, {
        type: item.type,
        code: item.code ?? null,
        param: item.param ?? null,
      });
      out = {
        contentType: 'application/json',
        pieces: [Buffer.from(error.toBody())],
      };
      if (item.retryAfter !== undefined) {
        headers['retry-after'] = String(item.retryAfter);
      }
    }
    deliverBody(response, { status, headers, ...out }, delivery);
  };

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
    azureUrl: `http://${host}:${port}`,
    enqueue: (item) => {
      queue.push(item);
    },
    requests,
    get queued() {
      return queue.length;
    },
    clear: () => queue.splice(0).length,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

interface AnswerPlan {
  readonly defaultUsage: SynthUsage;
  synthesize(
    usage: SynthUsage,
    text: string | null,
    toolCall: SynthToolCall | null,
    finishReason: string | null,
  ): SynthBody;
}

/** Validates the request for its endpoint and says how to answer it. */
function planAnswer(route: Route, body: unknown, serial: number): AnswerPlan {
  const modelRequired = route.deployment === null;
  const textOrFiller = (
    usage: SynthUsage,
    text: string | null,
    call: unknown,
  ) => text ?? (call === null ? fillerText(usage.output) : null);

  switch (route.operation) {
    case 'chat': {
      const request = validateChatRequest(body, modelRequired);
      const model = request.model ?? route.deployment ?? '';
      return {
        defaultUsage: {
          input: tokensOf(request.messages.flatMap(messageTexts)),
          output: Math.min(request.maxTokens ?? 16, 16),
        },
        synthesize: (usage, text, toolCall, finishReason) =>
          synthesizeChat(
            {
              serial,
              model,
              usage,
              toolCall,
              text: textOrFiller(usage, text, toolCall),
              ...(finishReason !== null && { finishReason }),
            },
            {
              stream: request.stream,
              includeUsage: request.includeUsage,
              azure: route.azure,
            },
          ),
      };
    }
    case 'responses': {
      const request = validateResponsesRequest(body);
      return {
        defaultUsage: {
          input: tokensOf(request.texts),
          output: Math.min(request.maxOutputTokens ?? 16, 16),
        },
        synthesize: (usage, text, toolCall) =>
          synthesizeResponses(
            {
              serial,
              model: request.model,
              usage,
              toolCall,
              text: textOrFiller(usage, text, toolCall),
            },
            request.stream,
          ),
      };
    }
    case 'embeddings': {
      const request = validateEmbeddingsRequest(body, modelRequired);
      const model = request.model ?? route.deployment ?? '';
      const texts = request.inputs.filter((input) => typeof input === 'string');
      const tokenInputs = request.inputs.filter(
        (input) => typeof input === 'number',
      );
      const input =
        tokensOf(texts) + tokenInputs.reduce((sum, count) => sum + count, 0);
      return {
        defaultUsage: { input, output: 0 },
        synthesize: (usage) =>
          synthesizeEmbeddings(
            model,
            request.inputs.length,
            usage.input + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0),
            request.base64,
          ),
      };
    }
  }
}

/** One token per 4 UTF-8 bytes of text, rounded up. */
function tokensOf(texts: readonly string[]): number {
  const bytes = texts.reduce(
    (sum, text) => sum + Buffer.byteLength(text, 'utf8'),
    0,
  );
  return Math.ceil(bytes / 4);
}

function messageTexts(message: Readonly<Record<string, unknown>>): string[] {
  const content = message['content'];
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((part: unknown) => {
    const text = (part as { text?: unknown }).text;
    return typeof text === 'string' ? [text] : [];
  });
}

/**
 * The paths the fake serves. Azure's dated API versions put the deployment
 * in the path and require `api-version`; its v1 paths take neither.
 */
const PATHS: readonly {
  pattern: RegExp;
  azure: boolean;
  versioned: boolean;
}[] = [
  {
    pattern: /^\/v1\/(?<op>chat\/completions|responses|embeddings)$/,
    azure: false,
    versioned: false,
  },
  {
    pattern: /^\/openai\/v1\/(?<op>chat\/completions|responses|embeddings)$/,
    azure: true,
    versioned: false,
  },
  {
    pattern:
      /^\/openai\/deployments\/(?<deployment>[^/]+)\/(?<op>chat\/completions|embeddings)$/,
    azure: true,
    versioned: true,
  },
  { pattern: /^\/openai\/(?<op>responses)$/, azure: true, versioned: true },
];

const OPERATIONS: Readonly<Record<string, Operation>> = {
  'chat/completions': 'chat',
  responses: 'responses',
  embeddings: 'embeddings',
};

/** The endpoint a method and path name; OpenAI's 404 otherwise. */
function routeOf(method: string, path: string): Route | null {
  if (method !== 'POST') return null;
  for (const { pattern, azure, versioned } of PATHS) {
    const groups = pattern.exec(path)?.groups;
    const operation = OPERATIONS[groups?.['op'] ?? ''];
    if (operation === undefined) continue;
    const deployment = groups?.['deployment'];
    return {
      operation,
      azure,
      versioned,
      deployment:
        deployment === undefined ? null : decodeURIComponent(deployment),
    };
  }
  return null;
}

/**
 * OpenAI takes a bearer key; Azure an `api-key` header or a Microsoft
 * Entra bearer token. Each answers 401 in its own words.
 */
function checkAuth(
  headers: IncomingHttpHeaders,
  route: Route,
  expected: string | undefined,
): void {
  const bearer = /^Bearer +(\S+)$/i.exec(headers.authorization ?? '')?.[1];
  const apiKey = headers['api-key'];
  const key = route.azure
    ? typeof apiKey === 'string' && apiKey !== ''
      ? apiKey
      : bearer
    : bearer;
  if (key !== undefined && (expected === undefined || key === expected)) {
    return;
  }
  if (route.azure) {
    throw new WireError(
      401,
      'Access denied due to invalid subscription key or wrong API endpoint. ' +
        'Make sure to provide a valid key for an active subscription and use ' +
        'a correct regional API endpoint for your resource.',
      { code: '401' },
    );
  }
  throw new WireError(
    401,
    key === undefined
      ? "You didn't provide an API key. You need to provide your API key " +
          'in an Authorization header using Bearer auth (i.e. ' +
          'Authorization: Bearer YOUR_KEY).'
      : 'Incorrect API key provided.',
    { code: 'invalid_api_key' },
  );
}

/**
 * A recording's bytes. Streams are cut at event boundaries, so each event
 * is one write unless the item re-chunks them.
 */
function recordingBody(file: string): SynthBody {
  const bytes = readFileSync(file);
  if (file.endsWith('.sse')) {
    return {
      contentType: 'text/event-stream; charset=utf-8',
      pieces: sseEvents(bytes),
    };
  }
  if (file.endsWith('.chunks.jsonl')) {
    const lines = bytes
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '');
    // Events with a `type` (Responses, Anthropic) are named; Chat
    // Completions chunks are bare and end with [DONE].
    const named = lines.some((line) => {
      const type = (JSON.parse(line) as { type?: unknown }).type;
      return typeof type === 'string';
    });
    const frames = lines.map((line) => {
      const type = (JSON.parse(line) as { type?: unknown }).type;
      return named && typeof type === 'string'
        ? `event: ${type}\ndata: ${line}\n\n`
        : `data: ${line}\n\n`;
    });
    if (!named) frames.push('data: [DONE]\n\n');
    return {
      contentType: 'text/event-stream; charset=utf-8',
      pieces: frames.map((frame) => Buffer.from(frame)),
    };
  }
  return { contentType: 'application/json', pieces: [bytes] };
}

/** Splits SSE bytes after each blank line, keeping every byte. */
function sseEvents(bytes: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  for (
    let at = bytes.indexOf('\n\n');
    at !== -1;
    at = bytes.indexOf('\n\n', start)
  ) {
    pieces.push(bytes.subarray(start, at + 2));
    start = at + 2;
  }
  if (start < bytes.length) pieces.push(bytes.subarray(start));
  return pieces;
}

function responseHeaders(serial: number): Record<string, string> {
  const id = String(serial).padStart(12, '0');
  return {
    'x-request-id': `req_fake${serial}`,
    'apim-request-id': `00000000-0000-4000-8000-${id}`,
  };
}

function sendError(
  response: ServerResponse,
  error: unknown,
  headers: Record<string, string>,
): void {
  const wire =
    error instanceof WireError
      ? error
      : new WireError(
          500,
          'The server had an error while processing your request. Sorry ' +
            'about that!',
          { type: 'server_error' },
        );
  const body = wire.toBody();
  response.writeHead(wire.status, {
    ...headers,
    ...wire.headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
  });
  response.end(body);
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
