/**
 * Live counters for limits and budgets: what each counter has used and
 * what requests in flight have reserved, checked and reserved in one
 * atomic step (DESIGN.md, "The request path", step 2).
 *
 * A request claims room in every counter that applies to it at once: all
 * claims fit and are reserved together, or none is. After the response
 * the reservation is settled to the actual amount; on failure it is
 * released (settled with an actual of zero). A concurrency counter is a
 * counter whose every settlement is zero: it holds only what is in flight.
 *
 * Amounts are integers in the limit's unit: requests, tokens, or money in
 * units of 10^-9 USD. Two implementations keep this contract: one in the
 * process (the embedded default) and one on Redis (for many replicas).
 */

/** Room one request wants in one counter. */
export interface CounterClaim {
  /** The counter: its limit, scope and window, as one stable string. */
  readonly key: string;
  /** The most the counter may hold: used plus reserved. */
  readonly max: bigint;
  /** What this request reserves: its worst case. */
  readonly amount: bigint;
  /**
   * When the counter's window has ended and it may be forgotten (ms since
   * the epoch); null for a counter with no window (concurrency).
   */
  readonly expiresAt: number | null;
  /**
   * The counter's used amount is rebuilt from the ledger when the store
   * first sees it (after a start, a new window, or a lost Redis): until
   * `seed` has run, `reserve` answers `unseeded` instead of deciding.
   */
  readonly rebuild?: boolean;
}

/** A claimed counter settled to what the request really took. */
export interface CounterSettlement {
  readonly key: string;
  /** What the claim reserved, now released. */
  readonly reserved: bigint;
  /** What the request used, added to the counter; 0 for a release. */
  readonly actual: bigint;
  readonly expiresAt: number | null;
}

export interface CounterState {
  readonly used: bigint;
  readonly reserved: bigint;
}

export type ReserveResult =
  | { readonly admitted: true; readonly states: readonly CounterState[] }
  | {
      readonly admitted: false;
      /** The first claim that did not fit, with its counter as it stood. */
      readonly refused: CounterClaim;
      readonly state: CounterState;
    }
  | {
      readonly admitted: false;
      readonly refused?: undefined;
      /** Claims to rebuild whose counters have not been seeded yet. */
      readonly unseeded: readonly CounterClaim[];
    };

export interface CounterStore {
  /**
   * Whether other processes count in the same counters (Redis), so that a
   * dead process's reservations are still there to release.
   */
  readonly shared: boolean;
  /**
   * Reserves every claim if each fits (`used + reserved + amount <= max`),
   * else none. On admission, `states` are the counters after the
   * reservation, in the order of the claims.
   */
  reserve(claims: readonly CounterClaim[]): Promise<ReserveResult>;
  /** Releases each reservation and adds the actual amount, atomically. */
  settle(settlements: readonly CounterSettlement[]): Promise<void>;
  /** The counters as they stand; a counter never claimed reads as zero. */
  read(keys: readonly string[]): Promise<CounterState[]>;
  /**
   * Adds what the ledger says a counter used and marks it seeded, once: a
   * counter already seeded is left as it is (another request, or another
   * replica, seeded it first). Money and tokens spent are never forgiven
   * by a restart or a lost counter store.
   */
  seed(key: string, used: bigint, expiresAt: number | null): Promise<void>;
  close(): Promise<void>;
}

/** The counter store cannot be reached; the limit's policy decides. */
export class CounterStoreUnavailableError extends Error {
  override readonly name = 'CounterStoreUnavailableError';
}

/** Units of 10^-9 USD per USD: money counters count in nano-dollars. */
export const NANO_USD_PER_USD = 1_000_000_000n;
