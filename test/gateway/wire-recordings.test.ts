/**
 * Real OpenAI Chat Completions recordings served through the real gateway
 * to the official `openai` SDK.
 *
 * A fake upstream answers with a recording from `../shared/data/wire`,
 * byte for byte. For each one the test checks what the client receives
 * (the recording, less the usage chunk when the client did not ask for
 * it) and what was metered: the usage and the exact cost, both worked out
 * by hand from the file and the test price book below.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
} from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import type {
  Catalog,
  CatalogModel,
} from '../../src/pricing/catalog-schema.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';

// ---------------------------------------------------------------------------
// The test price book. USD per 1M tokens.

const RATES = {
  input: '2.5',
  cacheRead: '1.25',
  cacheWrite: 'as-input',
  output: '10',
} as const;

/**
 * Absurd rates for the dated names the responses report. Prices follow
 * the deployment's configured model, never the name in the response
 * (DESIGN.md, "Usage, exactly once"); a cost at these rates would show it.
 */
const DECOY_RATES = {
  input: '1000',
  cacheRead: '1000',
  cacheWrite: '1000',
  output: '1000',
} as const;

function priced(
  model: string,
  rates: typeof RATES | typeof DECOY_RATES,
  provider: CatalogModel['provider'] = 'openai',
): CatalogModel {
  return {
    model,
    provider,
    prices: [
      { effectiveFrom: '2024-01-01', ...rates, source: 'wire-recordings test' },
    ],
  };
}

const CATALOG: Catalog = {
  currency: 'USD',
  unit: 'per 1M tokens',
  models: [
    priced('gpt-4.1-nano', RATES),
    priced('gpt-4o-mini', RATES),
    priced('gpt-5.6-sol', RATES),
    priced('gpt-5-nano', RATES, 'azure'),
    priced('gpt-4.1-nano-2025-04-14', DECOY_RATES),
    priced('gpt-4o-mini-2024-07-18', DECOY_RATES),
    priced('gpt-5-nano-2025-08-07', DECOY_RATES, 'azure'),
  ],
};

/** Public alias → the deployment's upstream model, as configured. */
const ALIASES = {
  nano: 'gpt-4.1-nano',
  mini: 'gpt-4o-mini',
  sol: 'gpt-5.6-sol',
  'azure-nano': 'gpt-5-nano',
  unpriced: 'not-in-the-test-price-book',
} as const;

type Alias = keyof typeof ALIASES;

// ---------------------------------------------------------------------------
// The recordings, with what each must meter, worked out by hand.

interface MeteredUsage {
  readonly input_tokens: number;
  readonly cache_read_tokens: number;
  readonly cache_write_tokens: number;
  readonly cache_write_1h_tokens: number;
  readonly output_tokens: number;
  readonly reasoning_tokens: number;
  readonly units: Readonly<Record<string, number>>;
}

function metered(counts: Partial<MeteredUsage>): MeteredUsage {
  return {
    input_tokens: 0,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    cache_write_1h_tokens: 0,
    output_tokens: 0,
    reasoning_tokens: 0,
    units: {},
    ...counts,
  };
}

interface Recording {
  readonly file: string;
  readonly alias: Alias;
  readonly usage: MeteredUsage;
  /** USD, exact, at RATES. */
  readonly cost: string;
}

const JSON_RECORDINGS: readonly Recording[] = [
  {
    file: 'openai_chat_nonstream_text.json',
    alias: 'nano',
    // prompt 16 (cached 0), completion 363 (reasoning 0).
    usage: metered({ input_tokens: 16, output_tokens: 363 }),
    // 16 × 2.5 = 40, 363 × 10 = 3630; 3670 / 1e6
    cost: '0.00367',
  },
  {
    file: 'openai_chat_nonstream_prompt-cache-write.response.json',
    alias: 'sol',
    // prompt 4020 with cache_write_tokens 4012 inside it: 8 + 4012 written;
    // completion 4.
    usage: metered({
      input_tokens: 8,
      cache_write_tokens: 4012,
      output_tokens: 4,
    }),
    // 8 × 2.5 = 20, 4012 × 2.5 (as input) = 10030, 4 × 10 = 40;
    // 10090 / 1e6
    cost: '0.01009',
  },
  {
    file: 'openai_chat_nonstream_prompt-cache-read.response.json',
    alias: 'sol',
    // prompt 4020 with cached_tokens 4012 inside it: 8 + 4012 read;
    // completion 4.
    usage: metered({
      input_tokens: 8,
      cache_read_tokens: 4012,
      output_tokens: 4,
    }),
    // 8 × 2.5 = 20, 4012 × 1.25 = 5015, 4 × 10 = 40; 5075 / 1e6
    cost: '0.005075',
  },
];

