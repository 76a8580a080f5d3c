/**
 * Issue 3: the same request sent through each inbound SDK to each upstream
 * yields the same normalised usage, priced at that upstream's rates.
 *
 * Rows are the four inbound APIs, each driven by its official SDK; columns
 * are the six deployments of the provider test gateway. Every cell runs
 * once non-streamed and once streamed. The column's fake upstream reports
 * fixed counts in its own wire format (OpenAI with cached tokens inside
 * the prompt total, Anthropic and Bedrock with them outside), and the cell
 * checks:
 *
 * 1. the answer, and its usage in the client's own format;
 * 2. the ledger's normalised usage: the column's counts, whichever API
 *    asked and whether it streamed;
 * 3. the cost, to the last digit: each class's tokens × the upstream
 *    model's catalog rate, the rates written below as decimal strings and
 *    summed in BigInt picodollars (test/helpers/usd.ts).
 */
import {
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseCommandInput,
} from '@aws-sdk/client-bedrock-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startProviderGateway,
  type ProviderAlias,
  type ProviderGateway,
} from '../helpers/provider-gateway.js';
import { ADMIN_TOKEN } from '../helpers/test-gateway.js';
import { usd } from '../helpers/usd.js';

/** Token counts in canonical classes; each input token is in one class. */
interface Counts {
  /** Input neither read from nor written to a cache. */
  readonly input: number;
  readonly cacheRead: number;
  /** Cache writes at the default lifetime (Anthropic: 5 minutes). */
  readonly cacheWrite: number;
  readonly cacheWrite1h: number;
  /** Output, reasoning included. */
  readonly output: number;
  readonly reasoning: number;
}

/** USD per 1M tokens by class; null where the catalog states no rate. */
interface Rates {
  readonly input: string;
  readonly cacheRead: string | null;
  readonly cacheWrite: string | null;
  readonly cacheWrite1h: string | null;
  readonly output: string;
}

/*
 * Rates of each upstream model, from src/pricing/catalog.json. OpenAI
 * bills cache writes at the input rate ("as-input"); reasoning is output.
 */
const GPT_4O: Rates = {
  input: '2.5',
  cacheRead: '1.25',
  cacheWrite: '2.5',
  cacheWrite1h: null,
  output: '10',
};
const GPT_4O_MINI: Rates = {
  input: '0.15',
  cacheRead: '0.075',
  cacheWrite: '0.15',
  cacheWrite1h: null,
  output: '0.6',
};
const CLAUDE_SONNET_4_5: Rates = {
  input: '3',
  cacheRead: '0.3',
  cacheWrite: '3.75',
  cacheWrite1h: '6',
  output: '15',
};
/** us.amazon.nova-lite-v1:0: the catalog states no cache rates. */
const NOVA_LITE_US: Rates = {
  input: '0.06',
  cacheRead: null,
  cacheWrite: null,
  cacheWrite1h: null,
  output: '0.24',
};
/** us.anthropic.claude-sonnet-4-5-20250929-v1:0, 10% above in-region. */
const BEDROCK_CLAUDE_US: Rates = {
  input: '3.3',
  cacheRead: '0.33',
  cacheWrite: '4.125',
  cacheWrite1h: null,
  output: '16.5',
};

/** The one request's counts, as each upstream can report them. */
const CACHED: Counts = {
  input: 1_200,
  cacheRead: 300,
  cacheWrite: 200,
  cacheWrite1h: 0,
  output: 57,
  reasoning: 0,
};
/** OpenAI reports the reasoning share of the output apart. */
const CACHED_WITH_REASONING: Counts = { ...CACHED, reasoning: 21 };
/** Anthropic splits cache writes by lifetime, priced apart. */
const CACHED_BOTH_LIFETIMES: Counts = { ...CACHED, cacheWrite1h: 100 };
/** Nova Lite has no cache rates: the same 1,700 input tokens, uncached. */
const UNCACHED: Counts = {
  ...CACHED,
  input: 1_700,
  cacheRead: 0,
  cacheWrite: 0,
};

type Fake = 'openai' | 'anthropic' | 'bedrock';

type WireApi =
  | 'openai-chat'
  | 'openai-responses'
  | 'anthropic-messages'
  | 'bedrock-converse';

interface Upstream {
  readonly alias: ProviderAlias;
  readonly upstreamModel: string;
  /** The API the deployment speaks; a client of another is translated. */
  readonly api: WireApi;
  readonly fake: Fake;
  /** The path the fake must have been asked on. */
  readonly path: RegExp;
  readonly counts: Counts;
  readonly rates: Rates;
  /** Σ tokens × rate, worked out by hand (checked against BigInt below). */
  readonly cost: string;
}

