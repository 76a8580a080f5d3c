/**
 * A restarted gateway counts, in a rolling window, what the ledger says
 * was spent in the span before it stopped: requests, and tokens weighed
 * by class from each request's usage as recorded (DESIGN.md, "Storage
 * and scale": losing a counter store never forgives spend).
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
  folder = await mkdtemp(join(tmpdir(), 'tollgate-rolling-rebuild-'));
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
          { id: 'three', requests: 3, per: { rolling: '1h' } },
          {
            id: 'tokens',
            tokens: TOKENS,
            tokenWeights: { output: 4 },
            per: { rolling: '24h' },
          },
        ],
      },
      'the rolling rebuild test config',
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

it('counts the last span’s requests and weighted tokens after a restart', async () => {
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
    // Two requests settled before the restart, each at its actual usage,
    // output weighing 4: 10 + 5 × 4 = 30 tokens each.
    const spent = GATED_USAGE.prompt_tokens + 4 * GATED_USAGE.completion_tokens;
    expect(spent).toBe(30);
    expect(remaining(baseline) - remaining(third)).toBe(2 * spent);
    expect(third.response.headers.get('x-ratelimit-remaining-requests')).toBe(
      '0',
    );
    // The fourth in the hour is one too many, restart or not; it may try
    // again when the first request's minute-wide bucket leaves the span,
    // within the hour and a minute.
    const fourth = await ask(after).catch((error: unknown) => error);
    expect((fourth as { status?: number }).status).toBe(429);
    const retryAfter = Number(
      (fourth as { headers?: Headers }).headers?.get('retry-after'),
    );
    expect(retryAfter).toBeGreaterThan(59 * 60);
    expect(retryAfter).toBeLessThanOrEqual(61 * 60);
  } finally {
    await again.close();
    await fresh.close();
  }
});
