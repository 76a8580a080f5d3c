/**
 * A stream that opens with an error event (Anthropic's way of saying it
 * is overloaded once a 200 has gone out) has shown the client nothing,
 * so it falls back like a 529 would; with nowhere to fall back to, the
 * client gets the error event as the upstream sent it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  startRoutingGateway,
  type RoutingGateway,
} from '../helpers/routing-gateway.js';
import { usd } from '../helpers/usd.js';
import { testPrices } from '../helpers/test-prices.js';

let g: RoutingGateway;

beforeAll(async () => {
  g = await startRoutingGateway({
    models: {
      claude: {
        deployments: [
          {
            id: 'claude/anthropic',
            provider: 'anthropic',
            model: 'claude-sonnet-4-5-20250929',
            prices: testPrices('3', '15'),
          },
          {
            id: 'claude/secondary',
            provider: 'secondary',
            model: 'gpt-4o-mini',
            prices: testPrices('0.15', '0.6'),
          },
        ],
        circuitBreaker: false,
      },
      'claude-alone': {
        deployments: [
          {
            id: 'claude-alone/anthropic',
            provider: 'anthropic',
            model: 'claude-sonnet-4-5-20250929',
            prices: testPrices('3', '15'),
          },
        ],
        circuitBreaker: false,
      },
    },
  });
});

afterEach(() => {
  g.anthropic.clear();
  g.secondary.clear();
});

afterAll(async () => {
  await g.close();
});

const overloaded = {
  kind: 'stream-error',
  type: 'overloaded_error',
  message: 'Overloaded',
} as const;

describe('a stream whose first event is an error', () => {
  it('falls back before the client has seen a byte', async () => {
    g.anthropic.enqueue(overloaded);
    g.secondary.enqueue({
      kind: 'synthesize',
      usage: { input: 20, output: 4 },
      text: 'Hi.',
    });
    const anthropicBefore = g.anthropic.requests.length;
    const secondaryBefore = g.secondary.requests.length;

    const stream = g.tenant.anthropic.messages.stream({
      model: 'claude',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Say hi.' }],
    });
    const message = await stream.finalMessage();
    const requestId = (await stream.withResponse()).response.headers.get(
      'x-request-id',
    );

    expect(message.content).toMatchObject([{ type: 'text', text: 'Hi.' }]);
    expect(g.anthropic.requests.length - anthropicBefore).toBe(1);
    expect(g.secondary.requests.length - secondaryBefore).toBe(1);
    const ledger = await g.ledger(requestId);
    expect(
      ledger.routing.attempts.map((a) => [a.deployment, a.outcome, a.reason]),
    ).toEqual([
      ['claude/anthropic', 'failed', 'server_error'],
      ['claude/secondary', 'answered', null],
    ]);
    // Billed once, at the fallback: 20 × $0.15/M + 4 × $0.6/M.
    expect(ledger.events).toHaveLength(1);
    expect(ledger.events[0]).toMatchObject({
      attempt: 2,
      deploymentId: 'claude/secondary',
      served: true,
      providerCost: usd([20, '0.15'], [4, '0.6']),
      tenantCharge: usd([20, '0.15'], [4, '0.6']),
    });
  });

  it('reaches the client as sent when there is no fallback', async () => {
    g.anthropic.enqueue(overloaded);
    const stream = g.tenant.anthropic.messages.stream({
      model: 'claude-alone',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Say hi.' }],
    });
    await expect(stream.finalMessage()).rejects.toThrow(/Overloaded/);
  });
});
