/**
 * Counters in this process's memory: the embedded default, for one
 * gateway process. JavaScript runs one thing at a time, so a check and
 * its reservation cannot interleave with another request's.
 *
 * Counters whose window has ended are dropped when next touched, and
 * swept now and then so that many short-lived keys do not accumulate.
 */
import type {
  CounterClaim,
  CounterSettlement,
  CounterState,
  CounterStore,
  ReserveResult,
} from './counter-store.js';

interface Counter {
  used: bigint;
  reserved: bigint;
  expiresAt: number | null;
  seeded: boolean;
}

/** How many counter writes between two sweeps of expired counters. */
const SWEEP_EVERY = 10_000;

export class MemoryCounterStore implements CounterStore {
  readonly shared = false;
  readonly #counters = new Map<string, Counter>();
  readonly #now: () => number;
  #writes = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  reserve(claims: readonly CounterClaim[]): Promise<ReserveResult> {
    const now = this.#now();
    const unseeded = claims.filter(
      (claim) => claim.rebuild === true && !this.#live(claim.key, now)?.seeded,
    );
    if (unseeded.length > 0) {
      return Promise.resolve({ admitted: false, unseeded });
    }
    for (const claim of claims) {
      const counter = this.#live(claim.key, now);
      const used = counter?.used ?? 0n;
      const reserved = counter?.reserved ?? 0n;
      if (used + reserved + claim.amount > claim.max) {
        return Promise.resolve({
          admitted: false,
          refused: claim,
          state: { used, reserved },
        });
      }
    }
    const states = claims.map((claim) => {
      const counter = this.#counter(claim.key, claim.expiresAt, now);
      counter.reserved += claim.amount;
      return { used: counter.used, reserved: counter.reserved };
    });
    this.#wrote(now);
    return Promise.resolve({ admitted: true, states });
  }

  settle(settlements: readonly CounterSettlement[]): Promise<void> {
    const now = this.#now();
    for (const settlement of settlements) {
      const counter = this.#counter(settlement.key, settlement.expiresAt, now);
      counter.reserved -= settlement.reserved;
      // A reservation outlived by its window was dropped with it.
      if (counter.reserved < 0n) counter.reserved = 0n;
      counter.used += settlement.actual;
    }
    this.#wrote(now);
    return Promise.resolve();
  }

  read(keys: readonly string[]): Promise<CounterState[]> {
    const now = this.#now();
    return Promise.resolve(
      keys.map((key) => {
        const counter = this.#live(key, now);
        return {
          used: counter?.used ?? 0n,
          reserved: counter?.reserved ?? 0n,
        };
      }),
    );
  }

  seed(key: string, used: bigint, expiresAt: number | null): Promise<void> {
    const counter = this.#counter(key, expiresAt, this.#now());
    if (!counter.seeded) {
      counter.used += used;
      counter.seeded = true;
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#counters.clear();
    return Promise.resolve();
  }

  #live(key: string, now: number): Counter | undefined {
    const counter = this.#counters.get(key);
    if (counter && counter.expiresAt !== null && counter.expiresAt <= now) {
      this.#counters.delete(key);
      return undefined;
    }
    return counter;
  }

  #counter(key: string, expiresAt: number | null, now: number): Counter {
    let counter = this.#live(key, now);
    if (!counter) {
      counter = { used: 0n, reserved: 0n, expiresAt, seeded: false };
      this.#counters.set(key, counter);
    }
    return counter;
  }

  #wrote(now: number): void {
    this.#writes += 1;
    if (this.#writes % SWEEP_EVERY !== 0) return;
    for (const [key, counter] of this.#counters) {
      if (counter.expiresAt !== null && counter.expiresAt <= now) {
        this.#counters.delete(key);
      }
    }
  }
}
