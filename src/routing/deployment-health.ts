/**
 * What this process has seen of each deployment: a circuit breaker, and
 * how long its answers took to begin over a sliding window.
 *
 * Both are per process. Replicas learn a dead deployment each on its own,
 * which costs each replica `failures` failed attempts before its breaker
 * opens; sharing breaker state through Redis would remove that.
 *
 * The breaker is cockatiel's (consecutive failures, then open for a
 * while, then one probe), with one difference kept here: while a probe is
 * in flight, other requests pass the deployment by rather than wait on
 * the probe's answer.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type CircuitBreakerPolicy,
} from 'cockatiel';

import type { BreakerPolicy } from './route-table.js';

/** Thrown through the breaker to count an attempt as a failure. */
export class DeploymentFailure extends Error {
  override readonly name = 'DeploymentFailure';
}

/** Thrown through a closed breaker so that an attempt is not counted. */
class NotCounted extends Error {
  override readonly name = 'NotCounted';
}

export type BreakerVerdict<T> =
  | { readonly ran: true; readonly value: T }
  | { readonly ran: false; readonly reason: 'circuit_open' | 'probing' };

interface Breaker {
  readonly policy: BreakerPolicy;
  readonly circuit: CircuitBreakerPolicy;
}

/** Told when a deployment's breaker changes state, e.g. to log it. */
export interface BreakerObserver {
  opened(deploymentId: string, policy: BreakerPolicy): void;
  closed(deploymentId: string): void;
}

export class DeploymentHealth {
  readonly #breakers = new Map<string, Breaker>();
  readonly #latency = new Map<string, LatencyWindow>();
  readonly #observer: BreakerObserver | undefined;

  constructor(observer?: BreakerObserver) {
    this.#observer = observer;
  }

  /**
   * Runs `attempt` through the deployment's breaker, or not at all when
   * the breaker is open (or a probe is in flight). `attempt` returns its
   * value and whether it failed in a way the breaker counts; `neutral`
   * when it tells nothing either way (the client left): not counted, and
   * a probe that ends so leaves the breaker open for the next one.
   */
  async guard<T>(
    deploymentId: string,
    policy: BreakerPolicy | null,
    attempt: () => Promise<{ failed: boolean | 'neutral'; value: T }>,
  ): Promise<BreakerVerdict<T>> {
    if (policy === null) return { ran: true, value: (await attempt()).value };
    const breaker = this.#breaker(deploymentId, policy);
    if (breaker.circuit.state === CircuitState.HalfOpen) {
      return { ran: false, reason: 'probing' };
    }
    // Open now and run all the same: this attempt is the probe.
    const probing = breaker.circuit.state === CircuitState.Open;
    const thrown = { by: false, error: undefined as unknown };
    let value: T | undefined;
    let ran = false;
    try {
      await breaker.circuit.execute(async () => {
        ran = true;
        let outcome: { failed: boolean | 'neutral'; value: T };
        try {
          outcome = await attempt();
        } catch (error) {
          if (!probing) throw error;
          // cockatiel closes the breaker on an error it does not count,
          // but a probe that threw says nothing of the deployment's
          // health: it stays open, and the next probe comes openMs on.
          thrown.by = true;
          thrown.error = error;
          throw new DeploymentFailure('probe threw');
        }
        value = outcome.value;
        if (outcome.failed === 'neutral') {
          // Closed: an error cockatiel does not handle is not counted.
          throw probing
            ? new DeploymentFailure('probe told nothing')
            : new NotCounted();
        }
        if (outcome.failed) throw new DeploymentFailure('attempt failed');
      });
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        return { ran: false, reason: 'circuit_open' };
      }
      if (!(
        error instanceof DeploymentFailure || error instanceof NotCounted
      )) {
        throw error;
      }
    }
    if (thrown.by) throw thrown.error;
    if (!ran) return { ran: false, reason: 'circuit_open' };
    return { ran: true, value: value as T };
  }

  /** Closed, open or half-open, for status pages and tests. */
  breakerState(deploymentId: string): 'closed' | 'open' | 'half-open' {
    const state = this.#breakers.get(deploymentId)?.circuit.state;
    if (state === CircuitState.Open) return 'open';
    if (state === CircuitState.HalfOpen) return 'half-open';
    return 'closed';
  }

  /** Whether a request now would pass the deployment by. */
  isOpen(deploymentId: string): boolean {
    const breaker = this.#breakers.get(deploymentId);
    if (!breaker) return false;
    const state = breaker.circuit.state;
    if (state === CircuitState.HalfOpen) return true;
    if (state !== CircuitState.Open) return false;
    const opened = this.#openedAt.get(deploymentId) ?? 0;
    return Date.now() - opened < breaker.policy.openMs;
  }

  readonly #openedAt = new Map<string, number>();

  /** Time the deployment's answer took to begin, in ms. */
  observeLatency(deploymentId: string, ms: number, now = Date.now()): void {
    let window = this.#latency.get(deploymentId);
    if (!window) {
      window = new LatencyWindow();
      this.#latency.set(deploymentId, window);
    }
    window.add(now, ms);
  }

  /** The `quantile` (0–1) of the window's latencies; null with none. */
  latency(
    deploymentId: string,
    quantile: number,
    windowMs: number,
    now = Date.now(),
  ): number | null {
    return (
      this.#latency.get(deploymentId)?.quantile(quantile, windowMs, now) ?? null
    );
  }

  #breaker(deploymentId: string, policy: BreakerPolicy): Breaker {
    const existing = this.#breakers.get(deploymentId);
    // A reload that changes the policy starts the breaker afresh.
    if (
      existing &&
      existing.policy.failures === policy.failures &&
      existing.policy.openMs === policy.openMs
    ) {
      return existing;
    }
    const circuit = circuitBreaker(
      handleWhen((error) => error instanceof DeploymentFailure),
      {
        halfOpenAfter: policy.openMs,
        breaker: new ConsecutiveBreaker(policy.failures),
      },
    );
    circuit.onBreak(() => {
      this.#openedAt.set(deploymentId, Date.now());
      this.#observer?.opened(deploymentId, policy);
    });
    circuit.onReset(() => this.#observer?.closed(deploymentId));
    const breaker = { policy, circuit };
    this.#breakers.set(deploymentId, breaker);
    return breaker;
  }
}

