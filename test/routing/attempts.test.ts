/**
 * The attempt loop on its own, with scripted attempts: which attempts it
 * records before their calls, and what a breaker learns from an attempt
 * the client cut short.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';

import {
  configSchema,
  type modelSchema,
} from '../../src/config/config-schema.js';
import type { ProviderClient } from '../../src/providers/provider-registry.js';
import {
  runAttempts,
  type AttemptFailure,
  type AttemptResult,
} from '../../src/routing/attempts.js';
import { DeploymentHealth } from '../../src/routing/deployment-health.js';
import { RouteTable, type Route } from '../../src/routing/route-table.js';

type ModelInput = z.input<typeof modelSchema>;

const client: ProviderClient = {
  api: 'openai-chat',
  sendChat: () => Promise.reject(new Error('scripted attempts only')),
};

function route(model: Partial<ModelInput> = {}): Route {
  const config = configSchema.parse({
    providers: { a: { type: 'simulated' }, b: { type: 'simulated' } },
    models: {
      m: {
        deployments: [
          { id: 'm/a', provider: 'a', model: 'x' },
          { id: 'm/b', provider: 'b', model: 'y' },
        ],
        circuitBreaker: { failures: 1, openMs: 60_000 },
        ...model,
      },
    },
  });
  const table = RouteTable.fromConfig(
    config,
    new Map([
      ['a', client],
      ['b', client],
    ]),
  );
  const found = table.resolve('m');
  if (!found) throw new Error('no route');
  return found;
}

const serverError: AttemptFailure = {
  trigger: 'server_error',
  retryAfterMs: null,
  statusCode: 503,
  errorCode: 'upstream_503',
  usage: { kind: 'none' },
};

function run(
  r: Route,
  health: DeploymentHealth,
  script: (deployment: string) => AttemptResult<string>,
  signal = new AbortController().signal,
) {
  const begun: [number, string][] = [];
  const outcome = runAttempts({
    route: r,
    plan: {
      alias: 'm',
      deployments: r.deployments,
      decision: { by: 'ordered' },
    },
    health,
    signal,
    begin: (attempt, d) => {
      begun.push([attempt, d.id]);
      return Promise.resolve();
    },
    attempt: (d) => Promise.resolve(script(d.id)),
  });
  return { outcome, begun };
}

describe('runAttempts', () => {
  it('records a fallback before its call, and not the first attempt', async () => {
    const r = route();
    const { outcome, begun } = run(r, new DeploymentHealth(), (id) =>
      id === 'm/a'
        ? { value: 'a', failure: serverError }
        : { value: 'b', failure: null },
    );
    expect(await outcome).toMatchObject({
      kind: 'answered',
      attempt: 2,
      value: 'b',
    });
    expect(begun).toEqual([[2, 'm/b']]);
  });

  it('records attempt 1 when it goes elsewhere than the recorded deployment', async () => {
    const r = route();
    const health = new DeploymentHealth();
    // One failure opens m/a's breaker (failures: 1).
    await run(r, health, (id) =>
      id === 'm/a'
        ? { value: 'a', failure: serverError }
        : { value: 'b', failure: null },
    ).outcome;
    expect(health.breakerState('m/a')).toBe('open');

    const { outcome, begun } = run(r, health, () => ({
      value: 'b',
      failure: null,
    }));
    const answered = await outcome;
    expect(answered).toMatchObject({
      kind: 'answered',
      attempt: 1,
      value: 'b',
    });
    expect(
      answered.log.map((l) => [l.deployment, l.outcome, l.reason]),
    ).toEqual([
      ['m/a', 'skipped', 'circuit_open'],
      ['m/b', 'answered', null],
    ]);
    // A crash now would recover attempt 1 at m/b, where it went.
    expect(begun).toEqual([[1, 'm/b']]);
  });

  it('does not let a probe the client cut short close the breaker', async () => {
    const r = route({ circuitBreaker: { failures: 1, openMs: 20 } });
    const health = new DeploymentHealth();
    await run(r, health, () => ({ value: 'x', failure: serverError })).outcome;
    expect(health.breakerState('m/a')).toBe('open');
    await new Promise((resolve) => setTimeout(resolve, 30));

    // The probe goes to m/a, and the client leaves while it is out.
    const client = new AbortController();
    await run(
      r,
      health,
      () => {
        client.abort();
        return {
          value: 'gone',
          failure: {
            ...serverError,
            trigger: null,
            errorCode: 'client_disconnected',
          },
        };
      },
      client.signal,
    ).outcome;
    expect(health.breakerState('m/a')).toBe('open');
  });

  it('does not count an attempt the client cut short against a closed breaker', async () => {
    const r = route({ circuitBreaker: { failures: 1, openMs: 60_000 } });
    const health = new DeploymentHealth();
    const client = new AbortController();
    let attempted = 0;
    await run(
      r,
      health,
      () => {
        attempted += 1;
        client.abort();
        return {
          value: 'gone',
          failure: { ...serverError, trigger: 'connection' },
        };
      },
      client.signal,
    ).outcome;
    expect(attempted).toBe(1);
    // One counted failure would have opened it (failures: 1).
    expect(health.breakerState('m/a')).toBe('closed');
  });
});
