/**
 * Weighted token limits: a tokens limit may count each token class at its
 * own weight. The worst case takes the input bound at the heaviest input
 * class plus the output cap at the output weight; a settlement counts the
 * actual classes at their weights; each count is rounded up to a whole
 * token once per request, in exact decimals.
 *
 * Expected counts are worked out by hand in the comments, in millionths
 * of a token where a weight has decimals, and checked through what the
 * limit leaves (the `x-ratelimit-remaining-tokens` header).
 */
import { describe, expect, it } from 'vitest';

import {
  Admission,
  AdmissionRefusal,
  type AdmissionRequest,
} from '../../src/admission/admission.js';
import { limitSchema, type LimitConfig } from '../../src/admission/limits.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { EMPTY_USAGE, type TokenCounts } from '../../src/metering/usage.js';
import { createLogger } from '../../src/observability/logger.js';
import type { LimitScopeRow, Store } from '../../src/storage/store.js';

const TENANT = { id: 'ten_w', name: 'w', timezone: 'UTC', createdAt: 0 };
const NOW = Date.UTC(2026, 4, 15, 12, 0, 0);
const MAX = 10_000;

/** The weights of the issue's example: cache reads cheap, output dear. */
const WEIGHTS = { input: 1, cacheRead: 0.1, cacheWrite: 1.25, output: 4 };

function weighted(
  tokenWeights: Record<string, number | string> = WEIGHTS,
  extra: Record<string, unknown> = {},
): LimitConfig {
  return limitSchema.parse({
    id: 'weighted',
    tokens: MAX,
    tokenWeights,
    per: 'month',
    ...extra,
  });
}

function start(limit: LimitConfig, ledger?: Store) {
  return new Admission(
    new MemoryCounterStore(() => NOW),
    [limit],
    createLogger('silent'),
    { now: () => NOW, ...(ledger && { ledger }) },
  );
}

function request(
  requestId: string,
  input: number,
  output: number,
): AdmissionRequest {
  return {
    requestId,
    tenant: TENANT,
    keyId: 'key_1',
    endUser: null,
    model: 'gpt-4o',
    worstInputTokens: input,
    worstOutputTokens: output,
    worstCost: null,
  };
}

function used(tokens: Partial<TokenCounts>) {
  return { tokens: { ...EMPTY_USAGE, ...tokens }, cost: null };
}

/** What the limit has left after admitting `worst` (1 input, 0 output). */
async function left(admission: Admission, id = 'probe'): Promise<number> {
  const headers = await admission.admit(request(id, 1, 0));
  return Number(headers['x-ratelimit-remaining-tokens']);
}