/** Most samples a window keeps; older ones go first. */
const WINDOW_CAPACITY = 2_048;
/** A quantile is recomputed at most this often per window. */
const QUANTILE_CACHE_MS = 250;

/**
 * Where a quantile's samples are gathered, shared by every window: a
 * quantile is computed synchronously, start to end.
 */
const SCRATCH = new Float64Array(WINDOW_CAPACITY);

interface CachedQuantile {
  readonly q: number;
  readonly windowMs: number;
  at: number;
  value: number | null;
}

/**
 * Latency samples in a ring, oldest overwritten, read as quantiles of
 * those inside a time window. Quantiles are cached briefly: routing asks
 * on every request, and a p95 does not move in a quarter second.
 *
 * A recomputation is on some request's path, so it selects the rank in
 * linear time, in place over a scratch array, rather than sorting a copy.
 */
class LatencyWindow {
  readonly #at = new Float64Array(WINDOW_CAPACITY);
  readonly #ms = new Float64Array(WINDOW_CAPACITY);
  #next = 0;
  #size = 0;
  /** One entry per (quantile, window) asked for: routing asks for few. */
  readonly #cache: CachedQuantile[] = [];

  add(at: number, ms: number): void {
    this.#at[this.#next] = at;
    this.#ms[this.#next] = ms;
    this.#next = (this.#next + 1) % WINDOW_CAPACITY;
    this.#size = Math.min(this.#size + 1, WINDOW_CAPACITY);
    // A window that had nothing to say answers from its first sample on.
    for (const cached of this.#cache) {
      if (cached.value === null) cached.at = Number.NEGATIVE_INFINITY;
    }
  }

  quantile(q: number, windowMs: number, now: number): number | null {
    let cached = this.#cache.find((c) => c.q === q && c.windowMs === windowMs);
    if (cached && now - cached.at < QUANTILE_CACHE_MS) return cached.value;
    const values = SCRATCH;
    let count = 0;
    for (let i = 0; i < this.#size; i++) {
      if (now - (this.#at[i] ?? 0) <= windowMs) {
        values[count++] = this.#ms[i] ?? 0;
      }
    }
    // Nearest rank: the smallest sample with at least q of them at or
    // below it.
    const value =
      count === 0
        ? null
        : nthSmallest(values, count, Math.max(1, Math.ceil(q * count)) - 1);
    if (!cached) {
      cached = { q, windowMs, at: now, value };
      this.#cache.push(cached);
    }
    cached.at = now;
    cached.value = value;
    return value;
  }
}

/**
 * The `k`th smallest (from 0) of `values[0..count)`, reordering them:
 * Hoare's selection, partitioning around the value at `k`, which
 * handles runs of equal samples without going quadratic.
 */
function nthSmallest(values: Float64Array, count: number, k: number): number {
  let low = 0;
  let high = count - 1;
  while (low < high) {
    const pivot = values[k] ?? 0;
    let i = low;
    let j = high;
    do {
      while ((values[i] ?? 0) < pivot) i++;
      while (pivot < (values[j] ?? 0)) j--;
      if (i <= j) {
        const swap = values[i] ?? 0;
        values[i] = values[j] ?? 0;
        values[j] = swap;
        i++;
        j--;
      }
    } while (i <= j);
    if (j < k) low = i;
    if (k < i) high = j;
  }
  return values[k] ?? 0;
}
