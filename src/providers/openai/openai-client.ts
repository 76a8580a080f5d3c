/**
 * Calls OpenAI's API: Chat Completions or Responses (one client per API,
 * chosen by `api`), and embeddings.
 *
 * The client sends bodies already in the upstream's format and hands the
 * answer back unread, status and all, so the gateway can stream it
 * through; it throws only when no answer came (UpstreamError).
 *
 * @see https://platform.openai.com/docs/api-reference
 */
import { request, type Dispatcher } from 'undici';

import type {
  UpstreamChatCall,
  UpstreamClient,
  UpstreamResponse,
} from '../upstream.js';
import { classifyUpstreamError } from '../upstream-error.js';

export type OpenAIWireApi = 'openai-chat' | 'openai-responses';

export interface OpenAIClientOptions {
  readonly api: OpenAIWireApi;
  /** Base URL up to and including `/v1`. */
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  /** Sent as `OpenAI-Organization` and `OpenAI-Project` when set. */
  readonly organization?: string;
  readonly project?: string;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly dispatcher: Dispatcher;
}

/** The path of each API under the base URL. */
export const OPENAI_API_PATHS: Readonly<Record<OpenAIWireApi, string>> = {
  'openai-chat': '/chat/completions',
  'openai-responses': '/responses',
};

export class OpenAIClient implements UpstreamClient {
  readonly api: OpenAIWireApi;
  readonly #options: OpenAIClientOptions;
  readonly #baseUrl: string;
  readonly #headers: Record<string, string>;

  constructor(options: OpenAIClientOptions) {
    this.api = options.api;
    this.#options = options;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#headers = {
      ...(options.apiKey && { authorization: `Bearer ${options.apiKey}` }),
      ...(options.organization && {
        'openai-organization': options.organization,
      }),
      ...(options.project && { 'openai-project': options.project }),
    };
  }

  /** POST /chat/completions or /responses, as `api` says. */
  sendChat(call: UpstreamChatCall): Promise<UpstreamResponse> {
    return postJson(
      `${this.#baseUrl}${OPENAI_API_PATHS[this.api]}`,
      this.#headers,
      call.body,
      call.signal,
      this.#options,
    );
  }

  /** POST /embeddings, metered like chat (normalize-embeddings-usage.ts). */
  embeddings(
    body: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<UpstreamResponse> {
    return postJson(
      `${this.#baseUrl}/embeddings`,
      this.#headers,
      body,
      signal,
      this.#options,
    );
  }
}

export interface PostOptions {
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly dispatcher: Dispatcher;
  /** Response headers that carry the provider's request id, in order. */
  readonly requestIdHeaders?: readonly string[];
}

/**
 * POSTs a JSON body to an OpenAI-family endpoint; resolves with the
 * answer's status, headers and unread body, whatever the status.
 */
export async function postJson(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: Readonly<Record<string, unknown>> | string,
  signal: AbortSignal,
  options: PostOptions,
): Promise<UpstreamResponse> {
  try {
    const response = await request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal,
      dispatcher: options.dispatcher,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.body,
      upstreamRequestId: firstHeader(
        response.headers,
        options.requestIdHeaders ?? ['x-request-id'],
      ),
    };
  } catch (error) {
    throw classifyUpstreamError(error);
  }
}

function firstHeader(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  names: readonly string[],
): string | null {
  for (const name of names) {
    const value = headers[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return null;
}