const STREAM_RECORDINGS: readonly Recording[] = [
  {
    file: 'openai_chat_stream_text_include-usage.chunks.jsonl',
    alias: 'nano',
    // Last chunk: prompt 16 (cached 0), completion 300 (reasoning 0).
    usage: metered({ input_tokens: 16, output_tokens: 300 }),
    // 16 × 2.5 = 40, 300 × 10 = 3000; 3040 / 1e6
    cost: '0.00304',
  },
  {
    file: 'azure-openai_chat_stream_reasoning-tokens.chunks.jsonl',
    alias: 'azure-nano',
    // Last chunk: prompt 15, completion 78 of which 64 reasoning.
    usage: metered({
      input_tokens: 15,
      output_tokens: 78,
      reasoning_tokens: 64,
    }),
    // 15 × 2.5 = 37.5, 78 × 10 = 780 (reasoning is output); 817.5 / 1e6
    cost: '0.0008175',
  },
  {
    file: 'openai_chat_stream_tool-call_include-usage.sse',
    alias: 'mini',
    // Usage chunk: prompt 53, completion 15.
    usage: metered({ input_tokens: 53, output_tokens: 15 }),
    // 53 × 2.5 = 132.5, 15 × 10 = 150; 282.5 / 1e6
    cost: '0.0002825',
  },
  {
    file: 'openai_chat_stream_text_include-usage.sse',
    alias: 'mini',
    // Usage chunk: prompt 78, completion 9.
    usage: metered({ input_tokens: 78, output_tokens: 9 }),
    // 78 × 2.5 = 195, 9 × 10 = 90; 285 / 1e6
    cost: '0.000285',
  },
];

function readRecording(file: string): Buffer {
  return readFileSync(sharedFile(`wire/${file}`));
}

/** What the provider sent: status line aside, the body and its type. */
interface UpstreamAnswer {
  readonly contentType: string;
  readonly body: Buffer;
}

const EVENT_STREAM = 'text/event-stream; charset=utf-8';

/** The recorded response as the provider put it on the wire. */
function wireAnswer(file: string): UpstreamAnswer {
  const bytes = readRecording(file);
  if (file.endsWith('.json')) {
    return { contentType: 'application/json', body: bytes };
  }
  if (file.endsWith('.sse')) return { contentType: EVENT_STREAM, body: bytes };
  // `.chunks.jsonl`: one data payload per line (README: "To rebuild").
  const lines = bytes
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '');
  return { contentType: EVENT_STREAM, body: eventStream(lines) };
}

function eventStream(payloads: readonly string[]): Buffer {
  const events = payloads.map((payload) => `data: ${payload}\n\n`);
  return Buffer.from(`${events.join('')}data: [DONE]\n\n`, 'utf8');
}

/**
 * A recorded stream's events, each with its bytes: the recordings use LF
 * only and one `data:` line per event, so an event is a run of bytes up to
 * and including a blank line.
 */
function streamEvents(stream: Buffer): { raw: string; data: string }[] {
  return stream
    .toString('utf8')
    .split(/(?<=\n\n)/)
    .map((raw) => ({ raw, data: raw.replace(/^data: /, '').trimEnd() }));
}

function isUsageChunk(data: string): boolean {
  if (data === '[DONE]') return false;
  const chunk = JSON.parse(data) as Record<string, unknown>;
  return (
    Array.isArray(chunk['choices']) &&
    chunk['choices'].length === 0 &&
    typeof chunk['usage'] === 'object' &&
    chunk['usage'] !== null
  );
}

