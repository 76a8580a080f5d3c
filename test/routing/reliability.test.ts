/**
 * Retries, fallbacks, deadlines and circuit breakers against fake
 * upstreams that fail on cue (issue #5, "What must be true"). Every
 * scenario checks three things:
 *
 * - what the client's official SDK sees: the answer and its usage, or
 *   the error, in the client's own API;
 * - the attempts made: how many requests each fake received, and the
 *   routing record the ledger keeps with the request;
 * - the ledger: the provider cost of each attempt the provider charged
 *   and the tenant's charge for the request, exactly, as token counts
 *   times the rates this file gives every deployment (`RATES`), summed in
 *   BigInt (test/helpers/usd.ts), never by the gateway's own arithmetic.
 *
 * Routes are ordered (primary first, then its fallback), breakers off
 * except where a test is about them, so that scenarios are independent.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { APIError as AnthropicAPIError } from '@anthropic-ai/sdk';
import { countTokens } from 'gpt-tokenizer';
import {
  APIError as OpenAIAPIError,
  BadRequestError,
  RateLimitError,
} from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { buildInvoice } from '../../src/billing/invoice.js';
import type { ConfigInput } from '../../src/config/config-schema.js';
import {
  fillerText,
  synthesizeChat,
} from '../../src/fakes/openai/synthesize-answer.js';
import { formatDecimal } from '../../src/money/decimal.js';
import {
  startRoutingGateway,
  type LedgerView,
  type RoutingGateway,
  type RoutingProvider,
} from '../helpers/routing-gateway.js';
import { usd } from '../helpers/usd.js';

/** USD per 1M tokens, as the config states them to the gateway. */
interface Rates {
  readonly input: string;
  readonly output: string;
}

const RATES = {
  primary: { input: '2.5', output: '10' },
  secondary: { input: '0.15', output: '0.6' },
  /** A fallback with a larger context window, dearer than `secondary`. */
  large: { input: '1.25', output: '5' },
  bedrock: { input: '0.06', output: '0.24' },
  anthropic: { input: '3', output: '15' },
  /** What a route with `tenantPrice: route` charges, whoever serves. */
  route: { input: '4', output: '16' },
} as const satisfies Record<string, Rates>;

interface Tokens {
  readonly input: number;
  readonly output: number;
}

/** Σ tokens × rate, exact: what the ledger must hold. */
function cost(rates: Rates, tokens: Tokens): string {
  return usd([tokens.input, rates.input], [tokens.output, rates.output]);
}

function prices(rates: Rates) {
  return [
    {
      effectiveFrom: '2020-01-01',
      input: rates.input,
      output: rates.output,
      source: 'test/routing/reliability.test.ts',
    },
  ];
}

/** The upstream model each provider's deployments send. */
const MODELS: Record<RoutingProvider, string> = {
  primary: 'gpt-4o',
  secondary: 'gpt-4o-mini',
  refused: 'gpt-4o',
  anthropic: 'claude-sonnet-4-5-20250929',
  bedrock: 'us.amazon.nova-lite-v1:0',
};

function deployment(id: string, provider: RoutingProvider, rates: Rates) {
  return { id, provider, model: MODELS[provider], prices: prices(rates) };
}

/** A primary on the `primary` fake with its fallback on `secondary`. */
function pair(
  name: string,
  extra: Partial<ConfigInput['models'][string]> = {},
): ConfigInput['models'][string] {
  return {
    deployments: [
      deployment(`${name}/primary`, 'primary', RATES.primary),
      deployment(`${name}/secondary`, 'secondary', RATES.secondary),
    ],
    circuitBreaker: false,
    ...extra,
  };
}

const ROUTES: ConfigInput['models'] = {
  'server-error': pair('server-error'),
  'route-price': pair('route-price', {
    tenantPrice: 'route',
    prices: prices(RATES.route),
  }),
  'retry-after': pair('retry-after', {
    retry: { retries: 1, initialBackoffMs: 10, maxBackoffMs: 20 },
  }),
  'retry-after-too-long': pair('retry-after-too-long', {
    retry: {
      retries: 1,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      maxRetryAfterMs: 500,
    },
  }),
  'attempt-timeout': pair('attempt-timeout', {
    retry: { attemptTimeoutMs: 250 },
  }),
  'overall-timeout': pair('overall-timeout', {
    retry: { attemptTimeoutMs: 250, timeoutMs: 400 },
  }),
  refused: {
    deployments: [
      deployment('refused/primary', 'refused', RATES.primary),
      deployment('refused/secondary', 'secondary', RATES.secondary),
    ],
    circuitBreaker: false,
  },
  reset: pair('reset'),
  'stream-drop': pair('stream-drop'),
  'context-window': {
    deployments: [
      deployment('context-window/small', 'primary', RATES.primary),
      deployment('context-window/large', 'secondary', RATES.large),
    ],
    circuitBreaker: false,
  },
  'content-filter': pair('content-filter'),
  'all-fail': pair('all-fail'),
  breaker: pair('breaker', { circuitBreaker: { failures: 3, openMs: 300 } }),
  'breaker-probe': pair('breaker-probe', {
    circuitBreaker: { failures: 3, openMs: 300 },
  }),
  'breaker-probing': pair('breaker-probing', {
    circuitBreaker: { failures: 3, openMs: 300 },
  }),
  'breaker-alone': {
    deployments: [
      deployment('breaker-alone/primary', 'primary', RATES.primary),
    ],
    circuitBreaker: { failures: 1, openMs: 60_000 },
  },
  'max-attempts': pair('max-attempts', {
    retry: {
      retries: 3,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      maxAttempts: 2,
    },
  }),
  'bedrock-then-openai': {
    deployments: [
      deployment('bedrock-then-openai/bedrock', 'bedrock', RATES.bedrock),
      deployment('bedrock-then-openai/openai', 'secondary', RATES.secondary),
    ],
    circuitBreaker: false,
  },
  'anthropic-then-openai': {
    deployments: [
      deployment(
        'anthropic-then-openai/anthropic',
        'anthropic',
        RATES.anthropic,
      ),
      deployment('anthropic-then-openai/openai', 'secondary', RATES.secondary),
    ],
    circuitBreaker: false,
  },
};

