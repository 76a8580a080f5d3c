/**
 * A request that states no output cap is sent the configured one when a
 * blocking limit counts its tokens or cost, so that the worst case its
 * limits reserved is one the upstream must honour; elsewhere it goes as
 * the client wrote it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startRoutingGateway,
  type RoutingGateway,
} from '../helpers/routing-gateway.js';
import { testPrices } from '../helpers/test-prices.js';

/** The configured cap, unlike the default, so that its source is plain. */
const CAP = 300;

function onPrimary(id: string) {
  return {
    deployments: [
      {
        id,
        provider: 'primary' as const,
        model: 'gpt-4o-mini',
        prices: testPrices('1', '2'),
      },
    ],
  };
}

const MODELS = {
  capped: onPrimary('capped/primary'),
  budgeted: onPrimary('budgeted/primary'),
  overage: onPrimary('overage/primary'),
  unlimited: onPrimary('unlimited/primary'),
  'capped-nova': {
    deployments: [
      {
        id: 'capped-nova/bedrock',
        provider: 'bedrock' as const,
        model: 'amazon.nova-lite-v1:0',
        prices: testPrices('0.06', '0.24'),
      },
    ],
  },
};

const LIMITS = [
  { id: 'capped-tokens', model: 'capped', tokens: 1_000_000, per: 'day' },
  { id: 'nova-tokens', model: 'capped-nova', tokens: 1_000_000, per: 'day' },
  { id: 'budgeted-usd', model: 'budgeted', budgetUsd: '100', per: 'month' },
  // Past it the request is served anyway: a cap would buy nothing.
  {
    id: 'overage-tokens',
    model: 'overage',
    tokens: 1_000_000,
    per: 'day',
    onExceed: 'allow',
  },
  // Counts neither tokens nor money.
  { id: 'unlimited-rpm', model: 'unlimited', requests: 1_000, per: 'minute' },
] as const;

function lastBody(requests: readonly { body: unknown }[]) {
  const last = requests.at(-1);
  if (!last) throw new Error('the upstream received nothing');
  return last.body as Record<string, unknown>;
}

async function reservedOutput(
  g: RoutingGateway,
  requestId: string | null,
): Promise<number> {
  if (!requestId) throw new Error('the answer carries no request id');
  const detail = await g.gateway.store.findRequest(
    { allTenants: true },
    requestId,
  );
  if (!detail) throw new Error(`no request ${requestId}`);
  return detail.request.reservedOutputTokens;
}

describe('under the default, underLimits', () => {
  let g: RoutingGateway;
  beforeAll(async () => {
    g = await startRoutingGateway({
      models: MODELS,
      limits: [...LIMITS],
      metering: { defaultMaxOutputTokens: CAP },
    });
  });
  afterAll(() => g.close());

  const ask = (model: string, extra: Record<string, unknown> = {}) =>
    g.tenant.openai.chat.completions
      .create({
        model,
        messages: [{ role: 'user', content: 'Hello' }],
        ...extra,
      })
      .withResponse();

  it('sends the cap under a token limit, and reserves it', async () => {
    const { response } = await ask('capped');
    const body = lastBody(g.primary.requests);
    expect(body['max_completion_tokens']).toBe(CAP);
    expect(body).not.toHaveProperty('max_tokens');
    expect(await reservedOutput(g, response.headers.get('x-request-id'))).toBe(
      CAP,
    );
  });

  it('sends the cap under a budget', async () => {
    await ask('budgeted');
    expect(lastBody(g.primary.requests)['max_completion_tokens']).toBe(CAP);
  });

  it('keeps a cap the client stated, in the field it used', async () => {
    const { response } = await ask('capped', { max_tokens: 50 });
    const body = lastBody(g.primary.requests);
    expect(body['max_tokens']).toBe(50);
    expect(body).not.toHaveProperty('max_completion_tokens');
    expect(await reservedOutput(g, response.headers.get('x-request-id'))).toBe(
      50,
    );
  });

  it('sends none under a limit that allows overage, or counts requests only', async () => {
    for (const model of ['overage', 'unlimited']) {
      await ask(model);
      const body = lastBody(g.primary.requests);
      expect(body, model).not.toHaveProperty('max_completion_tokens');
      expect(body, model).not.toHaveProperty('max_tokens');
    }
  });

  it('sends a translated request the cap in its upstream’s own field', async () => {
    await ask('capped-nova');
    const body = lastBody(g.bedrock.requests);
    expect(body['inferenceConfig']).toMatchObject({ maxTokens: CAP });
  });
});

describe('the other settings', () => {
  it('always: sends the cap with no limit at all', async () => {
    const g = await startRoutingGateway({
      models: MODELS,
      metering: { defaultMaxOutputTokens: CAP, imposeOutputCap: 'always' },
    });
    try {
      await g.tenant.openai.chat.completions.create({
        model: 'unlimited',
        messages: [{ role: 'user', content: 'Hello' }],
      });
      expect(lastBody(g.primary.requests)['max_completion_tokens']).toBe(CAP);
    } finally {
      await g.close();
    }
  });

  it('never: sends none even under a token limit', async () => {
    const g = await startRoutingGateway({
      models: MODELS,
      limits: [...LIMITS],
      metering: { defaultMaxOutputTokens: CAP, imposeOutputCap: 'never' },
    });
    try {
      await g.tenant.openai.chat.completions.create({
        model: 'capped',
        messages: [{ role: 'user', content: 'Hello' }],
      });
      expect(lastBody(g.primary.requests)).not.toHaveProperty(
        'max_completion_tokens',
      );
    } finally {
      await g.close();
    }
  });
});
