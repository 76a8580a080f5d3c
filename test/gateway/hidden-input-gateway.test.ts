/**
 * Input the upstream reads that the body does not carry, end to end: a
 * request that brings in stored content reserves `unseenInputTokens` for
 * it, so a blocking limit holds; and a stream cut off before its usage
 * is settled at an estimate that counts its tool schemas, or at the bound
 * when the body cannot say what was read.
 */
import { countTokens } from 'gpt-tokenizer';
import { afterEach, expect, it } from 'vitest';

import {
  startProviderGateway,
  type ProviderGateway,
} from '../helpers/provider-gateway.js';

let g: ProviderGateway | undefined;
afterEach(async () => {
  await g?.close();
  g = undefined;
});

interface Detail {
  readonly state: string;
  readonly reserved: { input_tokens: number; output_tokens: number };
  readonly attempts: {
    usage: { input_tokens: number; output_tokens: number };
    estimated: boolean;
  }[];
}

/** The tenant's view of a request, once it is settled. */
async function settled(id: string): Promise<Detail> {
  for (let i = 0; i < 200; i += 1) {
    const response = await fetch(`${g!.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${g!.key}` },
    });
    const detail = (await response.json()) as Detail;
    if (detail.state !== 'open' && detail.attempts.length > 0) return detail;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`request ${id} never settled`);
}

/**
 * Reads a stream's first event and hangs up, as a client that leaves
 * before the usage comes; resolves with the request once it is settled.
 */
async function cutOff(opened: {
  data: AsyncIterable<unknown>;
  response: Response;
}): Promise<Detail> {
  for await (const event of opened.data) {
    void event;
    break;
  }
  return settled(opened.response.headers.get('x-request-id')!);
}

it('reserves unseenInputTokens for a previous response, then settles to usage', async () => {
  g = await startProviderGateway({
    config: {
      metering: { unseenInputTokens: 50_000 },
      limits: [{ id: 'tokens', tokens: 100_000, per: 'month' }],
    },
  });
  g.openai.enqueue({
    kind: 'synthesize',
    usage: { input: 30_000, output: 16 },
  });
  const { data, response } = await g.sdk.openai.responses
    .create({
      model: 'gpt-4o-responses',
      previous_response_id: 'resp_0123456789abcdef',
      input: 'go on',
      max_output_tokens: 16,
    })
    .withResponse();
  expect(data.usage?.input_tokens).toBe(30_000);
  const detail = await settled(response.headers.get('x-request-id')!);
  // The body's bytes, under a few hundred here, plus the allowance.
  expect(detail.reserved.input_tokens).toBeGreaterThan(50_000);
  expect(detail.reserved.input_tokens).toBeLessThan(50_000 + 1_000);
  expect(detail.attempts[0]!.usage.input_tokens).toBe(30_000);

  // Without the reference, the same request reserves its bytes alone.
  g.openai.enqueue({ kind: 'synthesize', usage: { input: 5, output: 16 } });
  const plain = await g.sdk.openai.responses
    .create({
      model: 'gpt-4o-responses',
      input: 'go on',
      max_output_tokens: 16,
    })
    .withResponse();
  const plainDetail = await settled(
    plain.response.headers.get('x-request-id')!,
  );
  expect(plainDetail.reserved.input_tokens).toBeLessThan(1_000);
});

it('refuses what can reference more than a whole limit, before the upstream', async () => {
  g = await startProviderGateway({
    config: { limits: [{ id: 'tokens', tokens: 20_000, per: 'month' }] },
  });
  const before = g.anthropic.requests.length;
  const error = await g.sdk.anthropic.messages
    .create({
      model: 'claude-sonnet-4-5',
      max_tokens: 16,
      messages: [
        {
          role: 'user',
          content: [
            {
              type: 'document',
              source: { type: 'url', url: 'https://example.com/a.pdf' },
            },
            { type: 'text', text: 'summarise' },
          ],
        },
      ],
    })
    .then(
      () => undefined,
      (e: unknown) => e as { status: number; headers: Headers },
    );
  expect(error?.status).toBe(429);
  expect((error as unknown as { message: string }).message).toContain(
    'Its worst case holds 1,000,000 input tokens ' +
      "(metering.unseenInputTokens) for what 'messages[0].content[0]' " +
      "makes the upstream read beyond the request's body.",
  );
  // No wait helps: the default allowance alone is 1M tokens.
  expect(error?.headers.get('retry-after')).toBeNull();
  expect(g.anthropic.requests.length).toBe(before);
});