describe('a weighted tokens limit', () => {
  it('reserves the input bound at the heaviest input class', async () => {
    const admission = start(weighted());
    // 1,000 input at cacheWrite's 1.25 (the heaviest input class) plus
    // 500 output at 4: 1,250 + 2,000 = 3,250.
    const headers = await admission.admit(request('a', 1_000, 500));
    expect(headers['x-ratelimit-remaining-tokens']).toBe(String(MAX - 3_250));
  });

  it('settles each class at its weight, rounded up once', async () => {
    const admission = start(weighted());
    await admission.admit(request('a', 1_000, 500));
    await admission.settle(
      'a',
      used({
        inputTokens: 100,
        cacheReadTokens: 333,
        cacheWriteTokens: 7,
        outputTokens: 201,
      }),
    );
    // In millionths: 100 × 1,000,000 + 333 × 100,000 + 7 × 1,250,000 +
    // 201 × 4,000,000 = 946,050,000, so 946.05 tokens, counted as 947.
    // The probe's own worst case is 1 × 1.25 = 1.25, counted as 2.
    expect(await left(admission)).toBe(MAX - 947 - 2);
  });

  it('rounds the request’s sum, not each class', async () => {
    const admission = start(weighted({ cacheRead: '0.1', cacheWrite: 1.25 }));
    await admission.admit(request('a', 10, 0));
    // 5 × 0.1 + 2 × 1.25 = 0.5 + 2.5 = 3 exactly; each class rounded up
    // apart would make it 1 + 3 = 4.
    await admission.settle(
      'a',
      used({ cacheReadTokens: 5, cacheWriteTokens: 2 }),
    );
    expect(await left(admission)).toBe(MAX - 3 - 2);
  });

  it('counts in exact decimals, never in floats', async () => {
    // The premise: in JavaScript numbers 0.07 × 100 is not 7, and rounded
    // up it would count 8.
    expect(Math.ceil(0.07 * 100)).toBe(8);
    const admission = start(weighted({ input: 0.07, cacheRead: 0.07 }));
    await admission.admit(request('a', 100, 0));
    await admission.settle('a', used({ cacheReadTokens: 100 }));
    // 100 × 70,000 millionths = 7,000,000: 7 tokens. The probe reserves
    // its 1 input token at the heaviest input class: cacheWrite's 1.
    expect(await left(admission)).toBe(MAX - 7 - 1);
  });

  it('settles at or below its worst case whatever the input’s split', async () => {
    // Unlisted classes weigh 1; cacheWrite1h is the heaviest input class.
    const admission = start(weighted({ cacheWrite1h: 2 }));
    const headers = await admission.admit(request('a', 100, 10));
    // 100 × 2 + 10 × 1 = 210 reserved.
    expect(headers['x-ratelimit-remaining-tokens']).toBe(String(MAX - 210));
    // The dearest split the bound allows: every input token a 1 h write.
    await admission.settle(
      'a',
      used({ cacheWrite1hTokens: 100, outputTokens: 10 }),
    );
    // 210 used: exactly the reservation. The probe reserves 1 × 2.
    expect(await left(admission)).toBe(MAX - 210 - 2);
  });

  it('keeps the weighted worst case when usage cannot be known', async () => {
    const admission = start(weighted());
    await admission.admit(request('a', 1_000, 500));
    await admission.settle('a', 'worst');
    expect(await left(admission)).toBe(MAX - 3_250 - 2);
  });

  it('counts input plus output when no weights are given', async () => {
    const admission = start(
      limitSchema.parse({ id: 'plain', tokens: MAX, per: 'month' }),
    );
    const headers = await admission.admit(request('a', 1_000, 500));
    expect(headers['x-ratelimit-remaining-tokens']).toBe(String(MAX - 1_500));
    await admission.settle(
      'a',
      used({
        inputTokens: 3,
        cacheReadTokens: 40,
        cacheWriteTokens: 500,
        outputTokens: 7,
      }),
    );
    expect(await left(admission)).toBe(MAX - 550 - 1);
  });

  it('names weighted tokens in its refusals', async () => {
    const admission = start(weighted());
    // 2,000 × 1.25 + 1,000 × 4 = 6,500 fits once, not twice.
    await admission.admit(request('a', 2_000, 1_000));
    const refused = await admission
      .admit(request('b', 2_000, 1_000))
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AdmissionRefusal);
    expect((refused as AdmissionRefusal).message).toBe(
      "Rate limit 'weighted' reached: 10000 weighted tokens per month; " +
        '3500 left, and this request may use up to 6500 weighted tokens ' +
        '(its input bound plus its output cap: lower max_tokens to fit).',
    );
    expect((refused as AdmissionRefusal).headers).toMatchObject({
      'x-ratelimit-remaining-tokens': String(MAX - 6_500),
    });
    // 8,000 × 1.25 = 10,000 plus 1 × 4: more than the whole limit.
    const never = await admission
      .admit(request('c', 8_000, 1))
      .catch((e: unknown) => e);
    expect((never as AdmissionRefusal).retryAfterSeconds).toBeNull();
    expect((never as AdmissionRefusal).message).toContain(
      '(10004 weighted tokens) is larger than the whole of the limit',
    );
  });

  it('is rebuilt from the ledger at the same weights', async () => {
    const row = (over: Partial<LimitScopeRow>): LimitScopeRow => ({
      requestId: 'r',
      pending: false,
      servedAt: NOW - 60_000,
      tokens: EMPTY_USAGE,
      reservedInputTokens: 0,
      reservedOutputTokens: 0,
      charges: [],
      reservedCost: null,
      ...over,
    });
    const rows = [
      // Settled: 10 + 333 × 0.1 + 7 × 1.25 + 1 × 4 = 56.05, counted 57.
      row({
        requestId: 'settled',
        tokens: {
          ...EMPTY_USAGE,
          inputTokens: 10,
          cacheReadTokens: 333,
          cacheWriteTokens: 7,
          outputTokens: 1,
        },
      }),
      // Still open: its worst case, 300 × 1.25 + 20 × 4 = 455.
      row({
        requestId: 'open',
        pending: true,
        reservedInputTokens: 300,
        reservedOutputTokens: 20,
      }),
    ];
    const ledger: Pick<Store, 'limitScopeUsage'> = {
      limitScopeUsage: () => Promise.resolve(rows),
    };
    const admission = start(weighted(), ledger as Store);
    expect(await left(admission)).toBe(MAX - 57 - 455 - 2);
  });
});

