/**
 * Calls an OpenAI-compatible Chat Completions endpoint: OpenAI itself, or
 * vLLM, Ollama, llama.cpp server and the built-in simulated upstream.
 */
import { request, type Dispatcher } from 'undici';

import type { UpstreamCall, UpstreamResponse } from '../upstream.js';
import { classifyUpstreamError } from '../upstream-error.js';

export interface OpenAICompatibleOptions {
  /** Base URL up to and including `/v1`. */
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly dispatcher: Dispatcher;
}

export class OpenAICompatibleClient {
  readonly #options: OpenAICompatibleOptions;
  readonly #chatUrl: string;
  readonly #headers: Record<string, string>;

  constructor(options: OpenAICompatibleOptions) {
    this.#options = options;
    this.#chatUrl = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    this.#headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(options.apiKey && { authorization: `Bearer ${options.apiKey}` }),
    };
  }

  /** POST /chat/completions; throws UpstreamError when no answer comes. */
  async chatCompletions(call: UpstreamCall): Promise<UpstreamResponse> {
    try {
      const response = await request(this.#chatUrl, {
        method: 'POST',
        headers: this.#headers,
        body: call.body,
        signal: call.signal,
        dispatcher: this.#options.dispatcher,
        headersTimeout: this.#options.headersTimeoutMs,
        bodyTimeout: this.#options.bodyTimeoutMs,
      });
      const upstreamId = response.headers['x-request-id'];
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
