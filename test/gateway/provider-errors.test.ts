/**
 * Errors across the four inbound APIs, each driven by its official SDK
 * (raw fetch only where an SDK cannot send the bad input): refusals in
 * the caller's own error shape with the request id; upstream errors told
 * in the caller's API with the status their meaning implies; streams that
 * fail or are abandoned half-way, settled exactly once and marked
 * estimated; and no provider credential in any log line or answer.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import Anthropic, {
  APIError as AnthropicAPIError,
  AuthenticationError as AnthropicAuthenticationError,
  BadRequestError as AnthropicBadRequestError,
  InternalServerError as AnthropicInternalServerError,
  NotFoundError as AnthropicNotFoundError,
  RateLimitError as AnthropicRateLimitError,
} from '@anthropic-ai/sdk';
import {
  BedrockRuntimeClient,
  BedrockRuntimeServiceException,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseCommandInput,
} from '@aws-sdk/client-bedrock-runtime';
import { countTokens } from 'gpt-tokenizer';
import OpenAI, {
  APIError as OpenAIAPIError,
  AuthenticationError as OpenAIAuthenticationError,
  BadRequestError as OpenAIBadRequestError,
  InternalServerError as OpenAIInternalServerError,
  NotFoundError as OpenAINotFoundError,
  RateLimitError as OpenAIRateLimitError,
} from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import {
  startAnthropicFake,
  type AnthropicFake,
  type AnthropicFakeItem,
} from '../../src/fakes/anthropic/anthropic-fake-server.js';
import { synthesizeStream } from '../../src/fakes/anthropic/synthesize-anthropic-answer.js';
import {
  startBedrockFake,
  type BedrockFake,
  type BedrockFakeItem,
} from '../../src/fakes/bedrock/bedrock-fake-server.js';
import {
  startOpenAIFake,
  type FakeItem,
  type OpenAIFake,
} from '../../src/fakes/openai/openai-fake-server.js';
import {
  fillerText,
  synthesizeChat,
} from '../../src/fakes/openai/synthesize-answer.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { bedrockErrorTypeHeader } from '../../src/protocol/bedrock/bedrock-errors.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import {
  PROVIDER_MODELS,
  startProviderGateway,
  type ProviderGateway,
} from '../helpers/provider-gateway.js';
import { ADMIN_TOKEN } from '../helpers/test-gateway.js';

/** Every line the gateway logged, for the credentials check at the end. */
function logCapture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines, stream };
}

/** The rejection of `promise`; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  const outcome = await promise.then(
    () => ({ resolved: true as const }),
    (error: unknown) => ({ resolved: false as const, error }),
  );
  if (outcome.resolved) throw new Error('expected the call to fail');
  return outcome.error;
}

const PROMPT = 'Say hello.';
const HELLO = [{ role: 'user' as const, content: PROMPT }];

function converse(
  modelId: string,
  extra: Partial<ConverseCommandInput> = {},
): ConverseCommand {
  return new ConverseCommand({
    modelId,
    messages: [{ role: 'user', content: [{ text: PROMPT }] }],
    inferenceConfig: { maxTokens: 32 },
    ...extra,
  });
}

/** A middleware of the Bedrock SDK, and the HTTP request it sees. */
type SdkMiddleware = Parameters<
  BedrockRuntimeClient['middlewareStack']['addRelativeTo']
>[0];
interface SdkRequest {
  headers: Record<string, string>;
  body?: unknown;
}

/** The gateway's request id, as each SDK's error carries it. */
function requestIdOf(error: unknown): string | null {
  if (error instanceof OpenAIAPIError) return error.requestID ?? null;
  if (error instanceof AnthropicAPIError) return error.requestID ?? null;
  if (error instanceof BedrockRuntimeServiceException) {
    return error.$metadata.requestId ?? null;
  }
  return null;
}

/** A request's ledger record, as its tenant reads it. */
interface RequestView {
  readonly id: string;
  readonly state: string;
  readonly status_code: number | null;
  readonly error_code: string | null;
  readonly reserved: { readonly input_tokens: number };
  readonly attempts: readonly {
    readonly attempt: number;
    readonly estimated: boolean;
    readonly usage: {
      readonly input_tokens: number;
      readonly cache_read_tokens: number;
      readonly cache_write_tokens: number;
      readonly output_tokens: number;
    };
  }[];
}

