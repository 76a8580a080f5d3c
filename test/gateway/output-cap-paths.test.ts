/**
 * Edge cases, found in review, of the output cap sent upstream under limits, on every API, with
 * the official SDKs over real HTTP against the provider fakes; and the Chat Completions fields
 * admission reads (end user, output caps, `n`), read alike whether the body passes through to a
 * Chat upstream or is translated for another API.
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

describe('a Chat request is admitted alike passed through and translated', () => {
  const ALICE_LIMIT = 'alice-on-claude';
  let g: RoutingGateway;
  beforeAll(async () => {
    g = await startRoutingGateway({
      models: {
        chat: {
          deployments: [
            {
              id: 'chat/primary',
              provider: 'primary',
              model: 'gpt-4o-mini',
              prices: testPrices('1', '2'),
            },
          ],
        },
        claude: {
          deployments: [
            {
              id: 'claude/anthropic',
              provider: 'anthropic',
              model: 'claude-sonnet-4-5-20250929',
              prices: testPrices('3', '15'),
            },
          ],
        },
        // Chat first, so the body passes through; Anthropic is translated.
        mixed: {
          deployments: [
            {
              id: 'mixed/primary',
              provider: 'primary',
              model: 'gpt-4o-mini',
              prices: testPrices('1', '2'),
            },
            {
              id: 'mixed/anthropic',
              provider: 'anthropic',
              model: 'claude-sonnet-4-5-20250929',
              prices: testPrices('3', '15'),
            },
          ],
        },
      },
      // Counts requests only, so no output cap is imposed.
      limits: [
        {
          id: ALICE_LIMIT,
          endUser: 'alice',
          model: 'claude',
          requests: 1,
          per: 'day',
        },
      ],
    });
  });
  afterAll(() => g.close());

  async function chat(
    fields: Record<string, unknown>,
    headers: Record<string, string> = {},
  ) {
    const response = await fetch(`${g.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${g.tenant.openai.apiKey}`,
        ...headers,
      },
      body: JSON.stringify({
        messages: [{ role: 'user', content: 'Hi' }],
        ...fields,
      }),
    });
    const json = (await response.json()) as {
      error?: { code: string; param: string | null };
    };
    const id = response.headers.get('x-request-id') ?? '';
    const detail = await g.gateway.store.findRequest({ allTenants: true }, id);
    return { status: response.status, json, record: detail?.request };
  }

  it('counts the end user metadata.user_id names against its limit when translated', async () => {
    const fields = { model: 'claude', metadata: { user_id: 'alice' } };
    const first = await chat(fields);
    expect(first.status).toBe(200);
    expect(first.record?.endUser).toBe('alice');
    // Translated, the end user goes on to Anthropic in its own field.
    expect(lastBody(g.anthropic.requests)['metadata']).toEqual({
      user_id: 'alice',
    });
    const second = await chat(fields);
    expect(second.status).toBe(429);
    expect(second.json.error?.code).toBe('rate_limit_exceeded');
  });

  it.each([
    [
      'the header over the body',
      { user: 'u1', metadata: { user_id: 'm1' } },
      { 'x-tollgate-end-user': 'h1' },
      'h1',
    ],
    [
      'user over the rest',
      { user: 'u2', safety_identifier: 's2', metadata: { user_id: 'm2' } },
      {},
      'u2',
    ],
    [
      'safety_identifier over metadata',
      { safety_identifier: 's3', metadata: { user_id: 'm3' } },
      {},
      's3',
    ],
    ['metadata.user_id last', { metadata: { user_id: 'm4' } }, {}, 'm4'],
    ['nobody', {}, {}, null],
  ])(
    'records the end user, %s, on both paths',
    async (_label, fields, headers, expected) => {
      for (const model of ['chat', 'claude']) {
        const { status, record } = await chat({ model, ...fields }, headers);
        expect(status).toBe(200);
        expect(record?.endUser).toBe(expected);
      }
    },
  );

  it.each([
    // [model, the body's caps, the cap sent (where translated), reserved]
    ['chat', { max_completion_tokens: 10, max_tokens: 1_500 }, null, 1_500],
    ['mixed', { max_completion_tokens: 10, max_tokens: 1_500 }, null, 1_500],
    ['claude', { max_completion_tokens: 10, max_tokens: 1_500 }, 10, 10],
    ['claude', { max_completion_tokens: 1_500, max_tokens: 10 }, 1_500, 1_500],
  ] as const)(
    '%s with %j reserves at least the cap any deployment may honour',
    async (model, caps, sent, reserved) => {
      const { status, record } = await chat({ model, ...caps });
      expect(status).toBe(200);
      expect(record?.reservedOutputTokens).toBe(reserved);
      if (sent !== null) {
        expect(lastBody(g.anthropic.requests)['max_tokens']).toBe(sent);
      } else {
        // Passed through as the client wrote it, both caps and all.
        expect(lastBody(g.primary.requests)).toMatchObject(caps);
      }
    },
  );

  it('reserves n choices passed through on a mixed route', async () => {
    const { status, record } = await chat({
      model: 'mixed',
      n: 3,
      max_tokens: 40,
    });
    expect(status).toBe(200);
    expect(record?.reservedOutputTokens).toBe(3 * 40);
  });

  it.each([
    ['n "3"', { n: '3' }, 'invalid_type', 'n'],
    ['n 129', { n: 129 }, 'invalid_value', 'n'],
    ['user 257 long', { user: 'u'.repeat(257) }, 'invalid_value', 'user'],
    [
      'metadata.user_id 42',
      { metadata: { user_id: 42 } },
      'invalid_type',
      'metadata.user_id',
    ],
    [
      'stream_options without stream',
      { stream_options: { include_usage: true } },
      'invalid_value',
      'stream_options',
    ],
  ])(
    'refuses %s on the mixed route as the Chat route does',
    async (_label, fields, code, param) => {
      const forwarded = g.primary.requests.length;
      for (const model of ['chat', 'mixed']) {
        const { status, json } = await chat({ model, ...fields });
        expect(status).toBe(400);
        expect(json.error).toMatchObject({ code, param });
      }
      expect(g.primary.requests.length).toBe(forwarded);
    },
  );
});
