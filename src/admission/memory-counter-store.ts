/**
 * Counters in this process's memory: the embedded default, for one
 * gateway process. JavaScript runs one thing at a time, so a check and
 * its reservation cannot interleave with another request's.
 *
 * Counters whose window has ended are dropped when next touched, and
 * swept now and then so that many short-lived keys do not accumulate. A
 * rolling counter ends when its newest bucket has left the span.
 *
 * Each counter made is given an epoch of its own, so that a settlement
 * of a counter dropped since its reservation (its window over) finds the
 * counter gone, as on Redis, rather than counting in one started anew.
 */
import {
  ROLLING_BUCKETS,
  type BucketAmount,
  type CounterClaim,
  type CounterSettlement,
  type CounterState,
  type CounterStore,
  type ReserveResult,
  type RollingSeed,
} from './counter-store.js';

interface Counter {
  /** For a rolling counter, the totals of its buckets. */
  used: bigint;
  reserved: bigint;
  expiresAt: number | null;
  seeded: boolean;
  /** A rolling counter's buckets; undefined for any other. */
  rolling: Rolling | undefined;
  /** Names this counter apart from any made before under its key. */
  readonly epoch: string;
}

/**
 * A rolling counter's buckets that hold anything, oldest first: after the
 * counter is brought to its newest bucket `h`, all from `h -
 * ROLLING_BUCKETS` on. Only buckets in use take memory, so that a counter
 * per end user costs little more than a calendar window's.
 */
interface Rolling {
  newest: number;
  readonly buckets: Bucket[];
}

interface Bucket {
  readonly bucket: number;
  used: bigint;
  reserved: bigint;
}

/** How many counter writes between two sweeps of expired counters. */
const SWEEP_EVERY = 10_000;

/** How many settlement ids are remembered, at most. */
const SETTLED_IDS_KEPT = 100_000;