describe('errors across provider APIs', () => {
  const logs = logCapture();
  let g: ProviderGateway;

  beforeAll(async () => {
    g = await startProviderGateway({
      logger: createLogger('debug', logs.stream),
    });
  });
  afterAll(async () => {
    await g?.close();
  });

  /** An SDK client of the gateway whose requests `rewrite` changes. */
  function openAIWith(
    rewrite: (init: RequestInit) => RequestInit,
    apiKey = g.key,
  ): OpenAI {
    return new OpenAI({
      baseURL: `${g.url}/v1`,
      apiKey,
      maxRetries: 0,
      fetch: (url: string | URL | Request, init?: RequestInit) =>
        fetch(url, rewrite(init ?? {})),
    });
  }

  function anthropicWith(
    rewrite: (init: RequestInit) => RequestInit,
    apiKey = g.key,
  ): Anthropic {
    return new Anthropic({
      baseURL: g.url,
      apiKey,
      maxRetries: 0,
      fetch: (url: string | URL | Request, init?: RequestInit) =>
        fetch(url, rewrite(init ?? {})),
    });
  }

  /**
   * A Bedrock SDK client of the gateway with `key`; `rewrite` changes each
   * request after the SDK signed it.
   */
  function bedrockWith(
    key: string,
    rewrite?: (request: SdkRequest) => void,
  ): BedrockRuntimeClient {
    const client = new BedrockRuntimeClient({
      region: 'us-east-1',
      endpoint: g.url,
      token: { token: key },
      authSchemePreference: ['httpBearerAuth'],
      maxAttempts: 1,
    });
    if (rewrite) {
      type Handler = (args: { request: unknown }) => Promise<unknown>;
      const signed =
        (next: Handler): Handler =>
        (args) => {
          const request = args.request as SdkRequest;
          rewrite(request);
          if (typeof request.body === 'string') {
            request.headers['content-length'] = String(
              Buffer.byteLength(request.body),
            );
          }
          return next(args);
        };
      client.middlewareStack.addRelativeTo(signed as unknown as SdkMiddleware, {
        relation: 'after',
        toMiddleware: 'httpSigningMiddleware',
        name: 'rewriteSignedRequest',
      });
    }
    return client;
  }

  const badJson = (init: RequestInit): RequestInit => ({
    ...init,
    body: '{"model": "gpt-4o", "messages": [',
  });
  const noKey = (init: RequestInit): RequestInit => {
    const headers = new Headers(init.headers);
    headers.delete('authorization');
    headers.delete('x-api-key');
    return { ...init, headers };
  };

  async function revokedKey(): Promise<string> {
    const tenant = await g.gateway.store.findTenant(g.tenantId);
    if (!tenant) throw new Error('the test tenant is gone');
    const created = await createApiKey(g.gateway.store, tenant, {});
    await g.gateway.store.revokeApiKey(g.tenantId, created.record.id, 1);
    return created.key;
  }

  async function requestRecord(id: string | null): Promise<RequestView> {
    expect(id).toMatch(/^req_/);
    const response = await fetch(`${g.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${g.key}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as RequestView;
  }

  /** The record once the gateway has settled it (a hang-up settles late). */
  async function settledRecord(id: string | null): Promise<RequestView> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const record = await requestRecord(id);
      if (record.state !== 'pending' || Date.now() > deadline) return record;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The upstream answered nothing billable: failed, coded, no usage. */
  async function expectFailedRecord(
    error: unknown,
    status: number,
    code: string,
  ): Promise<void> {
    const record = await requestRecord(requestIdOf(error));
    expect(record).toMatchObject({
      state: 'failed',
      status_code: status,
      error_code: code,
      attempts: [],
    });
  }

  /** Requests each fake has received so far. */
  function upstreamCalls(): number {
    return (
      g.openai.requests.length +
      g.anthropic.requests.length +
      g.bedrock.requests.length
    );
  }

  describe('OpenAI Chat Completions refusals', () => {
    it('answers invalid JSON with 400 invalid_json and the request id', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        openAIWith(badJson).chat.completions.create({
          model: 'gpt-4o',
          messages: HELLO,
        }),
      );
      expectOpenAIError(error, OpenAIBadRequestError, 400, 'invalid_json');
      expect(upstreamCalls()).toBe(before);
    });

    it('answers a missing key with 401 missing_api_key', async () => {
      const error = await rejection(
        openAIWith(noKey).chat.completions.create({
          model: 'gpt-4o',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        error,
        OpenAIAuthenticationError,
        401,
        'missing_api_key',
      );
    });

    it('answers a revoked or unknown key with 401 invalid_api_key', async () => {
      for (const key of [await revokedKey(), 'tg_nosuchkey_0123456789abcdef']) {
        const error = await rejection(
          openAIWith((init) => init, key).chat.completions.create({
            model: 'gpt-4o',
            messages: HELLO,
          }),
        );
        expectOpenAIError(
          error,
          OpenAIAuthenticationError,
          401,
          'invalid_api_key',
        );
      }
    });

    it('answers an unknown model with 404 model_not_found', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'no-such-model',
          messages: HELLO,
        }),
      );
      expectOpenAIError(error, OpenAINotFoundError, 404, 'model_not_found');
      expect(upstreamCalls()).toBe(before);
    });

    it.each([
      { field: 'n', extra: { n: 2 }, model: 'claude-sonnet-4-5' },
      { field: 'n', extra: { n: 2 }, model: 'nova-lite' },
      {
        field: 'logprobs',
        extra: { logprobs: true },
        model: 'claude-sonnet-4-5',
      },
      { field: 'logprobs', extra: { logprobs: true }, model: 'bedrock-claude' },
    ] as const)(
      "refuses '$field' to $model as untranslatable, sending nothing upstream",
      async ({ field, extra, model }) => {
        const before = upstreamCalls();
        const error = await rejection(
          g.sdk.openai.chat.completions.create({
            model,
            messages: HELLO,
            ...extra,
          }),
        );
        expectOpenAIError(error, OpenAIBadRequestError, 400, 'untranslatable');
        expect((error as OpenAIAPIError).param).toBe(field);
        expect((error as OpenAIAPIError).message).toContain(field);
        expect(upstreamCalls()).toBe(before);
      },
    );
  });

  describe('OpenAI Responses refusals', () => {
    it('answers invalid JSON with 400 invalid_json', async () => {
      const error = await rejection(
        openAIWith(badJson).responses.create({
          model: 'gpt-4o',
          input: PROMPT,
        }),
      );
      expectOpenAIError(error, OpenAIBadRequestError, 400, 'invalid_json');
    });

    it('answers an unknown model with 404 model_not_found', async () => {
      const error = await rejection(
        g.sdk.openai.responses.create({
          model: 'no-such-model',
          input: PROMPT,
        }),
      );
      expectOpenAIError(error, OpenAINotFoundError, 404, 'model_not_found');
    });

    it('refuses store: true to an Anthropic model, sending nothing upstream', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        g.sdk.openai.responses.create({
          model: 'claude-sonnet-4-5',
          input: PROMPT,
          store: true,
        }),
      );
      expectOpenAIError(error, OpenAIBadRequestError, 400, 'untranslatable');
      expect((error as OpenAIAPIError).param).toBe('store');
      expect(upstreamCalls()).toBe(before);
    });
  });

  describe('Anthropic Messages refusals', () => {
    const message = {
      model: 'claude-sonnet-4-5',
      max_tokens: 32,
      messages: HELLO,
    };

    it('answers invalid JSON with a 400 invalid_request_error', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        anthropicWith(badJson).messages.create(message),
      );
      expectAnthropicError(
        error,
        AnthropicBadRequestError,
        400,
        'invalid_request_error',
      );
      expect(upstreamCalls()).toBe(before);
    });

    it('answers a missing key with a 401 authentication_error', async () => {
      const error = await rejection(
        anthropicWith(noKey).messages.create(message),
      );
      expectAnthropicError(
        error,
        AnthropicAuthenticationError,
        401,
        'authentication_error',
      );
    });

    it('answers a revoked or unknown key with a 401 authentication_error', async () => {
      for (const key of [await revokedKey(), 'tg_nosuchkey_0123456789abcdef']) {
        const error = await rejection(
          anthropicWith((init) => init, key).messages.create(message),
        );
        expectAnthropicError(
          error,
          AnthropicAuthenticationError,
          401,
          'authentication_error',
        );
      }
    });

    it('answers an unknown model with a 404 not_found_error', async () => {
      const error = await rejection(
        g.sdk.anthropic.messages.create({ ...message, model: 'no-such-model' }),
      );
      expectAnthropicError(
        error,
        AnthropicNotFoundError,
        404,
        'not_found_error',
      );
    });

    it.each([
      { field: 'top_k', extra: { top_k: 5 } },
      {
        field: 'cache_control',
        extra: {
          system: [
            {
              type: 'text' as const,
              text: 'Be brief.',
              cache_control: { type: 'ephemeral' as const },
            },
          ],
        },
      },
    ])(
      'refuses $field to an OpenAI model, sending nothing upstream',
      async ({ field, extra }) => {
        const before = upstreamCalls();
        const error = await rejection(
          g.sdk.anthropic.messages.create({
            ...message,
            model: 'gpt-4o',
            ...extra,
          }),
        );
        expectAnthropicError(
          error,
          AnthropicBadRequestError,
          400,
          'invalid_request_error',
        );
        expect((error as AnthropicAPIError).apiMessage).toContain(field);
        expect(upstreamCalls()).toBe(before);
      },
    );
  });

  describe('Bedrock Converse refusals', () => {
    it('answers invalid JSON with a 400 ValidationException', async () => {
      const before = upstreamCalls();
      const client = bedrockWith(g.key, (request) => {
        request.body = '{"messages": [';
      });
      const error = await rejection(client.send(converse('nova-lite')));
      client.destroy();
      expectBedrockError(error, 'ValidationException', 400);
      expect(upstreamCalls()).toBe(before);
    });

    it('answers a missing key with a 401 UnrecognizedClientException', async () => {
      const client = bedrockWith(g.key, (request) => {
        for (const name of Object.keys(request.headers)) {
          if (name.toLowerCase() === 'authorization') {
            Reflect.deleteProperty(request.headers, name);
          }
        }
      });
      const error = await rejection(client.send(converse('nova-lite')));
      client.destroy();
      expectBedrockError(error, 'UnrecognizedClientException', 401);
    });

    it('answers a revoked or unknown key with a 401 UnrecognizedClientException', async () => {
      for (const key of [await revokedKey(), 'tg_nosuchkey_0123456789abcdef']) {
        const client = bedrockWith(key);
        const error = await rejection(client.send(converse('nova-lite')));
        client.destroy();
        expectBedrockError(error, 'UnrecognizedClientException', 401);
      }
    });

    it('answers an unknown model with a ResourceNotFoundException', async () => {
      const error = await rejection(g.sdk.bedrock.send(converse('no-such')));
      expectBedrockError(error, 'ResourceNotFoundException', 404);
    });

    it('refuses guardrailConfig to an Anthropic model, sending nothing upstream', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        g.sdk.bedrock.send(
          converse('claude-sonnet-4-5', {
            guardrailConfig: {
              guardrailIdentifier: 'gr-1',
              guardrailVersion: '1',
            },
          }),
        ),
      );
      expectBedrockError(error, 'ValidationException', 400);
      expect((error as Error).message).toMatch(/guardrail/i);
      expect(upstreamCalls()).toBe(before);
    });
  });

  describe("upstream errors told in the caller's API", () => {
    const throttled = (retryAfter: string): BedrockFakeItem => ({
      kind: 'raw',
      status: 429,
      headers: {
        'content-type': 'application/json',
        'x-amzn-errortype': bedrockErrorTypeHeader('ThrottlingException'),
        'retry-after': retryAfter,
      },
      body: Buffer.from(
        JSON.stringify({
          message: 'Too many requests, please wait before trying again.',
        }),
      ),
    });

    it('tells an OpenAI client a Bedrock ThrottlingException as a 429 with Retry-After', async () => {
      g.bedrock.enqueue(throttled('7'));
      const error = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'nova-lite',
          messages: HELLO,
        }),
      );
      expectOpenAIError(error, OpenAIRateLimitError, 429, 'rate_limited');
      expect((error as OpenAIAPIError).headers?.get('retry-after')).toBe('7');
      await expectFailedRecord(error, 429, 'rate_limited');
    });

    it('tells an OpenAI client a bare ThrottlingException (no Retry-After, as Bedrock sends it) as a 429', async () => {
      g.bedrock.enqueue({
        kind: 'error',
        status: 429,
        type: 'ThrottlingException',
        message: 'Too many requests, please wait before trying again.',
      });
      const error = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'bedrock-claude',
          messages: HELLO,
        }),
      );
      expectOpenAIError(error, OpenAIRateLimitError, 429, 'rate_limited');
      expect((error as OpenAIAPIError).message).toContain('Too many requests');
    });

    it('tells an Anthropic client a Bedrock ThrottlingException as a 429 rate_limit_error', async () => {
      g.bedrock.enqueue(throttled('9'));
      const error = await rejection(
        g.sdk.anthropic.messages.create({
          model: 'nova-lite',
          max_tokens: 32,
          messages: HELLO,
        }),
      );
      expectAnthropicError(
        error,
        AnthropicRateLimitError,
        429,
        'rate_limit_error',
      );
      expect((error as AnthropicAPIError).headers?.get('retry-after')).toBe(
        '9',
      );
      await expectFailedRecord(error, 429, 'rate_limited');
    });

    it('tells OpenAI and Bedrock clients an Anthropic 529 overloaded as a 503', async () => {
      const overloaded: AnthropicFakeItem = {
        kind: 'error',
        status: 529,
        type: 'overloaded_error',
        message: 'Overloaded',
      };
      g.anthropic.enqueue(overloaded);
      const error = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'claude-sonnet-4-5',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        error,
        OpenAIInternalServerError,
        503,
        'upstream_overloaded',
      );
      await expectFailedRecord(error, 503, 'upstream_overloaded');

      g.anthropic.enqueue(overloaded);
      const exception = await rejection(
        g.sdk.bedrock.send(converse('claude-sonnet-4-5')),
      );
      expectBedrockError(exception, 'ServiceUnavailableException', 503);
    });

    it('tells every client an upstream 401 as a 502 upstream_auth_failed, not its own 401', async () => {
      const refusal = 'invalid x-api-key';
      g.anthropic.enqueue({
        kind: 'error',
        status: 401,
        type: 'authentication_error',
        message: refusal,
      });
      const translated = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'claude-sonnet-4-5',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        translated,
        OpenAIInternalServerError,
        502,
        'upstream_auth_failed',
      );
      await expectFailedRecord(translated, 502, 'upstream_auth_failed');

      g.openai.enqueue({
        kind: 'error',
        status: 401,
        type: 'invalid_request_error',
        code: 'invalid_api_key',
        message: 'Incorrect API key provided.',
      });
      const passed = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'gpt-4o',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        passed,
        OpenAIInternalServerError,
        502,
        'upstream_auth_failed',
      );
      expect((passed as OpenAIAPIError).message).not.toContain(
        'Incorrect API key',
      );

      g.anthropic.enqueue({
        kind: 'error',
        status: 401,
        type: 'authentication_error',
        message: refusal,
      });
      const anthropic = await rejection(
        g.sdk.anthropic.messages.create({
          model: 'claude-sonnet-4-5',
          max_tokens: 32,
          messages: HELLO,
        }),
      );
      expectAnthropicError(
        anthropic,
        AnthropicInternalServerError,
        502,
        'api_error',
      );
      await expectFailedRecord(anthropic, 502, 'upstream_auth_failed');

      g.bedrock.enqueue({
        kind: 'error',
        status: 403,
        type: 'UnrecognizedClientException',
        message: 'The security token included in the request is invalid.',
      });
      const bedrock = await rejection(
        g.sdk.bedrock.send(converse('nova-lite')),
      );
      expectBedrockError(bedrock, 'InternalServerException', 502);
    });

    it('tells a client an upstream 400 about its request as a 400', async () => {
      g.bedrock.enqueue({
        kind: 'error',
        status: 400,
        type: 'ValidationException',
        message: 'The provided request is not valid',
      });
      const openai = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'nova-lite',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        openai,
        OpenAIBadRequestError,
        400,
        'upstream_rejected',
      );
      expect((openai as OpenAIAPIError).message).toContain(
        'The provided request is not valid',
      );

      g.openai.enqueue({
        kind: 'error',
        status: 400,
        message: "Invalid value for 'temperature'.",
        param: 'temperature',
      });
      const anthropic = await rejection(
        g.sdk.anthropic.messages.create({
          model: 'gpt-4o',
          max_tokens: 32,
          messages: HELLO,
        }),
      );
      expectAnthropicError(
        anthropic,
        AnthropicBadRequestError,
        400,
        'invalid_request_error',
      );
      expect((anthropic as AnthropicAPIError).apiMessage).toContain(
        "Invalid value for 'temperature'.",
      );
    });

    it('tells a prompt too long for the model as a context-length 400', async () => {
      g.anthropic.enqueue({
        kind: 'error',
        status: 400,
        type: 'invalid_request_error',
        message: 'prompt is too long: 212345 tokens > 200000 maximum',
      });
      const openai = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'claude-sonnet-4-5',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        openai,
        OpenAIBadRequestError,
        400,
        'context_length_exceeded',
      );
      await expectFailedRecord(openai, 400, 'context_length_exceeded');

      g.bedrock.enqueue({
        kind: 'error',
        status: 400,
        type: 'ValidationException',
        message: 'Input is too long for requested model.',
      });
      const fromBedrock = await rejection(
        g.sdk.openai.chat.completions.create({
          model: 'nova-lite',
          messages: HELLO,
        }),
      );
      expectOpenAIError(
        fromBedrock,
        OpenAIBadRequestError,
        400,
        'context_length_exceeded',
      );

      g.openai.enqueue({
        kind: 'error',
        status: 400,
        code: 'context_length_exceeded',
        param: 'messages',
        message: "This model's maximum context length is 128000 tokens.",
      });
      const bedrock = await rejection(g.sdk.bedrock.send(converse('gpt-4o')));
      expectBedrockError(bedrock, 'ValidationException', 400);
      expect((bedrock as Error).message).toContain('maximum context length');
    });

    it('tells Anthropic and Bedrock clients an OpenAI 429 as their own 429', async () => {
      const limited: FakeItem = {
        kind: 'error',
        status: 429,
        type: 'requests',
        code: 'rate_limit_exceeded',
        message: 'Rate limit reached for requests.',
        retryAfter: 3,
      };
      g.openai.enqueue(limited);
      const anthropic = await rejection(
        g.sdk.anthropic.messages.create({
          model: 'gpt-4o',
          max_tokens: 32,
          messages: HELLO,
        }),
      );
      expectAnthropicError(
        anthropic,
        AnthropicRateLimitError,
        429,
        'rate_limit_error',
      );
      expect((anthropic as AnthropicAPIError).headers?.get('retry-after')).toBe(
        '3',
      );
      await expectFailedRecord(anthropic, 429, 'rate_limited');

      g.openai.enqueue(limited);
      const bedrock = await rejection(g.sdk.bedrock.send(converse('gpt-4o')));
      expectBedrockError(bedrock, 'ThrottlingException', 429);
    });

    it('passes an Anthropic 4xx to an Anthropic client with the upstream body', async () => {
      const message = 'messages.0.content: Input should be a valid list';
      g.anthropic.enqueue({
        kind: 'error',
        status: 400,
        type: 'invalid_request_error',
        message,
      });
      const error = await rejection(
        g.sdk.anthropic.messages.create({
          model: 'claude-sonnet-4-5',
          max_tokens: 32,
          messages: HELLO,
        }),
      );
      expect(error).toBeInstanceOf(AnthropicBadRequestError);
      const api = error as AnthropicAPIError;
      const upstreamBody = api.error as { request_id?: unknown };
      expect(upstreamBody).toEqual({
        type: 'error',
        error: { type: 'invalid_request_error', message },
        request_id: expect.stringMatching(/^req_fake/) as unknown,
      });
      // The body is the upstream's, its id too; the header is ours.
      expect(api.requestID).not.toBe(upstreamBody.request_id);
      const record = await requestRecord(api.requestID ?? null);
      expect(record).toMatchObject({
        state: 'failed',
        status_code: 400,
        error_code: 'upstream_400',
        attempts: [],
      });
    });

    it('passes a Bedrock ValidationException to a Bedrock client as it came', async () => {
      const message = 'Malformed input request: extraneous key [topK]';
      g.bedrock.enqueue({
        kind: 'error',
        status: 400,
        type: 'ValidationException',
        message,
      });
      const error = await rejection(g.sdk.bedrock.send(converse('nova-lite')));
      expectBedrockError(error, 'ValidationException', 400);
      expect((error as Error).message).toBe(message);
      await expectFailedRecord(error, 400, 'upstream_400');
    });
  });

  describe('a stream that fails half-way', () => {
    /**
     * Where to cut the Anthropic fake's stream of `answer` so that it ends
     * just before the `nth` event named `before`.
     */
    function anthropicStreamCut(
      answer: { usage: { input: number; output: number }; text: string },
      before: string,
      nth: number,
    ): number {
      // Message ids are 'msg_fake' and 24 characters: the bytes before the
      // cut are the same length whatever the id.
      const bytes = synthesizeStream(
        answer,
        PROVIDER_MODELS['claude-sonnet-4-5'].model,
        `msg_fake${'0'.repeat(24)}`,
      ).toString('utf8');
      let at = -1;
      for (let i = 0; i < nth; i++) {
        at = bytes.indexOf(`event: ${before}\n`, at + 1);
      }
      expect(at).toBeGreaterThan(0);
      return Buffer.byteLength(bytes.slice(0, at));
    }

    /**
     * Half-way through the OpenAI fake's Chat Completions stream of filler
     * text: among the words, long before the finish and the usage chunk.
     */
    function chatStreamMiddle(usage: { input: number; output: number }) {
      const { pieces } = synthesizeChat(
        {
          serial: 1,
          model: 'gpt-4o',
          usage,
          text: fillerText(usage.output),
          toolCall: null,
        },
        { stream: true, includeUsage: true, azure: false },
      );
      return Math.floor(Buffer.concat(pieces).length / 2);
    }

    it("ends an OpenAI client's stream with a data: error when Anthropic drops, estimated", async () => {
      const answer = {
        usage: { input: 120, output: 9 },
        text: 'alpha beta gamma delta epsilon zeta eta theta iota',
      };
      g.anthropic.enqueue({
        kind: 'synthesize',
        ...answer,
        // message_start, ping, the block's start and its first delta.
        dropAfterBytes: anthropicStreamCut(answer, 'content_block_delta', 2),
      });
      const { data: stream, response } = await g.sdk.openai.chat.completions
        .create({ model: 'claude-sonnet-4-5', messages: HELLO, stream: true })
        .withResponse();
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
          }
        })(),
      );
      expect(error).toBeInstanceOf(OpenAIAPIError);
      expect((error as OpenAIAPIError).code).toBe('upstream_error');
      expect(text).toBe('alpha beta gamma');

      const record = await requestRecord(response.headers.get('x-request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_error',
      });
      // Anthropic's message_start counted the prompt; the output is
      // what was delivered.
      expectOneEstimatedAttempt(record, {
        input: 120,
        output: countTokens(text),
      });
    });

    it("ends an Anthropic client's stream with event: error on an in-stream Bedrock throttle", async () => {
      g.bedrock.enqueue({
        kind: 'error',
        status: 429,
        type: 'ThrottlingException',
        message: 'Too many tokens, please wait before trying again.',
        inStream: true,
        afterEvents: 2,
      });
      const { data: stream, response } = await g.sdk.anthropic.messages
        .create({
          model: 'nova-lite',
          max_tokens: 32,
          messages: HELLO,
          stream: true,
        })
        .withResponse();
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const event of stream) {
            if (
              event.type === 'content_block_delta' &&
              event.delta.type === 'text_delta'
            ) {
              text += event.delta.text;
            }
          }
        })(),
      );
      expect(error).toBeInstanceOf(AnthropicAPIError);
      expect((error as AnthropicAPIError).type).toBe('rate_limit_error');
      expect((error as AnthropicAPIError).apiMessage).toContain(
        'Too many tokens',
      );
      expect(text).not.toBe('');

      const record = await requestRecord(response.headers.get('request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'rate_limited',
      });
      expectOneEstimatedAttempt(record, { output: countTokens(text) });
    });

    it("ends a Bedrock client's stream with an exception the SDK throws when OpenAI drops", async () => {
      const usage = { input: 40, output: 24 };
      g.openai.enqueue({
        kind: 'synthesize',
        usage,
        delivery: { dropAfterBytes: chatStreamMiddle(usage) },
      });
      const output = await g.sdk.bedrock.send(
        new ConverseStreamCommand({
          modelId: 'gpt-4o',
          messages: [{ role: 'user', content: [{ text: PROMPT }] }],
        }),
      );
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const event of output.stream ?? []) {
            text += event.contentBlockDelta?.delta?.text ?? '';
          }
        })(),
      );
      expectBedrockStreamError(error, 'InternalServerException');
      expect(text).not.toBe('');
      expect(fillerText(usage.output).startsWith(text)).toBe(true);

      const record = await requestRecord(output.$metadata.requestId ?? null);
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_error',
      });
      expectOneEstimatedAttempt(record, { output: countTokens(text) });
    });

    it('passes an in-stream Bedrock throttle to a Bedrock client as ThrottlingException', async () => {
      g.bedrock.enqueue({
        kind: 'error',
        status: 429,
        type: 'ThrottlingException',
        message: 'Too many tokens, please wait before trying again.',
        inStream: true,
        afterEvents: 2,
      });
      const output = await g.sdk.bedrock.send(
        new ConverseStreamCommand({
          modelId: 'nova-lite',
          messages: [{ role: 'user', content: [{ text: PROMPT }] }],
        }),
      );
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const event of output.stream ?? []) {
            text += event.contentBlockDelta?.delta?.text ?? '';
          }
        })(),
      );
      expectBedrockStreamError(error, 'ThrottlingException');

      const record = await requestRecord(output.$metadata.requestId ?? null);
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'rate_limited',
      });
      expectOneEstimatedAttempt(record, { output: countTokens(text) });
    });

    it("ends an OpenAI client's pass-through stream with a data: error when OpenAI drops", async () => {
      const usage = { input: 30, output: 20 };
      g.openai.enqueue({
        kind: 'synthesize',
        usage,
        delivery: { dropAfterBytes: chatStreamMiddle(usage) },
      });
      const { data: stream, response } = await g.sdk.openai.chat.completions
        .create({ model: 'gpt-4o', messages: HELLO, stream: true })
        .withResponse();
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
          }
        })(),
      );
      expect(error).toBeInstanceOf(OpenAIAPIError);
      expect((error as OpenAIAPIError).code).toBe('upstream_error');
      expect(text).not.toBe('');
      expect(fillerText(usage.output).startsWith(text)).toBe(true);

      const record = await requestRecord(response.headers.get('x-request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_error',
      });
      expectOneEstimatedAttempt(record, { output: countTokens(text) });
    });

    it("ends an Anthropic client's pass-through stream with event: error when Anthropic drops", async () => {
      const answer = {
        usage: { input: 75, output: 9 },
        text: 'one two three four five six seven eight nine',
      };
      g.anthropic.enqueue({
        kind: 'synthesize',
        ...answer,
        dropAfterBytes: anthropicStreamCut(answer, 'content_block_delta', 3),
      });
      const { data: stream, response } = await g.sdk.anthropic.messages
        .create({
          model: 'claude-sonnet-4-5',
          max_tokens: 32,
          messages: HELLO,
          stream: true,
        })
        .withResponse();
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const event of stream) {
            if (
              event.type === 'content_block_delta' &&
              event.delta.type === 'text_delta'
            ) {
              text += event.delta.text;
            }
          }
        })(),
      );
      expect(error).toBeInstanceOf(AnthropicAPIError);
      expect((error as AnthropicAPIError).type).toBe('api_error');
      expect(text).toBe('one two three four five six');

      const record = await requestRecord(response.headers.get('request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_error',
      });
      expectOneEstimatedAttempt(record, {
        input: 75,
        output: countTokens(text),
      });
    });
  });

  describe('an upstream that reports an error inside its stream', () => {
    let folder: string | undefined;
    let recording: string;
    afterAll(async () => {
      if (folder) await rm(folder, { recursive: true, force: true });
    });
    beforeAll(async () => {
      // An Anthropic stream that counts the prompt, says two words, and
      // is then overloaded: Anthropic's in-stream error event.
      const events: [string, unknown][] = [
        [
          'message_start',
          {
            type: 'message_start',
            message: {
              id: 'msg_overloaded',
              type: 'message',
              role: 'assistant',
              model: PROVIDER_MODELS['claude-sonnet-4-5'].model,
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: 88, output_tokens: 1 },
            },
          },
        ],
        [
          'content_block_start',
          {
            type: 'content_block_start',
            index: 0,
            content_block: { type: 'text', text: '' },
          },
        ],
        [
          'content_block_delta',
          {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'text_delta', text: 'Hello there' },
          },
        ],
        [
          'error',
          {
            type: 'error',
            error: { type: 'overloaded_error', message: 'Overloaded' },
          },
        ],
      ];
      folder = await mkdtemp(join(tmpdir(), 'tollgate-in-stream-'));
      recording = join(folder, 'overloaded-mid-stream.sse');
      await writeFile(
        recording,
        events
          .map(
            ([name, data]) =>
              `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`,
          )
          .join(''),
      );
    });

    it("ends an OpenAI client's stream with its data: error, estimated", async () => {
      g.anthropic.enqueue({ kind: 'recording', file: recording });
      const { data: stream, response } = await g.sdk.openai.chat.completions
        .create({ model: 'claude-sonnet-4-5', messages: HELLO, stream: true })
        .withResponse();
      let text = '';
      const error = await rejection(
        (async () => {
          for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
          }
        })(),
      );
      expect(error).toBeInstanceOf(OpenAIAPIError);
      expect((error as OpenAIAPIError).code).toBe('upstream_overloaded');
      expect(text).toBe('Hello there');

      const record = await requestRecord(response.headers.get('x-request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_overloaded',
      });
      // Output: the delivered text, at least message_start's one token.
      expectOneEstimatedAttempt(record, {
        input: 88,
        output: Math.max(1, countTokens('Hello there')),
      });
    });

    it('passes the error event to an Anthropic client as the upstream sent it', async () => {
      g.anthropic.enqueue({ kind: 'recording', file: recording });
      const { data: stream, response } = await g.sdk.anthropic.messages
        .create({
          model: 'claude-sonnet-4-5',
          max_tokens: 32,
          messages: HELLO,
          stream: true,
        })
        .withResponse();
      const error = await rejection(
        (async () => {
          for await (const event of stream) void event;
        })(),
      );
      expect(error).toBeInstanceOf(AnthropicAPIError);
      expect((error as AnthropicAPIError).type).toBe('overloaded_error');
      expect((error as AnthropicAPIError).error).toEqual({
        type: 'error',
        error: { type: 'overloaded_error', message: 'Overloaded' },
      });

      const record = await requestRecord(response.headers.get('request-id'));
      expect(record).toMatchObject({
        state: 'failed',
        error_code: 'upstream_overloaded',
      });
      expectOneEstimatedAttempt(record, {
        input: 88,
        output: Math.max(1, countTokens('Hello there')),
      });
    });
  });

  describe('a client that hangs up mid-stream', () => {
    it('settles an OpenAI stream once, as 499 client_disconnected, estimated', async () => {
      const usage = { input: 30, output: 40 };
      g.openai.enqueue({
        kind: 'synthesize',
        usage,
        delivery: { chunkIntervalMs: 40 },
      });
      const { data: stream, response } = await g.sdk.openai.chat.completions
        .create({ model: 'gpt-4o', messages: HELLO, stream: true })
        .withResponse();
      let text = '';
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (text !== '') break;
      }
      const record = await settledRecord(response.headers.get('x-request-id'));
      expectDisconnected(record, {
        seen: countTokens(text),
        whole: countTokens(fillerText(usage.output)),
      });
    });

    it('settles an Anthropic stream once, as 499 client_disconnected, estimated', async () => {
      g.anthropic.enqueue({
        kind: 'synthesize',
        usage: { input: 64, output: 40 },
        text: fillerText(40),
        chunkBytes: 96,
        chunkIntervalMs: 40,
      });
      const { data: stream, response } = await g.sdk.anthropic.messages
        .create({
          model: 'claude-sonnet-4-5',
          max_tokens: 64,
          messages: HELLO,
          stream: true,
        })
        .withResponse();
      for await (const event of stream) {
        expect(event.type).toBe('message_start');
        break;
      }
      const record = await settledRecord(response.headers.get('request-id'));
      // message_start counted the prompt exactly; the output so far is
      // at least its one token and at most the whole answer.
      expectDisconnected(record, {
        input: 64,
        seen: 1,
        whole: countTokens(fillerText(40)),
      });
    });

    it('settles a Bedrock stream once, as 499 client_disconnected, estimated', async () => {
      g.bedrock.enqueue({
        kind: 'synthesize',
        usage: { input: 50, output: 40 },
        chunkBytes: 64,
        chunkIntervalMs: 40,
      });
      const abort = new AbortController();
      const output = await g.sdk.bedrock.send(
        new ConverseStreamCommand({
          modelId: 'nova-lite',
          messages: [{ role: 'user', content: [{ text: PROMPT }] }],
        }),
        { abortSignal: abort.signal },
      );
      for await (const event of output.stream ?? []) {
        expect(event.messageStart).toBeDefined();
        abort.abort();
        break;
      }
      const record = await settledRecord(output.$metadata.requestId ?? null);
      expectDisconnected(record, {
        seen: 0,
        whole: countTokens(fillerText(40)),
      });
    });
  });

  describe('embeddings', () => {
    it("meters embeddings from the upstream's prompt_tokens", async () => {
      g.openai.enqueue({ kind: 'synthesize', usage: { input: 7, output: 0 } });
      const { data, response } = await g.sdk.openai.embeddings
        .create({ model: 'gpt-4o', input: ['first text', 'second text'] })
        .withResponse();
      expect(data.usage.prompt_tokens).toBe(7);
      expect(data.data).toHaveLength(2);
      const record = await requestRecord(response.headers.get('x-request-id'));
      expect(record.state).toBe('settled');
      expect(record.attempts).toEqual([
        expect.objectContaining({
          estimated: false,
          usage: expect.objectContaining({
            input_tokens: 7,
            output_tokens: 0,
          }) as unknown,
        }),
      ]);
    });

    it('refuses embeddings to an Anthropic model as untranslatable', async () => {
      const before = upstreamCalls();
      const error = await rejection(
        g.sdk.openai.embeddings.create({
          model: 'claude-sonnet-4-5',
          input: 'some text',
        }),
      );
      expectOpenAIError(error, OpenAIBadRequestError, 400, 'untranslatable');
      expect((error as OpenAIAPIError).message).toContain('embeddings');
      expect(upstreamCalls()).toBe(before);
    });
  });

  it('logged no credential and settled nothing twice across all of the above', () => {
    const text = logs.lines.join('');
    expect(text).toContain('"requestId"');
    for (const secret of [
      g.key,
      'sk-upstream',
      'sk-ant-upstream',
      'azure-upstream-key',
      'bedrock-upstream-key',
    ]) {
      expect(text).not.toContain(secret);
    }
    // A second settlement of one request fails on the ledger's unique
    // event id and is logged as such.
    expect(text).not.toContain('could not settle');
  });
});

/**
 * One usage event, estimated: `input` exactly when the provider counted
 * the prompt before failing, else at least the prompt's own tokens and at
 * most the reserved bound; `output` as delivered.
 */
function expectOneEstimatedAttempt(
  record: RequestView,
  expected: { readonly input?: number; readonly output: number },
): void {
  expect(record.status_code).toBe(200);
  expect(record.attempts).toHaveLength(1);
  const [attempt] = record.attempts;
  expect(attempt?.attempt).toBe(1);
  expect(attempt?.estimated).toBe(true);
  expectInput(record, expected.input);
  expect(attempt?.usage.output_tokens).toBe(expected.output);
}

function expectInput(record: RequestView, exact: number | undefined): void {
  const input = record.attempts[0]?.usage.input_tokens;
  if (exact !== undefined) {
    expect(input).toBe(exact);
    return;
  }
  expect(input).toBeGreaterThanOrEqual(countTokens(PROMPT));
  expect(input).toBeLessThanOrEqual(record.reserved.input_tokens);
}

/**
 * Settled once as a hang-up: 499, `client_disconnected`, one estimated
 * event whose output lies between what the client saw and the whole
 * answer (the gateway may have relayed a little more than was read).
 */
function expectDisconnected(
  record: RequestView,
  expected: {
    readonly input?: number;
    readonly seen: number;
    readonly whole: number;
  },
): void {
  expect(record).toMatchObject({
    state: 'failed',
    status_code: 499,
    error_code: 'client_disconnected',
  });
  expect(record.attempts).toHaveLength(1);
  const [attempt] = record.attempts;
  expect(attempt?.estimated).toBe(true);
  expectInput(record, expected.input);
  expect(attempt?.usage.output_tokens).toBeGreaterThanOrEqual(expected.seen);
  expect(attempt?.usage.output_tokens).toBeLessThan(expected.whole);
}

function expectOpenAIError(
  error: unknown,
  type: abstract new (...args: never[]) => OpenAIAPIError,
  status: number,
  code: string,
): void {
  expect(error).toBeInstanceOf(type);
  const api = error as OpenAIAPIError;
  expect(api.status).toBe(status);
  expect(api.code).toBe(code);
  expect(api.requestID).toMatch(/^req_/);
  expect((api.error as { request_id?: unknown }).request_id).toBe(
    api.requestID,
  );
}

function expectAnthropicError(
  error: unknown,
  type: abstract new (...args: never[]) => AnthropicAPIError,
  status: number,
  errorType: string,
): void {
  expect(error).toBeInstanceOf(type);
  const api = error as AnthropicAPIError;
  expect(api.status).toBe(status);
  expect(api.type).toBe(errorType);
  expect(api.requestID).toMatch(/^req_/);
  expect(api.error).toMatchObject({
    type: 'error',
    error: { type: errorType },
    request_id: api.requestID,
  });
}

function expectBedrockError(
  error: unknown,
  name: string,
  status: number,
): void {
  expect(error).toBeInstanceOf(BedrockRuntimeServiceException);
  const exception = error as BedrockRuntimeServiceException;
  expect(exception.name).toBe(name);
  expect(exception.$metadata.httpStatusCode).toBe(status);
  expect(exception.$metadata.requestId).toMatch(/^req_/);
}

/** An exception frame ends a ConverseStream: the SDK throws it by name. */
function expectBedrockStreamError(error: unknown, name: string): void {
  expect(error).toBeInstanceOf(BedrockRuntimeServiceException);
  expect((error as Error).name).toBe(name);
}

describe('provider credentials', () => {
  /** Distinctive values, so any copy of one in a log or answer shows. */
  const SECRETS = {
    openai: 'sk-proj-CANARY1openai7f3a9c',
    azure: 'CANARY2azure4b1e8d0f',
    anthropic: 'sk-ant-api03-CANARY3anthropic2c6f',
    bedrockKeyId: 'AKIACANARY4BEDROCK9D',
    bedrockSecret: 'CANARY5bedrockSecretAccessKey0e1',
    bedrockSession: 'CANARY6bedrockSessionToken5b7a',
    bedrockApiKey: 'ABSKCANARY7bedrockApiKey3c9d',
    down: 'sk-CANARY8unreachable1a8c3e',
  };
  const ENV = {
    TOLLGATE_TEST_ANTHROPIC_KEY: SECRETS.anthropic,
    TOLLGATE_TEST_BEDROCK_SECRET: SECRETS.bedrockSecret,
  };
  const logs = logCapture();
  /** Every status line, header and body a client was sent. */
  const answers: string[] = [];
  let folder: string;
  let fakes: {
    openai: OpenAIFake;
    anthropic: AnthropicFake;
    bedrock: BedrockFake;
  };
  let gateway: Gateway;
  let key: string;
  let sdk: {
    openai: OpenAI;
    anthropic: Anthropic;
    bedrock: BedrockRuntimeClient;
  };

  beforeAll(async () => {
    Object.assign(process.env, ENV);
    folder = await mkdtemp(join(tmpdir(), 'tollgate-credentials-'));
    const [openai, anthropic, bedrock, closedPort] = await Promise.all([
      startOpenAIFake(),
      startAnthropicFake(),
      startBedrockFake(),
      freePort(),
    ]);
    fakes = { openai, anthropic, bedrock };
    const nowhere = `http://127.0.0.1:${closedPort}`;
    const timeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 };
    const config = parseConfig(
      {
        server: { port: 0, shutdownGraceMs: 5_000 },
        database: { path: join(folder, 'tollgate.db') },
        logging: { level: 'trace' },
        providers: {
          openai: {
            type: 'openai-compatible',
            baseUrl: openai.url,
            apiKey: SECRETS.openai,
            ...timeouts,
          },
          azure: {
            type: 'azure-openai',
            endpoint: openai.azureUrl,
            apiKey: SECRETS.azure,
            ...timeouts,
          },
          anthropic: {
            type: 'anthropic',
            baseUrl: anthropic.url,
            apiKey: { env: 'TOLLGATE_TEST_ANTHROPIC_KEY' },
            ...timeouts,
          },
          bedrock: {
            type: 'bedrock',
            region: 'us-east-1',
            endpoint: bedrock.url,
            accessKeyId: SECRETS.bedrockKeyId,
            secretAccessKey: { env: 'TOLLGATE_TEST_BEDROCK_SECRET' },
            sessionToken: SECRETS.bedrockSession,
            ...timeouts,
          },
          'bedrock-key': {
            type: 'bedrock',
            region: 'us-east-1',
            endpoint: bedrock.url,
            apiKey: SECRETS.bedrockApiKey,
            ...timeouts,
          },
          'openai-down': {
            type: 'openai-compatible',
            baseUrl: `${nowhere}/v1`,
            apiKey: SECRETS.down,
            ...timeouts,
          },
          'anthropic-down': {
            type: 'anthropic',
            baseUrl: nowhere,
            apiKey: SECRETS.down,
            ...timeouts,
          },
          'bedrock-down': {
            type: 'bedrock',
            region: 'us-east-1',
            endpoint: nowhere,
            apiKey: SECRETS.down,
            ...timeouts,
          },
        },
        models: {
          'gpt-4o': { deployments: [{ provider: 'openai', model: 'gpt-4o' }] },
          'azure-mini': {
            deployments: [{ provider: 'azure', model: 'gpt-4o-mini' }],
          },
          claude: {
            deployments: [
              { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929' },
            ],
          },
          nova: {
            deployments: [
              { provider: 'bedrock', model: 'us.amazon.nova-lite-v1:0' },
            ],
          },
          'nova-key': {
            deployments: [
              { provider: 'bedrock-key', model: 'us.amazon.nova-lite-v1:0' },
            ],
          },
          'down-gpt': {
            deployments: [{ provider: 'openai-down', model: 'gpt-4o' }],
          },
          'down-claude': {
            deployments: [
              {
                provider: 'anthropic-down',
                model: 'claude-sonnet-4-5-20250929',
              },
            ],
          },
          'down-nova': {
            deployments: [
              { provider: 'bedrock-down', model: 'us.amazon.nova-lite-v1:0' },
            ],
          },
        },
      },
      'the credentials test config',
    );
    gateway = await startGateway({
      config,
      adminToken: ADMIN_TOKEN,
      logger: createLogger('trace', logs.stream),
    });
    const tenant = await createTenant(gateway.store, { name: 'tenant-c' });
    key = (await createApiKey(gateway.store, tenant, {})).key;
    const recording = async (
      url: string | URL | Request,
      init?: RequestInit,
    ): Promise<Response> => {
      const response = await fetch(url, init);
      const copy = response.clone();
      answers.push(
        `${response.status} ${JSON.stringify([...response.headers])}`,
      );
      // Read in the background, so a stream still streams.
      pending.push(
        copy.text().then(
          (body) => void answers.push(body),
          () => undefined,
        ),
      );
      return response;
    };
    sdk = {
      openai: new OpenAI({
        baseURL: `${gateway.url}/v1`,
        apiKey: key,
        maxRetries: 0,
        fetch: recording,
      }),
      anthropic: new Anthropic({
        baseURL: gateway.url,
        apiKey: key,
        maxRetries: 0,
        fetch: recording,
      }),
      bedrock: new BedrockRuntimeClient({
        region: 'us-east-1',
        endpoint: gateway.url,
        token: { token: key },
        authSchemePreference: ['httpBearerAuth'],
        maxAttempts: 1,
      }),
    };
  });
  const pending: Promise<void>[] = [];

  afterAll(async () => {
    sdk?.bedrock.destroy();
    await gateway?.close();
    await Promise.all([
      fakes?.openai.close(),
      fakes?.anthropic.close(),
      fakes?.bedrock.close(),
    ]);
    if (folder) await rm(folder, { recursive: true, force: true });
    for (const name of Object.keys(ENV))
      Reflect.deleteProperty(process.env, name);
  });

  /** What a Bedrock SDK error holds that a caller could print. */
  function bedrockAnswer(error: unknown): void {
    expect(error).toBeInstanceOf(BedrockRuntimeServiceException);
    const exception = error as BedrockRuntimeServiceException;
    answers.push(
      exception.name,
      exception.message,
      JSON.stringify(exception.$metadata),
      JSON.stringify(exception.$response?.headers ?? {}),
    );
  }

  it('sends each upstream its own credential', async () => {
    await sdk.openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HELLO,
    });
    await sdk.openai.chat.completions.create({
      model: 'azure-mini',
      messages: HELLO,
    });
    await sdk.anthropic.messages.create({
      model: 'claude',
      max_tokens: 16,
      messages: HELLO,
    });
    await sdk.bedrock.send(converse('nova'));
    await sdk.bedrock.send(converse('nova-key'));

    const [openai, azure] = fakes.openai.requests.slice(-2);
    expect(openai?.headers.authorization).toBe(`Bearer ${SECRETS.openai}`);
    expect(azure?.headers['api-key']).toBe(SECRETS.azure);
    expect(fakes.anthropic.requests.at(-1)?.headers['x-api-key']).toBe(
      SECRETS.anthropic,
    );
    const [sigv4, bearer] = fakes.bedrock.requests.slice(-2);
    expect(sigv4?.headers.authorization).toContain(
      `Credential=${SECRETS.bedrockKeyId}/`,
    );
    expect(sigv4?.headers['x-amz-security-token']).toBe(SECRETS.bedrockSession);
    expect(bearer?.headers.authorization).toBe(
      `Bearer ${SECRETS.bedrockApiKey}`,
    );
  });

  it('keeps them out of every answer and log line when upstreams refuse or fail', async () => {
    // Upstreams refusing the credential, some echoing it as OpenAI
    // echoes a key it does not know.
    fakes.openai.enqueue({
      kind: 'error',
      status: 401,
      code: 'invalid_api_key',
      message: `Incorrect API key provided: ${SECRETS.openai}.`,
    });
    fakes.openai.enqueue({
      kind: 'error',
      status: 401,
      code: '401',
      message: `Access denied: key ${SECRETS.azure} is not valid.`,
    });
    fakes.anthropic.enqueue({
      kind: 'error',
      status: 401,
      type: 'authentication_error',
      message: `invalid x-api-key ${SECRETS.anthropic}`,
    });
    fakes.bedrock.enqueue({
      kind: 'error',
      status: 403,
      type: 'UnrecognizedClientException',
      message: `The security token ${SECRETS.bedrockSession} is invalid.`,
    });
    fakes.bedrock.enqueue({
      kind: 'error',
      status: 403,
      type: 'AccessDeniedException',
      message: `Key ${SECRETS.bedrockApiKey} may not invoke this model.`,
    });

    for (const model of ['gpt-4o', 'azure-mini', 'down-gpt']) {
      const error = await rejection(
        sdk.openai.chat.completions.create({ model, messages: HELLO }),
      );
      expect(error).toBeInstanceOf(OpenAIAPIError);
      expect((error as OpenAIAPIError).status).toBe(502);
    }
    for (const model of ['claude', 'down-claude', 'nova']) {
      const error = await rejection(
        sdk.anthropic.messages.create({
          model,
          max_tokens: 16,
          messages: HELLO,
          stream: model === 'claude',
        }),
      );
      expect(error).toBeInstanceOf(AnthropicAPIError);
      expect((error as AnthropicAPIError).status).toBe(502);
    }
    for (const model of ['nova-key', 'down-nova']) {
      const error = await rejection(sdk.bedrock.send(converse(model)));
      bedrockAnswer(error);
      expect(
        (error as BedrockRuntimeServiceException).$metadata.httpStatusCode,
      ).toBe(502);
    }
    // A stream the upstream drops half-way, to an OpenAI client.
    fakes.anthropic.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 30 },
      text: fillerText(30),
      dropAfterBytes: 700,
    });
    const stream = await sdk.openai.chat.completions.create({
      model: 'claude',
      messages: HELLO,
      stream: true,
    });
    await rejection(
      (async () => {
        for await (const chunk of stream) void chunk;
      })(),
    );
    // What an operator reads back.
    for (const path of ['/v1/models', '/health', '/v1/usage']) {
      const response = await fetch(`${gateway.url}${path}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      answers.push(
        JSON.stringify([...response.headers]),
        await response.text(),
      );
    }
    await Promise.all(pending);

    const sent = answers.join('\n');
    const logged = logs.lines.join('');
    // Not vacuous: the failures were answered and logged.
    expect(sent).toContain('upstream_auth_failed');
    expect(sent).toContain('upstream_unavailable');
    expect(logged).toContain('upstream_unavailable');
    for (const secret of [...Object.values(SECRETS), key, ADMIN_TOKEN]) {
      expect(sent).not.toContain(secret);
      expect(logged).not.toContain(secret);
    }
  });
});

/** A port nothing listens on: taken, then freed. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
