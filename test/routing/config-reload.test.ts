/**
 * Reloading routes while the gateway runs (issue #5): a good config goes
 * in force whole, for the next request; a bad one is refused with the
 * reason and the old one stays; in-flight requests and live limit
 * counters are untouched.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { ConfigError, parseConfig } from '../../src/config/load-config.js';
import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../src/fakes/openai/openai-fake-server.js';
import { ConfigReloadError } from '../../src/gateway/config-reload.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { testPrices } from '../helpers/test-prices.js';

const ADMIN = 'reload-admin-token';

interface Setup {
  readonly gateway: Gateway;
  readonly a: OpenAIFake;
  readonly b: OpenAIFake;
  readonly client: OpenAI;
  readonly tenantId: string;
  /** The config input the gateway started with, to vary in a test. */
  readonly input: (models: ConfigInput['models'], extra?: object) => unknown;
}

let setup: Setup;
let folder: string;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-reload-'));
  const a = await startOpenAIFake();
  const b = await startOpenAIFake();
  const input = (models: ConfigInput['models'], extra: object = {}) => ({
    server: { port: 0 },
    database: { path: join(folder, 'tollgate.db') },
    logging: { level: 'silent' },
    providers: {
      a: { type: 'openai-compatible', baseUrl: a.url, apiKey: 'sk-a' },
      b: { type: 'openai-compatible', baseUrl: b.url, apiKey: 'sk-b' },
    },
    models,
    ...extra,
  });
  const config = parseConfig(
    input({
      chat: {
        deployments: [
          {
            id: 'chat-a',
            provider: 'a',
            model: 'model-a',
            prices: testPrices('1', '2'),
          },
        ],
      },
    }),
    'the test config',
  );
  const gateway = await startGateway({
    config,
    adminToken: ADMIN,
    logger: createLogger('silent'),
  });
  const tenant = await createTenant(gateway.store, { name: 'acme' });
  const { key } = await createApiKey(gateway.store, tenant, {});
  const client = new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: key,
    maxRetries: 0,
  });
  setup = { gateway, a, b, client, tenantId: tenant.id, input };
});

afterEach(async () => {
  await setup.gateway.close();
  await setup.a.close();
  await setup.b.close();
  await rm(folder, { recursive: true, force: true });
});

/** Sends one request; resolves with the gateway's id for it. */
async function ask(): Promise<string> {
  const { response } = await setup.client.chat.completions
    .create({ model: 'chat', messages: [{ role: 'user', content: 'hello' }] })
    .withResponse();
  return response.headers.get('x-request-id') ?? '';
}

const toB = (prices = testPrices('3', '4')): ConfigInput['models'] => ({
  chat: {
    deployments: [{ id: 'chat-b', provider: 'b', model: 'model-b', prices }],
  },
});