export class MemoryCounterStore implements CounterStore {
  readonly shared = false;
  readonly #counters = new Map<string, Counter>();
  readonly #now: () => number;
  /** Ids of settlements applied, so that a repeat applies nothing. */
  readonly #settled = new Set<string>();
  #writes = 0;
  /** Counters made so far; each takes the count as its epoch. */
  #made = 0;

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
      // Buckets that have left the span go before anything is decided;
      // that changes what the counter holds, never what it counts.
      if (counter?.rolling && claim.bucket !== undefined) {
        advance(counter, counter.rolling, claim.bucket);
      }
      const used = counter?.used ?? 0n;
      const reserved = counter?.reserved ?? 0n;
      if (used + reserved + claim.amount > claim.max) {
        return Promise.resolve({
          admitted: false,
          refused: claim,
          state: { used, reserved },
          ...(counter?.rolling && { buckets: bucketsOf(counter.rolling) }),
        });
      }
    }
    const states = claims.map((claim) => {
      const counter = this.#counter(claim, now);
      counter.reserved += claim.amount;
      if (counter.rolling && claim.bucket !== undefined) {
        // A claim dated before the oldest bucket the counter holds (its
        // clock behind, or stepped back, by a whole span) is reserved in
        // that oldest one, as on Redis: it counts a little longer, and
        // its settlement finds it.
        const bucket = Math.max(
          claim.bucket,
          counter.rolling.newest - ROLLING_BUCKETS,
        );
        bucketOf(counter.rolling, bucket).reserved += claim.amount;
        // A later bucket keeps the counter longer; an earlier one (a
        // request dated a moment before the last) never shortens it.
        if (claim.expiresAt !== null && counter.expiresAt !== null) {
          counter.expiresAt = Math.max(counter.expiresAt, claim.expiresAt);
        }
        return {
          used: counter.used,
          reserved: counter.reserved,
          bucket,
          epoch: counter.epoch,
        };
      }
      return {
        used: counter.used,
        reserved: counter.reserved,
        epoch: counter.epoch,
      };
    });
    this.#wrote(now);
    return Promise.resolve({ admitted: true, states });
  }

  settle(
    settlements: readonly CounterSettlement[],
    id?: string,
  ): Promise<boolean> {
    if (id !== undefined) {
      if (this.#settled.has(id)) return Promise.resolve(false);
      // Only a retry repeats an id, and it follows within moments: the
      // oldest ids may be forgotten.
      if (this.#settled.size >= SETTLED_IDS_KEPT) this.#settled.clear();
      this.#settled.add(id);
    }
    const now = this.#now();
    for (const settlement of settlements) {
      // A counter of another epoch, or none, is not the one reserved in.
      if (
        settlement.epoch !== undefined &&
        this.#live(settlement.key, now)?.epoch !== settlement.epoch
      ) {
        continue;
      }
      if (settlement.bucket !== undefined) {
        this.#settleRolling(settlement, now);
        continue;
      }
      const counter = this.#counter(settlement, now);
      counter.reserved -= settlement.reserved;
      // A reservation outlived by its window was dropped with it.
      if (counter.reserved < 0n) counter.reserved = 0n;
      counter.used += settlement.actual;
    }
    this.#wrote(now);
    return Promise.resolve(true);
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

  seed(
    key: string,
    used: bigint | RollingSeed,
    expiresAt: number | null,
  ): Promise<void> {
    const seed = typeof used === 'bigint' ? undefined : used;
    const counter = this.#counter(
      { key, expiresAt, ...(seed && { bucket: seed.bucket }) },
      this.#now(),
    );
    if (counter.seeded) return Promise.resolve();
    counter.seeded = true;
    const rolling = counter.rolling;
    if (typeof used === 'bigint' || !rolling) {
      counter.used += typeof used === 'bigint' ? used : 0n;
      return Promise.resolve();
    }
    advance(counter, rolling, used.bucket);
    for (const { bucket, amount } of used.used) {
      // The ledger's rows are all within the span; one that is not (a
      // clock far off) is not the span's to count.
      if (bucket < rolling.newest - ROLLING_BUCKETS) continue;
      advance(counter, rolling, bucket);
      bucketOf(rolling, bucket).used += amount;
      counter.used += amount;
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#counters.clear();
    return Promise.resolve();
  }

  /**
   * Settles in the bucket the reservation was made in. A counter that is
   * gone is left alone (see CounterStore.seed), and a bucket that has
   * left the span took the reservation with it.
   */
  #settleRolling(settlement: CounterSettlement, now: number): void {
    const counter = this.#live(settlement.key, now);
    const rolling = counter?.rolling;
    if (!counter || !rolling || settlement.bucket === undefined) return;
    const at = rolling.buckets.findLastIndex(
      (b) => b.bucket === settlement.bucket,
    );
    const bucket = rolling.buckets[at];
    if (!bucket) return;
    const released =
      bucket.reserved < settlement.reserved
        ? bucket.reserved
        : settlement.reserved;
    bucket.reserved -= released;
    counter.reserved -= released;
    bucket.used += settlement.actual;
    counter.used += settlement.actual;
  }

  #live(key: string, now: number): Counter | undefined {
    const counter = this.#counters.get(key);
    if (counter && counter.expiresAt !== null && counter.expiresAt <= now) {
      this.#counters.delete(key);
      return undefined;
    }
    return counter;
  }

  #counter(
    at: {
      readonly key: string;
      readonly expiresAt: number | null;
      readonly bucket?: number;
    },
    now: number,
  ): Counter {
    let counter = this.#live(at.key, now);
    if (!counter) {
      this.#made += 1;
      counter = {
        used: 0n,
        reserved: 0n,
        expiresAt: at.expiresAt,
        seeded: false,
        rolling:
          at.bucket === undefined
            ? undefined
            : { newest: at.bucket, buckets: [] },
        epoch: String(this.#made),
      };
      this.#counters.set(at.key, counter);
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

/**
 * Brings a rolling counter to `bucket`: the buckets that have left its
 * span (older than `bucket - ROLLING_BUCKETS`) go, their amounts taken
 * from the totals. A bucket older than the newest (a request dated a
 * moment before the last) changes nothing.
 */
function advance(counter: Counter, rolling: Rolling, bucket: number): void {
  if (bucket <= rolling.newest) return;
  rolling.newest = bucket;
  let gone = 0;
  for (const held of rolling.buckets) {
    if (held.bucket >= bucket - ROLLING_BUCKETS) break;
    counter.used -= held.used;
    counter.reserved -= held.reserved;
    gone += 1;
  }
  if (gone > 0) rolling.buckets.splice(0, gone);
}

/** A bucket of the counter's, added in its place if it held nothing. */
function bucketOf(rolling: Rolling, bucket: number): Bucket {
  const buckets = rolling.buckets;
  let at = buckets.length;
  while (at > 0 && (buckets[at - 1]?.bucket ?? -Infinity) > bucket) at -= 1;
  const before = buckets[at - 1];
  if (before?.bucket === bucket) return before;
  const added = { bucket, used: 0n, reserved: 0n };
  buckets.splice(at, 0, added);
  return added;
}

function bucketsOf(rolling: Rolling): BucketAmount[] {
  return rolling.buckets
    .map(({ bucket, used, reserved }) => ({ bucket, amount: used + reserved }))
    .filter(({ amount }) => amount > 0n);
}
