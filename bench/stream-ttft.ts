/**
 * Time to first token through the gateway, against the same upstream
 * called directly in the same run (issue 3: streams pass through without
 * buffering, so the gateway adds well under a millisecond at p50).
 *
 * Three processes: the paced upstreams (paced-upstreams-process.ts: the
 * OpenAI, Anthropic and Bedrock fakes), the gateway (`tollgate serve`,
 * metering on, a file database in the sync mode asked for), and this load
 * generator. Each scenario pairs a client API with an upstream API, the
 * same one (the gateway passes frames through) or another (it translates
 * them). Its streams are sent open-loop at a fixed rate, alternating
 * between the upstream directly, in the upstream's own API, and the
 * gateway, in the client's API, so both sides see the machine at the same
 * moments.
 *
 * Time to first text runs from sending the request to reading the first
 * complete event with non-empty text; the same reader times both sides.
 * It is also split where the upstream has received the request: before,
 * what the gateway spends admitting, recording and calling; after, what it
 * spends relaying, where any buffering would show. Requests in Bedrock's
 * API go over HTTP/2, as the AWS SDK sends them, the others over HTTP/1.1.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  DIRECT_HEADER,
  type UpstreamPacing,
  type UpstreamsCommand,
  type UpstreamsReply,
  type UpstreamUrls,
} from './paced-upstreams.js';
import {
  ADMIN_TOKEN,
  CLI,
  createKey,
  sleep,
  startProcess,
  stopAll,
} from './processes.js';
import { comparisonRow, printTable } from './report.js';
import { streamReader, type WireFormat } from './stream-reader.js';
import {
  http1Transport,
  http2Transport,
  type StreamRequest,
  type Transport,
} from './stream-transport.js';

export interface StreamTtftOptions {
  /** Streams per second each way (so twice this in all). */
  readonly rate: number;
  /** Measured seconds per scenario, after a one-second warm-up. */
  readonly seconds: number;
  /** The gateway database's sync mode: full or normal. */
  readonly synchronous: string;
  /** Write a CPU profile of the gateway into this folder. */
  readonly profileDir?: string | undefined;
}

/** Headers after 50 ms, then a chunk every 20 ms, as a model streams. */
export const PACING: UpstreamPacing = {
  latencyMs: 50,
  chunkIntervalMs: 20,
  // The first text delta ends in the second chunk for both.
  anthropicChunkBytes: 400,
  bedrockChunkBytes: 200,
  outputTokens: 16,
};

const PACED_UPSTREAMS = fileURLToPath(
  new URL('./paced-upstreams-process.js', import.meta.url),
);
const WARM_UP_SECONDS = 1;
/** No stream of this benchmark should take a tenth of this. */
const STREAM_TIMEOUT_MS = 10_000;
const PROMPT = 'Say something short.';
const MAX_TOKENS = PACING.outputTokens;

type Api = 'openai' | 'anthropic' | 'bedrock';

/** Client API → upstream API: each one to itself, then translations. */
const SCENARIOS: readonly (readonly [client: Api, upstream: Api])[] = [
  ['openai', 'openai'],
  ['anthropic', 'anthropic'],
  ['bedrock', 'bedrock'],
  ['openai', 'anthropic'],
  ['bedrock', 'openai'],
  ['anthropic', 'bedrock'],
];

const API_NAMES: Readonly<Record<Api, string>> = {
  openai: 'openai chat',
  anthropic: 'anthropic',
  bedrock: 'bedrock',
};

/** The model each upstream is asked for, directly or by the gateway. */
const UPSTREAM_MODELS: Readonly<Record<Api, string>> = {
  openai: 'gpt-4o-mini',
  anthropic: 'claude-sonnet-4-5-20250929',
  bedrock: 'us.amazon.nova-lite-v1:0',
};

/** The gateway's public model names, one per upstream. */
const ALIASES: Readonly<Record<Api, string>> = {
  openai: 'gpt-4o-mini',
  anthropic: 'claude-sonnet-4-5',
  bedrock: 'nova-lite',
};

/** A client of one API, pointed at one server with one key. */
interface Client {
  readonly format: WireFormat;
  readonly transport: Transport;
  request(model: string): StreamRequest;
}

interface Call {
  readonly client: Client;
  readonly model: string;
}

interface Scenario {
  readonly label: string;
  readonly upstreamApi: Api;
  readonly direct: Call;
  readonly gateway: Call;
}

interface StreamSample {
  /** When the request was sent, on the clock processes share. */
  readonly sentAt: number;
  readonly firstTextMs: number;
  readonly totalMs: number;
}

/** A stream's times, with the moment the upstream had the request. */
interface TimedStream extends StreamSample {
  readonly reachedUpstreamMs: number;
}

const MEASURES: readonly [string, (sample: TimedStream) => number][] = [
  ['first text', (s) => s.firstTextMs],
  // The same time, split where the upstream has the request: what the
  // gateway adds before it calls, and what it adds relaying the answer.
  ['  request reaches upstream', (s) => s.reachedUpstreamMs],
  ['  then first text', (s) => s.firstTextMs - s.reachedUpstreamMs],
  ['full stream', (s) => s.totalMs],
];

