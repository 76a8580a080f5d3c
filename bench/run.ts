/**
 * Gateway added latency, measured against calling the upstream directly in
 * the same run, at a fixed request rate, with metering on.
 *
 * First, three processes: the simulated upstream, the gateway (`tollgate
 * serve` with a file database, synchronous=FULL, so every request is
 * written and synced), and this load generator. Requests are sent
 * open-loop on a fixed schedule, so a slow response does not slow the
 * offered load. Reports p50/p99 of the full response (non-streamed) and
 * of the first body byte and the full response (streamed), both ways, and
 * the gateway's peak RSS.
 *
 * Then time to first text of streams from upstreams that pace their
 * chunks, for each provider API and translated pairs (stream-ttft.ts).
 *
 *   npm run bench [-- --rate 200 --seconds 10 --synchronous full|normal
 *                    --stream-rate 25 --stream-seconds 5
 *                    --only latency|stream|admission|routing --profile DIR
 *                    --admission-requests 20000 --redis URL
 *                    --routing-decisions 100000]
 *
 * Then admission's added latency, in-process (admission.ts), and last
 * routing's, per decision over 1,000 routes (routing.ts).
 *
 * Numbers are for reading, never for gating CI.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Pool } from 'undici';

import {
  ADMIN_TOKEN,
  CLI,
  createKey,
  peakRss,
  sleep,
  startProcess,
  stopAll,
} from './processes.js';
import { comparisonRow, printTable } from './report.js';
import { benchAdmission } from './admission.js';
import { benchRouting } from './routing.js';
import { benchStreamTtft } from './stream-ttft.js';

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    /** The gateway database's sync mode: full (default) or normal. */
    synchronous: { type: 'string', default: 'full' },
    /** Streams per second each way in the time-to-first-text scenarios. */
    'stream-rate': { type: 'string', default: '25' },
    /** Measured seconds of each time-to-first-text scenario. */
    'stream-seconds': { type: 'string', default: '5' },
    /** Run only the `latency`, `stream`, `admission` or `routing` ones. */
    only: { type: 'string' },
    /** Requests measured per admission scenario. */
    'admission-requests': { type: 'string', default: '20000' },
    /** The Redis the admission scenario uses (left out if none answers). */
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    /** Routing decisions measured. */
    'routing-decisions': { type: 'string', default: '100000' },
    /** Write a CPU profile of the gateway into this folder. */
    profile: { type: 'string' },
  },
});
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);
const PROFILE_ARGS = flags.profile
  ? ['--cpu-prof', `--cpu-prof-dir=${flags.profile}`]
  : [];

interface Sample {
  readonly firstByteMs: number;
  readonly totalMs: number;
}

async function main(): Promise<void> {
  if (
    flags.only !== undefined &&
    !['latency', 'stream', 'admission', 'routing'].includes(flags.only)
  ) {
    throw new Error(
      `--only takes latency, stream, admission or routing, not ${flags.only}`,
    );
  }
  console.log(
    `Tollgate bench: node ${process.version}, ` +
      `database synchronous=${flags.synchronous}`,
  );
  const only = (scenario: string) =>
    flags.only === undefined || flags.only === scenario;
  if (only('latency')) await benchAddedLatency();
  if (only('stream')) {
    await benchStreamTtft({
      rate: Number(flags['stream-rate']),
      seconds: Number(flags['stream-seconds']),
      synchronous: flags.synchronous,
      profileDir: flags.profile,
    });
  }
  if (only('admission')) {
    await benchAdmission({
      requests: Number(flags['admission-requests']),
      redisUrl: flags.redis,
    });
  }
  if (only('routing')) {
    benchRouting({ decisions: Number(flags['routing-decisions']) });
  }
}

