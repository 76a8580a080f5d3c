/**
 * With its primary down, a route must stop waiting on it once the
 * breaker opens (issue #5): from then on a request costs what the
 * fallback alone costs, to within 1 ms at the median, measured in the
 * same run against a route that has only the fallback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../src/fakes/openai/openai-fake-server.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';

const FAILURES = 3;
const ATTEMPT_TIMEOUT_MS = 150;

let folder: string;
let dead: OpenAIFake;
let alive: OpenAIFake;
let gateway: Gateway;
let client: OpenAI;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-breaker-'));
  // The primary accepts connections and never answers.
  dead = await startOpenAIFake({ delivery: { latencyMs: 60_000 } });
  alive = await startOpenAIFake();
  const config = parseConfig(
    {
      server: { port: 0 },
      database: { path: join(folder, 'tollgate.db'), synchronous: 'normal' },
      logging: { level: 'silent' },
      providers: {
        dead: { type: 'openai-compatible', baseUrl: dead.url, apiKey: 'sk' },
        alive: { type: 'openai-compatible', baseUrl: alive.url, apiKey: 'sk' },
      },
      models: {
        routed: {
          deployments: [
            { id: 'primary', provider: 'dead', model: 'gpt-4o' },
            { id: 'fallback', provider: 'alive', model: 'gpt-4o' },
          ],
          retry: { attemptTimeoutMs: ATTEMPT_TIMEOUT_MS },
          circuitBreaker: { failures: FAILURES, openMs: 600_000 },
        },
        'fallback-alone': {
          deployments: [{ id: 'alone', provider: 'alive', model: 'gpt-4o' }],
        },
      },
    },
    'the test config',
  );
  gateway = await startGateway({ config, logger: createLogger('silent') });
  const tenant = await createTenant(gateway.store, { name: 'acme' });
  const { key } = await createApiKey(gateway.store, tenant, {});
  client = new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: key,
    maxRetries: 0,
  });
});

afterAll(async () => {
  await gateway.close();
  await dead.close();
  await alive.close();
  await rm(folder, { recursive: true, force: true });
});

async function timed(model: string): Promise<number> {
  const started = performance.now();
  await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 4,
  });
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

describe('a route whose primary is down', () => {
  it('waits on it until the breaker opens, then not at all', async () => {
    // Until the breaker opens, each request waits out the attempt
    // timeout on the primary, then falls back.
    for (let i = 0; i < FAILURES; i++) {
      expect(await timed('routed')).toBeGreaterThanOrEqual(
        ATTEMPT_TIMEOUT_MS - 5,
      );
    }
    expect(gateway.router.health.breakerState('primary')).toBe('open');
    const primaryCalls = dead.requests.length;
    expect(primaryCalls).toBe(FAILURES);

    // Warm both paths, then interleave them so that both see the same
    // machine.
    for (let i = 0; i < 10; i++) {
      await timed('routed');
      await timed('fallback-alone');
    }
    const routed: number[] = [];
    const alone: number[] = [];
    for (let i = 0; i < 60; i++) {
      routed.push(await timed('routed'));
      alone.push(await timed('fallback-alone'));
    }
    // Nothing more went to the dead primary.
    expect(dead.requests.length).toBe(primaryCalls);
    expect(median(routed) - median(alone)).toBeLessThan(1);
  });
});