const UPSTREAMS: readonly Upstream[] = [
  {
    alias: 'gpt-4o',
    api: 'openai-chat',
    upstreamModel: 'gpt-4o',
    fake: 'openai',
    path: /^\/v1\/chat\/completions$/,
    counts: CACHED_WITH_REASONING,
    rates: GPT_4O,
    // 1200×2.5 + 300×1.25 + 200×2.5 + 57×10 = 4445 per 1M
    cost: '0.004445',
  },
  {
    alias: 'gpt-4o-responses',
    api: 'openai-responses',
    upstreamModel: 'gpt-4o',
    fake: 'openai',
    path: /^\/v1\/responses$/,
    counts: CACHED_WITH_REASONING,
    rates: GPT_4O,
    cost: '0.004445',
  },
  {
    alias: 'azure-gpt-4o-mini',
    api: 'openai-chat',
    upstreamModel: 'gpt-4o-mini',
    fake: 'openai',
    path: /^\/openai\/(deployments\/gpt-4o-mini|v1)\/chat\/completions$/,
    counts: CACHED_WITH_REASONING,
    rates: GPT_4O_MINI,
    // 1200×0.15 + 300×0.075 + 200×0.15 + 57×0.6 = 266.7 per 1M
    cost: '0.0002667',
  },
  {
    alias: 'claude-sonnet-4-5',
    api: 'anthropic-messages',
    upstreamModel: 'claude-sonnet-4-5-20250929',
    fake: 'anthropic',
    path: /^\/v1\/messages$/,
    counts: CACHED_BOTH_LIFETIMES,
    rates: CLAUDE_SONNET_4_5,
    // 1200×3 + 300×0.3 + 200×3.75 + 100×6 + 57×15 = 5895 per 1M
    cost: '0.005895',
  },
  {
    alias: 'nova-lite',
    api: 'bedrock-converse',
    upstreamModel: 'us.amazon.nova-lite-v1:0',
    fake: 'bedrock',
    path: /^\/model\/us\.amazon\.nova-lite-v1(:|%3A)0\/converse(-stream)?$/,
    counts: UNCACHED,
    rates: NOVA_LITE_US,
    // 1700×0.06 + 57×0.24 = 115.68 per 1M
    cost: '0.00011568',
  },
  {
    alias: 'bedrock-claude',
    api: 'bedrock-converse',
    upstreamModel: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    fake: 'bedrock',
    path: /^\/model\/us\.anthropic\.claude-sonnet-4-5-20250929-v1(:|%3A)0\/converse(-stream)?$/,
    counts: CACHED,
    rates: BEDROCK_CLAUDE_US,
    // 1200×3.3 + 300×0.33 + 200×4.125 + 57×16.5 = 5824.5 per 1M
    cost: '0.0058245',
  },
];

/** Σ tokens × rate in exact decimal; null when a class has no rate. */
function costOf(counts: Counts, rates: Rates): string | null {
  const terms: [number, string | null][] = [
    [counts.input, rates.input],
    [counts.cacheRead, rates.cacheRead],
    [counts.cacheWrite, rates.cacheWrite],
    [counts.cacheWrite1h, rates.cacheWrite1h],
    [counts.output, rates.output],
  ];
  const priced: [number, string][] = [];
  for (const [tokens, rate] of terms) {
    if (tokens === 0) continue;
    if (rate === null) return null;
    priced.push([tokens, rate]);
  }
  return usd(...priced);
}

const allInput = (c: Counts) =>
  c.input + c.cacheRead + c.cacheWrite + c.cacheWrite1h;
const allWrites = (c: Counts) => c.cacheWrite + c.cacheWrite1h;

/** Scripts the column's fake to answer the next request with `counts`. */
function enqueue(
  g: ProviderGateway,
  fake: Fake,
  counts: Counts,
  text: string,
): void {
  switch (fake) {
    case 'openai':
      expect(counts.cacheWrite1h, 'OpenAI has one cache lifetime').toBe(0);
      g.openai.enqueue({
        kind: 'synthesize',
        text,
        usage: {
          input: counts.input,
          cacheRead: counts.cacheRead,
          cacheWrite: counts.cacheWrite,
          output: counts.output,
          reasoning: counts.reasoning,
        },
      });
      return;
    case 'anthropic':
      expect(counts.reasoning, 'Anthropic reports no reasoning').toBe(0);
      g.anthropic.enqueue({
        kind: 'synthesize',
        text,
        usage: {
          input: counts.input,
          cacheRead: counts.cacheRead,
          cacheWrite5m: counts.cacheWrite,
          cacheWrite1h: counts.cacheWrite1h,
          output: counts.output,
        },
      });
      return;
    case 'bedrock':
      expect(counts.reasoning, 'Bedrock reports no reasoning').toBe(0);
      expect(counts.cacheWrite1h, 'the fake writes at 5m only').toBe(0);
      g.bedrock.enqueue({
        kind: 'synthesize',
        text,
        usage: {
          input: counts.input,
          cacheRead: counts.cacheRead,
          cacheWrite: counts.cacheWrite,
          output: counts.output,
        },
      });
      return;
  }
}

