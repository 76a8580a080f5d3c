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
 *
 * A counter of a rolling window holds up to `ROLLING_BUCKETS + 1`
 * buckets, each a fixed slice of time counted apart, with totals kept
 * beside them. A claim names the bucket of its moment; the counter then
 * holds that bucket and the `ROLLING_BUCKETS` before it, and the buckets
 * older than those leave it (and its totals) as the claim comes. A
 * request reserves in its own bucket and is settled in that same bucket,
 * so that what it used leaves the span when its reservation would have.
 *
 * A counter that is lost and started again (Redis restarted empty, or the
 * counter expired) is another incarnation of it, with an epoch of its
 * own: a reservation names the epoch it was made in, and its settlement
 * changes only that incarnation. Otherwise a request reserved before the
 * loss would release, in the new counter, reservations that requests
 * admitted since hold there, and a counter rebuilt from the ledger, which
 * already counts the request, would count it again.
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
  /**
   * For a rolling window's counter: the bucket this request counts in
   * (its moment in ms since the epoch, divided by the bucket's width).
   * The claim fits if the counter's buckets from `bucket -
   * ROLLING_BUCKETS` on, with this amount, stay within `max`; it reserves
   * in `bucket`. Absent for any other counter.
   */
  readonly bucket?: number;
  /**
   * Once the claim is reserved, the epoch of the counter it was reserved
   * in (CounterState.epoch), for its settlement; `reserve` ignores it.
   */
  readonly epoch?: string;
}

/** A claimed counter settled to what the request really took. */
export interface CounterSettlement {
  readonly key: string;
  /** What the claim reserved, now released. */
  readonly reserved: bigint;
  /** What the request used, added to the counter; 0 for a release. */
  readonly actual: bigint;
  readonly expiresAt: number | null;
  /**
   * A rolling counter's bucket the claim reserved in: settled there, or
   * dropped if that bucket has left the counter (so has the reservation).
   */
  readonly bucket?: number;
  /**
   * The epoch of the counter the claim was reserved in. A counter of
   * another epoch, or none, is left as it is: the reservation went with
   * the counter it was made in, and a counter rebuilt since has the
   * request from the ledger. Absent (a record written before epochs),
   * the settlement applies to the counter as it stands.
   */
  readonly epoch?: string;
}

export interface CounterState {
  readonly used: bigint;
  readonly reserved: bigint;
  /**
   * After a rolling claim's reservation, the bucket it was reserved in,
   * where its settlement must go: the claim's own, or, for a claim dated
   * before the oldest bucket the counter still holds (a clock behind
   * another's, or stepped back), that oldest bucket.
   */
  readonly bucket?: number;
  /**
   * After a reservation, the counter's epoch: it names this incarnation
   * of the counter, until the counter is lost or expires.
   */
  readonly epoch?: string;
}

/** What one bucket of a rolling counter holds. */
export interface BucketAmount {
  readonly bucket: number;
  /** Used plus reserved, in the counter's unit. */
  readonly amount: bigint;
}

/** What the ledger says a rolling counter used, bucket by bucket. */
export interface RollingSeed {
  /** The bucket of the claim that asked for the seed: the newest. */
  readonly bucket: number;
  /**
   * What each bucket used, one entry per bucket, each within
   * `ROLLING_BUCKETS` of `bucket`; a bucket left out used nothing.
   */
  readonly used: readonly BucketAmount[];
}

/**
 * How many buckets before its own a rolling claim counts: the span is
 * cut in this many slices, and a counter holds one more (the current,
 * partly elapsed one). So at a moment `t` in bucket `k`, of width `w`,
 * the counter holds from `(k - ROLLING_BUCKETS) * w` to `t`: at least the
 * span `L = ROLLING_BUCKETS * w`, and less than `L + w`. Every span of
 * length L that ends at a claim lies inside what the claim counted, so a
 * rolling limit never admits more than its maximum in any span of length
 * L; it may refuse up to one bucket's width early.
 */
export const ROLLING_BUCKETS = 60;

export type ReserveResult =
  | { readonly admitted: true; readonly states: readonly CounterState[] }
  | {
      readonly admitted: false;
      /** The first claim that did not fit, with its counter as it stood. */
      readonly refused: CounterClaim;
      readonly state: CounterState;
      /**
       * For a rolling counter, what each of its non-empty buckets holds
       * (they sum to `state`), so the caller can tell when enough of them
       * will have left the span for the claim to fit.
       */
      readonly buckets?: readonly BucketAmount[];
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
  /**
   * Releases each reservation and adds the actual amount, atomically, in
   * the incarnation of the counter it was reserved in (see `seed`). `id`
   * names the settlement (the request's id): a store that has seen it
   * settles nothing again, so a settlement retried after an answer that
   * never came, or recovery releasing what its process had already
   * settled, counts once. Resolves whether this call applied it.
   */
  settle(
    settlements: readonly CounterSettlement[],
    id?: string,
  ): Promise<boolean>;
  /**
   * The counters as they stand; a counter never claimed reads as zero. A
   * rolling counter reads as of the newest bucket a claim has brought it
   * to: buckets leave it only as claims come.
   */
  read(keys: readonly string[]): Promise<CounterState[]>;
  /**
   * Adds what the ledger says a counter used and marks it seeded, once: a
   * counter already seeded is left as it is (another request, or another
   * replica, seeded it first). Money and tokens spent are never forgiven
   * by a restart or a lost counter store. A rolling counter is seeded
   * bucket by bucket, so that what was used leaves the span on time.
   *
   * Settling a counter that is gone (a rolling counter's buckets all
   * left the span, or Redis lost it), or that was started again since
   * the reservation (CounterSettlement.epoch), changes nothing: a counter
   * to rebuild is seeded from the ledger, which holds each request from
   * before its upstream call, at its worst case while it is open and as
   * settled after; a concurrency counter started again never held the
   * request's slot.
   */
  seed(
    key: string,
    used: bigint | RollingSeed,
    expiresAt: number | null,
  ): Promise<void>;
  close(): Promise<void>;
}

/** The counter store cannot be reached; the limit's policy decides. */
export class CounterStoreUnavailableError extends Error {
  override readonly name = 'CounterStoreUnavailableError';
}

/** Units of 10^-9 USD per USD: money counters count in nano-dollars. */
export const NANO_USD_PER_USD = 1_000_000_000n;
