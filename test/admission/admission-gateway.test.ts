/**
 * Limits that hold under concurrency: many requests at once against a
 * limit that fits 10 admit at most 10, by worst case, for requests,
 * tokens, money and concurrency. The upstream holds every answer until
 * all admission decisions are made, so the admitted requests are truly in
 * flight, holding their reservations, while the rest are decided.
 */
import Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

import { Admission, AdmissionRefusal } from '../../src/admission/admission.js';
import type { LimitConfig } from '../../src/admission/limits.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { windowAt } from '../../src/admission/windows.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

type LimitInput = Partial<LimitConfig> & { id: string };

let running: { t: TestGateway; gated: GatedUpstream }[] = [];
afterEach(async () => {
  for (const { t, gated } of running) {
    gated.open();
    await t.close();
    await gated.close();
  }
  running = [];
});

async function gateway(limits: LimitInput[]) {
  const gated = await startGatedUpstream();
  const t = await startTestGateway({
    config: {
      providers: {
        gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
      },
      models: {
        'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
      },
      limits,
    },
  });
  running.push({ t, gated });
  return { t, gated };
}

/** Output tokens each request asks for: its worst case is about this. */
const MAX_TOKENS = 100_000;

function chat(client: OpenAI, extra: Record<string, unknown> = {}) {
  return client.chat.completions.create({
    model: 'gpt-4o',
    max_tokens: MAX_TOKENS,
    messages: [{ role: 'user', content: 'Hi' }],
    ...extra,
  });
}

/**
 * Sends `n` requests at once; once every one is either refused or held
 * at the upstream, opens the gate. Resolves with each outcome.
 */