it('estimates a cut-off stream with its tool schema counted', async () => {
  g = await startProviderGateway();
  const description = 'word '.repeat(12_000);
  g.openai.enqueue({
    kind: 'synthesize',
    usage: { input: 12_100, output: 16 },
    delivery: { chunkIntervalMs: 100 },
  });
  const detail = await cutOff(
    await g.sdk.openai.chat.completions
      .create({
        model: 'gpt-4o',
        stream: true,
        max_tokens: 16,
        tools: [
          {
            type: 'function',
            function: {
              name: 'lookup',
              description,
              parameters: { type: 'object', properties: {} },
            },
          },
        ],
        messages: [{ role: 'user', content: 'hi' }],
      })
      .withResponse(),
  );
  const attempt = detail.attempts[0]!;
  expect(attempt.estimated).toBe(true);
  // At least the schema's own text, counted with the same tokenizer.
  expect(attempt.usage.input_tokens).toBeGreaterThanOrEqual(
    countTokens(description),
  );
  expect(attempt.usage.input_tokens).toBeLessThanOrEqual(
    detail.reserved.input_tokens,
  );
});

it('settles a cut-off stream that read a file at its input bound', async () => {
  g = await startProviderGateway({
    config: { metering: { unseenInputTokens: 40_000 } },
  });
  g.openai.enqueue({
    kind: 'synthesize',
    usage: { input: 9_000, output: 16 },
    delivery: { chunkIntervalMs: 100 },
  });
  const detail = await cutOff(
    await g.sdk.openai.chat.completions
      .create({
        model: 'gpt-4o',
        stream: true,
        max_tokens: 16,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'file', file: { file_id: 'file-abc123' } },
              { type: 'text', text: 'summarise' },
            ],
          },
        ],
      })
      .withResponse(),
  );
  expect(detail.attempts[0]!.estimated).toBe(true);
  expect(detail.attempts[0]!.usage.input_tokens).toBe(
    detail.reserved.input_tokens,
  );
  expect(detail.reserved.input_tokens).toBeGreaterThan(40_000);
});

it('refuses a background response, which would answer before it is used', async () => {
  g = await startProviderGateway();
  const before = g.openai.requests.length;
  const error = (await g.sdk.openai.responses
    .create({
      model: 'gpt-4o-responses',
      background: true,
      input: 'write a long essay',
      max_output_tokens: 100_000,
    })
    .catch((e: unknown) => e)) as {
    status: number;
    error: { code: string; param: string };
  };
  expect(error.status).toBe(400);
  expect(error.error.code).toBe('invalid_value');
  expect(error.error.param).toBe('background');
  expect(g.openai.requests.length).toBe(before);
});

it('estimates a cut-off Responses stream with its output schema counted', async () => {
  g = await startProviderGateway();
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < 500; i += 1) {
    properties[`field_${i}`] = {
      type: 'string',
      description: `the value number ${i} of the record`,
    };
  }
  const schema = {
    type: 'object',
    properties,
    required: Object.keys(properties),
    additionalProperties: false,
  };
  const schemaTokens = countTokens(JSON.stringify(schema));
  g.openai.enqueue({
    kind: 'synthesize',
    usage: { input: schemaTokens + 20, output: 16 },
    delivery: { chunkIntervalMs: 100 },
  });
  const detail = await cutOff(
    await g.sdk.openai.responses
      .create({
        model: 'gpt-4o-responses',
        stream: true,
        max_output_tokens: 16,
        input: 'fill it',
        text: {
          format: { type: 'json_schema', name: 'rec', strict: true, schema },
        },
      })
      .withResponse(),
  );
  expect(detail.attempts[0]!.estimated).toBe(true);
  // Slices of 512 characters may split a token or two each: a little over.
  expect(detail.attempts[0]!.usage.input_tokens).toBeGreaterThanOrEqual(
    schemaTokens,
  );
});
