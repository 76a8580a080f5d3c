/**
 * Calls Azure OpenAI, which speaks OpenAI's wire formats (plus content
 * filter results, which pass through) at its own URLs:
 *
 * - dated API versions: the deployment is in the path and the version in
 *   the query, `{endpoint}/openai/deployments/{deployment}/chat/completions
 *   ?api-version=2024-10-21`; the Responses API has no deployment path and
 *   takes the deployment as `model`: `{endpoint}/openai/responses
 *   ?api-version=…`;
 * - the v1 API (`apiVersion: 'v1'`): `{endpoint}/openai/v1/chat/completions`
 *   and `/openai/v1/responses`, the deployment again as `model`.
 *
 * The deployment name is the deployment's upstream model, so it is the
 * `model` the upstream protocol already wrote into the body.
 *
 * @see https://learn.microsoft.com/azure/ai-foundry/openai/reference
 * @see https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle
 */
import type { Dispatcher } from 'undici';

import {
  postJson,
  type OpenAIWireApi,
  type PostOptions,
} from '../openai/openai-client.js';
import type {
  UpstreamChatCall,
  UpstreamClient,
  UpstreamResponse,
} from '../upstream.js';

/** An API key (`api-key` header) or a Microsoft Entra ID bearer token. */
export type AzureAuth =
  | { readonly type: 'api-key'; readonly key: string }
  | {
      readonly type: 'entra';
      /** Called per request, so a token provider can refresh. */
      readonly token: () => string | Promise<string>;
    };

export interface AzureOpenAIClientOptions {
  readonly api: OpenAIWireApi;
  /** `https://{resource}.openai.azure.com`, without a path. */
  readonly endpoint: string;
  /** A dated version such as `2024-10-21`, or `v1`. */
  readonly apiVersion: string;
  readonly auth: AzureAuth;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly dispatcher: Dispatcher;
}

/** Azure's API Management id first; it is what Azure support asks for. */
const REQUEST_ID_HEADERS = ['apim-request-id', 'x-request-id'];

export class AzureOpenAIClient implements UpstreamClient {
  readonly api: OpenAIWireApi;
  readonly #options: AzureOpenAIClientOptions;
  readonly #post: PostOptions;
  readonly #root: string;

  constructor(options: AzureOpenAIClientOptions) {
    this.api = options.api;
    this.#options = options;
    this.#root = `${options.endpoint.replace(/\/+$/, '')}/openai`;
    this.#post = {
      headersTimeoutMs: options.headersTimeoutMs,
      bodyTimeoutMs: options.bodyTimeoutMs,
      dispatcher: options.dispatcher,
      requestIdHeaders: REQUEST_ID_HEADERS,
    };
  }

  async sendChat(call: UpstreamChatCall): Promise<UpstreamResponse> {
    const operation =
      this.api === 'openai-chat' ? 'chat/completions' : 'responses';
    return postJson(
      this.#url(operation, call.upstreamModel),
      await this.#headers(),
      call.body,
      call.signal,
      this.#post,
    );
  }

  /** Embeddings from the deployment named by the body's `model`. */
  async embeddings(
    body: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<UpstreamResponse> {
    const deployment = typeof body['model'] === 'string' ? body['model'] : '';
    return postJson(
      this.#url('embeddings', deployment),
      await this.#headers(),
      body,
      signal,
      this.#post,
    );
  }

  /** The URL of an operation, in the form the API version calls for. */
  #url(
    operation: 'chat/completions' | 'responses' | 'embeddings',
    deployment: string,
  ): string {
    const { apiVersion } = this.#options;
    if (apiVersion === 'v1') return `${this.#root}/v1/${operation}`;

    const query = `?api-version=${encodeURIComponent(apiVersion)}`;
    if (operation === 'responses') return `${this.#root}/responses${query}`;
    const name = encodeURIComponent(deployment);
    return `${this.#root}/deployments/${name}/${operation}${query}`;
  }

  async #headers(): Promise<Record<string, string>> {
    const { auth } = this.#options;
    if (auth.type === 'api-key') return { 'api-key': auth.key };
    return { authorization: `Bearer ${await auth.token()}` };
  }
}