async function race(
  gated: GatedUpstream,
  n: number,
  send: (i: number) => Promise<unknown>,
) {
  let refused = 0;
  const outcomes = Array.from({ length: n }, (_, i) =>
    send(i).then(
      () => ({ ok: true as const }),
      (error: unknown) => {
        refused += 1;
        return { ok: false as const, error };
      },
    ),
  );
  const deadline = Date.now() + 20_000;
  while (refused + gated.arrived < n) {
    if (Date.now() > deadline) throw new Error('requests never all decided');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // Every decision is made while the admitted ones are still held.
  const decided = { refused, arrived: gated.arrived };
  gated.open();
  return { decided, outcomes: await Promise.all(outcomes) };
}

function statusOf(error: unknown): number | undefined {
  return (error as { status?: number }).status;
}

describe('100 concurrent requests against a limit that fits 10', () => {
  it('admit 10 by request count', async () => {
    const { t, gated } = await gateway([
      { id: 'ten-requests', requests: 10, per: 'month' },
    ]);
    const { decided, outcomes } = await race(gated, 100, () =>
      chat(t.tenant.client),
    );
    expect(decided).toEqual({ refused: 90, arrived: 10 });
    expect(outcomes.filter((o) => o.ok)).toHaveLength(10);
    const refusal = outcomes.find((o) => !o.ok);
    expect(statusOf(refusal?.error)).toBe(429);
    const refused = refusal?.error as InstanceType<typeof OpenAI.APIError>;
    expect(refused.headers?.get('x-ratelimit-limit-requests')).toBe('10');
    expect(refused.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    expect((refusal?.error as InstanceType<typeof OpenAI.APIError>).code).toBe(
      'rate_limit_exceeded',
    );
    // As OpenAI types its own request rate limits.
    expect(refused.type).toBe('requests');
    expect(t.gateway.admission.inFlight).toBe(0);
  });

  it('admit 10 by worst-case tokens', async () => {
    // Each worst case is MAX_TOKENS plus the body's few hundred bytes: ten
    // fit in 10 × MAX_TOKENS + 5,000, eleven do not.
    const { t, gated } = await gateway([
      { id: 'tokens', tokens: 10 * MAX_TOKENS + 5_000, per: 'month' },
    ]);
    const { decided } = await race(gated, 100, () => chat(t.tenant.client));
    expect(decided).toEqual({ refused: 90, arrived: 10 });
    expect(t.gateway.admission.inFlight).toBe(0);

    // Each was settled to its actual 15 tokens: one more request sees the
    // limit less 10 × 15 and its own worst case, where a fresh gateway's
    // first request sees the limit less the same worst case alone.
    const remaining = async (client: OpenAI) => {
      const { response } = await chat(client).withResponse();
      return Number(response.headers.get('x-ratelimit-remaining-tokens'));
    };
    const fresh = await gateway([
      { id: 'tokens', tokens: 10 * MAX_TOKENS + 5_000, per: 'month' },
    ]);
    fresh.gated.open();
    expect(
      (await remaining(fresh.t.tenant.client)) -
        (await remaining(t.tenant.client)),
    ).toBe(10 * 15);
  });

  it('admit 10 by worst-case cost', async () => {
    // gpt-4o output is 10 USD per 1M tokens: each worst case costs 1 USD
    // of output plus well under 0.005 USD of input (2.5 per 1M, a few
    // hundred bytes), so ten fit in 10.05 USD and eleven do not.
    const { t, gated } = await gateway([
      { id: 'budget', budgetUsd: '10.05', per: 'month' },
    ]);
    const { decided, outcomes } = await race(gated, 100, () =>
      chat(t.tenant.client),
    );
    expect(decided).toEqual({ refused: 90, arrived: 10 });
    const refusal = outcomes.find((o) => !o.ok)?.error as InstanceType<
      typeof OpenAI.APIError
    >;
    expect(refusal.status).toBe(402);
    expect(refusal.code).toBe('budget_exceeded');
    expect(refusal.headers?.get('retry-after')).toMatch(/^\d+$/);
  });

  it('admit 10 in flight at once, and free the slots after', async () => {
    const { t, gated } = await gateway([{ id: 'ten-at-once', concurrent: 10 }]);
    const first = await race(gated, 100, () => chat(t.tenant.client));
    expect(first.decided).toEqual({ refused: 90, arrived: 10 });
    expect(t.gateway.admission.inFlight).toBe(0);
    // The gate is open now: ten at a time go through again.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => chat(t.tenant.client)),
    );
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });
});

it('cancelled streams release their reservation', async () => {
  const { t, gated } = await gateway([{ id: 'three', concurrent: 3 }]);
  const controllers = Array.from({ length: 3 }, () => new AbortController());
  const streams = controllers.map((controller) =>
    t.tenant.client.chat.completions
      .create(
        {
          model: 'gpt-4o',
          max_tokens: 10,
          stream: true,
          messages: [{ role: 'user', content: 'Hi' }],
        },
        { signal: controller.signal },
      )
      .catch((error: unknown) => error),
  );
  while (gated.arrived < 3) await new Promise((r) => setTimeout(r, 5));
  expect(statusOf(await chat(t.tenant.client).catch((e: unknown) => e))).toBe(
    429,
  );
  for (const controller of controllers) controller.abort();
  await Promise.all(streams);
  const deadline = Date.now() + 5_000;
  while (t.gateway.admission.inFlight > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(t.gateway.admission.inFlight).toBe(0);
  gated.open();
  const after = await Promise.allSettled(
    Array.from({ length: 3 }, () => chat(t.tenant.client)),
  );
  expect(after.every((r) => r.status === 'fulfilled')).toBe(true);
});

it('21 concurrent first requests of a new end user do not pass its budget', async () => {
  // 1 USD of worst case each (see above): five fit in 5.05 USD.
  const { t, gated } = await gateway([
    { id: 'per-user', endUser: '*', budgetUsd: '5.05', per: 'month' },
  ]);
  const { decided } = await race(gated, 21, () =>
    chat(t.tenant.client, { user: 'never-seen-before' }),
  );
  expect(decided).toEqual({ refused: 16, arrived: 5 });
  // Another end user has a budget of its own.
  expect(
    await chat(t.tenant.client, { user: 'someone-else' }).then(() => 'ok'),
  ).toBe('ok');
});

it("counts requests naming no end user, or naming '', in endUser ''", async () => {
  const { t, gated } = await gateway([
    { id: 'anonymous', endUser: '', requests: 2, per: 'day' },
  ]);
  gated.open();
  const outcomes: (number | 'ok')[] = [];
  for (const extra of [{}, { user: '' }, {}, { user: 'alice' }]) {
    outcomes.push(
      await chat(t.tenant.client, { max_tokens: 5, ...extra }).then(
        () => 'ok' as const,
        (error: unknown) => statusOf(error) ?? -1,
      ),
    );
  }
  // Two anonymous ones fit; the third is refused; alice is not anonymous.
  expect(outcomes).toEqual(['ok', 'ok', 429, 'ok']);
  // Both recorded as naming nobody, so a restart counts them again.
  const anonymous = await t.gateway.store.limitScopeUsage({
    tenantId: t.tenant.id,
    endUser: null,
    from: 0,
    to: Date.now() + 1_000,
  });
  expect(anonymous).toHaveLength(2);
});

describe('refusals and headers', () => {
  it('tell OpenAI clients their rate-limit standing', async () => {
    const { t, gated } = await gateway([
      { id: 'rpm', requests: 10, per: 'month' },
      { id: 'tpm', tokens: 1_000_000, per: 'month' },
    ]);
    gated.open();
    const { response } = await chat(t.tenant.client).withResponse();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('9');
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('1000000');
    // Remaining after this request's worst case: under 1,000,000 - 100,000.
    expect(
      Number(response.headers.get('x-ratelimit-remaining-tokens')),
    ).toBeLessThan(900_000);
    expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(
      /^(\d+h)?(\d+m)?\d+s$/,
    );
  });

  it('refuse Anthropic clients with their own errors: 429 and 402', async () => {
    const { t, gated } = await gateway([
      { id: 'one', requests: 1, per: 'month', model: 'gpt-4o' },
    ]);
    gated.open();
    const anthropic = new Anthropic({
      baseURL: t.url,
      apiKey: t.tenant.key,
      maxRetries: 0,
    });
    const ask = () =>
      anthropic.messages.create({
        model: 'gpt-4o',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'Hi' }],
      });
    await ask();
    const refused = await ask().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Anthropic.RateLimitError);
    expect(
      (refused as InstanceType<typeof Anthropic.APIError>).error,
    ).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
  });

  it('refuse a request that could never fit without telling it to retry', async () => {
    const { t, gated } = await gateway([
      { id: 'small', tokens: 3_000, per: 'hour' },
    ]);
    gated.open();
    const refused = (await chat(t.tenant.client, { max_tokens: 5_000 }).catch(
      (e: unknown) => e,
    )) as InstanceType<typeof OpenAI.APIError>;
    expect(refused.status).toBe(429);
    expect(refused.headers?.get('retry-after')).toBeNull();
    // The SDKs' own signal not to retry what no wait helps.
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    // OpenAI's type for a token rate limit.
    expect(refused.type).toBe('tokens');
    expect(refused.message).toContain('larger than the whole of the limit');
    expect(gated.arrived).toBe(0);
  });

  it('refuse a charge that could never fit a budget with 402, not to retry', async () => {
    // 100,000 output tokens at gpt-4o's 10 USD per 1M: at least 1 USD.
    const { t, gated } = await gateway([
      { id: 'small-budget', budgetUsd: '0.5', per: 'month' },
    ]);
    gated.open();
    const refused = (await chat(t.tenant.client).catch(
      (e: unknown) => e,
    )) as InstanceType<typeof OpenAI.APIError>;
    expect(refused.status).toBe(402);
    expect((refused.error as { code?: string }).code).toBe('budget_exceeded');
    expect(refused.type).toBe('insufficient_quota');
    expect(refused.headers?.get('retry-after')).toBeNull();
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    expect(gated.arrived).toBe(0);
  });

  it('refuse a budgeted model with no price', async () => {
    const gated = await startGatedUpstream();
    const t = await startTestGateway({
      config: {
        providers: {
          gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
        },
        models: {
          'gpt-4o': {
            deployments: [{ provider: 'gate', model: 'not-in-the-catalog' }],
          },
        },
        limits: [{ id: 'budget', budgetUsd: '1', per: 'month' }],
      },
    });
    running.push({ t, gated });
    // Reading a previous file: the refusal is for the price, and says only
    // that, whatever else its worst case holds.
    const refused = await chat(t.tenant.client, {
      messages: [
        {
          role: 'user',
          content: [{ type: 'file', file: { file_id: 'file-1' } }],
        },
      ],
    }).catch((e: unknown) => e);
    expect(statusOf(refused)).toBe(403);
    const error = refused as InstanceType<typeof OpenAI.APIError>;
    expect(error.code).toBe('budget_unpriced');
    expect(error.message).not.toContain('unseenInputTokens');
    expect(error.headers?.get('x-should-retry')).toBeNull();
    expect(gated.arrived).toBe(0);
  });
});

