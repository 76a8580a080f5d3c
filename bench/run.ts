/**
 * Gateway added latency, measured against calling the simulated upstream
 * directly in the same run, at a fixed request rate, with metering on.
 *
 * Three processes: the simulated upstream, the gateway (`tollgate serve`
 * with a file database, synchronous=FULL, so every request is written and
 * synced), and this load generator. Requests are sent open-loop on a fixed
 * schedule, so a slow response does not slow the offered load. Reports
 * p50/p99 of the full response (non-streamed) and of the first body byte
 * and the full response (streamed), both ways, and the gateway's peak RSS.
 *
 *   npm run bench [-- --rate 200 --seconds 10 --synchronous full|normal
 *                    --profile DIR]
 *
 * Numbers are for reading, never for gating CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Pool } from 'undici';

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    /** The gateway database's sync mode: full (default) or normal. */
    synchronous: { type: 'string', default: 'full' },
    /** Write a CPU profile of the gateway into this folder. */
    profile: { type: 'string' },
  },
});
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ADMIN = 'bench-admin-token';

interface Sample {
  readonly firstByteMs: number;
  readonly totalMs: number;
}

async function main(): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-bench-'));
  const children: ChildProcess[] = [];
  try {
    const sim = await startProcess(
      ['simulate', '--port', '0'],
      /simulated upstream on (\S+)/,
      children,
    );
    await writeFile(
      join(folder, 'bench.yaml'),
      [
        'providers:',
        `  sim: { type: openai-compatible, baseUrl: "${sim.url}/v1", apiKey: sk-bench }`,
        'models:',
        '  gpt-4o-mini: { deployments: [{ provider: sim, model: gpt-4o-mini }] }',
        'logging: { level: warn }',
        `database: { synchronous: ${flags.synchronous} }`,
      ].join('\n'),
    );
    const gateway = await startProcess(
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
      { TOLLGATE_ADMIN_TOKEN: ADMIN },
    );
    const key = await createKey(gateway.url);

    const upstreamOrigin = new URL(sim.url).origin;
    const direct = new Pool(upstreamOrigin, { connections: 256 });
    const viaGateway = new Pool(gateway.url, { connections: 256 });
    const targets = {
      upstream: { pool: direct, path: '/v1/chat/completions', key: 'sk-bench' },
      gateway: { pool: viaGateway, path: '/v1/chat/completions', key },
    };

    console.log(
      `Tollgate bench: ${RATE} requests/s for ${SECONDS} s per scenario, ` +
        `open loop, database synchronous=${flags.synchronous}; ` +
        `node ${process.version}\n`,
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
    for (const child of children) child.kill('SIGTERM');
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
  return measures.map(([label, pick]) => {
    const u = upstream.map(pick);
    const g = gateway.map(pick);
    return [
      `${kind}, ${label}`,
      ms(percentile(u, 50)),
      ms(percentile(g, 50)),
      ms(percentile(g, 50) - percentile(u, 50)),
      ms(percentile(u, 99)),
      ms(percentile(g, 99)),
      ms(percentile(g, 99) - percentile(u, 99)),
    ];
  });
}

function printTable(rows: string[][]): void {
  const header = [
    'scenario',
    'upstream p50',
    'gateway p50',
    'added p50',
    'upstream p99',
    'gateway p99',
    'added p99',
  ];
  const all = [header, ...rows];
  const widths = header.map((_, i) =>
    Math.max(...all.map((r) => (r[i] ?? '').length)),
  );
  for (const row of all) {
    console.log(
      row
        .map((cell, i) =>
          i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!),
        )
        .join('  '),
    );
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(
    sorted.length - 1,
    Math.ceil((p / 100) * sorted.length) - 1,
  );
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

async function startProcess(
  args: string[],
  ready: RegExp,
  children: ChildProcess[],
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  const profile =
    flags.profile && args[0] === 'serve'
      ? ['--cpu-prof', `--cpu-prof-dir=${flags.profile}`]
      : [];
  const child = spawn(process.execPath, [...profile, CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      output += text;
      const match = ready.exec(output);
      if (match?.[1]) resolve(match[1].replace(/\/v1$/, ''));
    });
    child.once('exit', (code) =>
      reject(new Error(`exited ${code}: ${output}`)),
    );
  });
  return { url, child };
}

async function createKey(gatewayUrl: string): Promise<string> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${gatewayUrl}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    return (await response.json()) as { key?: string };
  };
  await post('/admin/v1/tenants', { name: 'bench' });
  const { key } = await post('/admin/v1/tenants/bench/keys', {});
  if (!key) throw new Error('could not create a key');
  return key;
}

async function peakRss(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

await main();
