/**
 * Routing's edge cases, from a review that tried to break it (issue #5):
 * reservations of n > 1 on mixed routes, clients that leave during a
 * backoff, store failures while recording an attempt, reloads that fail
 * part-way, cheapest routing under a route price, provider refusals,
 * deadlines after an answer began, tenant views. Each was a reproduction
 * first; the letters are the review's.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import {
  startAnthropicFake,
  type AnthropicFake,
} from '../../src/fakes/anthropic/anthropic-fake-server.js';
import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../src/fakes/openai/openai-fake-server.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';

const ADMIN = 'break-admin';

function prices(input: string, output: string) {
  return [{ effectiveFrom: '2020-01-01', input, output, source: 'break' }];
}

interface BreakTenant {
  readonly id: string;
  readonly name: string;
  readonly key: string;
  readonly openai: OpenAI;
}

interface BreakSetup {
  readonly gateway: Gateway;
  readonly primary: OpenAIFake;
  readonly secondary: OpenAIFake;
  readonly anthropic: AnthropicFake;
  readonly folder: string;
  readonly tenant: BreakTenant;
  readonly input: (extra: Partial<ConfigInput>) => unknown;
  addTenant(name: string): Promise<BreakTenant>;
  close(): Promise<void>;
}

async function startBreak(
  extra: Partial<ConfigInput>,
  options: { headersTimeoutMs?: number; graceMs?: number } = {},
): Promise<BreakSetup> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-break-'));
  const [primary, secondary, anthropic] = await Promise.all([
    startOpenAIFake(),
    startOpenAIFake(),
    startAnthropicFake(),
  ]);
  const t = {
    headersTimeoutMs: options.headersTimeoutMs ?? 5_000,
    bodyTimeoutMs: 5_000,
  };
  const input = (more: Partial<ConfigInput>) => ({
    server: { port: 0, shutdownGraceMs: options.graceMs ?? 2_000 },
    database: { path: join(folder, 'tollgate.db') },
    logging: { level: 'silent' },
    providers: {
      primary: {
        type: 'openai-compatible',
        baseUrl: primary.url,
        apiKey: 'sk-p',
        ...t,
      },
      secondary: {
        type: 'openai-compatible',
        baseUrl: secondary.url,
        apiKey: 'sk-s',
        ...t,
      },
      anthropic: {
        type: 'anthropic',
        baseUrl: anthropic.url,
        apiKey: 'sk-a',
        ...t,
      },
    },
    ...more,
  });
  const config = parseConfig(input(extra), 'break config');
  const gateway = await startGateway({
    config,
    adminToken: ADMIN,
    logger: createLogger('silent'),
  });
  const addTenant = async (name: string): Promise<BreakTenant> => {
    const tenant = await createTenant(gateway.store, { name });
    const { key } = await createApiKey(gateway.store, tenant, {});
    return {
      id: tenant.id,
      name,
      key,
      openai: new OpenAI({
        baseURL: `${gateway.url}/v1`,
        apiKey: key,
        maxRetries: 0,
      }),
    };
  };
  return {
    gateway,
    primary,
    secondary,
    anthropic,
    folder,
    input,
    tenant: await addTenant('acme'),
    addTenant,
    async close() {
      await gateway.close();
      await Promise.all([
        primary.close(),
        secondary.close(),
        anthropic.close(),
      ]);
      await rm(folder, { recursive: true, force: true });
    },
  };
}

let s: BreakSetup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const HELLO = [{ role: 'user' as const, content: 'Say hello.' }];
const SERVER_ERROR = {
  kind: 'error',
  status: 500,
  type: 'server_error',
  message: 'boom',
} as const;

async function detail(id: string | null) {
  const d = await s!.gateway.store.findRequest({ allTenants: true }, id ?? '');
  if (!d) throw new Error(`no request ${id}`);
  return d;
}

describe('A: reservation of n > 1 on a mixed-API route', () => {
  it('reserves n × max_tokens like a pure OpenAI route does', async () => {
    s = await startBreak({
      models: {
        pure: {
          deployments: [
            {
              id: 'pure/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
          ],
        },
        mixed: {
          deployments: [
            {
              id: 'mixed/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'mixed/a',
              provider: 'anthropic',
              model: 'claude-sonnet-4-5-20250929',
              prices: prices('1', '1'),
            },
          ],
        },
      },
    });
    const ask = async (model: string) => {
      const { response } = await s!.tenant.openai.chat.completions
        .create({ model, messages: HELLO, n: 3, max_tokens: 100 })
        .withResponse();
      return response.headers.get('x-request-id');
    };
    const pure = await detail(await ask('pure'));
    const mixed = await detail(await ask('mixed'));
    // What the primary was sent in both cases:
    const sent = s.primary.requests.map((r) => (r.body as { n?: number }).n);
    expect(sent).toEqual([3, 3]);
    expect(pure.request.reservedOutputTokens).toBe(300);
    expect(mixed.request.reservedOutputTokens).toBe(300);
  });
});

describe('B: a non-streaming client that leaves during a retry backoff', () => {
  it('makes no further upstream attempt once the client is gone', async () => {
    s = await startBreak({
      models: {
        slow: {
          deployments: [
            {
              id: 'slow/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'slow/s',
              provider: 'secondary',
              model: 'gpt-4o-mini',
              prices: prices('1', '1'),
            },
          ],
          circuitBreaker: false,
          retry: { retries: 1, initialBackoffMs: 1500, maxBackoffMs: 1500 },
        },
      },
    });
    s.primary.enqueue(SERVER_ERROR);
    const abort = new AbortController();
    const call = s.tenant.openai.chat.completions
      .create({ model: 'slow', messages: HELLO }, { signal: abort.signal })
      .catch((e: unknown) => e);
    // Gone as soon as the first attempt is made, before its backoff ends:
    // a jittered backoff can be far under 1.5 s, so no fixed sleep is sure
    // to fall inside it.
    while (s.primary.requests.length === 0) await sleep(2);
    abort.abort();
    await call;
    await sleep(3000);
    // No retry for a client that is gone; the request is settled.
    expect(await s.gateway.store.listOpenRequests()).toHaveLength(0);
    expect({
      primary: s.primary.requests.length,
      secondary: s.secondary.requests.length,
    }).toEqual({ primary: 1, secondary: 0 });
  }, 10_000);
});

describe('C: a tenant reading its request', () => {
  it('does not see the fallbacks it is not billed for', async () => {
    s = await startBreak({
      models: {
        cf: {
          deployments: [
            {
              id: 'cf/internal-primary',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'cf/internal-secondary',
              provider: 'secondary',
              model: 'gpt-4o-mini',
              prices: prices('1', '1'),
            },
          ],
          circuitBreaker: false,
        },
      },
    });
    s.primary.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 5 },
      finishReason: 'content_filter',
    });
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 'cf', messages: HELLO })
      .withResponse();
    const id = response.headers.get('x-request-id');
    const res = await fetch(`${s.gateway.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${s.tenant.key}` },
    });
    const body = (await res.json()) as {
      attempts: { deployment: string; served: boolean }[];
    };
    // README: "the retries and fallbacks the providers billed, which
    // tenants neither see nor pay".
    expect(body.attempts.filter((a) => !a.served)).toEqual([]);
  });
});

describe('D: a store write failing at beginAttempt on the chat path', () => {
  it('still settles the request and frees its concurrency slot', async () => {
    s = await startBreak({
      models: {
        pair: {
          deployments: [
            {
              id: 'pair/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'pair/s',
              provider: 'secondary',
              model: 'gpt-4o-mini',
              prices: prices('1', '1'),
            },
          ],
          circuitBreaker: false,
        },
      },
      limits: [{ id: 'one-at-a-time', concurrent: 1 }],
    });
    const store = s.gateway.store as unknown as {
      beginAttempt: (...a: unknown[]) => Promise<void>;
    };
    const real = store.beginAttempt.bind(store);
    let fail = true;
    store.beginAttempt = (...a: unknown[]) =>
      fail
        ? Promise.reject(new Error('SQLITE_IOERR: disk I/O error'))
        : real(...a);
    s.primary.enqueue(SERVER_ERROR);
    const first = await s.tenant.openai.chat.completions
      .create({ model: 'pair', messages: HELLO })
      .withResponse()
      .catch((e: { status?: number; code?: string }) => e);
    fail = false;
    expect(first).toMatchObject({ status: 503, code: 'ledger_unavailable' });
    // The store is healthy again: the next request must be admitted.
    const second = await s.tenant.openai.chat.completions
      .create({ model: 'pair', messages: HELLO })
      .then(
        () => 'ok',
        (e: { status?: number; code?: string }) => `${e.status} ${e.code}`,
      );
    expect(second).toBe('ok');
  });
});

describe('E: a reload whose limits cannot be read', () => {
  it('is applied whole or not at all', async () => {
    const route = (id: string, provider: string) => ({
      deployments: [
        { id, provider, model: 'gpt-4o', prices: prices('1', '1') },
      ],
    });
    s = await startBreak({ models: { chat: route('chat/p', 'primary') } });
    const store = s.gateway.store as unknown as {
      listLimits: () => Promise<unknown[]>;
    };
    const real = store.listLimits.bind(store);
    store.listLimits = () => Promise.reject(new Error('SQLITE_BUSY'));
    const next = parseConfig(
      s.input({ models: { chat: route('chat/s', 'secondary') } }),
      'next',
    );
    const outcome = await s.gateway.reload(next).then(
      () => 'applied',
      (e: Error) => `refused: ${e.message}`,
    );
    store.listLimits = real;
    await s.tenant.openai.chat.completions.create({
      model: 'chat',
      messages: HELLO,
    });
    const servedBy = s.secondary.requests.length === 1 ? 'new' : 'old';
    expect([
      ['applied', 'new'],
      ['refused', 'old'],
    ]).toContainEqual([outcome.split(':')[0], servedBy]);
  });
});

describe('G: shutdown during a retry backoff', () => {
  for (const stream of [false, true]) {
    it(`settles once, and close() returns (${stream ? 'streamed' : 'not streamed'})`, async () => {
      s = await startBreak(
        {
          models: {
            slow: {
              deployments: [
                {
                  id: 'slow/p',
                  provider: 'primary',
                  model: 'gpt-4o',
                  prices: prices('1', '1'),
                },
              ],
              circuitBreaker: false,
              retry: { retries: 1, initialBackoffMs: 5000, maxBackoffMs: 5000 },
            },
          },
        },
        { graceMs: 300 },
      );
      s.primary.enqueue(SERVER_ERROR);
      const started = Date.now();
      const call = (
        stream
          ? s.tenant.openai.chat.completions
              .create({ model: 'slow', messages: HELLO, stream: true })
              .then(async (st) => {
                for await (const _ of st) void _;
                return 'ok';
              })
          : s.tenant.openai.chat.completions
              .create({ model: 'slow', messages: HELLO })
              .then(() => 'ok')
      ).catch(
        (e: { status?: number; code?: string }) => `${e.status} ${e.code}`,
      );
      await sleep(200);
      await s.gateway.close();
      const closedAfter = Date.now() - started;
      await call;
      const ledger = new SqliteStore({ path: join(s.folder, 'tollgate.db') });
      const rows = await ledger.listOpenRequests();
      await ledger.close();
      expect(rows).toHaveLength(0);
      expect(closedAfter).toBeLessThan(2000);
      // close() again is a no-op in afterEach
    }, 10_000);
  }
});

describe('H: a streaming client that leaves during a retry backoff', () => {
  it('makes no further upstream attempt and is settled', async () => {
    s = await startBreak({
      models: {
        slow: {
          deployments: [
            {
              id: 'slow/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
          ],
          circuitBreaker: false,
          retry: { retries: 1, initialBackoffMs: 1500, maxBackoffMs: 1500 },
        },
      },
    });
    s.primary.enqueue(SERVER_ERROR);
    const abort = new AbortController();
    const call = s.tenant.openai.chat.completions
      .create(
        { model: 'slow', messages: HELLO, stream: true },
        { signal: abort.signal },
      )
      .catch((e: unknown) => e);
    await sleep(300);
    abort.abort();
    await call;
    await sleep(2500);
    expect(s.primary.requests.length).toBe(1);
    expect(await s.gateway.store.listOpenRequests()).toHaveLength(0);
  }, 10_000);
});

describe('K: cheapest routing', () => {
  const dear = {
    id: 'c/dear',
    provider: 'primary',
    model: 'gpt-4o',
    prices: prices('10', '40'),
  };
  const cheap = {
    id: 'c/cheap',
    provider: 'secondary',
    model: 'gpt-4o-mini',
    prices: prices('0.1', '0.4'),
  };
  it('picks the cheaper deployment when the route sets the tenant price', async () => {
    s = await startBreak({
      models: {
        c: {
          strategy: 'cheapest',
          tenantPrice: 'route',
          prices: prices('5', '20'),
          deployments: [dear, cheap],
        },
      },
    });
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 'c', messages: HELLO })
      .withResponse();
    const d = await detail(response.headers.get('x-request-id'));
    expect(d.request.deploymentId).toBe('c/cheap');
  });
  it('picks the cheaper deployment for embeddings', async () => {
    s = await startBreak({
      models: { c: { strategy: 'cheapest', deployments: [dear, cheap] } },
    });
    const { response } = await s.tenant.openai.embeddings
      .create({ model: 'c', input: 'hello' })
      .withResponse();
    const d = await detail(response.headers.get('x-request-id'));
    expect(d.request.deploymentId).toBe('c/cheap');
  });
});

describe('L: reloading prices that overlap', () => {
  it('is refused as 400 invalid_config with the reason', async () => {
    const route = (p: ReturnType<typeof prices>) => ({
      chat: {
        deployments: [
          { id: 'chat/p', provider: 'primary', model: 'gpt-4o', prices: p },
        ],
      },
    });
    s = await startBreak({ models: route(prices('1', '1')) });
    const overlapping = [
      ...prices('1', '1'),
      { effectiveFrom: '2020-01-01', input: '2', output: '2', source: 'dup' },
    ];
    const next = parseConfig(s.input({ models: route(overlapping) }), 'next');
    const direct = await s.gateway.reload(next).then(
      () => 'applied',
      (e: Error) => `${e.name}: ${e.message}`,
    );
    expect(direct).toMatch(/^ConfigReloadError/);
  });
});

describe('M: a deployment whose provider key was revoked (401) or model is gone (404)', () => {
  for (const status of [401, 404]) {
    it(`falls back to the next deployment when asked to (${status})`, async () => {
      s = await startBreak({
        models: {
          pair: {
            deployments: [
              {
                id: 'pair/p',
                provider: 'primary',
                model: 'gpt-4o',
                prices: prices('1', '1'),
              },
              {
                id: 'pair/s',
                provider: 'secondary',
                model: 'gpt-4o-mini',
                prices: prices('1', '1'),
              },
            ],
            // Not by default: a revoked key or a removed model is an
            // operator's problem that a fallback could hide.
            retry: {
              fallbackOn: ['server_error', 'upstream_auth', 'not_found'],
            },
          },
        },
      });
      s.primary.enqueue({
        kind: 'error',
        status,
        type:
          status === 401 ? 'invalid_request_error' : 'invalid_request_error',
        code: status === 401 ? 'invalid_api_key' : 'model_not_found',
        message:
          status === 401
            ? 'Incorrect API key provided'
            : 'The model does not exist',
      });
      const outcome = await s.tenant.openai.chat.completions
        .create({ model: 'pair', messages: HELLO })
        .then(
          () => 'ok',
          (e: { status?: number; code?: string }) => `${e.status} ${e.code}`,
        );
      expect(outcome).toBe('ok');
      expect(s.secondary.requests).toHaveLength(1);
    });
  }
});

describe('N: tenant isolation of GET /v1/requests/{id}', () => {
  it("is 404 for another tenant's request, and hides routing", async () => {
    s = await startBreak({
      models: {
        chat: {
          deployments: [
            {
              id: 'chat/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
          ],
        },
      },
    });
    const other = await s.addTenant('globex');
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 'chat', messages: HELLO })
      .withResponse();
    const id = response.headers.get('x-request-id');
    const get = (key: string) =>
      fetch(`${s!.gateway.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${key}` },
      });
    expect((await get(other.key)).status).toBe(404);
    const own = (await (await get(s.tenant.key)).json()) as Record<
      string,
      unknown
    >;
    expect(own['routing']).toBeUndefined();
    expect(JSON.stringify(own)).not.toContain('provider_cost');
  });
});

describe('O: attemptTimeoutMs once the answer has begun', () => {
  const route = {
    deployments: [
      {
        id: 't/p',
        provider: 'primary',
        model: 'gpt-4o',
        prices: prices('1', '1'),
      },
      {
        id: 't/s',
        provider: 'secondary',
        model: 'gpt-4o-mini',
        prices: prices('1', '1'),
      },
    ],
    circuitBreaker: false as const,
    retry: { attemptTimeoutMs: 300 },
  };
  it('does not cut a stream that began in time', async () => {
    s = await startBreak({ models: { t: route } });
    s.primary.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 20 },
      delivery: { latencyMs: 50, chunkIntervalMs: 60 },
    });
    const st = await s.tenant.openai.chat.completions.create({
      model: 't',
      messages: HELLO,
      stream: true,
    });
    let text = '';
    for await (const c of st) text += c.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(s.secondary.requests.length).toBe(0);
  });
  it('non-streamed: a 200 still arriving at the deadline falls back, and is kept as a provider cost', async () => {
    s = await startBreak({ models: { t: route } });
    s.primary.enqueue({
      kind: 'synthesize',
      usage: { input: 10, output: 20 },
      delivery: { latencyMs: 50, chunkBytes: 40, chunkIntervalMs: 40 },
    });
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 't', messages: HELLO })
      .withResponse();
    const d = await detail(response.headers.get('x-request-id'));
    expect(s.secondary.requests.length).toBe(1);
    const [cut, served] = d.events;
    // Attempt 1 answered 200 and was cut at the deadline: the provider
    // may bill it, so it is estimated, unserved, charged to nobody.
    expect(cut?.event).toMatchObject({
      attempt: 1,
      deploymentId: 't/p',
      served: false,
      estimated: true,
    });
    expect(cut?.rating?.tenantCharge).toBe('0');
    expect(cut?.rating?.providerCost).not.toBe('0');
    expect(served?.event).toMatchObject({ attempt: 2, served: true });
  });
});

describe('Q (expected to hold): deadlines', () => {
  const route = (retry: object) => ({
    deployments: [
      {
        id: 'q/p',
        provider: 'primary',
        model: 'gpt-4o',
        prices: prices('1', '1'),
      },
      {
        id: 'q/s',
        provider: 'secondary',
        model: 'gpt-4o-mini',
        prices: prices('1', '1'),
      },
    ],
    circuitBreaker: false as const,
    retry,
  });
  it('a provider headersTimeoutMs below attemptTimeoutMs falls back as a timeout', async () => {
    s = await startBreak(
      { models: { q: route({ attemptTimeoutMs: 5000 }) } },
      { headersTimeoutMs: 200 },
    );
    s.primary.enqueue({
      kind: 'synthesize',
      usage: { input: 1, output: 1 },
      delivery: { latencyMs: 1000 },
    });
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 'q', messages: HELLO })
      .withResponse();
    const d = await detail(response.headers.get('x-request-id'));
    const attempts = JSON.parse(d.request.routing ?? '{}').attempts as {
      deployment: string;
      reason: string | null;
    }[];
    expect(attempts.map((a) => [a.deployment, a.reason])).toEqual([
      ['q/p', 'timeout'],
      ['q/s', null],
    ]);
  });
  it('timeoutMs below attemptTimeoutMs ends the request at timeoutMs', async () => {
    s = await startBreak({
      models: { q: route({ attemptTimeoutMs: 5000, timeoutMs: 300 }) },
    });
    s.primary.enqueue({
      kind: 'synthesize',
      usage: { input: 1, output: 1 },
      delivery: { latencyMs: 2000 },
    });
    const t0 = Date.now();
    const outcome = await s.tenant.openai.chat.completions
      .create({ model: 'q', messages: HELLO })
      .then(
        () => 'ok',
        (e: { status?: number; code?: string }) => `${e.status} ${e.code}`,
      );
    expect(outcome).toBe('504 upstream_timeout');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(s.secondary.requests.length).toBe(0);
    s.primary.clear();
  });
});

describe('R: a store write failing at beginAttempt on the translating path', () => {
  it('does not charge the tenant for an answer it never got', async () => {
    s = await startBreak({
      models: {
        mixed: {
          deployments: [
            {
              id: 'mixed/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'mixed/a',
              provider: 'anthropic',
              model: 'claude-sonnet-4-5-20250929',
              prices: prices('1', '1'),
            },
          ],
          circuitBreaker: false,
        },
      },
    });
    const store = s.gateway.store as unknown as {
      beginAttempt: () => Promise<void>;
    };
    store.beginAttempt = () =>
      Promise.reject(new Error('SQLITE_IOERR: disk I/O error'));
    s.primary.enqueue(SERVER_ERROR);
    const err = (await s.tenant.openai.chat.completions
      .create({ model: 'mixed', messages: HELLO })
      .catch((e: unknown) => e)) as { status?: number; requestID?: string };
    const d = await detail(err.requestID ?? null);
    expect(
      d.events.filter((e) => e.event.served && e.rating?.tenantCharge !== '0'),
    ).toEqual([]);
  });
});

describe('S (expected to hold): the reservation covers the Anthropic default cap of a fallback', () => {
  it('reserves 4,096 output tokens when an Anthropic fallback would be sent that cap', async () => {
    s = await startBreak({
      metering: { defaultMaxOutputTokens: 1000 },
      models: {
        mixed: {
          deployments: [
            {
              id: 'mixed/p',
              provider: 'primary',
              model: 'gpt-4o',
              prices: prices('1', '1'),
            },
            {
              id: 'mixed/a',
              provider: 'anthropic',
              model: 'claude-sonnet-4-5-20250929',
              prices: prices('3', '15'),
            },
          ],
        },
      },
    });
    const { response } = await s.tenant.openai.chat.completions
      .create({ model: 'mixed', messages: HELLO })
      .withResponse();
    const d = await detail(response.headers.get('x-request-id'));
    expect(d.request.reservedOutputTokens).toBe(4096);
    // 4,096 × $15/M at least, from the Anthropic deployment's price:
    expect(Number(d.request.reservedCost)).toBeGreaterThanOrEqual(0.06144);
  });
});
