/**
 * Limits counted on Redis (DESIGN.md, "Storage and scale"): 100 concurrent
 * requests against a limit that fits 10 admit at most 10 by worst case,
 * in one gateway and across two gateway processes sharing one Redis;
 * reservations are held in Redis while requests are in flight and return
 * to zero after, cancelled streams included; a Redis that goes away
 * follows each limit's stated policy and is logged loudly; and a gateway
 * set to count on Redis refuses to start without it.
 *
 * The counters are read straight from Redis: a hash per counter, at the
 * configured prefix plus the counter's key, with fields `u` (used) and
 * `r` (reserved).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';

import OpenAI from 'openai';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { LimitConfig } from '../../src/admission/limits.js';
import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import {
  GATED_USAGE,
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';
import {
  spawnGateway,
  type GatewayProcess,
} from '../helpers/gateway-process.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';
import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

type LimitInput = Partial<LimitConfig> & { id: string };

/** Output tokens each request asks for: its worst case is about this. */
const MAX_TOKENS = 100_000;

/** Tokens the gated upstream reports per answer: 10 in, 5 out. */
const SERVED_TOKENS = BigInt(
  GATED_USAGE.prompt_tokens + GATED_USAGE.completion_tokens,
);

/**
 * What one gated answer charges, in 10^-9 USD, at gpt-4o's published
 * rates of 2.50 USD per 1M input and 10 USD per 1M output tokens: 2,500
 * and 10,000 nano-USD a token.
 */
const SERVED_NANO_USD =
  BigInt(GATED_USAGE.prompt_tokens) * 2_500n +
  BigInt(GATED_USAGE.completion_tokens) * 10_000n;

interface Counter {
  readonly used: bigint;
  readonly reserved: bigint;
}

function openai(baseUrl: string, key: string): OpenAI {
  return new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: key, maxRetries: 0 });
}

function chat(client: OpenAI, model = 'gpt-4o') {
  return client.chat.completions.create({
    model,
    max_tokens: MAX_TOKENS,
    messages: [{ role: 'user', content: 'Hi' }],
  });
}

type Outcome = { ok: true } | { ok: false; error: unknown };

/**
 * Sends `n` requests at once; once every one is either refused or held
 * at the upstream, calls `held` (the admitted ones still hold their
 * reservations), then opens the gate. Resolves with each outcome.
 */
async function race(
  gated: GatedUpstream,
  n: number,
  send: (i: number) => Promise<unknown>,
  held: () => Promise<void> = () => Promise.resolve(),
) {
  let refused = 0;
  const outcomes = Array.from({ length: n }, (_, i): Promise<Outcome> =>
    send(i).then(
      () => ({ ok: true }),
      (error: unknown) => {
        refused += 1;
        return { ok: false, error };
      },
    ),
  );
  const deadline = Date.now() + 20_000;
  while (refused + gated.arrived < n) {
    if (Date.now() > deadline) throw new Error('requests never all decided');
    await sleep(5);
  }
  const decided = { refused, arrived: gated.arrived };
  try {
    await held();
  } finally {
    gated.open();
  }
  return { decided, outcomes: await Promise.all(outcomes) };
}

function apiError(outcome: Outcome | undefined) {
  if (!outcome || outcome.ok) throw new Error('expected a refusal');
  return outcome.error as InstanceType<typeof OpenAI.APIError>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly admitted?: boolean;
  readonly limits?: readonly string[];
}

/** Every line a logger writes, and each as a parsed record. */
function logCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return {
    logger: createLogger('info', stream),
    text: () => lines.join('\n'),
    records: () => lines.map((line) => JSON.parse(line) as LogRecord),
  };
}

