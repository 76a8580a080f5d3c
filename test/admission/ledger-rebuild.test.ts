/**
 * Counters are a cache of the ledger: a restarted embedded gateway counts
 * what was spent in the window before it stopped, so a restart never
 * forgives spend (DESIGN.md, "Storage and scale").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import {
  GATED_USAGE,
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';

const TOKENS = 1_000_000;
let folder: string;
let upstream: GatedUpstream;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-rebuild-'));
  upstream = await startGatedUpstream();
  upstream.open();
});
afterAll(async () => {
  await upstream.close();
  await rm(folder, { recursive: true, force: true });
});

function start(db: string): Promise<Gateway> {
  return startGateway({
    config: parseConfig(
      {
        server: { port: 0 },
        database: { path: join(folder, db) },
        logging: { level: 'silent' },
        providers: {
          up: { type: 'openai-compatible', baseUrl: upstream.url, apiKey: 'k' },
        },
        models: {
          'gpt-4o': { deployments: [{ provider: 'up', model: 'gpt-4o' }] },
        },
        limits: [
          { id: 'three', requests: 3, per: 'month' },
          { id: 'tokens', tokens: TOKENS, per: 'month' },
        ],
      },
      'the rebuild test config',
    ),
    logger: createLogger('silent'),
  });
}

async function client(gateway: Gateway, tenant = 'acme') {
  const record =
    (await gateway.store.findTenant(tenant)) ??
    (await createTenant(gateway.store, { name: tenant }));
  const { key } = await createApiKey(gateway.store, record, {});
  return new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: key,
    maxRetries: 0,
  });
}

function ask(openai: OpenAI) {
  return openai.chat.completions
    .create({
      model: 'gpt-4o',
      max_tokens: 1_000,
      messages: [{ role: 'user', content: 'Hi' }],
    })
    .withResponse();
}

it('counts the window’s requests and tokens from before a restart', async () => {
  const first = await start('a.db');
  const before = await client(first);
  await ask(before);
  await ask(before);
  await first.close();

  const again = await start('a.db');
  const fresh = await start('b.db');
  try {
    const after = await client(again);
    // The same request on a gateway with an empty ledger: its remaining
    // tokens are the limit less this request's worst case alone.
    const baseline = await ask(await client(fresh));
    const third = await ask(after);
    const remaining = (r: { response: Response }) =>
      Number(r.response.headers.get('x-ratelimit-remaining-tokens'));
    // Two requests settled before the restart, each at its actual usage.
    const spent = GATED_USAGE.prompt_tokens + GATED_USAGE.completion_tokens;
    expect(remaining(baseline) - remaining(third)).toBe(2 * spent);
    expect(third.response.headers.get('x-ratelimit-remaining-requests')).toBe(
      '0',
    );
    // The fourth in the month is one too many, restart or not.
    const fourth = await ask(after).catch((error: unknown) => error);
    expect((fourth as { status?: number }).status).toBe(429);
  } finally {
    await again.close();
    await fresh.close();
  }
});