describe('config reload', () => {
  it('sends the next request to the new route, priced by the new book', async () => {
    setup.b.enqueue({
      kind: 'synthesize',
      usage: { input: 1_000, output: 500 },
    });
    const before = setup.gateway.priceBook.version;
    const outcome = await setup.gateway.reload(
      parseConfig(setup.input(toB()), 'reloaded'),
    );
    expect(outcome.priceBook).not.toBe(before);
    expect(outcome.needsRestart).toEqual([]);

    const id = await ask();
    expect(setup.a.requests).toHaveLength(0);
    expect(
      setup.b.requests.map((r) => (r.body as { model: string }).model),
    ).toEqual(['model-b']);
    const detail = await setup.gateway.store.findRequest(
      { allTenants: true },
      id,
    );
    // 1,000 input at $3/M + 500 output at $4/M = $0.003 + $0.002.
    expect(detail?.events[0]?.rating?.providerCost).toBe('0.005');
    expect(detail?.events[0]?.event.deploymentId).toBe('chat-b');
  });

  it('settles a request admitted before a reload at the book it was admitted under', async () => {
    // Held by the upstream until after the reload.
    setup.a.enqueue({
      kind: 'synthesize',
      usage: { input: 1_000, output: 500 },
      delivery: { latencyMs: 300 },
    });
    const inFlight = ask();
    await waitFor(() => setup.a.requests.length === 1);
    await setup.gateway.reload(
      parseConfig(
        setup.input({
          chat: {
            deployments: [
              {
                id: 'chat-a',
                provider: 'a',
                model: 'model-a',
                prices: testPrices('10', '20'),
              },
            ],
          },
        }),
        'reloaded',
      ),
    );
    const detail = await setup.gateway.store.findRequest(
      { allTenants: true },
      await inFlight,
    );
    // At the old $1/M and $2/M: 0.001 + 0.001.
    expect(detail?.events[0]?.rating?.providerCost).toBe('0.002');
  });

  it('refuses a route naming a provider this process does not run, keeping the old', async () => {
    const next = parseConfig(
      {
        ...(setup.input({
          chat: { deployments: [{ provider: 'c', model: 'model-c' }] },
        }) as Record<string, unknown>),
        providers: {
          ...(setup.input({}) as { providers: object }).providers,
          c: { type: 'openai-compatible', baseUrl: 'http://127.0.0.1:1/v1' },
        },
      },
      'reloaded',
    );
    await expect(setup.gateway.reload(next)).rejects.toThrow(ConfigReloadError);
    await expect(setup.gateway.reload(next)).rejects.toThrow(
      /provider "c" is new or changed; providers change only on restart/,
    );
    await ask();
    expect(setup.a.requests).toHaveLength(1);
  });

  it('refuses an invalid file through the admin API, with the reason, and keeps the old', async () => {
    // The admin API re-reads the source: point it at a bad document.
    const bad = (): Promise<never> =>
      Promise.reject(
        new ConfigError(
          'invalid configuration in tollgate.yaml: models.chat.flags.0.deployment: no deployment "nope" in this route',
        ),
      );
    await setup.gateway.close();
    const config = parseConfig(
      setup.input({
        chat: {
          deployments: [{ id: 'chat-a', provider: 'a', model: 'model-a' }],
        },
      }),
      'the test config',
    );
    const gateway = await startGateway({
      config,
      adminToken: ADMIN,
      logger: createLogger('silent'),
      reloadSource: bad,
    });
    setup = { ...setup, gateway };
    const response = await fetch(`${gateway.url}/admin/v1/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as {
      error: { code: string; message: string };
    };
    expect(body.error.code).toBe('invalid_config');
    expect(body.error.message).toMatch(
      /the one in force stays.*no deployment "nope"/,
    );
  });

  it('validates a whole config: a bad flag fails parsing with its path', () => {
    const result = () =>
      parseConfig(
        setup.input({
          chat: {
            deployments: [{ id: 'chat-a', provider: 'a', model: 'model-a' }],
            flags: [{ id: 'f', deployment: 'nope', percent: 10 }],
          },
        }),
        'reloaded',
      );
    expect(result).toThrow(ConfigError);
    expect(result).toThrow(/no deployment "nope" in this route/);
  });

  it('says which changed sections wait for a restart, and applies the rest', async () => {
    setup.b.enqueue({ kind: 'synthesize', usage: { input: 1, output: 1 } });
    const outcome = await setup.gateway.reload(
      parseConfig(
        setup.input(toB(), { logging: { level: 'debug' } }),
        'reloaded',
      ),
    );
    expect(outcome.needsRestart).toEqual(['logging']);
    await ask();
    expect(setup.b.requests).toHaveLength(1);
  });

  it('keeps live limit counters through a reload', async () => {
    const limit = { id: 'two-a-day', requests: 2, per: 'day' };
    await setup.gateway.reload(
      parseConfig(
        setup.input(
          {
            chat: {
              deployments: [
                {
                  id: 'chat-a',
                  provider: 'a',
                  model: 'model-a',
                  prices: testPrices('1', '2'),
                },
              ],
            },
          },
          { limits: [limit] },
        ),
        'with a limit',
      ),
    );
    await ask();
    // The same limit again, and a route change: the count stays at 1.
    await setup.gateway.reload(
      parseConfig(setup.input(toB(), { limits: [limit] }), 'reloaded'),
    );
    await ask();
    await expect(ask()).rejects.toMatchObject({ status: 429 });
  });

  it("counts a limit a reload added as the config's in the admin API", async () => {
    const route = {
      chat: {
        deployments: [{ id: 'chat-a', provider: 'a', model: 'model-a' }],
      },
    };
    const limit = { id: 'added', requests: 100, per: 'day' };
    await setup.gateway.reload(
      parseConfig(setup.input(route, { limits: [limit] }), 'with a limit'),
    );
    const admin = (method: string) =>
      fetch(
        `${setup.gateway.url}/admin/v1/limits${method === 'GET' ? '' : '/added'}`,
        {
          method,
          headers: { authorization: `Bearer ${ADMIN}` },
        },
      );
    const list = (await (await admin('GET')).json()) as {
      data: { id: string; source: string }[];
    };
    expect(list.data.map((l) => [l.id, l.source])).toEqual([
      ['added', 'config'],
    ]);
    const deleted = await admin('DELETE');
    expect(deleted.status).toBe(409);
    expect(
      ((await deleted.json()) as { error: { message: string } }).error.message,
    ).toBe('The limit "added" is defined in the config file; remove it there.');
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  const until = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