const PROMPT = 'Say hello.';
const HELLO = [{ role: 'user' as const, content: PROMPT }];

/** The fakes' request counts, to tell what one scenario sent where. */
type Sent = Readonly<
  Record<'primary' | 'secondary' | 'bedrock' | 'anthropic', number>
>;

/** An attempt of the routing record without its timings. */
interface Step {
  readonly attempt: number | null;
  readonly deployment: string;
  readonly outcome: 'answered' | 'failed' | 'skipped';
  readonly reason: string | null;
  readonly statusCode: number | null;
}

function steps(ledger: LedgerView): Step[] {
  return ledger.routing.attempts.map((a) => ({
    attempt: a.attempt,
    deployment: a.deployment,
    outcome: a.outcome,
    reason: a.reason,
    statusCode: a.statusCode,
  }));
}

function answered(attempt: number, deployment: string): Step {
  return {
    attempt,
    deployment,
    outcome: 'answered',
    reason: null,
    statusCode: 200,
  };
}

function failed(
  attempt: number,
  deployment: string,
  reason: string,
  statusCode: number | null,
): Step {
  return { attempt, deployment, outcome: 'failed', reason, statusCode };
}

/** The one event of a request served at `rates` and charged at `charged`. */
function servedEvent(
  attempt: number,
  deploymentId: string,
  tokens: Tokens,
  rates: Rates,
  charged: Rates = rates,
) {
  return {
    attempt,
    deploymentId,
    served: true,
    estimated: false,
    inputTokens: tokens.input,
    outputTokens: tokens.output,
    providerCost: cost(rates, tokens),
    tenantCharge: cost(charged, tokens),
  };
}

/**
 * A non-streamed attempt that answered 200 and was cut off before its
 * body was whole: the provider may bill it, so it is kept unserved,
 * charged to nobody, at the usage estimated from the request alone
 * (o200k tokens of the prompt's line plus 3 per message and 3 to prime
 * the reply; no output seen).
 */
function cutEvent(attempt: number, deploymentId: string, rates: Rates) {
  const estimate = { input: countTokens(`${PROMPT}\n`) + 3 + 3, output: 0 };
  return {
    attempt,
    deploymentId,
    served: false,
    estimated: true,
    inputTokens: estimate.input,
    outputTokens: estimate.output,
    providerCost: cost(rates, estimate),
    tenantCharge: '0',
  };
}

/** What a chat stream delivered, and how it ended. */
interface ChatStreamRead {
  readonly text: string;
  readonly usage: ChatCompletionChunk['usage'] | undefined;
  readonly finishReason: string | null;
  readonly error: unknown;
}

async function readChatStream(
  stream: AsyncIterable<ChatCompletionChunk>,
): Promise<ChatStreamRead> {
  let text = '';
  let usage: ChatCompletionChunk['usage'] | undefined;
  let finishReason: string | null = null;
  try {
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
    }
  } catch (error) {
    return { text, usage, finishReason, error };
  }
  return { text, usage, finishReason, error: undefined };
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

/** The gateway's request id, as each SDK's error carries it. */
function requestIdOf(error: unknown): string | undefined {
  if (error instanceof OpenAIAPIError) return error.requestID ?? undefined;
  if (error instanceof AnthropicAPIError) return error.requestID ?? undefined;
  return undefined;
}