async function benchAddedLatency(): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-bench-'));
  const children: ChildProcess[] = [];
  try {
    const sim = await startProcess(
      CLI,
      ['simulate', '--port', '0'],
      /simulated upstream on (\S+)/,
      children,
    );
    await writeFile(
      join(folder, 'bench.yaml'),
      [
        'providers:',
        `  sim: { type: openai-compatible, baseUrl: "${sim.ready}", apiKey: sk-bench }`,
        'models:',
        '  gpt-4o-mini: { deployments: [{ provider: sim, model: gpt-4o-mini }] }',
        'logging: { level: warn }',
        `database: { synchronous: ${flags.synchronous} }`,
      ].join('\n'),
    );
    const gateway = await startProcess(
      CLI,
      [
        'serve',
        '--config',
        join(folder, 'bench.yaml'),
        '--db',
        join(folder, 'bench.db'),
        '--port',
        '0',
      ],
      /listening on (\S+) /,
      children,
      { env: { TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN }, nodeArgs: PROFILE_ARGS },
    );
    const key = await createKey(gateway.ready);

    const direct = new Pool(new URL(sim.ready).origin, { connections: 256 });
    const viaGateway = new Pool(gateway.ready, { connections: 256 });
    const targets = {
      upstream: { pool: direct, path: '/v1/chat/completions', key: 'sk-bench' },
      gateway: { pool: viaGateway, path: '/v1/chat/completions', key },
    };

    console.log(
      `\nAdded latency: ${RATE} requests/s for ${SECONDS} s per scenario, ` +
        `open loop, upstream first, then the gateway\n`,
    );
    const rows: string[][] = [];
    for (const stream of [false, true]) {
      // Warm both paths (connections, JIT, SQLite pages) before measuring.
      for (const target of Object.values(targets)) {
        await load(target, stream, RATE, 2);
      }
      const upstream = await load(targets.upstream, stream, RATE, SECONDS);
      const gatewaySamples = await load(targets.gateway, stream, RATE, SECONDS);
      const kind = stream ? 'stream' : 'json';
      rows.push(...report(kind, upstream, gatewaySamples, stream));
    }
    printTable(rows);

    const rss = await peakRss(gateway.child.pid);
    console.log(`\ngateway peak RSS (VmHWM): ${(rss / 1024).toFixed(1)} MiB`);
    await direct.close();
    await viaGateway.close();
  } finally {
    await stopAll(children);
    await rm(folder, { recursive: true, force: true });
  }
}

async function load(
  target: { pool: Pool; path: string; key: string },
  stream: boolean,
  rate: number,
  seconds: number,
): Promise<Sample[]> {
  const body = JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Say something short.' }],
    max_tokens: 64,
    ...(stream && { stream: true }),
    metadata: {
      tollgate_sim_prompt_tokens: '200',
      tollgate_sim_completion_tokens: '64',
    },
  });
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const start = performance.now();
  const pending: Promise<Sample>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(once(target, body));
  }
  return Promise.all(pending);
}

async function once(
  target: { pool: Pool; path: string; key: string },
  body: string,
): Promise<Sample> {
  const sent = performance.now();
  const response = await target.pool.request({
    method: 'POST',
    path: target.path,
    headers: {
      authorization: `Bearer ${target.key}`,
      'content-type': 'application/json',
    },
    body,
  });
  let firstByte: number | undefined;
  for await (const _chunk of response.body) firstByte ??= performance.now();
  const done = performance.now();
  if (response.statusCode !== 200) {
    throw new Error(`HTTP ${response.statusCode} from ${target.path}`);
  }
  return { firstByteMs: (firstByte ?? done) - sent, totalMs: done - sent };
}

function report(
  kind: string,
  upstream: Sample[],
  gateway: Sample[],
  stream: boolean,
): string[][] {
  const measures: [string, (s: Sample) => number][] = stream
    ? [
        ['first byte', (s) => s.firstByteMs],
        ['full response', (s) => s.totalMs],
      ]
    : [['full response', (s) => s.totalMs]];
  return measures.map(([label, pick]) =>
    comparisonRow(`${kind}, ${label}`, upstream.map(pick), gateway.map(pick)),
  );
}

await main();