/** Every path the column's fake has been asked on, in order. */
function fakePaths(g: ProviderGateway, fake: Fake): string[] {
  switch (fake) {
    case 'openai':
      return g.openai.requests.map((r) => r.path);
    case 'anthropic':
      return g.anthropic.requests.map((r) => r.url.split('?')[0] ?? '');
    case 'bedrock':
      return g.bedrock.requests.map((r) => r.url.split('?')[0] ?? '');
  }
}

interface ClientAnswer {
  readonly requestId: string | null | undefined;
  readonly text: string;
  /** The usage block as the client's SDK hands it over. */
  readonly usage: unknown;
}

/** How an answer reached the client. */
interface Delivery {
  readonly stream: boolean;
  /** From an upstream of another API, through canonical form. */
  readonly translated: boolean;
}

interface Inbound {
  readonly name: string;
  readonly api: WireApi;
  send(
    g: ProviderGateway,
    alias: ProviderAlias,
    stream: boolean,
  ): Promise<ClientAnswer>;
  /** What this API's clients must read for `counts`, in its format. */
  wireUsage(counts: Counts, delivery: Delivery): Record<string, unknown>;
}

const PROMPT = 'Say hello in five words.';
const MAX_TOKENS = 256;

const INBOUNDS: readonly Inbound[] = [
  {
    name: 'OpenAI Chat Completions',
    api: 'openai-chat',
    async send(g, alias, stream) {
      const params = {
        model: alias,
        max_tokens: MAX_TOKENS,
        messages: [{ role: 'user' as const, content: PROMPT }],
      };
      const chat = g.sdk.openai.chat.completions;
      if (!stream) {
        const { data, request_id } = await chat.create(params).withResponse();
        expect(data.object).toBe('chat.completion');
        return {
          requestId: request_id,
          text: data.choices[0]?.message.content ?? '',
          usage: data.usage,
        };
      }
      const { data, request_id } = await chat
        .create({
          ...params,
          stream: true,
          stream_options: { include_usage: true },
        })
        .withResponse();
      let text = '';
      let usage: unknown;
      for await (const chunk of data) {
        // Azure opens with its prompt filter results: no choices and an
        // empty `object`, as Azure OpenAI sends them.
        if (chunk.choices.length > 0 || chunk.usage) {
          expect(chunk.object).toBe('chat.completion.chunk');
        }
        text += chunk.choices[0]?.delta.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      return { requestId: request_id, text, usage };
    },
    wireUsage: (c) => ({
      prompt_tokens: allInput(c),
      completion_tokens: c.output,
      total_tokens: allInput(c) + c.output,
      prompt_tokens_details: {
        cached_tokens: c.cacheRead,
        ...(allWrites(c) > 0 && { cache_write_tokens: allWrites(c) }),
      },
      completion_tokens_details: { reasoning_tokens: c.reasoning },
    }),
  },
  {
    name: 'OpenAI Responses',
    api: 'openai-responses',
    async send(g, alias, stream) {
      const params = {
        model: alias,
        max_output_tokens: MAX_TOKENS,
        input: PROMPT,
      };
      const responses = g.sdk.openai.responses;
      if (!stream) {
        const { data, request_id } = await responses
          .create(params)
          .withResponse();
        expect(data.status).toBe('completed');
        return {
          requestId: request_id,
          text: data.output_text,
          usage: data.usage,
        };
      }
      const { data, request_id } = await responses
        .create({ ...params, stream: true })
        .withResponse();
      let text = '';
      let usage: unknown;
      for await (const event of data) {
        if (event.type === 'response.output_text.delta') text += event.delta;
        if (event.type === 'response.completed') usage = event.response.usage;
      }
      return { requestId: request_id, text, usage };
    },
    wireUsage: (c) => ({
      input_tokens: allInput(c),
      input_tokens_details: {
        cached_tokens: c.cacheRead,
        ...(allWrites(c) > 0 && { cache_write_tokens: allWrites(c) }),
      },
      output_tokens: c.output,
      output_tokens_details: { reasoning_tokens: c.reasoning },
      total_tokens: allInput(c) + c.output,
    }),
  },
  {
    name: 'Anthropic Messages',
    api: 'anthropic-messages',
    async send(g, alias, stream) {
      const params = {
        model: alias,
        max_tokens: MAX_TOKENS,
        messages: [{ role: 'user' as const, content: PROMPT }],
      };
      const messages = g.sdk.anthropic.messages;
      const answer = stream
        ? await (async () => {
            const events = messages.stream(params);
            const data = await events.finalMessage();
            return { data, request_id: events.request_id };
          })()
        : await messages.create(params).withResponse();
      const { data, request_id } = answer;
      expect(data.type).toBe('message');
      expect(data.stop_reason).toBe('end_turn');
      return {
        requestId: request_id,
        text: data.content
          .map((block) => (block.type === 'text' ? block.text : ''))
          .join(''),
        usage: data.usage,
      };
    },
    wireUsage: (c, { stream, translated }) => ({
      input_tokens: c.input,
      cache_read_input_tokens: c.cacheRead,
      cache_creation_input_tokens: allWrites(c),
      // Only message_start carries the breakdown by lifetime, and a
      // translated stream must start before the upstream's usage is in:
      // the breakdown is unknown there, so null (never zeros beside a
      // non-zero total).
      cache_creation:
        stream && translated
          ? null
          : {
              ephemeral_5m_input_tokens: c.cacheWrite,
              ephemeral_1h_input_tokens: c.cacheWrite1h,
            },
      output_tokens: c.output,
    }),
  },
  {
    name: 'Bedrock Converse',
    api: 'bedrock-converse',
    async send(g, alias, stream) {
      const input: ConverseCommandInput = {
        modelId: alias,
        messages: [{ role: 'user', content: [{ text: PROMPT }] }],
        inferenceConfig: { maxTokens: MAX_TOKENS },
      };
      if (!stream) {
        const out = await g.sdk.bedrock.send(new ConverseCommand(input));
        expect(out.stopReason).toBe('end_turn');
        return {
          requestId: out.$metadata.requestId,
          text: (out.output?.message?.content ?? [])
            .map((block) => block.text ?? '')
            .join(''),
          usage: out.usage,
        };
      }
      const out = await g.sdk.bedrock.send(new ConverseStreamCommand(input));
      let text = '';
      let usage: unknown;
      let stopReason: string | undefined;
      for await (const event of out.stream ?? []) {
        text += event.contentBlockDelta?.delta?.text ?? '';
        stopReason ??= event.messageStop?.stopReason;
        usage ??= event.metadata?.usage;
      }
      expect(stopReason).toBe('end_turn');
      return { requestId: out.$metadata.requestId, text, usage };
    },
    wireUsage: (c) => ({
      inputTokens: c.input,
      outputTokens: c.output,
      totalTokens: allInput(c) + c.output,
      ...(c.cacheRead > 0 && { cacheReadInputTokens: c.cacheRead }),
      ...(allWrites(c) > 0 && { cacheWriteInputTokens: allWrites(c) }),
      // Bedrock details the lifetimes only when one is not the default.
      ...(c.cacheWrite1h > 0 && {
        cacheDetails: [
          { ttl: '1h', inputTokens: c.cacheWrite1h },
          ...(c.cacheWrite > 0
            ? [{ ttl: '5m', inputTokens: c.cacheWrite }]
            : []),
        ],
      }),
    }),
  },
];

/** GET /v1/requests/{id}, as usage-routes.ts writes it. */
interface LedgerRecord {
  readonly id: string;
  readonly model: string;
  readonly upstream_model: string;
  readonly stream: boolean;
  readonly state: string;
  readonly status_code: number | null;
  readonly attempts: readonly {
    readonly attempt: number;
    readonly estimated: boolean;
    readonly usage: Readonly<Record<string, unknown>>;
    readonly cost: string | null;
    /** Admin view only. */
    readonly provider_cost?: string | null;
    readonly unknown_price?: readonly string[];
  }[];
}

/** The ledger's usage block for `counts`. */
function ledgerUsage(c: Counts) {
  return {
    input_tokens: c.input,
    cache_read_tokens: c.cacheRead,
    cache_write_tokens: c.cacheWrite,
    cache_write_1h_tokens: c.cacheWrite1h,
    output_tokens: c.output,
    reasoning_tokens: c.reasoning,
    units: {},
  };
}

describe('one request, every inbound API × every upstream (issue 3)', () => {
  let g: ProviderGateway;

  beforeAll(async () => {
    g = await startProviderGateway();
  });
  afterAll(async () => {
    await g?.close();
  });

  const ledger = async (
    id: string | null | undefined,
    token: string,
  ): Promise<LedgerRecord> => {
    expect(id).toMatch(/^req_/);
    const response = await fetch(`${g.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as LedgerRecord;
  };

  /** One call through `inbound` to `upstream`, checked end to end. */
  const cell = async (
    inbound: Inbound,
    upstream: Upstream,
    stream: boolean,
  ): Promise<LedgerRecord> => {
    const text = `Hello from ${upstream.alias}, ${stream ? '' : 'not '}streamed.`;
    enqueue(g, upstream.fake, upstream.counts, text);
    const asked = fakePaths(g, upstream.fake).length;

    const answer = await inbound.send(g, upstream.alias, stream);

    expect(answer.text).toBe(text);
    const translated = inbound.api !== upstream.api;
    expect(answer.usage).toMatchObject(
      inbound.wireUsage(upstream.counts, { stream, translated }),
    );
    const paths = fakePaths(g, upstream.fake);
    expect(paths).toHaveLength(asked + 1);
    expect(paths.at(-1)).toMatch(upstream.path);

    const record = await ledger(answer.requestId, g.key);
    expect(record).toMatchObject({
      id: answer.requestId,
      model: upstream.alias,
      upstream_model: upstream.upstreamModel,
      stream,
      state: 'settled',
      status_code: 200,
    });
    expect(record.attempts).toHaveLength(1);
    const [attempt] = record.attempts;
    expect(attempt?.estimated).toBe(false);
    expect(attempt?.usage).toEqual(ledgerUsage(upstream.counts));
    expect(attempt?.cost).toBe(upstream.cost);

    // What the provider bills is the catalog price too, until a plan
    // says otherwise; only the admin sees it.
    const admin = await ledger(answer.requestId, ADMIN_TOKEN);
    expect(admin.attempts[0]?.provider_cost).toBe(upstream.cost);
    expect(admin.attempts[0]?.unknown_price).toEqual([]);
    return record;
  };

  it('prices each column at its catalog rates, exactly', () => {
    for (const upstream of UPSTREAMS) {
      expect(costOf(upstream.counts, upstream.rates), upstream.alias).toBe(
        upstream.cost,
      );
    }
  });

  describe.each(UPSTREAMS)('upstream $alias', (upstream) => {
    /** Each inbound API's view of this column, non-streamed and streamed. */
    const seen: { name: string; usage: unknown; cost: unknown }[] = [];

    it.each(INBOUNDS)('through $name', async (inbound) => {
      const plain = await cell(inbound, upstream, false);
      const streamed = await cell(inbound, upstream, true);

      // A streamed and a non-streamed request with the same usage cost
      // the same (DESIGN.md, "Streams").
      expect(streamed.attempts[0]?.cost).toBe(plain.attempts[0]?.cost);
      for (const record of [plain, streamed]) {
        seen.push({
          name: `${inbound.name}, stream ${record.stream}`,
          usage: record.attempts[0]?.usage,
          cost: record.attempts[0]?.cost,
        });
      }
    });

    it('meters alike whichever API asked', () => {
      expect(seen.map((s) => s.name)).toHaveLength(INBOUNDS.length * 2);
      const [first] = seen;
      for (const view of seen) {
        expect({ usage: view.usage, cost: view.cost }, view.name).toEqual({
          usage: first?.usage,
          cost: first?.cost,
        });
      }
    });
  });

  // Nova Lite's catalog entry states no cache rates: cached usage there
  // has an unknown cost, null and flagged, never zero.
  it.each(INBOUNDS)(
    'leaves cached Nova Lite usage unpriced through $name',
    async (inbound) => {
      enqueue(g, 'bedrock', CACHED, 'Hello from nova-lite, cached.');
      const answer = await inbound.send(g, 'nova-lite', false);
      expect(answer.usage).toMatchObject(
        inbound.wireUsage(CACHED, {
          stream: false,
          translated: inbound.api !== 'bedrock-converse',
        }),
      );
      expect(costOf(CACHED, NOVA_LITE_US)).toBeNull();

      const admin = await ledger(answer.requestId, ADMIN_TOKEN);
      const [attempt] = admin.attempts;
      expect(attempt?.usage).toEqual(ledgerUsage(CACHED));
      expect(attempt?.cost).toBeNull();
      expect(attempt?.provider_cost).toBeNull();
      expect([...(attempt?.unknown_price ?? [])].sort()).toEqual([
        'no_rate:cacheRead',
        'no_rate:cacheWrite',
      ]);
    },
  );
});