export async function benchStreamTtft(
  options: StreamTtftOptions,
): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-bench-stream-'));
  const children: ChildProcess[] = [];
  const transports: Transport[] = [];
  const connect = (make: (origin: string) => Transport, url: string) => {
    const transport = make(new URL(url).origin);
    transports.push(transport);
    return transport;
  };
  try {
    const upstreams = await startProcess(
      PACED_UPSTREAMS,
      [JSON.stringify(PACING)],
      /paced upstreams: (\{.*\})\n/,
      children,
      { ipc: true },
    );
    const urls = JSON.parse(upstreams.ready) as UpstreamUrls;
    const config = join(folder, 'bench-stream.yaml');
    await writeFile(config, gatewayConfig(urls, options.synchronous));
    const gateway = await startProcess(
      CLI,
      ['serve', '--config', config, '--db', join(folder, 'bench.db')].concat([
        '--port',
        '0',
      ]),
      /listening on (\S+) /,
      children,
      {
        env: { TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN },
        nodeArgs: options.profileDir
          ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`]
          : [],
      },
    );
    const key = await createKey(gateway.ready, 'bench-stream');

    // Direct requests carry the mark by which the upstreams tell them apart.
    const mark = { [DIRECT_HEADER]: '1' };
    const direct: Record<Api, Client> = {
      openai: openAIChatClient(
        connect(http1Transport, urls.openai),
        new URL(urls.openai).pathname,
        { authorization: 'Bearer sk-bench', ...mark },
      ),
      anthropic: anthropicClient(connect(http1Transport, urls.anthropic), {
        'x-api-key': 'sk-ant-bench',
        ...mark,
      }),
      bedrock: bedrockClient(connect(http2Transport, urls.bedrock), {
        authorization: 'Bearer bedrock-bench',
        ...mark,
      }),
    };
    const viaGateway: Record<Api, Client> = {
      openai: openAIChatClient(connect(http1Transport, gateway.ready), '/v1', {
        authorization: `Bearer ${key}`,
      }),
      anthropic: anthropicClient(connect(http1Transport, gateway.ready), {
        'x-api-key': key,
      }),
      bedrock: bedrockClient(connect(http2Transport, gateway.ready), {
        authorization: `Bearer ${key}`,
      }),
    };

    console.log(
      `\nTime to first text: ${options.rate} streams/s each way, ` +
        `alternating, for ${options.seconds} s per scenario ` +
        `(client API → upstream API); upstream headers after ` +
        `${PACING.latencyMs} ms, then a chunk every ` +
        `${PACING.chunkIntervalMs} ms (OpenAI one event per chunk, ` +
        `Anthropic ${PACING.anthropicChunkBytes} B, Bedrock ` +
        `${PACING.bedrockChunkBytes} B)\n`,
    );
    const ask = (command: UpstreamsCommand) =>
      askUpstreams(upstreams.child, command);
    const rows: string[][] = [];
    for (const [clientApi, upstreamApi] of SCENARIOS) {
      const scenario: Scenario = {
        label: `${API_NAMES[clientApi]} → ${API_NAMES[upstreamApi]}`,
        upstreamApi,
        direct: {
          client: direct[upstreamApi],
          model: UPSTREAM_MODELS[upstreamApi],
        },
        gateway: { client: viaGateway[clientApi], model: ALIASES[upstreamApi] },
      };
      await load(scenario, options.rate, WARM_UP_SECONDS, ask);
      const samples = await load(scenario, options.rate, options.seconds, ask);
      for (const [measure, pick] of MEASURES) {
        rows.push(
          comparisonRow(
            `${scenario.label}, ${measure}`,
            samples.upstream.map(pick),
            samples.gateway.map(pick),
          ),
        );
      }
    }
    printTable(rows);
  } finally {
    await Promise.all(transports.map((t) => t.close().catch(() => undefined)));
    await stopAll(children);
    await rm(folder, { recursive: true, force: true });
  }
}

function gatewayConfig(urls: UpstreamUrls, synchronous: string): string {
  // YAML is a superset of JSON.
  return JSON.stringify({
    providers: {
      openai: {
        type: 'openai-compatible',
        baseUrl: urls.openai,
        apiKey: 'sk-bench',
      },
      anthropic: {
        type: 'anthropic',
        baseUrl: urls.anthropic,
        apiKey: 'sk-ant-bench',
      },
      bedrock: {
        type: 'bedrock',
        region: 'us-east-1',
        endpoint: urls.bedrock,
        apiKey: 'bedrock-bench',
      },
    },
    models: {
      [ALIASES.openai]: {
        deployments: [{ provider: 'openai', model: UPSTREAM_MODELS.openai }],
      },
      [ALIASES.anthropic]: {
        deployments: [
          { provider: 'anthropic', model: UPSTREAM_MODELS.anthropic },
        ],
      },
      [ALIASES.bedrock]: {
        deployments: [{ provider: 'bedrock', model: UPSTREAM_MODELS.bedrock }],
      },
    },
    logging: { level: 'warn' },
    database: { synchronous },
  });
}

type Headers = Readonly<Record<string, string>>;

function openAIChatClient(
  transport: Transport,
  basePath: string,
  auth: Headers,
): Client {
  return {
    format: 'openai-chat',
    transport,
    request: (model) => ({
      path: `${basePath}/chat/completions`,
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        messages: [{ role: 'user', content: PROMPT }],
        max_tokens: MAX_TOKENS,
        stream: true,
        stream_options: { include_usage: true },
      }),
    }),
  };
}

function anthropicClient(transport: Transport, auth: Headers): Client {
  return {
    format: 'anthropic-messages',
    transport,
    request: (model) => ({
      path: '/v1/messages',
      headers: {
        ...auth,
        'anthropic-version': '2023-06-01',
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        model,
        max_tokens: MAX_TOKENS,
        stream: true,
        messages: [{ role: 'user', content: PROMPT }],
      }),
    }),
  };
}

function bedrockClient(transport: Transport, auth: Headers): Client {
  return {
    format: 'bedrock',
    transport,
    request: (model) => ({
      path: `/model/${encodeURIComponent(model)}/converse-stream`,
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [{ role: 'user', content: [{ text: PROMPT }] }],
        inferenceConfig: { maxTokens: MAX_TOKENS },
      }),
    }),
  };
}

/**
 * Sends the scenario's streams on a fixed schedule, whatever the answers
 * do, alternating direct and through the gateway, `rate` per second each;
 * then learns from the upstream when each request reached it.
 */
async function load(
  scenario: Scenario,
  rate: number,
  seconds: number,
  ask: (command: UpstreamsCommand) => Promise<UpstreamsReply>,
): Promise<{ upstream: TimedStream[]; gateway: TimedStream[] }> {
  const perSide = Math.max(1, Math.round(rate * seconds));
  // Both sides of a scenario reach the same upstream.
  if (scenario.upstreamApi === 'anthropic') {
    await ask({ type: 'queue-anthropic', count: 2 * perSide });
  }

  const sides = [scenario.direct, scenario.gateway] as const;
  const requests = sides.map((call) => call.client.request(call.model));
  const pending: [Promise<StreamSample>[], Promise<StreamSample>[]] = [[], []];
  const interval = 1000 / (2 * rate);
  const start = performance.now();
  for (let i = 0; i < 2 * perSide; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 1) await sleep(wait);
    const side = i % 2;
    pending[side]!.push(timeStream(sides[side]!.client, requests[side]!));
  }
  const [upstream, gateway] = await Promise.all([
    Promise.all(pending[0]),
    Promise.all(pending[1]),
  ]);

  const arrivals = await ask({ type: 'take-arrivals' });
  if (arrivals.type !== 'arrivals') throw new Error('no arrivals');
  return {
    upstream: withArrivals(upstream, arrivals.direct),
    gateway: withArrivals(gateway, arrivals.gateway),
  };
}

/**
 * Pairs each stream with its request's arrival upstream, in order: one
 * side's requests leave 1/rate apart, far more than their arrivals vary.
 */
function withArrivals(
  samples: readonly StreamSample[],
  arrivals: readonly number[],
): TimedStream[] {
  if (arrivals.length !== samples.length) {
    throw new Error(
      `${samples.length} streams, but ${arrivals.length} requests upstream`,
    );
  }
  const sorted = [...arrivals].sort((a, b) => a - b);
  return samples.map((sample, i) => ({
    ...sample,
    reachedUpstreamMs: sorted[i]! - sample.sentAt,
  }));
}

async function timeStream(
  client: Client,
  request: StreamRequest,
): Promise<StreamSample> {
  const reader = streamReader(client.format);
  const signal = AbortSignal.timeout(STREAM_TIMEOUT_MS);
  const sent = performance.now();
  const response = await client.transport.send(request, signal);
  if (response.status !== 200) {
    let text = '';
    for await (const chunk of response.body) {
      text += Buffer.from(chunk).toString('utf8');
    }
    throw new Error(`HTTP ${response.status} on ${request.path}: ${text}`);
  }
  let firstText: number | undefined;
  for await (const chunk of response.body) {
    reader.push(chunk);
    if (firstText === undefined && reader.sawText) {
      firstText = performance.now();
    }
  }
  const done = performance.now();
  if (reader.error !== undefined) {
    throw new Error(`${request.path}: the stream failed: ${reader.error}`);
  }
  if (firstText === undefined || !reader.complete) {
    throw new Error(`${request.path}: the stream ended early`);
  }
  return {
    sentAt: performance.timeOrigin + sent,
    firstTextMs: firstText - sent,
    totalMs: done - sent,
  };
}

/** Sends the upstreams' process a command and waits for its reply. */
function askUpstreams(
  child: ChildProcess,
  command: UpstreamsCommand,
): Promise<UpstreamsReply> {
  return new Promise((resolve, reject) => {
    child.once('message', (reply: UpstreamsReply) => resolve(reply));
    child.send(command, (error) => {
      if (error) reject(error);
    });
  });
}