/** The chunks a client should see, parsed, `[DONE]` excluded. */
function recordedChunks(stream: Buffer, withUsage: boolean): unknown[] {
  return streamEvents(stream)
    .filter(({ data }) => data !== '[DONE]')
    .filter(({ data }) => withUsage || !isUsageChunk(data))
    .map(({ data }) => JSON.parse(data) as unknown);
}

/** The recorded stream's bytes, less exactly the usage event. */
function withoutUsageEvent(stream: Buffer): Buffer {
  const events = streamEvents(stream);
  const kept = events.filter(({ data }) => !isUsageChunk(data));
  expect(kept.length).toBe(events.length - 1);
  return Buffer.from(kept.map(({ raw }) => raw).join(''), 'utf8');
}

/** The usage block a recording reports, untouched. */
function recordedUsageBlock(answer: UpstreamAnswer): unknown {
  if (answer.contentType === 'application/json') {
    return (JSON.parse(answer.body.toString('utf8')) as { usage: unknown })
      .usage;
  }
  const usage = streamEvents(answer.body).find(({ data }) =>
    isUsageChunk(data),
  );
  return (JSON.parse(usage!.data) as { usage: unknown }).usage;
}

// ---------------------------------------------------------------------------
// A fake upstream that answers with whatever recording it was handed.

