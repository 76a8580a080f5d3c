/**
 * A deployment's breaker (consecutive failures open it; after `openMs`
 * one probe runs while every other request passes the deployment by) and
 * its latency window (nearest-rank quantiles of the samples inside a
 * time window, in a ring of bounded capacity).
 *
 * cockatiel reads the clock through Date.now() alone, so the breaker
 * tests fake Date and move it by hand; one test runs on the real clock.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { DeploymentHealth } from '../../src/routing/deployment-health.js';
import type { BreakerPolicy } from '../../src/routing/route-table.js';

const POLICY: BreakerPolicy = { failures: 3, openMs: 50 };
const ID = 'chat/primary';

type Outcome = { failed: boolean; value: string };

const failing = () => Promise.resolve({ failed: true, value: 'boom' });
const working = () => Promise.resolve({ failed: false, value: 'ok' });

/** An attempt that answers when the test says so. */
function held(): {
  attempt: () => Promise<Outcome>;
  answer: (outcome: Outcome) => void;
} {
  let answer: (outcome: Outcome) => void = () => undefined;
  const pending = new Promise<Outcome>((resolve) => (answer = resolve));
  return { attempt: () => pending, answer };
}

/** `promise`'s value, or 'still waiting' if it takes longer than 100 ms. */
function settledSoon<T>(promise: Promise<T>): Promise<T | 'still waiting'> {
  return Promise.race([
    promise,
    sleep(100).then(() => 'still waiting' as const),
  ]);
}

async function trip(health: DeploymentHealth, policy = POLICY): Promise<void> {
  for (let i = 0; i < policy.failures; i++) {
    await health.guard(ID, policy, failing);
  }
}

