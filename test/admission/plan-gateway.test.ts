/**
 * A plan's included allowance, enforced live through a real gateway and
 * the official `openai` SDK, then invoiced from the same ledger: `block`
 * refuses past it (402 for money, 429 for tokens, Retry-After to the end
 * of the tenant's month), `bill` serves and bills the overage at the
 * plan's rate, `notify` serves and sends the 100 % webhook; a reload
 * that changes the allowance keeps what the month has counted.
 *
 * The upstream reports the usage each test states, and gpt-4o is priced
 * here at 2.5 USD per 1M input tokens and 10 per 1M output; expected
 * amounts are worked out by hand beside each test.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import type OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import {
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';
import { testPrices } from '../helpers/test-prices.js';
import {
  ADMIN_TOKEN,
  startTestGateway,
  type TestGateway,
  type TestTenant,
} from '../helpers/test-gateway.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Usage = { prompt_tokens: number; completion_tokens: number };

/** The config sections a test gateway runs with, in front of `gated`. */
function sections(
  gated: GatedUpstream,
  entitlements: ConfigInput['entitlements'],
  extra: Partial<ConfigInput> = {},
): Partial<ConfigInput> {
  return {
    providers: {
      gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
    },
    models: {
      'gpt-4o': {
        deployments: [
          {
            provider: 'gate',
            model: 'gpt-4o',
            prices: testPrices('2.5', '10'),
          },
        ],
      },
    },
    entitlements,
    ...extra,
  };
}

async function gateway(
  usage: Usage,
  entitlements: ConfigInput['entitlements'],
  extra: Partial<ConfigInput> = {},
) {
  const gated = await startGatedUpstream({ usage });
  gated.open();
  const t = await startTestGateway({
    config: sections(gated, entitlements, extra),
  });
  cleanups.push(async () => {
    await t.close();
    await gated.close();
  });
  return { t, gated };
}

/**
 * A request whose worst case bounds what the upstream reports: a prompt
 * of `chars` bytes (at least one byte per token) and `max_tokens`.
 */
function chat(client: OpenAI, chars: number, maxTokens: number) {
  return client.chat.completions.create({
    model: 'gpt-4o',
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: 'x'.repeat(chars) }],
  });
}

type ApiError = InstanceType<typeof OpenAI.APIError>;

/** Sends until one is refused; resolves with the count served and it. */
async function untilRefused(send: () => Promise<unknown>, most = 50) {
  for (let served = 0; served < most; served += 1) {
    const refused = await send().then(
      () => null,
      (error: unknown) => error as ApiError,
    );
    if (refused) return { served, refused };
  }
  throw new Error(`${most} requests served and none refused`);
}

/** `YYYY-MM` and the month's end, for a zone `offsetHours` from UTC. */
function monthAt(now: number, offsetHours: number) {
  const local = new Date(now + offsetHours * 3_600_000);
  const year = local.getUTCFullYear();
  const month = local.getUTCMonth();
  return {
    period: `${year}-${String(month + 1).padStart(2, '0')}`,
    end: Date.UTC(year, month + 1, 1) - offsetHours * 3_600_000,
  };
}