interface ReceivedCall {
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

class FakeUpstream {
  readonly received: ReceivedCall[] = [];
  #answer: UpstreamAnswer | undefined;
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<FakeUpstream> {
    const server = createServer();
    const fake = new FakeUpstream(server);
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const answer = fake.#answer;
        if (
          request.method !== 'POST' ||
          request.url !== '/v1/chat/completions' ||
          !answer
        ) {
          response.writeHead(404).end();
          return;
        }
        fake.received.push({
          url: request.url,
          headers: request.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<
            string,
            unknown
          >,
        });
        response.writeHead(200, {
          'content-type': answer.contentType,
          'x-request-id': UPSTREAM_REQUEST_ID,
        });
        // In uneven pieces, so events straddle network writes.
        for (let at = 0; at < answer.body.length; at += 777) {
          response.write(answer.body.subarray(at, at + 777));
        }
        response.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return fake;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/v1`;
  }

  /** The next calls are answered with this. */
  answerWith(answer: UpstreamAnswer): void {
    this.#answer = answer;
  }

  lastCall(): ReceivedCall {
    const call = this.received.at(-1);
    if (!call) throw new Error('the fake upstream received no call');
    return call;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}

// ---------------------------------------------------------------------------
// The gateway under test.

const ADMIN_TOKEN = 'wire-recordings-admin-token';
const UPSTREAM_REQUEST_ID = 'req_upstream_recorded';
const UPSTREAM_KEY = 'sk-upstream-wire-recordings';

interface RequestJson {
  readonly state: string;
  readonly upstream_request_id?: string | null;
  readonly stream: boolean;
  readonly model: string;
  readonly deployment: string;
  readonly upstream_model: string;
  readonly attempts: readonly {
    readonly estimated: boolean;
    readonly usage: MeteredUsage;
    readonly cost: string | null;
    readonly provider_cost?: string | null;
    readonly unknown_price?: readonly string[];
    readonly raw_usage?: unknown;
  }[];
}

describe.skipIf(!sharedDataPresent)(
  'OpenAI Chat recordings through the gateway',
  () => {
    let folder: string;
    let fake: FakeUpstream;
    let gateway: Gateway;
    let tenantKey: string;
    let client: OpenAI;

    beforeAll(async () => {
      folder = await mkdtemp(join(tmpdir(), 'tollgate-wire-'));
      fake = await FakeUpstream.start();
      const config = parseConfig(
        {
          server: { port: 0, shutdownGraceMs: 5_000 },
          database: { path: join(folder, 'tollgate.db') },
          logging: { level: 'silent' },
          providers: {
            recorded: {
              type: 'openai-compatible',
              baseUrl: fake.url,
              apiKey: UPSTREAM_KEY,
            },
          },
          models: Object.fromEntries(
            Object.entries(ALIASES).map(([alias, model]) => [
              alias,
              { deployments: [{ provider: 'recorded', model }] },
            ]),
          ),
        },
        'the wire-recordings test config',
      );
      gateway = await startGateway({
        config,
        adminToken: ADMIN_TOKEN,
        logger: createLogger('silent'),
        catalog: CATALOG,
      });
      const tenant = await createTenant(gateway.store, { name: 'wire-tenant' });
      tenantKey = (await createApiKey(gateway.store, tenant, {})).key;
      client = new OpenAI({
        baseURL: `${gateway.url}/v1`,
        apiKey: tenantKey,
        maxRetries: 0,
      });
    });

    afterAll(async () => {
      await gateway?.close();
      await fake?.close();
      if (folder) await rm(folder, { recursive: true, force: true });
    });

    async function requestDetail(
      id: string | null,
      token: string,
    ): Promise<RequestJson> {
      expect(id).toMatch(/^req_/);
      const response = await fetch(`${gateway.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      return (await response.json()) as RequestJson;
    }

    /** Checks the request's one attempt as the tenant and the admin see it. */
    async function expectMetered(
      id: string | null,
      recording: Recording,
      answer: UpstreamAnswer,
      stream: boolean,
    ): Promise<void> {
      const tenantView = await requestDetail(id, tenantKey);
      expect(tenantView).toMatchObject({
        state: 'settled',
        stream,
        model: recording.alias,
        upstream_model: ALIASES[recording.alias],
      });
      expect(tenantView.attempts).toHaveLength(1);
      expect(tenantView.attempts[0]).toEqual({
        attempt: 1,
        // One attempt: it went where the request says, and was served.
        deployment: tenantView.deployment,
        served: true,
        estimated: false,
        source: 'gateway',
        usage: recording.usage,
        cost: recording.cost,
      });

      const adminView = await requestDetail(id, ADMIN_TOKEN);
      expect(adminView).toMatchObject({
        upstream_request_id: UPSTREAM_REQUEST_ID,
      });
      expect(adminView.attempts[0]).toMatchObject({
        cost: recording.cost,
        provider_cost: recording.cost,
        unknown_price: [],
        raw_usage: recordedUsageBlock(answer),
      });
    }

    /**
     * Serves the recording under an alias the price book does not price:
     * the usage is still metered, and its cost is unknown, never zero.
     */
    async function expectUnpriced(
      recording: Recording,
      body: Record<string, unknown>,
    ): Promise<void> {
      fake.answerWith(wireAnswer(recording.file));
      const response = await postChat({ ...body, model: 'unpriced' });
      await response.arrayBuffer();
      const id = response.headers.get('x-request-id');

      const tenantView = await requestDetail(id, tenantKey);
      expect(tenantView.state).toBe('settled');
      expect(tenantView.attempts[0]?.usage).toEqual(recording.usage);
      expect(tenantView.attempts[0]?.cost).toBeNull();

      const adminView = await requestDetail(id, ADMIN_TOKEN);
      expect(adminView.attempts[0]).toMatchObject({
        cost: null,
        provider_cost: null,
        unknown_price: ['no_price'],
      });
    }

    const hello = [{ role: 'user' as const, content: 'Hello' }];

    describe.each(JSON_RECORDINGS)('$file', (recording) => {
      const answer = () => wireAnswer(recording.file);

      it('reaches the SDK as recorded, and is metered and priced', async () => {
        fake.answerWith(answer());
        const { data, response } = await client.chat.completions
          .create({ model: recording.alias, messages: hello })
          .withResponse();
        expect(data).toEqual(
          JSON.parse(readRecording(recording.file).toString()),
        );

        const sent = fake.lastCall().body;
        expect(sent).toEqual({
          model: ALIASES[recording.alias],
          messages: hello,
        });
        await expectMetered(
          response.headers.get('x-request-id'),
          recording,
          answer(),
          false,
        );
      });

      it('reaches a raw HTTP client byte for byte', async () => {
        fake.answerWith(answer());
        const response = await postChat({
          model: recording.alias,
          messages: hello,
        });
        expect(response.headers.get('content-type')).toBe('application/json');
        expect(
          Buffer.from(await response.arrayBuffer()).equals(answer().body),
        ).toBe(true);
      });

      it('has an unknown cost under a model without a price', async () => {
        await expectUnpriced(recording, { messages: hello });
      });
    });

    describe.each(STREAM_RECORDINGS)('$file', (recording) => {
      const answer = () => wireAnswer(recording.file);

      it.each([
        ['asked for usage', { include_usage: true }, true],
        ['did not ask for usage', undefined, false],
        ['refused usage', { include_usage: false }, false],
      ] as const)(
        'reaches the SDK as recorded when the client %s',
        async (_label, streamOptions, seesUsage) => {
          fake.answerWith(answer());
          const { data: stream, response } = await client.chat.completions
            .create({
              model: recording.alias,
              messages: hello,
              stream: true,
              ...(streamOptions && { stream_options: streamOptions }),
            })
            .withResponse();
          const chunks: ChatCompletionChunk[] = [];
          for await (const chunk of stream) chunks.push(chunk);

          expect(chunks).toEqual(recordedChunks(answer().body, seesUsage));
          const withUsage = chunks.filter((chunk) => chunk.usage);
          expect(withUsage).toHaveLength(seesUsage ? 1 : 0);
          if (seesUsage) expect(withUsage[0]).toBe(chunks.at(-1));
          // The gateway needs the usage chunk whatever the client asked.
          expect(fake.lastCall().body).toEqual({
            model: ALIASES[recording.alias],
            messages: hello,
            stream: true,
            stream_options: { include_usage: true },
          });
          await expectMetered(
            response.headers.get('x-request-id'),
            recording,
            answer(),
            true,
          );
        },
      );

      it('reaches a raw HTTP client byte for byte when it asked for usage', async () => {
        fake.answerWith(answer());
        const response = await postChat({
          model: recording.alias,
          messages: hello,
          stream: true,
          stream_options: { include_usage: true },
        });
        expect(response.headers.get('content-type')).toBe(EVENT_STREAM);
        const bytes = Buffer.from(await response.arrayBuffer());
        expect(bytes.toString('utf8')).toBe(answer().body.toString('utf8'));
        expect(bytes.equals(answer().body)).toBe(true);
      });

      it('reaches a raw HTTP client less exactly the usage event otherwise', async () => {
        fake.answerWith(answer());
        const response = await postChat({
          model: recording.alias,
          messages: hello,
          stream: true,
        });
        const bytes = Buffer.from(await response.arrayBuffer());
        const expected = withoutUsageEvent(answer().body);
        expect(bytes.toString('utf8')).toBe(expected.toString('utf8'));
        expect(bytes.equals(expected)).toBe(true);
        await expectMetered(
          response.headers.get('x-request-id'),
          recording,
          answer(),
          true,
        );
      });

      it('has an unknown cost under a model without a price', async () => {
        await expectUnpriced(recording, { messages: hello, stream: true });
      });

      it('reads the same from an upstream that ends lines in CRLF', async () => {
        // Servers built on sse-starlette, for one, send CRLF.
        const lf = answer();
        const crlf = Buffer.from(
          lf.body.toString('latin1').replace(/\n/g, '\r\n'),
          'latin1',
        );
        for (const seesUsage of [true, false]) {
          fake.answerWith({ contentType: EVENT_STREAM, body: crlf });
          const { data: stream, response } = await client.chat.completions
            .create({
              model: recording.alias,
              messages: hello,
              stream: true,
              stream_options: { include_usage: seesUsage },
            })
            .withResponse();
          const chunks: ChatCompletionChunk[] = [];
          for await (const chunk of stream) chunks.push(chunk);
          expect(chunks).toEqual(recordedChunks(lf.body, seesUsage));
          await expectMetered(
            response.headers.get('x-request-id'),
            recording,
            lf,
            true,
          );
        }
      });
    });

    async function postChat(body: Record<string, unknown>): Promise<Response> {
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tenantKey}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
      return response;
    }

