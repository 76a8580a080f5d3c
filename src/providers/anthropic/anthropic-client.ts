/**
 * Calls Anthropic's Messages API (`POST /v1/messages`), or anything that
 * speaks it: the Anthropic fake for tests and demos, or a proxy.
 *
 * @example
 * const client = new AnthropicClient({
 *   baseUrl: 'https://api.anthropic.com',
 *   apiKey: process.env.ANTHROPIC_API_KEY,
 *   headersTimeoutMs: 60_000,
 *   bodyTimeoutMs: 300_000,
 *   dispatcher: new Agent(),
 * });
 * const response = await client.sendChat({ body, upstreamModel, stream, signal });
 *
 * @see https://docs.anthropic.com/en/api/versioning
 */
import { request, type Dispatcher } from 'undici';

import type {
  UpstreamChatCall,
  UpstreamClient,
  UpstreamResponse,
} from '../upstream.js';
import { classifyUpstreamError } from '../upstream-error.js';

/** The API version every request pins, unless configured otherwise. */
export const ANTHROPIC_VERSION = '2023-06-01';

export interface AnthropicClientOptions {
  /** Base URL without `/v1`: `https://api.anthropic.com`. */
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly dispatcher: Dispatcher;
  /** @default ANTHROPIC_VERSION */
  readonly anthropicVersion?: string;
  /** Beta features to opt into, sent as one `anthropic-beta` header. */
  readonly betas?: readonly string[];
}

export class AnthropicClient implements UpstreamClient {
  readonly api = 'anthropic-messages';
  readonly #options: AnthropicClientOptions;
  readonly #messagesUrl: string;
  readonly #headers: Record<string, string>;

  constructor(options: AnthropicClientOptions) {
    this.#options = options;
    this.#messagesUrl = `${options.baseUrl.replace(/\/+$/, '')}/v1/messages`;
    const betas = options.betas ?? [];
    this.#headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'anthropic-version': options.anthropicVersion ?? ANTHROPIC_VERSION,
      ...(options.apiKey && { 'x-api-key': options.apiKey }),
      ...(betas.length > 0 && { 'anthropic-beta': betas.join(',') }),
    };
  }

  /** POST /v1/messages; throws UpstreamError only when no answer comes. */
  async sendChat(call: UpstreamChatCall): Promise<UpstreamResponse> {
    try {
      const response = await request(this.#messagesUrl, {
        method: 'POST',
        headers: this.#headers,
        body:
          typeof call.body === 'string' ? call.body : JSON.stringify(call.body),
        signal: call.signal,
        dispatcher: this.#options.dispatcher,
        headersTimeout: this.#options.headersTimeoutMs,
        bodyTimeout: this.#options.bodyTimeoutMs,
      });
      const upstreamId = response.headers['request-id'];
      return {
        status: response.statusCode,
        headers: response.headers,
        body: response.body,
        upstreamRequestId: typeof upstreamId === 'string' ? upstreamId : null,
      };
    } catch (error) {
      throw classifyUpstreamError(error);
    }
  }
}