async function invoice(tenant: TestTenant, t: TestGateway, period: string) {
  const response = await fetch(`${t.url}/v1/invoices/${period}`, {
    headers: { authorization: `Bearer ${tenant.key}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    total: string;
    lines: { tokens: number; amount: string }[];
    plan_lines: Record<string, unknown>[];
  };
}

it("lists a plan's allowance as its own source, and keeps it from the limits API", async () => {
  const { t } = await gateway(
    { prompt_tokens: 10, completion_tokens: 10 },
    { acme: { included: { usd: '5' }, overage: 'block' } },
  );
  const admin = (method: string, path: string) =>
    fetch(`${t.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
  const list = (await (await admin('GET', '/admin/v1/limits')).json()) as {
    data: { id: string; source: string }[];
  };
  expect(list.data.map((l) => [l.id, l.source])).toEqual([
    ['plan.acme', 'plan'],
  ]);
  const deleted = await admin('DELETE', '/admin/v1/limits/plan.acme');
  expect(deleted.status).toBe(409);
  expect(
    ((await deleted.json()) as { error: { message: string } }).error.message,
  ).toBe(
    'The limit "plan.acme" enforces the allowance of the plan of "acme"; ' +
      'change entitlements.acme in the config file.',
  );
});

describe('overage: block', () => {
  it('refuses past a money allowance with 402 and Retry-After to the month end', async () => {
    // 4,000 input × 2.5 + 500 output × 10 per 1M: 0.015 USD a request.
    const { t, gated } = await gateway(
      { prompt_tokens: 4_000, completion_tokens: 500 },
      { tokyo: { included: { usd: '0.05' }, overage: 'block' } },
    );
    // Asia/Tokyo is UTC+9 all year: its month ends 9 hours before UTC's.
    const tokyo = await t.addTenant('tokyo', 'Asia/Tokyo');
    // Each worst case is a little over 0.015 (4,000-odd bytes at 2.5 and
    // 500 at 10), so three fit in 0.05 and a fourth does not.
    const { served, refused } = await untilRefused(() =>
      chat(tokyo.client, 4_000, 500),
    );
    const now = Date.now();
    expect(served).toBe(3);
    expect(gated.arrived).toBe(3);
    expect(refused.status).toBe(402);
    expect(refused.code).toBe('budget_exceeded');
    expect(refused.message).toContain("'plan.tokyo'");
    const { period, end } = monthAt(now, 9);
    const retryAfter = Number(refused.headers?.get('retry-after'));
    expect(Math.abs(retryAfter - Math.ceil((end - now) / 1000))).toBeLessThan(
      5,
    );

    // 12,000 × 2.5 → 0.03 and 1,500 × 10 → 0.015: 0.045 of 0.05, all
    // included; the lines' 0.03 + 0.02 are credited back.
    const bill = await invoice(tokyo, t, period);
    expect(bill.plan_lines).toEqual([
      { kind: 'list_credit', amount: '-0.045', amount_rounded: '-0.05' },
      {
        kind: 'included',
        usd: '0.045',
        multiplier: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
      {
        kind: 'overage',
        usd: '0',
        multiplier: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
    ]);
    expect(bill.total).toBe('0.00');

    // Another tenant has no plan and is not held to tokyo's.
    await chat(t.tenant.client, 4_000, 500);
  });

  it('refuses past a token allowance with 429 and Retry-After to the month end', async () => {
    // 300 + 100 tokens a request; each worst case is about 1,100.
    const { t, gated } = await gateway(
      { prompt_tokens: 300, completion_tokens: 100 },
      { 'tenant-a': { included: { tokens: 2_000 }, overage: 'block' } },
    );
    const { served, refused } = await untilRefused(() =>
      chat(t.tenant.client, 1_000, 100),
    );
    const now = Date.now();
    expect(served).toBeGreaterThanOrEqual(1);
    expect(gated.arrived).toBe(served);
    // What was served stays within the allowance.
    expect(served * 400).toBeLessThanOrEqual(2_000);
    expect(refused.status).toBe(429);
    expect(refused.code).toBe('rate_limit_exceeded');
    expect(refused.headers?.get('x-ratelimit-limit-tokens')).toBe('2000');
    const { end } = monthAt(now, 0);
    const retryAfter = Number(refused.headers?.get('retry-after'));
    expect(Math.abs(retryAfter - Math.ceil((end - now) / 1000))).toBeLessThan(
      5,
    );
  });
});

describe('overage: bill', () => {
  it('serves past a money allowance and bills the overage at its multiple', async () => {
    // 100,000 × 2.5 → 0.25 and 23,457 × 10 → 0.23457: 0.48457 a request.
    const { t, gated } = await gateway(
      { prompt_tokens: 100_000, completion_tokens: 23_457 },
      {
        'tenant-a': {
          included: { usd: '0.5' },
          overage: 'bill',
          overageMultiplier: '1.25',
        },
      },
    );
    for (let i = 0; i < 3; i += 1) {
      await chat(t.tenant.client, 100_000, 30_000);
    }
    expect(gated.arrived).toBe(3);
    const bill = await invoice(t.tenant, t, monthAt(Date.now(), 0).period);
    // List: 300,000 × 2.5 → 0.75; 70,371 × 10 → 0.70371 (0.70).
    expect(bill.lines.map((l) => [l.tokens, l.amount])).toEqual([
      [300_000, '0.75'],
      [70_371, '0.70371'],
    ]);
    // X = 1.45371; 0.95371 past the 0.5, × 1.25 = 1.1921375 → 1.19.
    expect(bill.plan_lines).toEqual([
      { kind: 'list_credit', amount: '-1.45371', amount_rounded: '-1.45' },
      {
        kind: 'included',
        usd: '0.5',
        multiplier: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
      {
        kind: 'overage',
        usd: '0.95371',
        multiplier: '1.25',
        amount: '1.1921375',
        amount_rounded: '1.19',
      },
    ]);
    // 0.75 + 0.70 − 1.45 + 0 + 1.19
    expect(bill.total).toBe('1.19');
  });

  it('serves past a token allowance and bills tokens past it per 1M', async () => {
    const { t } = await gateway(
      { prompt_tokens: 300, completion_tokens: 100 },
      {
        'tenant-a': {
          included: { tokens: 1_000 },
          overage: 'bill',
          overageUsdPer1M: '2.50',
        },
      },
    );
    for (let i = 0; i < 4; i += 1) await chat(t.tenant.client, 1_000, 100);
    const bill = await invoice(t.tenant, t, monthAt(Date.now(), 0).period);
    // 1,600 tokens, 600 past the 1,000: × 2.5 / 10^6 = 0.0015 → 0.00.
    // List: 1,200 × 2.5 → 0.003 (0.00) and 400 × 10 → 0.004 (0.00).
    expect(bill.plan_lines).toEqual([
      { kind: 'list_credit', amount: '-0.007', amount_rounded: '0.00' },
      {
        kind: 'included',
        tokens: 1_000,
        unit_price_per_1m: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
      {
        kind: 'overage',
        tokens: 600,
        unit_price_per_1m: '2.5',
        amount: '0.0015',
        amount_rounded: '0.00',
      },
    ]);
    expect(bill.total).toBe('0.00');
  });
});

describe('overage: notify', () => {
  it('serves past the allowance and sends its 50 and 100 % webhooks', async () => {
    const events: Record<string, unknown>[] = [];
    const receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        events.push(JSON.parse(body) as Record<string, unknown>);
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) =>
      receiver.listen(0, '127.0.0.1', resolve),
    );
    cleanups.push(
      () =>
        new Promise((resolve) => {
          receiver.closeAllConnections();
          receiver.close(() => resolve());
        }),
    );
    const { port } = receiver.address() as AddressInfo;
    const { t, gated } = await gateway(
      { prompt_tokens: 300, completion_tokens: 100 },
      {
        'tenant-a': {
          included: { tokens: 1_000 },
          overage: 'notify',
          thresholds: [50],
        },
      },
      { webhooks: { url: `http://127.0.0.1:${port}/hooks`, secret: 's' } },
    );
    // 400, 800 (50 %), 1,200 tokens (100 %): all served.
    for (let i = 0; i < 3; i += 1) await chat(t.tenant.client, 1_000, 100);
    expect(gated.arrived).toBe(3);
    const deadline = Date.now() + 10_000;
    while (events.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { period } = monthAt(Date.now(), 0);
    expect(
      events
        .map((e) => [e['limit'], e['percent'], e['used'], e['max']])
        .sort((a, b) => Number(a[1]) - Number(b[1])),
    ).toEqual([
      ['plan.tenant-a', 50, '800', '1000'],
      ['plan.tenant-a', 100, '1200', '1000'],
    ]);

    // The 200 tokens past the allowance are shown, and not billed.
    const bill = await invoice(t.tenant, t, period);
    expect(bill.plan_lines.slice(1)).toEqual([
      {
        kind: 'included',
        tokens: 1_000,
        unit_price_per_1m: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
      {
        kind: 'overage',
        tokens: 200,
        unit_price_per_1m: '0',
        amount: '0',
        amount_rounded: '0.00',
      },
    ]);
    expect(bill.total).toBe('0.00');
  });
});

describe('a reload', () => {
  it('changes the allowance and keeps what the month has counted', async () => {
    const plan = (tokens: number): ConfigInput['entitlements'] => ({
      'tenant-a': { included: { tokens }, overage: 'block' },
    });
    const { t, gated } = await gateway(
      { prompt_tokens: 300, completion_tokens: 100 },
      plan(10_000),
    );
    // What is left after each request's own worst case w: 10,000 − w,
    // then 10,000 − 400 − w.
    const remaining = async () => {
      const { response } = await chat(
        t.tenant.client,
        1_000,
        100,
      ).withResponse();
      return Number(response.headers.get('x-ratelimit-remaining-tokens'));
    };
    const first = await remaining();
    expect(await remaining()).toBe(first - 400);

    await t.gateway.reload(
      parseConfig(
        {
          server: { port: 0 },
          logging: { level: 'silent' },
          database: { path: t.dbPath },
          ...sections(gated, plan(20_000)),
        },
        'the reloaded config',
      ),
    );
    expect(
      t.gateway.admission.limits.find((l) => l.id === 'plan.tenant-a'),
    ).toMatchObject({ tokens: 20_000, per: 'month', onExceed: 'block' });
    // 20,000 − 800 − w: the two requests before the reload still count.
    expect(await remaining()).toBe(first + 10_000 - 800);
  });
});