describe('breaker', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const later = (ms: number) => vi.setSystemTime(Date.now() + ms);

  it('opens after the configured consecutive failures', async () => {
    const health = new DeploymentHealth();
    for (let i = 0; i < POLICY.failures; i++) {
      expect(health.breakerState(ID)).toBe('closed');
      // A failed attempt still ran, and its value is the caller's.
      await expect(health.guard(ID, POLICY, failing)).resolves.toEqual({
        ran: true,
        value: 'boom',
      });
    }
    expect(health.breakerState(ID)).toBe('open');
    expect(health.isOpen(ID)).toBe(true);

    const attempt = vi.fn(working);
    await expect(health.guard(ID, POLICY, attempt)).resolves.toEqual({
      ran: false,
      reason: 'circuit_open',
    });
    expect(attempt).not.toHaveBeenCalled();
  });

  it('starts the count again after a success', async () => {
    const health = new DeploymentHealth();
    await health.guard(ID, POLICY, failing);
    await health.guard(ID, POLICY, failing);
    await health.guard(ID, POLICY, working);
    await health.guard(ID, POLICY, failing);
    await health.guard(ID, POLICY, failing);
    expect(health.breakerState(ID)).toBe('closed');

    await health.guard(ID, POLICY, failing);
    expect(health.breakerState(ID)).toBe('open');
  });

  it('stays open for openMs, then lets one probe run', async () => {
    const health = new DeploymentHealth();
    await trip(health);
    later(POLICY.openMs - 1);
    expect(health.isOpen(ID)).toBe(true);
    const early = vi.fn(working);
    await health.guard(ID, POLICY, early);
    expect(early).not.toHaveBeenCalled();

    later(1);
    // Due a probe: a request now would try the deployment.
    expect(health.isOpen(ID)).toBe(false);
    const probe = held();
    const probing = health.guard(ID, POLICY, probe.attempt);
    expect(health.breakerState(ID)).toBe('half-open');
    expect(health.isOpen(ID)).toBe(true);

    // Others pass it by at once; they do not wait on the probe's answer.
    const others = [vi.fn(working), vi.fn(working)];
    for (const other of others) {
      await expect(
        settledSoon(health.guard(ID, POLICY, other)),
      ).resolves.toEqual({ ran: false, reason: 'probing' });
      expect(other).not.toHaveBeenCalled();
    }
    expect(await settledSoon(probing)).toBe('still waiting');

    probe.answer({ failed: false, value: 'probed' });
    await expect(probing).resolves.toEqual({ ran: true, value: 'probed' });
  });

  it('closes on a successful probe', async () => {
    const health = new DeploymentHealth();
    await trip(health);
    later(POLICY.openMs);
    await health.guard(ID, POLICY, working);
    expect(health.breakerState(ID)).toBe('closed');
    expect(health.isOpen(ID)).toBe(false);

    const next = vi.fn(working);
    await expect(health.guard(ID, POLICY, next)).resolves.toEqual({
      ran: true,
      value: 'ok',
    });
    expect(next).toHaveBeenCalledOnce();
    // Closed afresh: it takes the full count to open it again.
    await health.guard(ID, POLICY, failing);
    await health.guard(ID, POLICY, failing);
    expect(health.breakerState(ID)).toBe('closed');
  });

  it('opens again on a failed probe, for another openMs', async () => {
    const health = new DeploymentHealth();
    await trip(health);
    later(POLICY.openMs);
    await expect(health.guard(ID, POLICY, failing)).resolves.toEqual({
      ran: true,
      value: 'boom',
    });
    expect(health.breakerState(ID)).toBe('open');
    expect(health.isOpen(ID)).toBe(true);

    later(POLICY.openMs - 1);
    const early = vi.fn(working);
    await expect(health.guard(ID, POLICY, early)).resolves.toEqual({
      ran: false,
      reason: 'circuit_open',
    });
    expect(early).not.toHaveBeenCalled();

    later(1);
    await expect(health.guard(ID, POLICY, working)).resolves.toEqual({
      ran: true,
      value: 'ok',
    });
    expect(health.breakerState(ID)).toBe('closed');
  });

  it('keeps it open when the probe throws, and passes the error on', async () => {
    // Regression: cockatiel closes a breaker whose probe threw an error it
    // does not count, which sent traffic back to a dead deployment.
    const health = new DeploymentHealth();
    await trip(health);
    later(POLICY.openMs);
    const broken = new Error('could not record the attempt');
    await expect(
      health.guard(ID, POLICY, () => Promise.reject(broken)),
    ).rejects.toBe(broken);
    expect(health.breakerState(ID)).toBe('open');
    expect(health.isOpen(ID)).toBe(true);

    later(POLICY.openMs);
    await health.guard(ID, POLICY, working);
    expect(health.breakerState(ID)).toBe('closed');
  });

  it('neither counts nor swallows an error thrown while closed', async () => {
    const health = new DeploymentHealth();
    const broken = new Error('not the upstream');
    for (let i = 0; i < POLICY.failures * 2; i++) {
      await expect(
        health.guard(ID, POLICY, () => Promise.reject(broken)),
      ).rejects.toBe(broken);
    }
    expect(health.breakerState(ID)).toBe('closed');
    // Nor does it break the run of failures it interrupts.
    await health.guard(ID, POLICY, failing);
    await health.guard(ID, POLICY, failing);
    await expect(
      health.guard(ID, POLICY, () => Promise.reject(broken)),
    ).rejects.toBe(broken);
    await health.guard(ID, POLICY, failing);
    expect(health.breakerState(ID)).toBe('open');
  });

  it('always runs without a breaker', async () => {
    const health = new DeploymentHealth();
    const attempt = vi.fn(failing);
    for (let i = 0; i < 50; i++) {
      await expect(health.guard(ID, null, attempt)).resolves.toEqual({
        ran: true,
        value: 'boom',
      });
    }
    expect(attempt).toHaveBeenCalledTimes(50);
    expect(health.breakerState(ID)).toBe('closed');
    expect(health.isOpen(ID)).toBe(false);
  });

  it('keeps one breaker per deployment', async () => {
    const health = new DeploymentHealth();
    await trip(health);
    expect(health.isOpen(ID)).toBe(true);
    expect(health.isOpen('chat/secondary')).toBe(false);
    await expect(
      health.guard('chat/secondary', POLICY, working),
    ).resolves.toEqual({ ran: true, value: 'ok' });
  });

  it('starts afresh when a reload changes the policy', async () => {
    const health = new DeploymentHealth();
    await trip(health);
    const reloaded = { failures: 2, openMs: 60_000 };
    await expect(health.guard(ID, reloaded, working)).resolves.toEqual({
      ran: true,
      value: 'ok',
    });
    expect(health.breakerState(ID)).toBe('closed');
    await trip(health, reloaded);
    expect(health.breakerState(ID)).toBe('open');
    later(POLICY.openMs);
    expect(health.isOpen(ID)).toBe(true);
  });
});

describe('breaker on the real clock', () => {
  it('probes once openMs has passed', async () => {
    const health = new DeploymentHealth();
    const policy = { failures: 2, openMs: 30 };
    await trip(health, policy);
    const early = vi.fn(working);
    await health.guard(ID, policy, early);
    expect(early).not.toHaveBeenCalled();

    await sleep(policy.openMs + 10);
    const probe = vi.fn(working);
    await expect(health.guard(ID, policy, probe)).resolves.toEqual({
      ran: true,
      value: 'ok',
    });
    expect(probe).toHaveBeenCalledOnce();
    expect(health.breakerState(ID)).toBe('closed');
  });
});