describe('a limit’s config', () => {
  const problems = (input: Record<string, unknown>) => {
    const parsed = limitSchema.safeParse({ id: 'l', ...input });
    return parsed.success
      ? []
      : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('takes rolling spans of whole minutes, hours or days up to 31d', () => {
    for (const rolling of ['1m', '30m', '1h', '24h', '7d', '31d', '44640m']) {
      expect(problems({ tokens: 5, per: { rolling } })).toEqual([]);
    }
    const message =
      'per.rolling: a span of whole minutes, hours or days, up to 31d: ' +
      'e.g. "30m", "24h", "7d"';
    for (const rolling of ['30s', '0m', '1.5h', '32d', '44641m', '1w', '']) {
      expect(problems({ tokens: 5, per: { rolling } })).toEqual([message]);
    }
    expect(
      problems({ tokens: 5, per: { rolling: '1h', align: 'hour' } }),
    ).toEqual(['per: Unrecognized key: "align"']);
    expect(problems({ tokens: 5, per: 'fortnight' })).toEqual([
      "per: one of minute, hour, day, week, month, or { rolling: '24h' }",
    ]);
  });

  it('refuses thresholds on a rolling window', () => {
    const message =
      'a rolling window has no period for a threshold to fire once in; ' +
      'use a clock or calendar window (minute, hour, day, week or ' +
      'month) for webhooks';
    expect(
      problems({ budgetUsd: '5', per: { rolling: '24h' }, thresholds: [80] }),
    ).toEqual([`thresholds: ${message}`]);
    expect(
      problems({ budgetUsd: '5', per: { rolling: '24h' }, onExceed: 'notify' }),
    ).toEqual([`onExceed: ${message}`]);
    expect(
      problems({ budgetUsd: '5', per: { rolling: '24h' }, onExceed: 'allow' }),
    ).toEqual([]);
  });

  it('takes weights of up to six decimals from 0 to 1000', () => {
    expect(
      problems({
        tokens: 5,
        per: 'day',
        tokenWeights: {
          input: 0,
          cacheRead: '0.000001',
          cacheWrite: 1.25,
          cacheWrite1h: '1000',
          output: 4,
        },
      }),
    ).toEqual([]);
    const message =
      'a weight from 0 to 1000 with at most six decimals, e.g. 0.1 or "1.25"';
    for (const weight of [
      -1,
      1000.5,
      '1e-7',
      0.0000001,
      '0.1234567',
      '01',
      'x',
    ]) {
      expect(
        problems({ tokens: 5, per: 'day', tokenWeights: { output: weight } }),
      ).toEqual([`tokenWeights.output: ${message}`]);
    }
  });

  it('refuses weights that name no class, weigh nothing, or limit no tokens', () => {
    expect(
      problems({ tokens: 5, per: 'day', tokenWeights: { reasoning: 1 } }),
    ).toEqual(['tokenWeights: Unrecognized key: "reasoning"']);
    expect(
      problems({ requests: 5, per: 'day', tokenWeights: { output: 2 } }),
    ).toEqual(['tokenWeights: only a tokens limit weighs token classes']);
    expect(
      problems({
        tokens: 5,
        per: 'day',
        tokenWeights: {
          input: 0,
          cacheRead: 0,
          cacheWrite: '0',
          cacheWrite1h: 0,
          output: '0.0',
        },
      }),
    ).toEqual([
      'tokenWeights: every token class weighs 0: the limit would count nothing',
    ]);
  });
});