    describe('the request sent upstream', () => {
      it.each([
        'openai_chat_stream_tool-call_include-usage',
        'openai_chat_stream_text_include-usage',
      ])(
        '%s: the recorded request goes up untouched but for model and include_usage',
        async (name) => {
          const recorded = JSON.parse(
            readRecording(`${name}.request.json`).toString('utf8'),
          ) as { body: Record<string, unknown> };
          // Fields the gateway does not read, including ones no API defines.
          const unknown = {
            seed: 7,
            parallel_tool_calls: false,
            logit_bias: { '50256': -100 },
            x_vendor_extension: { nested: [1, 'two', null, { deep: true }] },
          };
          // Without the recorded stream_options: the client does not ask
          // for usage, and the gateway must still ask upstream.
          const { stream_options: _asked, ...rest } = recorded.body;
          const sent = { ...rest, ...unknown, model: 'mini' };

          fake.answerWith(wireAnswer(`${name}.sse`));
          const stream = await client.chat.completions.create(
            sent as unknown as ChatCompletionCreateParamsStreaming,
          );
          for await (const _chunk of stream) {
            // drain
          }

          const call = fake.lastCall();
          expect(call.url).toBe('/v1/chat/completions');
          expect(call.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
          expect(call.body).toEqual({
            ...sent,
            model: 'gpt-4o-mini',
            stream_options: { include_usage: true },
          });
        },
      );

      it('keeps the client stream_options other fields', async () => {
        fake.answerWith(
          wireAnswer('openai_chat_stream_text_include-usage.sse'),
        );
        const stream = await client.chat.completions.create({
          model: 'mini',
          messages: hello,
          stream: true,
          stream_options: {
            include_usage: false,
            include_obfuscation: false,
          },
        });
        for await (const _chunk of stream) {
          // drain
        }
        expect(fake.lastCall().body['stream_options']).toEqual({
          include_usage: true,
          include_obfuscation: false,
        });
      });
    });

    it('prices the same usage the same, streamed or not', async () => {
      // The cache-read answer's usage (prompt 4020 of which 4012 cached,
      // completion 4), once as recorded and once as the stream that carries
      // the same answer and the same usage block.
      const file = 'openai_chat_nonstream_prompt-cache-read.response.json';
      const completion = JSON.parse(readRecording(file).toString('utf8')) as {
        id: string;
        created: number;
        model: string;
        usage: unknown;
      };
      const base = {
        id: completion.id,
        object: 'chat.completion.chunk',
        created: completion.created,
        model: completion.model,
      };
      const streamed = eventStream(
        [
          {
            ...base,
            choices: [
              {
                index: 0,
                delta: { role: 'assistant', content: 'OK' },
                finish_reason: null,
              },
            ],
            usage: null,
          },
          {
            ...base,
            choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
            usage: null,
          },
          { ...base, choices: [], usage: completion.usage },
        ].map((chunk) => JSON.stringify(chunk)),
      );

      fake.answerWith(wireAnswer(file));
      const whole = await client.chat.completions
        .create({ model: 'sol', messages: hello })
        .withResponse();
      fake.answerWith({ contentType: EVENT_STREAM, body: streamed });
      const inPieces = await client.chat.completions
        .create({ model: 'sol', messages: hello, stream: true })
        .withResponse();
      for await (const _chunk of inPieces.data) {
        // drain
      }

      const wholeView = await requestDetail(
        whole.response.headers.get('x-request-id'),
        tenantKey,
      );
      const streamView = await requestDetail(
        inPieces.response.headers.get('x-request-id'),
        tenantKey,
      );
      const usage = metered({
        input_tokens: 8,
        cache_read_tokens: 4012,
        output_tokens: 4,
      });
      expect(wholeView.stream).toBe(false);
      expect(streamView.stream).toBe(true);
      expect(wholeView.attempts[0]?.usage).toEqual(usage);
      expect(streamView.attempts[0]?.usage).toEqual(usage);
      // 8 × 2.5 + 4012 × 1.25 + 4 × 10 = 20 + 5015 + 40 = 5075 / 1e6
      expect(wholeView.attempts[0]?.cost).toBe('0.005075');
      expect(streamView.attempts[0]?.cost).toBe('0.005075');
    });
  },
);
