/**
 * A budget's period is cut in the tenant's time zone: it rolls over at
 * the tenant's midnight, on a day a clock change makes 23 hours long as
 * on any other, and not a millisecond before.
 */
import { describe, expect, it } from 'vitest';

import { Admission, AdmissionRefusal } from '../../src/admission/admission.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { windowAt } from '../../src/admission/windows.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { parseDecimal } from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';

// 2026-03-08 is the day US clocks go forward: New York midnight is 05:00
// UTC (EST, -5) and the next midnight is 04:00 UTC (EDT, -4), 23 h later.
const NY_MARCH_8 = Date.UTC(2026, 2, 8, 5, 0, 0);
const NY_MARCH_9 = Date.UTC(2026, 2, 9, 4, 0, 0);
// 2026-11-01 clocks go back: midnight 04:00 UTC, next midnight 05:00 UTC.
const NY_NOV_1 = Date.UTC(2026, 10, 1, 4, 0, 0);
const NY_NOV_2 = Date.UTC(2026, 10, 2, 5, 0, 0);

describe('windows in the tenant’s time zone', () => {
  it('make the spring-forward day 23 hours long', () => {
    const noon = Date.UTC(2026, 2, 8, 16, 0, 0);
    expect(windowAt('day', noon, 'America/New_York')).toMatchObject({
      start: NY_MARCH_8,
      end: NY_MARCH_9,
    });
    expect(NY_MARCH_9 - NY_MARCH_8).toBe(23 * 3_600_000);
  });

  it('make the fall-back day 25 hours long', () => {
    const noon = Date.UTC(2026, 10, 1, 17, 0, 0);
    expect(windowAt('day', noon, 'America/New_York')).toMatchObject({
      start: NY_NOV_1,
      end: NY_NOV_2,
    });
  });

  it('cut ISO weeks from Monday and months at the first', () => {
    // Thursday 2026-12-03 12:00 in Tokyo (UTC+9): the week began Monday
    // 2026-11-30 00:00 JST = 2026-11-29 15:00 UTC.
    const at = Date.UTC(2026, 11, 3, 3, 0, 0);
    expect(windowAt('week', at, 'Asia/Tokyo')).toMatchObject({
      start: Date.UTC(2026, 10, 29, 15, 0, 0),
      end: Date.UTC(2026, 11, 6, 15, 0, 0),
    });
    expect(windowAt('month', at, 'Asia/Tokyo')).toMatchObject({
      start: Date.UTC(2026, 10, 30, 15, 0, 0),
      end: Date.UTC(2026, 11, 31, 15, 0, 0),
    });
  });
});

describe('a daily budget across the spring-forward midnight', () => {
  const tenant = {
    id: 'ten_ny',
    name: 'ny',
    timezone: 'America/New_York',
    createdAt: 0,
  };
  const request = (requestId: string) => ({
    requestId,
    tenant,
    keyId: 'key_1',
    endUser: null,
    model: 'gpt-4o',
    worstInputTokens: 40,
    worstOutputTokens: 60,
    worstCost: parseDecimal('0.60'),
  });

  it('resets at the tenant’s midnight and not before', async () => {
    let now = NY_MARCH_8 + 60_000;
    const admission = new Admission(
      new MemoryCounterStore(() => now),
      [
        {
          id: 'daily',
          budgetUsd: '1',
          per: 'day',
          onExceed: 'block',
          onStoreDown: 'closed',
        },
      ],
      createLogger('silent'),
      { now: () => now },
    );
    await admission.admit(request('r1'));
    await admission.settle('r1', {
      tokens: { ...EMPTY_USAGE, inputTokens: 40, outputTokens: 60 },
      cost: parseDecimal('0.60'),
    });
    // 0.40 USD left of the day: a 0.60 worst case does not fit.
    now = NY_MARCH_9 - 1;
    const refusal = await admission
      .admit(request('r2'))
      .catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(AdmissionRefusal);
    expect((refusal as AdmissionRefusal).reason).toBe('budget_exceeded');
    // Retry-After: the 1 ms to midnight, in whole seconds.
    expect((refusal as AdmissionRefusal).retryAfterSeconds).toBe(1);
    // At midnight New York time (23 h after the last) the budget is new.
    now = NY_MARCH_9;
    await expect(admission.admit(request('r3'))).resolves.toEqual({});
  });
});