describe('the overshoot bound', () => {
  it('holds the counter to exactly the actual usage', async () => {
    const store = new MemoryCounterStore();
    const admission = new Admission(
      store,
      [
        {
          id: 'tokens',
          tokens: 2_000_000,
          per: 'month',
          onExceed: 'block',
          onStoreDown: 'closed',
        },
      ],
      createLogger('silent'),
    );
    const tenant = { id: 'ten_x', name: 'x', timezone: 'UTC', createdAt: 0 };
    const request = (requestId: string) => ({
      requestId,
      tenant,
      keyId: 'key_x',
      endUser: null,
      model: 'gpt-4o',
      worstInputTokens: 1,
      worstOutputTokens: 100,
      worstCost: null,
    });
    for (const id of ['a', 'b']) {
      await admission.admit(request(id));
      await admission.settle(id, {
        tokens: { ...EMPTY_USAGE, inputTokens: 10, outputTokens: 1_000_000 },
        cost: null,
      });
    }
    const key = `l=tokens|t=ten_x|w=month:${windowAt('month', Date.now(), 'UTC').id}|x=tokens`;
    // Over the maximum by 20: what the two used beyond their reserved
    // worst cases (2 × 999,909) bounds it; nothing else adds to it.
    expect(await store.read([key])).toEqual([
      { used: 2_000_020n, reserved: 0n },
    ]);
    await expect(admission.admit(request('c'))).rejects.toBeInstanceOf(
      AdmissionRefusal,
    );
  });

  it('is reached through the gateway with an upstream that ignores max_tokens', async () => {
    // An upstream that ignores max_tokens: asked for 1 output token, it
    // reports 1,000,000. Each request reserves its body's bytes plus 1.
    const gated = await startGatedUpstream({
      usage: { prompt_tokens: 10, completion_tokens: 1_000_000 },
    });
    gated.open();
    const t = await startTestGateway({
      config: {
        providers: {
          gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
        },
        models: {
          'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
        },
        limits: [{ id: 'tokens', tokens: 2_000_000, per: 'month' }],
      },
    });
    running.push({ t, gated });
    const one = () =>
      t.tenant.client.chat.completions
        .create({
          model: 'gpt-4o',
          max_tokens: 1,
          messages: [{ role: 'user', content: 'Hi' }],
        })
        .withResponse();
    // Each of the first two fits when admitted (its worst case is a few
    // hundred tokens) and then uses 1,000,010; the third finds the limit
    // spent and is refused, though the second took it past the maximum.
    await one();
    await one();
    const third = await one().catch((error: unknown) => error);
    expect(statusOf(third)).toBe(429);
    expect((third as InstanceType<typeof OpenAI.APIError>).message).toContain(
      'tokens',
    );
  });
});

it('settles and frees the slot of a translated answer it cannot read', async () => {
  // An OpenAI-compatible server that sends no usage block: the Anthropic
  // client's answer cannot be built, but the request is still settled,
  // estimated, and its slot returned.
  const gated = await startGatedUpstream({ usage: null });
  gated.open();
  const t = await startTestGateway({
    config: {
      providers: {
        gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
      },
      models: {
        'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
      },
      limits: [{ id: 'one', concurrent: 1 }],
    },
  });
  running.push({ t, gated });
  const anthropic = new Anthropic({
    baseURL: t.url,
    apiKey: t.tenant.key,
    maxRetries: 0,
  });
  const ask = () =>
    anthropic.messages
      .create({
        model: 'gpt-4o',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'Hi' }],
      })
      .catch((error: unknown) => error as { status: number });
  // Each gets the upstream's failure, never the limit's 429.
  expect(statusOf(await ask())).toBe(502);
  expect(statusOf(await ask())).toBe(502);
  expect(t.gateway.admission.inFlight).toBe(0);
});
