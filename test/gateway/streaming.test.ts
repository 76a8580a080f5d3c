/**
 * Streams through the gateway, metered exactly: the same usage costs the
 * same streamed or not, the usage chunk reaches only clients that asked,
 * the stream ends only once its usage is durable, and a stream cut short
 * (upstream drop, stall, missing usage, client gone) is metered from what
 * was delivered, marked estimated.
 *
 * Expected costs come from the catalog's gpt-4o rates, in USD per 1M
 * tokens: input 2.5, cache read 1.25, output 10 (reasoning is output).
 */
import { setTimeout as delay } from 'node:timers/promises';

import { APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { Settlement, Store } from '../../src/storage/store.js';
import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';
import { usd } from '../helpers/usd.js';

const GPT_4O = { input: '2.5', cacheRead: '1.25', output: '10' } as const;

interface SimCounts {
  readonly prompt: number;
  readonly completion: number;
  readonly cached?: number;
  readonly reasoning?: number;
}

/** Request metadata that makes the simulated upstream report `counts`. */
function simMetadata(counts: SimCounts, fault?: string) {
  return {
    tollgate_sim_prompt_tokens: String(counts.prompt),
    tollgate_sim_completion_tokens: String(counts.completion),
    tollgate_sim_cached_tokens: String(counts.cached ?? 0),
    tollgate_sim_reasoning_tokens: String(counts.reasoning ?? 0),
    ...(fault !== undefined && { tollgate_sim_fault: fault }),
  };
}

/** gpt-4o's cost of reported counts: OpenAI's prompt includes the cache. */
function gpt4oCost(counts: SimCounts): string {
  const cached = counts.cached ?? 0;
  return usd(
    [counts.prompt - cached, GPT_4O.input],
    [cached, GPT_4O.cacheRead],
    [counts.completion, GPT_4O.output],
  );
}

const MESSAGES = [{ role: 'user' as const, content: 'Tell me a story.' }];

interface RequestRecord {
  id: string;
  state: string;
  stream: boolean;
  status_code: number | null;
  error_code: string | null;
  reserved: { input_tokens: number; output_tokens: number };
  attempts: {
    estimated: boolean;
    usage: {
      input_tokens: number;
      cache_read_tokens: number;
      cache_write_tokens: number;
      cache_write_1h_tokens: number;
      output_tokens: number;
      reasoning_tokens: number;
    };
    cost: string | null;
  }[];
}

describe('streaming', () => {
  let t: TestGateway;
  /** Chunks 20 ms apart, and 300 ms of upstream silence is a timeout. */
  let slow: TestGateway;
  /** Each settlement takes 200 ms to commit, so an early end would show. */
  let slowLedger: TestGateway;

  beforeAll(async () => {
    [t, slow, slowLedger] = await Promise.all([
      startTestGateway(),
      startTestGateway({
        upstream: { chunkIntervalMs: 20 },
        bodyTimeoutMs: 300,
      }),
      startTestGateway({ wrapStore: slowSettlements(200) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([t?.close(), slow?.close(), slowLedger?.close()]);
  });

  const record = async (
    gateway: TestGateway,
    id: string | null | undefined,
    key = gateway.tenant.key,
  ): Promise<RequestRecord> => {
    expect(id).toMatch(/^req_/);
    const response = await fetch(`${gateway.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as RequestRecord;
  };

  /** Polls until the request is no longer pending. */
  const finished = (
    gateway: TestGateway,
    id: string | null,
    key = gateway.tenant.key,
  ) =>
    vi.waitFor(
      async () => {
        const found = await record(gateway, id, key);
        expect(found.state).not.toBe('pending');
        return found;
      },
      { timeout: 5_000, interval: 20 },
    );

  it('costs exactly the same streamed or not, cache and reasoning included', async () => {
    const counts = {
      prompt: 1200,
      cached: 400,
      completion: 300,
      reasoning: 100,
    };
    // (800 × 2.5 + 400 × 1.25 + 300 × 10) / 1e6 = 0.002 + 0.0005 + 0.003
    const expected = '0.0055';
    expect(gpt4oCost(counts)).toBe(expected);
    const metadata = simMetadata(counts);
    const client = t.tenant.client;

    const json = await client.chat.completions
      .create({ model: 'gpt-4o', messages: MESSAGES, metadata })
      .withResponse();
    const streams = await Promise.all(
      [true, false].map(async (includeUsage) => {
        const { data, response } = await client.chat.completions
          .create({
            model: 'gpt-4o',
            messages: MESSAGES,
            metadata,
            stream: true,
            stream_options: { include_usage: includeUsage },
          })
          .withResponse();
        await collect(data);
        return response.headers.get('x-request-id');
      }),
    );

    const ids = [json.response.headers.get('x-request-id'), ...streams];
    expect(new Set(ids).size).toBe(3);
    for (const [i, id] of ids.entries()) {
      // Read at once: the answer ended only after its usage was recorded.
      const found = await record(t, id);
      expect(found.state).toBe('settled');
      expect(found.stream).toBe(i > 0);
      expect(found.attempts).toHaveLength(1);
      expect(found.attempts[0]).toMatchObject({
        estimated: false,
        cost: expected,
        usage: {
          input_tokens: 800,
          cache_read_tokens: 400,
          cache_write_tokens: 0,
          cache_write_1h_tokens: 0,
          output_tokens: 300,
          reasoning_tokens: 100,
        },
      });
    }
  });

  describe('the usage chunk', () => {
    const counts = { prompt: 50, cached: 10, completion: 40, reasoning: 8 };

    it.each([
      ['no stream_options', undefined],
      ['include_usage false', { include_usage: false }],
    ])('is withheld with %s', async (_name, streamOptions) => {
      const chunks = await collect(
        await t.tenant.client.chat.completions.create({
          model: 'gpt-4o',
          messages: MESSAGES,
          metadata: simMetadata(counts),
          stream: true,
          ...(streamOptions && { stream_options: streamOptions }),
        }),
      );
      expect(chunks.length).toBeGreaterThan(0);
      expect(chunks.filter((c) => c.usage)).toEqual([]);
      expect(chunks.filter((c) => c.choices.length === 0)).toEqual([]);
      expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
      // 40 tokens less 8 of reasoning: 32 visible words.
      expect(text(chunks).split(' ').filter(Boolean)).toHaveLength(32);
    });

    it('is forwarded, last and exact, when the client asks', async () => {
      const chunks = await collect(
        await t.tenant.client.chat.completions.create({
          model: 'gpt-4o',
          messages: MESSAGES,
          metadata: simMetadata(counts),
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      const withUsage = chunks.filter((c) => c.usage);
      expect(withUsage).toHaveLength(1);
      expect(chunks.at(-1)).toBe(withUsage[0]);
      expect(withUsage[0]?.choices).toEqual([]);
      expect(withUsage[0]?.usage).toMatchObject({
        prompt_tokens: 50,
        completion_tokens: 40,
        total_tokens: 90,
        prompt_tokens_details: { cached_tokens: 10 },
        completion_tokens_details: { reasoning_tokens: 8 },
      });
    });
  });

  describe('the answer ends only once its usage is recorded', () => {
    it.each([true, false])(
      'a stream sends [DONE] after (include_usage %s)',
      async (includeUsage) => {
        const counts = { prompt: 300, completion: 120 };
        const response = await fetch(`${slowLedger.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${slowLedger.tenant.key}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({
            model: 'gpt-4o',
            messages: MESSAGES,
            metadata: simMetadata(counts),
            stream: true,
            stream_options: { include_usage: includeUsage },
          }),
        });
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(
          /^text\/event-stream/,
        );
        const id = response.headers.get('x-request-id');

        const reader: ReadableStreamDefaultReader<Uint8Array> =
          response.body!.getReader();
        const decoder = new TextDecoder();
        let received = '';
        while (!received.includes('data: [DONE]')) {
          const { done, value } = await reader.read();
          if (done) break;
          received += decoder.decode(value, { stream: true });
        }
        expect(received).toMatch(/data: \[DONE\]\n\n$/);

        // The client has its last event: read the ledger before anything.
        const found = await record(slowLedger, id);
        expect(found.state).toBe('settled');
        expect(found.attempts[0]?.cost).toBe(gpt4oCost(counts));
        await reader.cancel();
      },
    );

    it('a JSON answer is sent after', async () => {
      const counts = { prompt: 300, completion: 120 };
      const { response } = await slowLedger.tenant.client.chat.completions
        .create({
          model: 'gpt-4o',
          messages: MESSAGES,
          metadata: simMetadata(counts),
        })
        .withResponse();
      const found = await record(
        slowLedger,
        response.headers.get('x-request-id'),
      );
      expect(found.state).toBe('settled');
      expect(found.attempts[0]?.cost).toBe(gpt4oCost(counts));
    });
  });

  it('a dropped upstream ends the stream with an error event, metered from what was delivered', async () => {
    const completion = 200;
    const { data, response } = await t.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        messages: MESSAGES,
        metadata: simMetadata({ prompt: 500, completion }, 'drop-after:3'),
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    const id = response.headers.get('x-request-id');

    const chunks: ChatCompletionChunk[] = [];
    const error = await collect(data, chunks).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(APIError);
    const apiError = error as APIError;
    expect(apiError.code).toBe('upstream_error');
    expect(apiError.type).toBe('api_error');
    expect(apiError.requestID).toBe(id);
    expect(apiError.error).toMatchObject({ request_id: id });
    // The opening chunk and two content chunks made it through.
    expect(chunks).toHaveLength(3);
    expect(text(chunks).length).toBeGreaterThan(0);

    const found = await record(t, id);
    expect(found).toMatchObject({
      state: 'failed',
      error_code: 'upstream_error',
    });
    expectEstimated(found, { below: completion });
  });

  it('a client that hangs up mid-stream is metered from what was delivered', async () => {
    const completion = 4000;
    const { data, response } = await slow.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        messages: MESSAGES,
        metadata: simMetadata({ prompt: 500, completion }),
        stream: true,
      })
      .withResponse();
    const id = response.headers.get('x-request-id');

    let read = 0;
    for await (const chunk of data) {
      if (chunk.choices[0]?.delta.content) read++;
      if (read === 3) {
        data.controller.abort();
        break;
      }
    }
    expect(read).toBe(3);

    const found = await finished(slow, id);
    expect(found).toMatchObject({
      state: 'failed',
      status_code: 499,
      error_code: 'client_disconnected',
    });
    expectEstimated(found, { below: completion });
  });

  it('a client that hangs up before the upstream answers is settled at once', async () => {
    const tenant = await t.addTenant('hangs-up-early');
    const requests = t.upstream.requests;
    const hangUp = new AbortController();
    const failed = tenant.client.chat.completions
      .create(
        {
          model: 'gpt-4o',
          messages: MESSAGES,
          metadata: simMetadata({ prompt: 500, completion: 50 }, 'hang'),
          stream: true,
        },
        { signal: hangUp.signal },
      )
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    // Once the gateway waits on the silent upstream, its record is open.
    await vi.waitFor(() => expect(t.upstream.requests).toBe(requests + 1));
    const open = await t.gateway.store.listOpenRequests();
    const mine = open.filter((r) => r.tenantId === tenant.id);
    expect(mine).toHaveLength(1);
    const id = mine[0]!.id;

    hangUp.abort();
    expect(await failed).toBeInstanceOf(APIUserAbortError);

    // Without the hang-up it would wait out the 60 s headers timeout.
    const found = await finished(t, id, tenant.key);
    expect(found).toMatchObject({
      state: 'failed',
      status_code: 499,
      error_code: 'client_disconnected',
      attempts: [],
    });
  });

  it('a stream whose usage never comes completes, with usage estimated', async () => {
    const completion = 48;
    const chunks = await t.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        messages: MESSAGES,
        metadata: simMetadata({ prompt: 500, completion }, 'no-usage'),
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse()
      .then(async ({ data, response }) => ({
        id: response.headers.get('x-request-id'),
        chunks: await collect(data),
      }));
    expect(chunks.chunks.filter((c) => c.usage)).toEqual([]);
    expect(text(chunks.chunks).split(' ').filter(Boolean)).toHaveLength(
      completion,
    );

    const found = await record(t, chunks.id);
    expect(found).toMatchObject({ state: 'settled', error_code: null });
    expectEstimated(found, {});
  });

  it('an upstream that stalls mid-stream times out into an error event, metered', async () => {
    const completion = 200;
    const { data, response } = await slow.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        messages: MESSAGES,
        metadata: simMetadata({ prompt: 500, completion }, 'stall-after:3'),
        stream: true,
      })
      .withResponse();
    const id = response.headers.get('x-request-id');

    const chunks: ChatCompletionChunk[] = [];
    const error = await collect(data, chunks).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).code).toBe('upstream_timeout');
    expect((error as APIError).requestID).toBe(id);
    expect(chunks).toHaveLength(3);

    const found = await record(slow, id);
    expect(found).toMatchObject({
      state: 'failed',
      error_code: 'upstream_timeout',
    });
    expectEstimated(found, { below: completion });
  });

  it('50 concurrent streams all settle with exact usage', async () => {
    const tenant = await slow.addTenant('concurrent');
    const counts = Array.from({ length: 50 }, (_, i) => ({
      prompt: 100 + i,
      cached: i,
      completion: 20 + i,
      reasoning: i % 7,
    }));

    const ids = await Promise.all(
      counts.map(async (c, i) => {
        const { data, response } = await tenant.client.chat.completions
          .create({
            model: 'gpt-4o',
            messages: MESSAGES,
            metadata: simMetadata(c),
            stream: true,
            stream_options: { include_usage: i % 2 === 0 },
          })
          .withResponse();
        const chunks = await collect(data);
        expect(chunks.at(-1)?.usage?.completion_tokens ?? null).toBe(
          i % 2 === 0 ? c.completion : null,
        );
        return response.headers.get('x-request-id');
      }),
    );
    expect(new Set(ids).size).toBe(50);

    const auth = { authorization: `Bearer ${tenant.key}` };
    const records = await Promise.all(
      ids.map((id) =>
        fetch(`${slow.url}/v1/requests/${id}`, { headers: auth }).then(
          (r) => r.json() as Promise<RequestRecord>,
        ),
      ),
    );
    records.forEach((found, i) => {
      const c = counts[i]!;
      expect(found.state).toBe('settled');
      expect(found.attempts).toHaveLength(1);
      expect(found.attempts[0]).toMatchObject({
        estimated: false,
        cost: gpt4oCost(c),
        usage: {
          input_tokens: c.prompt - c.cached,
          cache_read_tokens: c.cached,
          output_tokens: c.completion,
          reasoning_tokens: c.reasoning,
        },
      });
    });

    // Σ prompt − cached = 50 × 100 = 5000; Σ cached = Σ i = 1225;
    // Σ completion = 50 × 20 + 1225 = 2225.
    const usage = await fetch(`${slow.url}/v1/usage`, { headers: auth }).then(
      (r) => r.json() as Promise<{ data: Record<string, unknown>[] }>,
    );
    expect(usage.data).toEqual([
      expect.objectContaining({
        requests: 50,
        estimated_requests: 0,
        input_tokens: 5000,
        cache_read_tokens: 1225,
        output_tokens: 2225,
        reasoning_tokens: counts.reduce((sum, c) => sum + c.reasoning, 0),
        // (5000 × 2.5 + 1225 × 1.25 + 2225 × 10) / 1e6
        cost: usd(
          [5000, GPT_4O.input],
          [1225, GPT_4O.cacheRead],
          [2225, GPT_4O.output],
        ),
      }),
    ]);
    expect(usage.data[0]?.['cost']).toBe('0.03628125');
  });
});

