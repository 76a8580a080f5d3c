/**
 * Admission's added latency, in-process: one request's admit and settle
 * against three limits (a per-end-user request rate, a tenant budget and
 * a tenant concurrency cap) spread over 10,000 end users, so 10,000+
 * distinct counters are live. Baselines from the same run: the in-process
 * store against a bare `Map` update, and the Redis store against one
 * Redis round trip (PING) on loopback.
 *
 * Then the same with rolling windows, and a fourth limit: the tenant's
 * tokens over a rolling hour, weighed by class. The per-user rate rolls
 * over one minute, in buckets of one second, so that buckets leave the
 * span of counters as the run goes.
 *
 * Reported per operation (admit, settle), p50 and p99, in microseconds.
 */
import { createClient } from 'redis';

import { Admission } from '../src/admission/admission.js';
import type { CounterStore } from '../src/admission/counter-store.js';
import type { LimitConfig } from '../src/admission/limits.js';
import { MemoryCounterStore } from '../src/admission/memory-counter-store.js';
import { RedisCounterStore } from '../src/admission/redis-counter-store.js';
import { EMPTY_USAGE } from '../src/metering/usage.js';
import { parseDecimal } from '../src/money/decimal.js';
import { createLogger } from '../src/observability/logger.js';
import { percentile } from './report.js';

const USERS = 10_000;

const LIMITS: LimitConfig[] = [
  {
    id: 'per-user-rpm',
    endUser: '*',
    requests: 1_000_000,
    per: 'minute',
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tenant-budget',
    budgetUsd: '1000000',
    per: 'month',
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tenant-concurrency',
    concurrent: 1_000_000,
    onExceed: 'block',
    onStoreDown: 'closed',
  },
];

const ROLLING_LIMITS: LimitConfig[] = [
  {
    id: 'per-user-rolling-rpm',
    endUser: '*',
    requests: 1_000_000,
    per: { rolling: '1m' },
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tenant-rolling-budget',
    budgetUsd: '1000000',
    per: { rolling: '24h' },
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tenant-rolling-tokens',
    tokens: 1_000_000_000_000,
    tokenWeights: { cacheRead: '0.1', cacheWrite: '1.25', output: 4 },
    per: { rolling: '1h' },
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tenant-concurrency',
    concurrent: 1_000_000,
    onExceed: 'block',
    onStoreDown: 'closed',
  },
];

/** What each request used: 300 input tokens, 50 read from a cache. */
const USED = {
  ...EMPTY_USAGE,
  inputTokens: 250,
  cacheReadTokens: 50,
  outputTokens: 100,
};

const TENANT = {
  id: 'ten_bench',
  name: 'bench',
  timezone: 'Europe/Paris',
  createdAt: 0,
};
const WORST = parseDecimal('0.0123');
const ACTUAL = parseDecimal('0.0012');

export interface AdmissionBenchOptions {
  readonly requests: number;
  readonly redisUrl: string;
}

export async function benchAdmission(
  options: AdmissionBenchOptions,
): Promise<void> {
  console.log(
    `\nAdmission, in-process: admit + settle against ${LIMITS.length} ` +
      `limits (${ROLLING_LIMITS.length} in the rolling rows) over ` +
      `${USERS.toLocaleString('en-US')} end users ` +
      `(${options.requests.toLocaleString('en-US')} requests after a warm-up ` +
      'that touches every counter)\n',
  );
  const rows: string[][] = [];

  const map = new Map<string, bigint>();
  const mapTimes = await time(options.requests, (i) => {
    const key = `u${i % USERS}`;
    map.set(key, (map.get(key) ?? 0n) + 1n);
    return Promise.resolve();
  });
  rows.push(row('baseline: Map update', mapTimes, mapTimes));
  rows.push(
    ...(await measure(
      'in-process store',
      new MemoryCounterStore(),
      LIMITS,
      options,
    )),
    ...(await measure(
      'in-process store, rolling',
      new MemoryCounterStore(),
      ROLLING_LIMITS,
      options,
    )),
  );

  let redis: RedisCounterStore | undefined;
  try {
    redis = await RedisCounterStore.connect({
      url: options.redisUrl,
      prefix: `tollgate-bench:${process.pid}:`,
    });
  } catch {
    console.log(`(no Redis at ${options.redisUrl}: Redis rows left out)`);
  }
  if (redis) {
    const client = createClient({ url: options.redisUrl });
    await client.connect();
    const ping = await time(options.requests, async () => {
      await client.ping();
    });
    await client.close();
    rows.push(row('baseline: Redis PING', ping, ping));
    rows.push(
      ...(await measure('Redis store, loopback', redis, LIMITS, options)),
    );
    await redis.close();
    // A prefix of its own: the rolling run's counters start unseeded.
    const rollingRedis = await RedisCounterStore.connect({
      url: options.redisUrl,
      prefix: `tollgate-bench:${process.pid}:rolling:`,
    });
    rows.push(
      ...(await measure(
        'Redis store, loopback, rolling',
        rollingRedis,
        ROLLING_LIMITS,
        options,
      )),
    );
    await rollingRedis.close();
  }
  printMicros(rows);
}

async function measure(
  label: string,
  store: CounterStore,
  limits: LimitConfig[],
  options: AdmissionBenchOptions,
): Promise<string[][]> {
  const admission = new Admission(store, limits, createLogger('silent'));
  const admit = (i: number) =>
    admission.admit({
      requestId: `req_${i}`,
      tenant: TENANT,
      keyId: 'key_bench',
      endUser: `user-${i % USERS}`,
      model: 'gpt-4o',
      worstInputTokens: 3_000,
      worstOutputTokens: 1_000,
      worstCost: WORST,
    });
  const settle = (i: number) =>
    admission.settle(`req_${i}`, { tokens: USED, cost: ACTUAL });
  // Warm-up: every end user's counters exist and are seeded.
  for (let i = 0; i < USERS; i += 1) {
    await admit(-1 - i);
    await settle(-1 - i);
  }
  const admits: number[] = [];
  const settles: number[] = [];
  for (let i = 0; i < options.requests; i += 1) {
    let started = process.hrtime.bigint();
    await admit(i);
    admits.push(Number(process.hrtime.bigint() - started) / 1_000);
    started = process.hrtime.bigint();
    await settle(i);
    settles.push(Number(process.hrtime.bigint() - started) / 1_000);
  }
  return [row(label, admits, settles)];
}

async function time(
  count: number,
  run: (i: number) => Promise<void>,
): Promise<number[]> {
  for (let i = 0; i < Math.min(count, 1_000); i += 1) await run(i);
  const times: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    await run(i);
    times.push(Number(process.hrtime.bigint() - started) / 1_000);
  }
  return times;
}

function row(label: string, admits: number[], settles: number[]): string[] {
  return [
    label,
    us(percentile(admits, 50)),
    us(percentile(admits, 99)),
    us(percentile(settles, 50)),
    us(percentile(settles, 99)),
  ];
}

function us(value: number): string {
  return `${value.toFixed(1)} µs`;
}

function printMicros(rows: readonly (readonly string[])[]): void {
  const header = [
    'operation',
    'admit p50',
    'admit p99',
    'settle p50',
    'settle p99',
  ];
  const all = [header, ...rows];
  const widths = header.map((_, i) =>
    Math.max(...all.map((r) => (r[i] ?? '').length)),
  );
  for (const r of all) {
    console.log(
      r
        .map((cell, i) =>
          i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0),
        )
        .join('  '),
    );
  }
}