describe.skipIf(!redisPresent)('limits counted on Redis', () => {
  const redis = createClient({ url: REDIS_URL });
  beforeAll(async () => {
    await redis.connect();
  });
  afterAll(async () => {
    await redis.close();
  });

  /** Every counter under a prefix, by its key without the prefix. */
  async function countersAt(prefix: string): Promise<Map<string, Counter>> {
    const counters = new Map<string, Counter>();
    for await (const keys of redis.scanIterator({
      MATCH: `${prefix}*`,
      COUNT: 1000,
    })) {
      for (const key of keys) {
        // Settlement markers are plain strings beside the counters.
        if (key.includes('settled:')) continue;
        const fields = await redis.hGetAll(key);
        // Without the tenant's hash tag, the key as admission names it.
        counters.set(key.slice(prefix.length).replace(/^\{[^}]*\}/, ''), {
          used: BigInt(fields['u'] ?? '0'),
          reserved: BigInt(fields['r'] ?? '0'),
        });
      }
    }
    return counters;
  }

  /** The one counter of a limit under a prefix. */
  async function counterOf(prefix: string, limitId: string) {
    const all = [...(await countersAt(prefix))].filter(([key]) =>
      key.startsWith(`l=${limitId}|`),
    );
    expect(all.map(([key]) => key)).toHaveLength(1);
    return all[0]?.[1];
  }

  /**
   * The counter once nothing is reserved in it, or as it stands after a
   * few seconds: settlement may land just after a client has its answer.
   */
  async function settledCounter(prefix: string, limitId: string) {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const counter = await counterOf(prefix, limitId);
      if (counter?.reserved === 0n || Date.now() > deadline) return counter;
      await sleep(10);
    }
  }

  describe('one gateway, 100 concurrent requests against a limit that fits 10', () => {
    let running: { t: TestGateway; gated: GatedUpstream }[] = [];
    afterEach(async () => {
      for (const { t, gated } of running) {
        gated.open();
        await t.close();
        await gated.close();
      }
      running = [];
    });

    async function gateway(limits: LimitInput[]) {
      const prefix = testPrefix();
      const gated = await startGatedUpstream();
      const t = await startTestGateway({
        config: {
          providers: {
            gate: {
              type: 'openai-compatible',
              baseUrl: gated.url,
              apiKey: 'k',
            },
          },
          models: {
            'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
          },
          limits,
          counters: { store: 'redis', url: REDIS_URL, prefix },
        },
      });
      running.push({ t, gated });
      return { t, gated, prefix };
    }

    it('admit 10 by request count, held in Redis until settled', async () => {
      const { t, gated, prefix } = await gateway([
        { id: 'ten-requests', requests: 10, per: 'month' },
      ]);
      let whileHeld: Counter | undefined;
      const { decided, outcomes } = await race(
        gated,
        100,
        () => chat(t.tenant.client),
        async () => {
          whileHeld = await counterOf(prefix, 'ten-requests');
        },
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      expect(whileHeld).toEqual({ used: 0n, reserved: 10n });
      expect(outcomes.filter((o) => o.ok)).toHaveLength(10);
      const refusal = apiError(outcomes.find((o) => !o.ok));
      expect(refusal.status).toBe(429);
      expect(refusal.code).toBe('rate_limit_exceeded');
      expect(await settledCounter(prefix, 'ten-requests')).toEqual({
        used: 10n,
        reserved: 0n,
      });
      expect(t.gateway.admission.inFlight).toBe(0);
    });

    it('admit 10 by worst-case tokens, then count what was served', async () => {
      // Each worst case is MAX_TOKENS plus the body's few hundred bytes:
      // ten fit in 10 × MAX_TOKENS + 5,000, eleven do not.
      const { t, gated, prefix } = await gateway([
        { id: 'tokens', tokens: 10 * MAX_TOKENS + 5_000, per: 'month' },
      ]);
      let whileHeld: Counter | undefined;
      const { decided } = await race(
        gated,
        100,
        () => chat(t.tenant.client),
        async () => {
          whileHeld = await counterOf(prefix, 'tokens');
        },
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      // Ten worst cases, each at least the output cap.
      expect(whileHeld?.used).toBe(0n);
      expect(whileHeld?.reserved).toBeGreaterThanOrEqual(
        10n * BigInt(MAX_TOKENS),
      );
      expect(whileHeld?.reserved).toBeLessThanOrEqual(
        10n * BigInt(MAX_TOKENS) + 5_000n,
      );
      expect(await settledCounter(prefix, 'tokens')).toEqual({
        used: 10n * SERVED_TOKENS,
        reserved: 0n,
      });
    });

    it('admit 10 by worst-case cost, then count what was charged', async () => {
      // gpt-4o output is 10 USD per 1M tokens: each worst case costs 1 USD
      // of output plus well under 0.005 USD of input, so ten fit in 10.05
      // USD and eleven do not.
      const { t, gated, prefix } = await gateway([
        { id: 'budget', budgetUsd: '10.05', per: 'month' },
      ]);
      const { decided, outcomes } = await race(gated, 100, () =>
        chat(t.tenant.client),
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      const refusal = apiError(outcomes.find((o) => !o.ok));
      expect(refusal.status).toBe(402);
      expect(refusal.code).toBe('budget_exceeded');
      expect(await settledCounter(prefix, 'budget')).toEqual({
        used: 10n * SERVED_NANO_USD,
        reserved: 0n,
      });
    });

    it('admit 10 in flight at once, and free the slots after', async () => {
      const { t, gated, prefix } = await gateway([
        { id: 'ten-at-once', concurrent: 10 },
      ]);
      let whileHeld: Counter | undefined;
      const first = await race(
        gated,
        100,
        () => chat(t.tenant.client),
        async () => {
          whileHeld = await counterOf(prefix, 'ten-at-once');
        },
      );
      expect(first.decided).toEqual({ refused: 90, arrived: 10 });
      expect(whileHeld).toEqual({ used: 0n, reserved: 10n });
      expect(await settledCounter(prefix, 'ten-at-once')).toEqual({
        used: 0n,
        reserved: 0n,
      });
      // The gate is open now: ten at a time go through again.
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () => chat(t.tenant.client)),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    });

    it('release the slots of streams the client cancels', async () => {
      const { t, gated, prefix } = await gateway([
        { id: 'three', concurrent: 3 },
      ]);
      const controllers = Array.from(
        { length: 3 },
        () => new AbortController(),
      );
      const streams = controllers.map((controller) =>
        t.tenant.client.chat.completions
          .create(
            {
              model: 'gpt-4o',
              max_tokens: 10,
              stream: true,
              messages: [{ role: 'user', content: 'Hi' }],
            },
            { signal: controller.signal },
          )
          .catch((error: unknown) => error),
      );
      const deadline = Date.now() + 5_000;
      while (gated.arrived < 3 && Date.now() < deadline) await sleep(5);
      expect(gated.arrived).toBe(3);
      expect(await counterOf(prefix, 'three')).toEqual({
        used: 0n,
        reserved: 3n,
      });
      const fourth = await chat(t.tenant.client).catch((e: unknown) => e);
      expect((fourth as { status?: number }).status).toBe(429);

      for (const controller of controllers) controller.abort();
      await Promise.all(streams);
      expect(await settledCounter(prefix, 'three')).toEqual({
        used: 0n,
        reserved: 0n,
      });
      expect(t.gateway.admission.inFlight).toBe(0);
      gated.open();
      const after = await Promise.allSettled(
        Array.from({ length: 3 }, () => chat(t.tenant.client)),
      );
      expect(after.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    });
  });

  describe('two gateway processes sharing one Redis', () => {
    const prefix = testPrefix();
    const cleanup: (() => Promise<void>)[] = [];
    let requestsGate: GatedUpstream;
    let budgetGate: GatedUpstream;
    let tokensGate: GatedUpstream;
    let inFlightGate: GatedUpstream;
    let replicas: [GatewayProcess, GatewayProcess];
    let key: string;

    beforeAll(async () => {
      const folder = await mkdtemp(join(tmpdir(), 'tollgate-replicas-'));
      cleanup.push(() => rm(folder, { recursive: true, force: true }));
      requestsGate = await startGatedUpstream();
      budgetGate = await startGatedUpstream();
      tokensGate = await startGatedUpstream();
      inFlightGate = await startGatedUpstream();
      cleanup.push(async () => {
        for (const gate of [
          requestsGate,
          budgetGate,
          tokensGate,
          inFlightGate,
        ]) {
          gate.open();
          await gate.close();
        }
      });

      // One tenant and key in the database both replicas serve from.
      const db = join(folder, 'tollgate.db');
      const store = new SqliteStore({ path: db });
      const tenant = await createTenant(store, { name: 'shared' });
      key = (await createApiKey(store, tenant, {})).key;
      await store.close();

      // Each limit has a model, and each model an upstream, of its own.
      const config: ConfigInput = {
        providers: {
          'requests-gate': {
            type: 'openai-compatible',
            baseUrl: requestsGate.url,
            apiKey: 'k',
          },
          'budget-gate': {
            type: 'openai-compatible',
            baseUrl: budgetGate.url,
            apiKey: 'k',
          },
          'tokens-gate': {
            type: 'openai-compatible',
            baseUrl: tokensGate.url,
            apiKey: 'k',
          },
          'in-flight-gate': {
            type: 'openai-compatible',
            baseUrl: inFlightGate.url,
            apiKey: 'k',
          },
        },
        models: {
          'gpt-4o': {
            deployments: [{ provider: 'requests-gate', model: 'gpt-4o' }],
          },
          'gpt-4o-budget': {
            deployments: [{ provider: 'budget-gate', model: 'gpt-4o' }],
          },
          'gpt-4o-tokens': {
            deployments: [{ provider: 'tokens-gate', model: 'gpt-4o' }],
          },
          'gpt-4o-in-flight': {
            deployments: [{ provider: 'in-flight-gate', model: 'gpt-4o' }],
          },
        },
        limits: [
          { id: 'ten-requests', requests: 10, per: 'month', model: 'gpt-4o' },
          {
            id: 'budget',
            budgetUsd: '10.05',
            per: 'month',
            model: 'gpt-4o-budget',
          },
          // As in the one-gateway case: ten worst cases fit, eleven do not.
          {
            id: 'tokens',
            tokens: 10 * MAX_TOKENS + 5_000,
            per: 'month',
            model: 'gpt-4o-tokens',
          },
          { id: 'in-flight', concurrent: 10, model: 'gpt-4o-in-flight' },
        ],
        counters: { store: 'redis', url: REDIS_URL, prefix },
        logging: { level: 'warn' },
      };
      const file = join(folder, 'tollgate.json');
      await writeFile(file, JSON.stringify(config));
      const started = await Promise.allSettled([
        spawnGateway({ config: file, db }),
        spawnGateway({ config: file, db }),
      ]);
      for (const result of started) {
        if (result.status !== 'fulfilled') continue;
        const replica = result.value;
        cleanup.push(async () => {
          replica.child.kill('SIGTERM');
          await replica.exited;
        });
      }
      const [a, b] = started;
      if (a?.status !== 'fulfilled') throw a?.reason;
      if (b?.status !== 'fulfilled') throw b?.reason;
      replicas = [a.value, b.value];
    });
    afterAll(async () => {
      for (const step of cleanup.reverse()) await step();
    });

    /** 100 requests at once, alternating between the two replicas. */
    function split(model: string) {
      const clients = replicas.map((r) => openai(r.url, key));
      return (i: number) => {
        const client = clients[i % 2];
        if (!client) throw new Error('no replica');
        return chat(client, model);
      };
    }

    it('admit 10 requests in all, not 10 each', async () => {
      const { decided, outcomes } = await race(
        requestsGate,
        100,
        split('gpt-4o'),
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      expect(outcomes.filter((o) => o.ok)).toHaveLength(10);
      // Each replica refused at least 40 of its 50: it counted the other's.
      for (const side of [0, 1]) {
        const refused = outcomes.filter((o, i) => i % 2 === side && !o.ok);
        expect(refused.length).toBeGreaterThanOrEqual(40);
        expect(apiError(refused[0]).code).toBe('rate_limit_exceeded');
      }
      expect(await settledCounter(prefix, 'ten-requests')).toEqual({
        used: 10n,
        reserved: 0n,
      });
    });

    it('admit 10 worst cases of a shared budget, and count their charge', async () => {
      const { decided, outcomes } = await race(
        budgetGate,
        100,
        split('gpt-4o-budget'),
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      const refusal = apiError(outcomes.find((o) => !o.ok));
      expect(refusal.status).toBe(402);
      expect(refusal.code).toBe('budget_exceeded');
      expect(await settledCounter(prefix, 'budget')).toEqual({
        used: 10n * SERVED_NANO_USD,
        reserved: 0n,
      });
    });

    it('admit 10 worst cases of a shared token limit, and count their use', async () => {
      const { decided, outcomes } = await race(
        tokensGate,
        100,
        split('gpt-4o-tokens'),
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      const refusal = apiError(outcomes.find((o) => !o.ok));
      expect(refusal.status).toBe(429);
      expect(refusal.code).toBe('rate_limit_exceeded');
      expect(await settledCounter(prefix, 'tokens')).toEqual({
        used: 10n * SERVED_TOKENS,
        reserved: 0n,
      });
    });

    it('admit 10 in flight across both, and free every slot after', async () => {
      const { decided } = await race(
        inFlightGate,
        100,
        split('gpt-4o-in-flight'),
      );
      expect(decided).toEqual({ refused: 90, arrived: 10 });
      const counter = await settledCounter(prefix, 'in-flight');
      expect(counter?.reserved).toBe(0n);
      // Nothing reserved anywhere under the prefix, in any of the limits.
      const reserved = [...(await countersAt(prefix)).values()].map(
        (c) => c.reserved,
      );
      expect(reserved).toEqual([0n, 0n, 0n, 0n]);
    });
  });

  describe('a Redis that goes away after start', () => {
    const PASSWORD = 'outage-s3cret';
    /** Nine worst cases of MAX_TOKENS fit, ten do not. */
    const TOKENS_FOR_NINE = 9 * MAX_TOKENS + 5_000;
    const cleanup: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const step of cleanup.reverse()) await step();
      cleanup.length = 0;
    });

    /** A Redis of the test's own, on `port`, that it can kill. */
    async function startRedis(port: number): Promise<ChildProcess> {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--requirepass',
          PASSWORD,
        ],
        { stdio: 'ignore' },
      );
      const exited = new Promise((resolve) => child.once('exit', resolve));
      cleanup.push(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      });
      const client = createClient({
        url: `redis://:${PASSWORD}@127.0.0.1:${port}`,
        socket: { reconnectStrategy: false },
      });
      client.on('error', () => undefined);
      const deadline = Date.now() + 5_000;
      for (;;) {
        try {
          await client.connect();
          await client.ping();
          await client.close();
          return child;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await sleep(20);
        }
      }
    }

    async function stopRedis(child: ChildProcess): Promise<void> {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }

    it('refuses limits that fail closed, serves those that fail open, and logs it', async () => {
      const port = await freePort();
      const server = await startRedis(port);
      const gated = await startGatedUpstream();
      gated.open();
      cleanup.push(() => gated.close());
      const folder = await mkdtemp(join(tmpdir(), 'tollgate-outage-'));
      cleanup.push(() => rm(folder, { recursive: true, force: true }));
      const logs = logCapture();
      const prefix = testPrefix();
      const gateway: Gateway = await startGateway({
        config: parseConfig(
          {
            server: { port: 0 },
            database: { path: join(folder, 'tollgate.db') },
            providers: {
              gate: {
                type: 'openai-compatible',
                baseUrl: gated.url,
                apiKey: 'k',
              },
            },
            models: {
              'gpt-4o': {
                deployments: [{ provider: 'gate', model: 'gpt-4o' }],
              },
              'gpt-4o-mini': {
                deployments: [{ provider: 'gate', model: 'gpt-4o-mini' }],
              },
            },
            limits: [
              {
                id: 'fails-closed',
                tokens: TOKENS_FOR_NINE,
                per: 'month',
                model: 'gpt-4o',
                onStoreDown: 'closed',
              },
              {
                id: 'fails-open',
                tokens: TOKENS_FOR_NINE,
                per: 'month',
                model: 'gpt-4o-mini',
                onStoreDown: 'open',
              },
            ],
            counters: {
              store: 'redis',
              url: `redis://:${PASSWORD}@127.0.0.1:${port}`,
              prefix,
            },
          },
          'the outage test config',
        ),
        logger: logs.logger,
      });
      cleanup.push(() => gateway.close());
      const tenant = await createTenant(gateway.store, { name: 'outage' });
      const client = openai(
        gateway.url,
        (await createApiKey(gateway.store, tenant, {})).key,
      );

      // Both are served while Redis answers.
      await chat(client, 'gpt-4o');
      await chat(client, 'gpt-4o-mini');

      await stopRedis(server);
      const started = Date.now();
      const closed = await chat(client, 'gpt-4o').catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(2_500);
      expect(closed).toBeInstanceOf(OpenAI.APIError);
      const refusal = closed as InstanceType<typeof OpenAI.APIError>;
      expect(refusal.status).toBe(503);
      expect(refusal.code).toBe('limits_unavailable');
      expect(refusal.message).toContain('fails-closed');
      expect(
        (await chat(client, 'gpt-4o-mini')).choices[0]?.message.content,
      ).toBe('ok');

      // Loudly: an error line for each, saying what was decided.
      await sleep(20);
      const down = logs
        .records()
        .filter((r) => r.level === 50 && r.msg.includes('COUNTER STORE DOWN'));
      expect(down.map((r) => r.admitted)).toEqual([false, true]);
      expect(down.map((r) => r.limits)).toEqual([
        ['fails-closed'],
        ['fails-open'],
      ]);
      expect(logs.text()).not.toContain(PASSWORD);

      // Back on the same port, empty (its counters and scripts forgotten):
      // the gateway reconnects and counts again.
      await startRedis(port);
      const deadline = Date.now() + 10_000;
      let admitted: unknown;
      do {
        await sleep(50);
        admitted = await chat(client, 'gpt-4o').catch((e: unknown) => e);
      } while (admitted instanceof OpenAI.APIError && Date.now() < deadline);
      expect(admitted).not.toBeInstanceOf(Error);
      await chat(client, 'gpt-4o-mini');

      // Nothing forgiven: each counter is rebuilt from the ledger, the
      // requests served uncounted during the outage included.
      const fresh = createClient({
        url: `redis://:${PASSWORD}@127.0.0.1:${port}`,
      });
      await fresh.connect();
      const counter = async (limitId: string) => {
        const keys = await fresh.keys(`${prefix}*l=${limitId}|*`);
        const all = await Promise.all(keys.map((k) => fresh.hGetAll(k)));
        return all.map((fields) => ({ u: fields['u'], r: fields['r'] }));
      };
      // gpt-4o: served before the outage and after it.
      const closedAfter = await counter('fails-closed');
      // gpt-4o-mini: before, during (uncounted) and after.
      const openAfter = await counter('fails-open');
      await fresh.close();
      expect(closedAfter).toEqual([{ u: String(2n * SERVED_TOKENS), r: '0' }]);
      expect(openAfter).toEqual([{ u: String(3n * SERVED_TOKENS), r: '0' }]);
    });
  });

  describe('a gateway set to count on Redis, with no Redis', () => {
    const SECRET = 's3cret';
    const URL_WITH_SECRET = `redis://:${SECRET}@127.0.0.1:1`;
    /** Something to serve: a config needs a model. */
    const SERVED = {
      providers: { sim: { type: 'simulated' } },
      models: {
        'gpt-4o': { deployments: [{ provider: 'sim', model: 'gpt-4o' }] },
      },
    } as const;
    const folders: string[] = [];
    afterAll(async () => {
      for (const folder of folders) {
        await rm(folder, { recursive: true, force: true });
      }
    });

    async function folder() {
      const path = await mkdtemp(join(tmpdir(), 'tollgate-no-redis-'));
      folders.push(path);
      return path;
    }

    const config = (db: string) =>
      parseConfig(
        {
          server: { port: 0 },
          database: { path: db },
          logging: { level: 'silent' },
          ...SERVED,
          counters: { store: 'redis', url: URL_WITH_SECRET },
        },
        'the no-Redis test config',
      );

    it('refuses to start rather than count alone, naming no secret', async () => {
      const db = join(await folder(), 'tollgate.db');
      const refused = await startGateway({
        config: config(db),
        logger: createLogger('silent'),
      }).then(
        async (gateway) => {
          await gateway.close();
          return undefined;
        },
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(Error);
      const { message } = refused as Error;
      expect(message).toMatch(/refusing to start/);
      expect(message).toMatch(/counted by this process alone/);
      expect(message).toContain('127.0.0.1:1');
      expect(inspect(refused, { depth: 10 })).not.toContain(SECRET);
    });

    it('as a process, exits non-zero with that message', async () => {
      const dir = await folder();
      const file = join(dir, 'tollgate.json');
      await writeFile(
        file,
        JSON.stringify({
          ...SERVED,
          counters: { store: 'redis', url: URL_WITH_SECRET },
        }),
      );
      const failure = await spawnGateway({
        config: file,
        db: join(dir, 'tollgate.db'),
      }).then(
        async (replica) => {
          replica.child.kill('SIGTERM');
          await replica.exited;
          return undefined;
        },
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(Error);
      const { message } = failure as Error;
      expect(message).toMatch(/gateway exited \(1\) before listening/);
      expect(message).toMatch(/refusing to start/);
      expect(message).not.toContain(SECRET);
    });
  });
});
