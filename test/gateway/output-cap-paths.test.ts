/**
 * Edge cases, found in review, of the output cap sent upstream under limits, on every API, with
 * the official SDKs over real HTTP against the provider fakes.
 */
import {
  BedrockRuntimeClient,
  ConverseCommand,
} from '@aws-sdk/client-bedrock-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startRoutingGateway,
  type RoutingGateway,
} from '../helpers/routing-gateway.js';
import { testPrices } from '../helpers/test-prices.js';

const CAP = 300;

const MODELS = {
  capped: {
    deployments: [
      {
        id: 'capped/primary',
        provider: 'primary' as const,
        model: 'gpt-4o-mini',
        prices: testPrices('1', '2'),
      },
    ],
  },
  'capped-claude': {
    deployments: [
      {
        id: 'capped-claude/anthropic',
        provider: 'anthropic' as const,
        model: 'claude-sonnet-4-5-20250929',
        prices: testPrices('3', '15'),
      },
    ],
  },
  'capped-bedrock-claude': {
    deployments: [
      {
        id: 'capped-bedrock-claude/bedrock',
        provider: 'bedrock' as const,
        model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
        prices: testPrices('3', '15'),
      },
    ],
  },
};

const LIMITS = [
  { id: 'capped-tokens', model: 'capped', tokens: 1_000_000, per: 'day' },
  {
    id: 'claude-tokens',
    model: 'capped-claude',
    tokens: 1_000_000,
    per: 'day',
  },
  {
    id: 'bedrock-claude-tokens',
    model: 'capped-bedrock-claude',
    tokens: 1_000_000,
    per: { rolling: '24h' },
  },
] as const;

function lastBody(requests: readonly { body: unknown }[]) {
  const last = requests.at(-1);
  if (!last) throw new Error('the upstream received nothing');
  return last.body as Record<string, unknown>;
}

describe('output cap on every API (holds)', () => {
  let g: RoutingGateway;
  beforeAll(async () => {
    g = await startRoutingGateway({
      models: MODELS,
      limits: [...LIMITS],
      metering: { defaultMaxOutputTokens: CAP },
    });
  });
  afterAll(() => g.close());

  const reserved = async (id: string | null | undefined) => {
    const detail = await g.gateway.store.findRequest(
      { allTenants: true },
      id ?? '',
    );
    return detail?.request.reservedOutputTokens;
  };

  it('chat passthrough with max_tokens: null is sent and reserved the cap', async () => {
    const { response } = await g.tenant.openai.chat.completions
      .create({
        model: 'capped',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: null,
      })
      .withResponse();
    const body = lastBody(g.primary.requests);
    expect(body['max_completion_tokens']).toBe(CAP);
    expect(await reserved(response.headers.get('x-request-id'))).toBe(CAP);
  });

  it('chat passthrough with n: 3 reserves the cap per choice', async () => {
    const { response } = await g.tenant.openai.chat.completions
      .create({
        model: 'capped',
        messages: [{ role: 'user', content: 'Hi' }],
        n: 3,
      })
      .withResponse();
    expect(lastBody(g.primary.requests)['max_completion_tokens']).toBe(CAP);
    expect(await reserved(response.headers.get('x-request-id'))).toBe(3 * CAP);
  });

  it('Responses translated to Chat Completions carries the cap', async () => {
    const { response } = await g.tenant.openai.responses
      .create({ model: 'capped', input: 'Hi' })
      .withResponse();
    expect(lastBody(g.primary.requests)['max_completion_tokens']).toBe(CAP);
    expect(await reserved(response.headers.get('x-request-id'))).toBe(CAP);
  });

  it('chat translated to Anthropic is sent and reserved the cap', async () => {
    const { response } = await g.tenant.openai.chat.completions
      .create({
        model: 'capped-claude',
        messages: [{ role: 'user', content: 'Hi' }],
      })
      .withResponse();
    expect(lastBody(g.anthropic.requests)['max_tokens']).toBe(CAP);
    expect(await reserved(response.headers.get('x-request-id'))).toBe(CAP);
  });

  it('Converse passthrough with a thinking budget and no maxTokens gets budget + cap', async () => {
    const client = new BedrockRuntimeClient({
      region: 'us-east-1',
      endpoint: g.gateway.url,
      token: { token: g.tenant.openai.apiKey ?? '' },
      authSchemePreference: ['httpBearerAuth'],
      maxAttempts: 1,
    });
    try {
      const answer = await client.send(
        new ConverseCommand({
          modelId: 'capped-bedrock-claude',
          messages: [{ role: 'user', content: [{ text: 'Hi' }] }],
          additionalModelRequestFields: {
            thinking: { type: 'enabled', budget_tokens: 2048 },
          },
        }),
      );
      const body = lastBody(g.bedrock.requests);
      expect(body['inferenceConfig']).toMatchObject({ maxTokens: 2048 + CAP });
      const id = answer.$metadata.requestId;
      expect(answer.usage?.outputTokens).toBeGreaterThan(0);
      void id;
    } finally {
      client.destroy();
    }
  });
});