describe('latency', () => {
  const NOW = 1_000_000;
  const MINUTE = 60_000;

  it('answers nearest-rank quantiles', () => {
    const health = new DeploymentHealth();
    // 1..100 in a shuffled order: the q quantile is ⌈100·q⌉.
    const samples = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const ms of samples) health.observeLatency(ID, ms, NOW);

    expect(health.latency(ID, 0.5, MINUTE, NOW)).toBe(50);
    expect(health.latency(ID, 0.95, MINUTE, NOW)).toBe(95);
    expect(health.latency(ID, 0.999, MINUTE, NOW)).toBe(100);
    expect(health.latency(ID, 1, MINUTE, NOW)).toBe(100);
    expect(health.latency(ID, 0, MINUTE, NOW)).toBe(1);
  });

  it('takes the sample at the rank, not between two', () => {
    const health = new DeploymentHealth();
    for (const ms of [30, 10, 20]) health.observeLatency(ID, ms, NOW);
    // ⌈3 × 0.5⌉ = 2nd; ⌈3 × 0.95⌉ = 3rd; ⌈3 × 0.2⌉ = 1st.
    expect(health.latency(ID, 0.5, MINUTE, NOW)).toBe(20);
    expect(health.latency(ID, 0.95, MINUTE, NOW)).toBe(30);
    expect(health.latency(ID, 0.2, MINUTE, NOW)).toBe(10);
  });

  it('ignores samples older than the window', () => {
    const health = new DeploymentHealth();
    health.observeLatency(ID, 9_000, NOW - MINUTE - 1);
    health.observeLatency(ID, 7_000, NOW - MINUTE);
    health.observeLatency(ID, 5, NOW - 1);

    // The sample exactly a window old is in; the one before is not.
    expect(health.latency(ID, 1, MINUTE, NOW)).toBe(7_000);
    expect(health.latency(ID, 0, MINUTE, NOW)).toBe(5);
    expect(health.latency(ID, 1, 1_000, NOW)).toBe(5);
    // A second later (past the quantile cache), the 7,000 is out too.
    expect(health.latency(ID, 1, MINUTE, NOW + 1_000)).toBe(5);
  });

  it('is null with nothing in the window', () => {
    const health = new DeploymentHealth();
    expect(health.latency(ID, 0.5, MINUTE, NOW)).toBeNull();
    health.observeLatency(ID, 100, NOW - 2 * MINUTE);
    expect(health.latency(ID, 0.5, MINUTE, NOW)).toBeNull();
  });

  it('answers from the first sample on after answering null', () => {
    const health = new DeploymentHealth();
    expect(health.latency(ID, 0.95, MINUTE, NOW)).toBeNull();
    health.observeLatency(ID, 42, NOW);
    expect(health.latency(ID, 0.95, MINUTE, NOW)).toBe(42);
  });

  it('keeps the latest 2,048 samples', () => {
    const health = new DeploymentHealth();
    // 0, 1, …, 2,999 at the same instant: the ring keeps 952 … 2,999.
    for (let ms = 0; ms < 3_000; ms++) health.observeLatency(ID, ms, NOW);

    expect(health.latency(ID, 0, MINUTE, NOW)).toBe(952);
    // ⌈2,048 × 0.5⌉ = 1,024th of the kept: 952 + 1,023.
    expect(health.latency(ID, 0.5, MINUTE, NOW)).toBe(1_975);
    expect(health.latency(ID, 1, MINUTE, NOW)).toBe(2_999);
  });

  it('agrees with a sort over random windows, ties and all', () => {
    // The nearest rank, from a plain sort of the samples in the window.
    const nearestRank = (samples: number[], q: number) =>
      [...samples].sort((a, b) => a - b)[
        Math.max(1, Math.ceil(q * samples.length)) - 1
      ];
    let seed = 7;
    // A 32-bit LCG, its weak low bits dropped.
    const next = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed >>> 8;
    };
    for (let round = 0; round < 200; round++) {
      const health = new DeploymentHealth();
      const size = 1 + (next() % 600);
      // Few distinct values in some rounds, so that ties abound.
      const spread = round % 3 === 0 ? 4 : 10_000;
      const inWindow: number[] = [];
      for (let i = 0; i < size; i++) {
        const ms = next() % spread;
        const old = next() % 4 === 0;
        health.observeLatency(ID, ms, old ? NOW - 2 * MINUTE : NOW);
        if (!old) inWindow.push(ms);
      }
      for (const q of [0, 0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
        const expected = inWindow.length ? nearestRank(inWindow, q) : null;
        expect(health.latency(ID, q, MINUTE, NOW)).toBe(expected);
      }
    }
  });

  it('keeps one window per deployment', () => {
    const health = new DeploymentHealth();
    health.observeLatency('chat/a', 10, NOW);
    health.observeLatency('chat/b', 500, NOW);
    expect(health.latency('chat/a', 0.5, MINUTE, NOW)).toBe(10);
    expect(health.latency('chat/b', 0.5, MINUTE, NOW)).toBe(500);
  });
});