describe('routing reliability', () => {
  let g: RoutingGateway;

  beforeAll(async () => {
    g = await startRoutingGateway({ models: ROUTES });
  });
  afterAll(async () => {
    await g?.close();
  });
  afterEach(() => {
    // Every scripted answer was asked for; one left over is cleared so
    // that it cannot answer the next scenario's request.
    const left = {
      primary: g.primary.clear(),
      secondary: g.secondary.clear(),
      anthropic: g.anthropic.clear(),
      bedrock: g.bedrock.clear(),
    };
    expect(left).toEqual({
      primary: 0,
      secondary: 0,
      anthropic: 0,
      bedrock: 0,
    });
  });

  /** Counts of requests each fake received since `counter()` was called. */
  function counter(): () => Sent {
    const at = counts();
    return () => {
      const now = counts();
      return {
        primary: now.primary - at.primary,
        secondary: now.secondary - at.secondary,
        bedrock: now.bedrock - at.bedrock,
        anthropic: now.anthropic - at.anthropic,
      };
    };
  }

  function counts(): Sent {
    return {
      primary: g.primary.requests.length,
      secondary: g.secondary.requests.length,
      bedrock: g.bedrock.requests.length,
      anthropic: g.anthropic.requests.length,
    };
  }

  function sent(counts: Partial<Sent>): Sent {
    return { primary: 0, secondary: 0, bedrock: 0, anthropic: 0, ...counts };
  }

  /** A Chat Completions call through the OpenAI SDK, and its request id. */
  async function chat(model: string) {
    const { data, response } = await g.tenant.openai.chat.completions
      .create({ model, messages: HELLO })
      .withResponse();
    return {
      completion: data,
      requestId: response.headers.get('x-request-id'),
    };
  }

  async function chatStream(model: string) {
    const { data, response } = await g.tenant.openai.chat.completions
      .create({
        model,
        messages: HELLO,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    return {
      read: await readChatStream(data),
      requestId: response.headers.get('x-request-id'),
    };
  }

  /**
   * Asks `model` for an answer, streamed or not, through the OpenAI SDK;
   * expects `text` (and the usage `tokens`, when given) and returns the
   * request id.
   */
  async function expectAnswer(
    model: string,
    stream: boolean,
    text: string,
    tokens?: Tokens,
  ): Promise<string | null> {
    const usage = tokens && {
      prompt_tokens: tokens.input,
      completion_tokens: tokens.output,
    };
    if (stream) {
      const { read, requestId } = await chatStream(model);
      expect(read.error).toBeUndefined();
      expect(read.text).toBe(text);
      if (usage) expect(read.usage).toMatchObject(usage);
      return requestId;
    }
    const { completion, requestId } = await chat(model);
    expect(completion.choices[0]?.message.content).toBe(text);
    if (usage) expect(completion.usage).toMatchObject(usage);
    return requestId;
  }

  const SERVER_ERROR = {
    kind: 'error',
    status: 500,
    type: 'server_error',
    message: 'The server had an error while processing your request.',
  } as const;

  describe('a 5xx falls back to the next deployment', () => {
    const tokens = { input: 120, output: 30 };
    const text = 'Hello from the fallback.';

    for (const stream of [false, true]) {
      it(`charges the tenant once, at the fallback's price (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue(SERVER_ERROR);
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text });
        const since = counter();

        const requestId = await expectAnswer(
          'server-error',
          stream,
          text,
          tokens,
        );

        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(ledger).toMatchObject({
          state: 'settled',
          statusCode: 200,
          errorCode: null,
          deploymentId: 'server-error/secondary',
          attempt: 2,
        });
        expect(steps(ledger)).toEqual([
          failed(1, 'server-error/primary', 'server_error', 500),
          answered(2, 'server-error/secondary'),
        ]);
        // The 500 cost nothing: no usage, no event.
        expect(ledger.events).toEqual([
          servedEvent(2, 'server-error/secondary', tokens, RATES.secondary),
        ]);
      });
    }

    for (const stream of [false, true]) {
      it(`charges the tenant at the route's price with tenantPrice route (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({ ...SERVER_ERROR, status: 502 });
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text });
        const since = counter();

        const requestId = await expectAnswer(
          'route-price',
          stream,
          text,
          tokens,
        );

        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'route-price/primary', 'server_error', 502),
          answered(2, 'route-price/secondary'),
        ]);
        // The provider is paid at the fallback's rates; the tenant at the
        // route's, whoever served.
        expect(ledger.events).toEqual([
          servedEvent(
            2,
            'route-price/secondary',
            tokens,
            RATES.secondary,
            RATES.route,
          ),
        ]);
        // (120 × 4 + 30 × 16) / 1M, by hand.
        expect(cost(RATES.route, tokens)).toBe('0.00096');
      });
    }
  });

  describe('a 429 with Retry-After', () => {
    const tokens = { input: 40, output: 8 };

    for (const stream of [false, true]) {
      it(`is retried on the same deployment after waiting it out (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({
          kind: 'error',
          status: 429,
          type: 'requests',
          code: 'rate_limit_exceeded',
          message: 'Rate limit reached for requests.',
          retryAfter: 1,
        });
        g.primary.enqueue({ kind: 'synthesize', usage: tokens, text: 'Hi.' });
        const since = counter();
        const started = performance.now();

        const requestId = await expectAnswer(
          'retry-after',
          stream,
          'Hi.',
          tokens,
        );

        expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);
        expect(since()).toEqual(sent({ primary: 2 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'retry-after/primary', 'rate_limited', 429),
          answered(2, 'retry-after/primary'),
        ]);
        // Retry-After: 1 is a second; the backoff (10–20 ms) is shorter.
        expect(ledger.routing.attempts[0]?.waitedMs).toBe(0);
        expect(ledger.routing.attempts[1]?.waitedMs).toBe(1_000);
        expect(ledger.events).toEqual([
          servedEvent(2, 'retry-after/primary', tokens, RATES.primary),
        ]);
      });
    }

    for (const stream of [false, true]) {
      it(`longer than maxRetryAfterMs falls back at once (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({
          kind: 'error',
          status: 429,
          type: 'tokens',
          code: 'rate_limit_exceeded',
          message: 'Rate limit reached for tokens.',
          retryAfter: 1,
        });
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text: 'Hi.' });
        const since = counter();
        const started = performance.now();

        const requestId = await expectAnswer(
          'retry-after-too-long',
          stream,
          'Hi.',
          tokens,
        );

        // Nowhere near the second it asked for (maxRetryAfterMs is 500).
        expect(performance.now() - started).toBeLessThan(500);
        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'retry-after-too-long/primary', 'rate_limited', 429),
          answered(2, 'retry-after-too-long/secondary'),
        ]);
        expect(ledger.routing.attempts.map((a) => a.waitedMs)).toEqual([0, 0]);
        expect(ledger.events).toEqual([
          servedEvent(
            2,
            'retry-after-too-long/secondary',
            tokens,
            RATES.secondary,
          ),
        ]);
      });
    }
  });

  describe('deadlines', () => {
    const tokens = { input: 64, output: 16 };

    /** Ways a primary can keep an attempt from beginning in time. */
    const silences = [
      { name: 'no status line', stream: false, delivery: { latencyMs: 5_000 } },
      { name: 'no status line', stream: true, delivery: { latencyMs: 5_000 } },
      {
        name: 'headers, then no body',
        stream: true,
        delivery: { stallAfterBytes: 0 },
      },
      {
        name: 'part of the first event',
        stream: true,
        delivery: { stallAfterBytes: 12 },
      },
      {
        name: 'part of the JSON body',
        stream: false,
        delivery: { stallAfterBytes: 40 },
      },
    ] as const;

    for (const { name, stream, delivery } of silences) {
      it(`an attempt past attemptTimeoutMs falls back: ${name} (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({ kind: 'synthesize', usage: tokens, delivery });
        g.secondary.enqueue({
          kind: 'synthesize',
          usage: tokens,
          text: 'On time.',
        });
        const since = counter();
        const started = performance.now();

        const requestId = await expectAnswer(
          'attempt-timeout',
          stream,
          'On time.',
          tokens,
        );

        const elapsed = performance.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(2_000);
        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'attempt-timeout/primary', 'timeout', null),
          answered(2, 'attempt-timeout/secondary'),
        ]);
        expect(ledger.routing.attempts[0]?.ms).toBeGreaterThanOrEqual(249);
        expect(ledger.events).toEqual([
          // A 200 cut off while its JSON body was read may be billed.
          ...(!stream && 'stallAfterBytes' in delivery
            ? [cutEvent(1, 'attempt-timeout/primary', RATES.primary)]
            : []),
          servedEvent(2, 'attempt-timeout/secondary', tokens, RATES.secondary),
        ]);
      });
    }

    for (const stream of [false, true]) {
      it(`past timeoutMs over every attempt the client gets 504 upstream_timeout (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({
          kind: 'synthesize',
          usage: tokens,
          delivery: { latencyMs: 5_000 },
        });
        g.secondary.enqueue({
          kind: 'synthesize',
          usage: tokens,
          delivery: { latencyMs: 5_000 },
        });
        const since = counter();
        const started = performance.now();

        const error = await rejection(
          stream ? chatStream('overall-timeout') : chat('overall-timeout'),
        );

        const elapsed = performance.now() - started;
        expect(error).toBeInstanceOf(OpenAIAPIError);
        expect((error as OpenAIAPIError).status).toBe(504);
        expect((error as OpenAIAPIError).code).toBe('upstream_timeout');
        // The first attempt's own deadline (250 ms), then what was left
        // of the overall one (400 ms) for the second.
        expect(elapsed).toBeGreaterThanOrEqual(400);
        expect(elapsed).toBeLessThan(1_500);
        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestIdOf(error));
        expect(ledger).toMatchObject({
          state: 'failed',
          statusCode: 504,
          errorCode: 'upstream_timeout',
        });
        expect(steps(ledger)).toEqual([
          failed(1, 'overall-timeout/primary', 'timeout', null),
          failed(2, 'overall-timeout/secondary', 'timeout', null),
        ]);
        expect(ledger.events).toEqual([]);
      });
    }
  });

  describe('a connection that fails before the answer begins falls back', () => {
    const tokens = { input: 30, output: 9 };

    /** One JSON answer's bytes, for a drop inside it. */
    const jsonBytes = Buffer.concat(
      synthesizeChat(
        {
          serial: 1,
          model: 'gpt-4o',
          usage: tokens,
          text: 'x',
          toolCall: null,
        },
        { stream: false, includeUsage: false, azure: false },
      ).pieces,
    ).length;

    const failures = [
      { name: 'refused', model: 'refused', primary: null },
      {
        name: 'reset before the status line',
        model: 'reset',
        primary: { resetBeforeStatus: true },
      },
      {
        name: 'reset after the headers (dropAfterBytes: 0)',
        model: 'reset',
        primary: { dropAfterBytes: 0 },
      },
    ] as const;

    for (const { name, model, primary } of failures) {
      for (const stream of [false, true]) {
        it(`${name} (${stream ? 'streamed' : 'not streamed'})`, async () => {
          if (primary !== null) {
            g.primary.enqueue({
              kind: 'synthesize',
              usage: tokens,
              delivery: primary,
            });
          }
          g.secondary.enqueue({
            kind: 'synthesize',
            usage: tokens,
            text: 'Yes.',
          });
          const since = counter();

          const requestId = await expectAnswer(model, stream, 'Yes.', tokens);

          expect(since()).toEqual(
            sent({ primary: primary === null ? 0 : 1, secondary: 1 }),
          );
          const ledger = await g.ledger(requestId);
          expect(steps(ledger)).toEqual([
            failed(1, `${model}/primary`, 'connection', null),
            answered(2, `${model}/secondary`),
          ]);
          expect(ledger.events).toEqual([
            // A 200 cut off before its JSON body was whole may be billed.
            ...(!stream && primary !== null && 'dropAfterBytes' in primary
              ? [cutEvent(1, `${model}/primary`, RATES.primary)]
              : []),
            servedEvent(2, `${model}/secondary`, tokens, RATES.secondary),
          ]);
        });
      }
    }

    it('a JSON answer dropped half-way, which no client byte has seen yet', async () => {
      g.primary.enqueue({
        kind: 'synthesize',
        usage: tokens,
        text: 'x',
        delivery: { dropAfterBytes: Math.floor(jsonBytes / 2) },
      });
      g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text: 'Yes.' });
      const since = counter();

      const requestId = await expectAnswer('reset', false, 'Yes.', tokens);

      expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
      const ledger = await g.ledger(requestId);
      expect(steps(ledger)).toEqual([
        failed(1, 'reset/primary', 'connection', null),
        answered(2, 'reset/secondary'),
      ]);
      expect(ledger.events).toEqual([
        cutEvent(1, 'reset/primary', RATES.primary),
        servedEvent(2, 'reset/secondary', tokens, RATES.secondary),
      ]);
    });
  });

  it('a stream reset after its first event does not fall back: the client sees the error, billed once, estimated', async () => {
    const tokens = { input: 50, output: 24 };
    const streamBytes = Buffer.concat(
      synthesizeChat(
        {
          serial: 1,
          model: 'gpt-4o',
          usage: tokens,
          text: fillerText(tokens.output),
          toolCall: null,
        },
        { stream: true, includeUsage: true, azure: false },
      ).pieces,
    ).length;
    g.primary.enqueue({
      kind: 'synthesize',
      usage: tokens,
      // Among the words, long before the finish and the usage chunk.
      delivery: { dropAfterBytes: Math.floor(streamBytes / 2) },
    });
    const since = counter();

    const { read, requestId } = await chatStream('stream-drop');

    expect(read.error).toBeInstanceOf(OpenAIAPIError);
    expect((read.error as OpenAIAPIError).code).toBe('upstream_error');
    expect(read.text).not.toBe('');
    expect(read.usage).toBeUndefined();
    expect(since()).toEqual(sent({ primary: 1 }));
    const ledger = await g.ledger(requestId);
    expect(ledger).toMatchObject({
      state: 'failed',
      statusCode: 200,
      errorCode: 'upstream_error',
    });
    expect(steps(ledger)).toEqual([answered(1, 'stream-drop/primary')]);
    // The provider never said; the gateway estimates with o200k: the
    // prompt's line plus 3 tokens per message and 3 to prime the reply,
    // and the text the client was sent.
    const estimate = {
      input: countTokens(`${PROMPT}\n`) + 3 + 3,
      output: countTokens(read.text),
    };
    expect(ledger.events).toEqual([
      {
        ...servedEvent(1, 'stream-drop/primary', estimate, RATES.primary),
        estimated: true,
      },
    ]);
  });

  describe('context-window overflow', () => {
    const tokens = { input: 9_000, output: 40 };

    for (const stream of [false, true]) {
      it(`falls back to the deployment with the larger window (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue({
          kind: 'error',
          status: 400,
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
          param: 'messages',
          message:
            "This model's maximum context length is 8192 tokens. However, " +
            'your messages resulted in 9000 tokens.',
        });
        g.secondary.enqueue({
          kind: 'synthesize',
          usage: tokens,
          text: 'Fits.',
        });
        const since = counter();

        const requestId = await expectAnswer(
          'context-window',
          stream,
          'Fits.',
          tokens,
        );

        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'context-window/small', 'context_length', 400),
          answered(2, 'context-window/large'),
        ]);
        expect(ledger.events).toEqual([
          servedEvent(2, 'context-window/large', tokens, RATES.large),
        ]);
      });
    }

    for (const stream of [false, true]) {
      it(`but a plain 400 is the client's, passed through without a fallback (${stream ? 'streamed' : 'not streamed'})`, async () => {
        const message = "Invalid value for 'temperature': must be at most 2.";
        g.primary.enqueue({
          kind: 'error',
          status: 400,
          type: 'invalid_request_error',
          param: 'temperature',
          message,
        });
        const since = counter();

        const error = await rejection(
          stream ? chatStream('context-window') : chat('context-window'),
        );

        expect(error).toBeInstanceOf(BadRequestError);
        expect((error as BadRequestError).message).toContain(message);
        expect((error as BadRequestError).param).toBe('temperature');
        expect(since()).toEqual(sent({ primary: 1 }));
        const ledger = await g.ledger(requestIdOf(error));
        expect(ledger).toMatchObject({
          state: 'failed',
          statusCode: 400,
          errorCode: 'upstream_400',
        });
        expect(steps(ledger)).toEqual([
          failed(1, 'context-window/small', 'upstream_400', 400),
        ]);
        expect(ledger.events).toEqual([]);
      });
    }
  });

  describe('a content-filtered answer', () => {
    const filtered = { input: 80, output: 6 };
    const tokens = { input: 80, output: 25 };

    it("falls back, and the filtered attempt is the provider's cost alone", async () => {
      g.primary.enqueue({
        kind: 'synthesize',
        usage: filtered,
        text: 'I cannot',
        finishReason: 'content_filter',
      });
      g.secondary.enqueue({
        kind: 'synthesize',
        usage: tokens,
        text: 'Hello!',
      });
      const since = counter();

      const { completion, requestId } = await chat('content-filter');

      expect(completion.choices[0]?.message.content).toBe('Hello!');
      expect(completion.choices[0]?.finish_reason).toBe('stop');
      expect(completion.usage).toMatchObject({
        prompt_tokens: 80,
        completion_tokens: 25,
      });
      expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
      const ledger = await g.ledger(requestId);
      expect(steps(ledger)).toEqual([
        failed(1, 'content-filter/primary', 'content_filter', 200),
        answered(2, 'content-filter/secondary'),
      ]);
      expect(ledger.events).toEqual([
        {
          attempt: 1,
          deploymentId: 'content-filter/primary',
          served: false,
          estimated: false,
          inputTokens: 80,
          outputTokens: 6,
          providerCost: cost(RATES.primary, filtered),
          tenantCharge: '0',
        },
        servedEvent(2, 'content-filter/secondary', tokens, RATES.secondary),
      ]);
    });

    it("streamed, is the client's once it has begun: no fallback, charged as served", async () => {
      g.primary.enqueue({
        kind: 'synthesize',
        usage: filtered,
        text: 'I cannot',
        finishReason: 'content_filter',
      });
      const since = counter();

      const { read, requestId } = await chatStream('content-filter');

      expect(read).toMatchObject({
        text: 'I cannot',
        finishReason: 'content_filter',
        error: undefined,
      });
      expect(since()).toEqual(sent({ primary: 1 }));
      const ledger = await g.ledger(requestId);
      expect(steps(ledger)).toEqual([answered(1, 'content-filter/primary')]);
      expect(ledger.events).toEqual([
        servedEvent(1, 'content-filter/primary', filtered, RATES.primary),
      ]);
    });
  });

  describe('when every deployment fails', () => {
    for (const stream of [false, true]) {
      it(`an OpenAI client gets the last error, as OpenAI's (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.primary.enqueue(SERVER_ERROR);
        g.secondary.enqueue({
          kind: 'error',
          status: 429,
          type: 'tokens',
          code: 'rate_limit_exceeded',
          message: 'Rate limit reached on the fallback.',
          retryAfter: 30,
        });
        const since = counter();

        const error = await rejection(
          stream ? chatStream('all-fail') : chat('all-fail'),
        );

        expect(error).toBeInstanceOf(RateLimitError);
        const api = error as RateLimitError;
        expect(api.message).toContain('Rate limit reached on the fallback.');
        expect(api.code).toBe('rate_limit_exceeded');
        expect(api.headers?.get('retry-after')).toBe('30');
        expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
        const ledger = await g.ledger(requestIdOf(error));
        expect(ledger).toMatchObject({
          state: 'failed',
          statusCode: 429,
          errorCode: 'upstream_429',
        });
        expect(steps(ledger)).toEqual([
          failed(1, 'all-fail/primary', 'server_error', 500),
          failed(2, 'all-fail/secondary', 'rate_limited', 429),
        ]);
        expect(ledger.events).toEqual([]);
      });
    }

    for (const stream of [false, true]) {
      it(`an Anthropic client gets the last error, as Anthropic's (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.bedrock.enqueue({
          kind: 'error',
          status: 503,
          type: 'ServiceUnavailableException',
          message: 'Bedrock is unavailable.',
        });
        g.secondary.enqueue({
          ...SERVER_ERROR,
          message: 'The fallback had an error.',
        });
        const since = counter();

        const error = await rejection(
          g.tenant.anthropic.messages.create({
            model: 'bedrock-then-openai',
            max_tokens: 64,
            messages: HELLO,
            stream,
          }),
        );

        expect(error).toBeInstanceOf(AnthropicAPIError);
        const api = error as AnthropicAPIError;
        expect(api.status).toBe(502);
        expect(api.type).toBe('api_error');
        expect(api.message).toContain('The fallback had an error.');
        expect(api.message).not.toContain('Bedrock is unavailable.');
        expect(since()).toEqual(sent({ bedrock: 1, secondary: 1 }));
        const ledger = await g.ledger(requestIdOf(error));
        expect(ledger).toMatchObject({
          state: 'failed',
          statusCode: 502,
          errorCode: 'upstream_error',
        });
        expect(steps(ledger)).toEqual([
          failed(1, 'bedrock-then-openai/bedrock', 'server_error', 503),
          failed(2, 'bedrock-then-openai/openai', 'server_error', 500),
        ]);
        expect(ledger.events).toEqual([]);
      });
    }

    it('the invoice counts logical requests, never the attempts behind them', async () => {
      const tenant = await g.addTenant('tenant-invoice');
      const client = tenant.openai;
      const served = { input: 100, output: 20 };
      const filtered = { input: 100, output: 3 };

      // A fallback after a 500; a retry after a 429; a fallback after a
      // filtered (and billed) answer; a request every deployment failed.
      g.primary.enqueue(SERVER_ERROR);
      g.secondary.enqueue({ kind: 'synthesize', usage: served });
      await client.chat.completions.create({
        model: 'server-error',
        messages: HELLO,
      });
      g.primary.enqueue({
        kind: 'error',
        status: 429,
        type: 'requests',
        message: 'Rate limit reached for requests.',
        retryAfter: 0,
      });
      g.primary.enqueue({ kind: 'synthesize', usage: served });
      await client.chat.completions.create({
        model: 'retry-after',
        messages: HELLO,
      });
      g.primary.enqueue({
        kind: 'synthesize',
        usage: filtered,
        finishReason: 'content_filter',
      });
      g.secondary.enqueue({ kind: 'synthesize', usage: served });
      await client.chat.completions.create({
        model: 'content-filter',
        messages: HELLO,
      });
      g.primary.enqueue(SERVER_ERROR);
      g.secondary.enqueue(SERVER_ERROR);
      await rejection(
        client.chat.completions.create({ model: 'all-fail', messages: HELLO }),
      );

      const record = await g.gateway.store.findTenant(tenant.id);
      if (!record) throw new Error('no tenant');
      const invoice = await buildInvoice(
        g.gateway.store,
        record,
        new Date().toISOString().slice(0, 7),
      );
      // Seven attempts made, three requests answered.
      expect(invoice.requests).toBe(3);
      expect(formatDecimal(invoice.exactTotal)).toBe(
        usd(
          [2 * served.input, RATES.secondary.input],
          [2 * served.output, RATES.secondary.output],
          [served.input, RATES.primary.input],
          [served.output, RATES.primary.output],
        ),
      );
      // The provider was paid for four attempts' usage, the filtered one
      // included; the tenant for three requests.
      const all = await g.gateway.store.summarizeUsage({
        scope: { tenantId: tenant.id },
        from: invoice.from,
        to: invoice.to,
        groupBy: [],
      });
      expect(all.reduce((n, row) => n + row.events, 0)).toBe(4);
      expect(all.reduce((n, row) => n + row.requests, 0)).toBe(3);
    });
  });

  describe('the circuit breaker', () => {
    const tokens = { input: 10, output: 5 };

    it('opens after 3 failures, passes the primary by, and closes on a probe that succeeds', async () => {
      const since = counter();
      for (let i = 0; i < 3; i++) {
        g.primary.enqueue(SERVER_ERROR);
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
        const { requestId } = await chat('breaker');
        expect(steps(await g.ledger(requestId))).toEqual([
          failed(1, 'breaker/primary', 'server_error', 500),
          answered(2, 'breaker/secondary'),
        ]);
      }
      expect(since()).toEqual(sent({ primary: 3, secondary: 3 }));

      // Open: the primary is not even tried.
      const open = counter();
      for (let i = 0; i < 2; i++) {
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
        const { requestId } = await chat('breaker');
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          {
            attempt: null,
            deployment: 'breaker/primary',
            outcome: 'skipped',
            reason: 'circuit_open',
            statusCode: null,
          },
          answered(1, 'breaker/secondary'),
        ]);
        expect(ledger).toMatchObject({
          state: 'settled',
          deploymentId: 'breaker/secondary',
          attempt: 1,
        });
        expect(ledger.events).toEqual([
          servedEvent(1, 'breaker/secondary', tokens, RATES.secondary),
        ]);
      }
      expect(open()).toEqual(sent({ secondary: 2 }));

      // After openMs, one request probes the primary; it answers, and the
      // primary serves again from then on.
      await sleep(350);
      const probing = counter();
      for (let i = 0; i < 2; i++) {
        g.primary.enqueue({ kind: 'synthesize', usage: tokens });
        const { requestId } = await chat('breaker');
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([answered(1, 'breaker/primary')]);
        expect(ledger.events).toEqual([
          servedEvent(1, 'breaker/primary', tokens, RATES.primary),
        ]);
      }
      expect(probing()).toEqual(sent({ primary: 2 }));
    });

    it('stays open when the probe fails, until the next openMs passes', async () => {
      for (let i = 0; i < 3; i++) {
        g.primary.enqueue(SERVER_ERROR);
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
        await chat('breaker-probe');
      }
      await sleep(350);

      // The probe fails and falls back.
      const probe = counter();
      g.primary.enqueue(SERVER_ERROR);
      g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
      const probed = await chat('breaker-probe');
      expect(steps(await g.ledger(probed.requestId))).toEqual([
        failed(1, 'breaker-probe/primary', 'server_error', 500),
        answered(2, 'breaker-probe/secondary'),
      ]);
      expect(probe()).toEqual(sent({ primary: 1, secondary: 1 }));

      // Open again at once.
      const open = counter();
      g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
      const after = await chat('breaker-probe');
      expect(steps(await g.ledger(after.requestId))[0]).toMatchObject({
        deployment: 'breaker-probe/primary',
        outcome: 'skipped',
        reason: 'circuit_open',
      });
      expect(open()).toEqual(sent({ secondary: 1 }));
    });

    it('passes the primary by while its probe is in flight', async () => {
      for (let i = 0; i < 3; i++) {
        g.primary.enqueue(SERVER_ERROR);
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens });
        await chat('breaker-probing');
      }
      await sleep(350);

      const since = counter();
      g.primary.enqueue({
        kind: 'synthesize',
        usage: tokens,
        text: 'Probe.',
        delivery: { latencyMs: 300 },
      });
      const probe = chat('breaker-probing');
      // The probe has reached the primary and is waiting for its answer.
      while (since().primary === 0) await sleep(5);
      g.secondary.enqueue({
        kind: 'synthesize',
        usage: tokens,
        text: 'Meanwhile.',
      });
      const meanwhile = await chat('breaker-probing');

      expect(meanwhile.completion.choices[0]?.message.content).toBe(
        'Meanwhile.',
      );
      expect(steps(await g.ledger(meanwhile.requestId))).toEqual([
        {
          attempt: null,
          deployment: 'breaker-probing/primary',
          outcome: 'skipped',
          reason: 'probing',
          statusCode: null,
        },
        answered(1, 'breaker-probing/secondary'),
      ]);
      const probed = await probe;
      expect(probed.completion.choices[0]?.message.content).toBe('Probe.');
      expect(steps(await g.ledger(probed.requestId))).toEqual([
        answered(1, 'breaker-probing/primary'),
      ]);
      expect(since()).toEqual(sent({ primary: 1, secondary: 1 }));
    });

    it('with every deployment open, answers 503 no_deployment_available without calling any', async () => {
      g.primary.enqueue(SERVER_ERROR);
      const first = await rejection(chat('breaker-alone'));
      expect((first as OpenAIAPIError).status).toBe(502);

      const since = counter();
      const error = await rejection(chat('breaker-alone'));

      expect(error).toBeInstanceOf(OpenAIAPIError);
      expect((error as OpenAIAPIError).status).toBe(503);
      expect((error as OpenAIAPIError).code).toBe('no_deployment_available');
      expect(since()).toEqual(sent({}));
      const ledger = await g.ledger(requestIdOf(error));
      expect(ledger).toMatchObject({
        state: 'failed',
        statusCode: 503,
        errorCode: 'no_deployment_available',
      });
      expect(steps(ledger)).toEqual([
        {
          attempt: null,
          deployment: 'breaker-alone/primary',
          outcome: 'skipped',
          reason: 'circuit_open',
          statusCode: null,
        },
      ]);
      expect(ledger.events).toEqual([]);
    });
  });

  it('stops at maxAttempts without waiting for a retry it will not make', async () => {
    const throttled = {
      kind: 'error',
      status: 429,
      type: 'requests',
      code: 'rate_limit_exceeded',
      message: 'Rate limit reached for requests.',
      retryAfter: 1,
    } as const;
    g.primary.enqueue(throttled);
    g.primary.enqueue(throttled);
    const since = counter();
    const started = performance.now();

    const error = await rejection(chat('max-attempts'));

    // One Retry-After waited out before the second attempt, not a second
    // one after it: maxAttempts (2) allows no third.
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(1_800);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(since()).toEqual(sent({ primary: 2 }));
    const ledger = await g.ledger(requestIdOf(error));
    expect(steps(ledger)).toEqual([
      failed(1, 'max-attempts/primary', 'rate_limited', 429),
      failed(2, 'max-attempts/primary', 'rate_limited', 429),
    ]);
    expect(ledger.events).toEqual([]);
  });

  describe('across APIs', () => {
    const tokens = { input: 50, output: 12 };

    for (const stream of [false, true]) {
      it(`an Anthropic client whose Bedrock primary fails is served by OpenAI (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.bedrock.enqueue({
          kind: 'error',
          status: 503,
          type: 'ServiceUnavailableException',
          message: 'Bedrock is unavailable.',
        });
        g.secondary.enqueue({
          kind: 'synthesize',
          usage: tokens,
          text: 'Hola.',
        });
        const since = counter();

        let requestId: string | null;
        if (stream) {
          const { data, response } = await g.tenant.anthropic.messages
            .create({
              model: 'bedrock-then-openai',
              max_tokens: 64,
              messages: HELLO,
              stream: true,
            })
            .withResponse();
          requestId = response.headers.get('request-id');
          let text = '';
          let input: number | undefined;
          let output: number | undefined;
          for await (const event of data) {
            if (event.type === 'message_start') {
              input = event.message.usage.input_tokens;
            }
            if (
              event.type === 'content_block_delta' &&
              event.delta.type === 'text_delta'
            ) {
              text += event.delta.text;
            }
            if (event.type === 'message_delta') {
              output = event.usage.output_tokens;
              input = event.usage.input_tokens ?? input;
            }
          }
          expect({ text, input, output }).toEqual({
            text: 'Hola.',
            input: 50,
            output: 12,
          });
        } else {
          const { data, response } = await g.tenant.anthropic.messages
            .create({
              model: 'bedrock-then-openai',
              max_tokens: 64,
              messages: HELLO,
            })
            .withResponse();
          requestId = response.headers.get('request-id');
          expect(data.content).toEqual([
            expect.objectContaining({ type: 'text', text: 'Hola.' }),
          ]);
          expect(data.usage).toMatchObject({
            input_tokens: 50,
            output_tokens: 12,
          });
        }

        expect(since()).toEqual(sent({ bedrock: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'bedrock-then-openai/bedrock', 'server_error', 503),
          answered(2, 'bedrock-then-openai/openai'),
        ]);
        expect(ledger.events).toEqual([
          servedEvent(2, 'bedrock-then-openai/openai', tokens, RATES.secondary),
        ]);
      });
    }

    it('an Anthropic client whose Bedrock answer a guardrail stopped is served by OpenAI; Bedrock is paid, not charged', async () => {
      const guarded = { input: 50, output: 2 };
      g.bedrock.enqueue({
        kind: 'synthesize',
        usage: guarded,
        text: 'Sorry.',
        stopReason: 'guardrail_intervened',
      });
      g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text: 'Hola.' });
      const since = counter();

      const { data, response } = await g.tenant.anthropic.messages
        .create({
          model: 'bedrock-then-openai',
          max_tokens: 64,
          messages: HELLO,
        })
        .withResponse();

      expect(data.content).toEqual([
        expect.objectContaining({ type: 'text', text: 'Hola.' }),
      ]);
      expect(data.stop_reason).toBe('end_turn');
      expect(since()).toEqual(sent({ bedrock: 1, secondary: 1 }));
      const ledger = await g.ledger(response.headers.get('request-id'));
      expect(steps(ledger)).toEqual([
        failed(1, 'bedrock-then-openai/bedrock', 'content_filter', 200),
        answered(2, 'bedrock-then-openai/openai'),
      ]);
      expect(ledger.events).toEqual([
        {
          attempt: 1,
          deploymentId: 'bedrock-then-openai/bedrock',
          served: false,
          estimated: false,
          inputTokens: 50,
          outputTokens: 2,
          providerCost: cost(RATES.bedrock, guarded),
          tenantCharge: '0',
        },
        servedEvent(2, 'bedrock-then-openai/openai', tokens, RATES.secondary),
      ]);
    });

    for (const stream of [false, true]) {
      it(`an OpenAI client whose Anthropic primary is overloaded is served by OpenAI (${stream ? 'streamed' : 'not streamed'})`, async () => {
        g.anthropic.enqueue({
          kind: 'error',
          status: 529,
          type: 'overloaded_error',
          message: 'Overloaded',
        });
        g.secondary.enqueue({ kind: 'synthesize', usage: tokens, text: 'Hi!' });
        const since = counter();

        const requestId = await expectAnswer(
          'anthropic-then-openai',
          stream,
          'Hi!',
          tokens,
        );

        expect(since()).toEqual(sent({ anthropic: 1, secondary: 1 }));
        const ledger = await g.ledger(requestId);
        expect(steps(ledger)).toEqual([
          failed(1, 'anthropic-then-openai/anthropic', 'server_error', 529),
          answered(2, 'anthropic-then-openai/openai'),
        ]);
        expect(ledger.events).toEqual([
          servedEvent(
            2,
            'anthropic-then-openai/openai',
            tokens,
            RATES.secondary,
          ),
        ]);
      });
    }
  });
});