/**
 * An estimated attempt: some output, less than the full answer when it was
 * cut short, input within the request's proven bound, and priced.
 */
function expectEstimated(
  found: RequestRecord,
  options: { readonly below?: number },
): void {
  expect(found.attempts).toHaveLength(1);
  const attempt = found.attempts[0]!;
  expect(attempt.estimated).toBe(true);
  const { input_tokens: input, output_tokens: output } = attempt.usage;
  expect(output).toBeGreaterThan(0);
  if (options.below !== undefined) expect(output).toBeLessThan(options.below);
  expect(input).toBeGreaterThan(0);
  expect(input).toBeLessThanOrEqual(found.reserved.input_tokens);
  expect(attempt.usage.cache_read_tokens).toBe(0);
  expect(attempt.cost).toBe(
    usd([input, GPT_4O.input], [output, GPT_4O.output]),
  );
}

/** Wraps a store so that each settlement takes `ms` longer to commit. */
function slowSettlements(ms: number) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, property) {
        if (property === 'settleRequest') {
          return async (settlement: Settlement) => {
            await delay(ms);
            return target.settleRequest(settlement);
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function'
          ? (value as (...args: unknown[]) => unknown).bind(target)
          : value;
      },
    });
}

/** Reads a stream to its end, keeping chunks in `into` as they arrive. */
async function collect(
  stream: AsyncIterable<ChatCompletionChunk>,
  into: ChatCompletionChunk[] = [],
): Promise<ChatCompletionChunk[]> {
  for await (const chunk of stream) into.push(chunk);
  return into;
}

function text(chunks: readonly ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}
