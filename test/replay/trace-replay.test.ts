/**
 * The main job on real input: a slice of the Azure code trace replayed
 * through the gateway with the `openai` SDK, four tenants and three models,
 * at concurrency 64, half the requests streamed. Each tenant's metered
 * tokens must equal the trace's own sums, and its cost must equal
 * Σ tokens × price computed here from the CSV and the litellm catalog
 * file, with BigInt arithmetic that shares no code with the gateway.
 */
import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fetchTenantUsage } from '../../src/replay/tenant-usage.js';
import { runReplay } from '../../src/replay/run-replay.js';
import { readAzureTrace } from '../../src/replay/trace.js';
import { decimalToScaled, litellmPrices } from '../helpers/litellm-prices.js';
import { sharedDataPresent, sharedFile } from '../helpers/shared-data.js';
import {
  startTestGateway,
  type TestGateway,
  type TestTenant,
} from '../helpers/test-gateway.js';

/** Rows replayed in the regular suite; TOLLGATE_FULL_TRACE=1 runs all 8,819. */
const ROWS = process.env['TOLLGATE_FULL_TRACE']
  ? Number.POSITIVE_INFINITY
  : 1_500;
const TENANTS = 4;
/** Public alias → the catalog model its deployment is priced as. */
const MODELS = [
  ['gpt-4o', 'gpt-4o'],
  ['nova-lite', 'amazon.nova-lite-v1:0'],
  ['claude-sonnet-4-5', 'claude-sonnet-4-5-20250929'],
] as const;

describe.skipIf(!sharedDataPresent)('replaying the Azure code trace', () => {
  let t: TestGateway;
  let tenants: TestTenant[];
  beforeAll(async () => {
    t = await startTestGateway({ upstream: { tokensPerChunk: 64 } });
    tenants = [t.tenant];
    for (let i = 1; i < TENANTS; i++)
      tenants.push(await t.addTenant(`tenant-${i}`));
  });
  afterAll(async () => {
    await t.close();
  });

  it('meters each tenant the trace sums, at exact catalog cost', async () => {
    const path = sharedFile('traces/azure_llm_2023_code.csv');
    // The expectation, straight from the CSV text.
    const lines = readFileSync(path, 'utf8').trim().split('\n').slice(1);
    const expected = Array.from({ length: TENANTS }, () => ({
      requests: 0,
      input: 0,
      output: 0,
      cost: 0n,
    }));
    const prices = MODELS.map(([, priceAs]) => litellmPrices(priceAs));
    lines.slice(0, ROWS).forEach((line, i) => {
      const [, context, generated] = line.split(',');
      const tenant = expected[i % TENANTS]!;
      const price = prices[i % MODELS.length]!;
      tenant.requests += 1;
      tenant.input += Number(context);
      tenant.output += Number(generated);
      tenant.cost +=
        BigInt(context!) * price.input + BigInt(generated!) * price.output;
    });

    const rows = await readAzureTrace(path, ROWS);
    const from = Date.now() - 1_000;
    const results = await runReplay({
      gatewayUrl: t.url,
      tenants,
      models: MODELS.map(([alias]) => alias),
      rows,
      concurrency: 64,
      speed: 'max',
      stream: 'mixed',
    });
    expect(results.filter((r) => !r.completed)).toEqual([]);

    for (const [i, tenant] of tenants.entries()) {
      const metered = await fetchTenantUsage(
        t.url,
        tenant,
        from,
        Date.now() + 1_000,
      );
      const want = expected[i]!;
      expect(metered.requests).toBe(want.requests);
      expect(metered.estimatedRequests).toBe(0);
      expect(metered.inputTokens).toBe(want.input);
      expect(metered.outputTokens).toBe(want.output);
      expect(metered.cost).not.toBeNull();
      expect(decimalToScaled(metered.cost!)).toBe(want.cost);
    }
  }, 120_000);

  // The golden total in ../shared/data/README.md is for the whole trace on
  // one model; it is checked when the whole trace is replayed.
  it.runIf(ROWS === Number.POSITIVE_INFINITY)(
    'bills the whole trace on gpt-4o at the published golden total',
    async () => {
      const path = sharedFile('traces/azure_llm_2023_code.csv');
      const rows = await readAzureTrace(path);
      const fresh: TestTenant[] = [];
      for (let i = 0; i < TENANTS; i++)
        fresh.push(await t.addTenant(`golden-${i}`));
      const from = Date.now() - 1_000;
      const results = await runReplay({
        gatewayUrl: t.url,
        tenants: fresh,
        models: ['gpt-4o'],
        rows,
        concurrency: 64,
        speed: 'max',
        stream: 'mixed',
      });
      expect(results.filter((r) => !r.completed)).toEqual([]);
      let total = 0n;
      for (const tenant of fresh) {
        const metered = await fetchTenantUsage(
          t.url,
          tenant,
          from,
          Date.now() + 1_000,
        );
        total += decimalToScaled(metered.cost!);
      }
      // README, "Derived golden totals": azure code, gpt-4o, $47.6088950.
      expect(total).toBe(decimalToScaled('47.6088950'));
    },
    180_000,
  );
});
