/**
 * Admission: before any upstream call, a request reserves its worst case
 * in every limit that applies to it, atomically, or is refused; after the
 * response its reservation is settled to what it really used (DESIGN.md,
 * "The request path", step 2, and "Usage, exactly once").
 *
 * The worst case is the metering bound (input bound plus output cap) and
 * its cost at the deployment's price. Limits count what the tenant is
 * charged. A tokens limit may weigh token classes apart (limits.ts,
 * `tokenWeights`): its worst case takes the whole input bound at the
 * heaviest input class, so it stays an upper bound however the input
 * splits between cache reads, cache writes and the rest.
 *
 * A window is a clock or calendar period (windows.ts) or a rolling span,
 * counted in buckets (counter-store.ts, `ROLLING_BUCKETS`): a request
 * counts in the bucket of the moment it is dated, as the ledger dates it,
 * and is settled in that same bucket.
 *
 * Counters of requests, tokens and money are rebuilt from the ledger when
 * the counter store first meets them (after a start, in a new window, or
 * after Redis lost them), so no restart or outage forgives spend: the
 * first request of a counter waits for one ledger query, and concurrent
 * first requests share it.
 *
 * An optional observer sees the counters of the limits it watches as
 * they stand after each settlement; soft thresholds and their webhooks
 * (thresholds.ts) are built on it, outside this file.
 */
import type { Logger } from 'pino';

import {
  formatDecimal,
  fromInteger,
  parseDecimal,
  roundDecimal,
  sumDecimals,
  type Decimal,
} from '../money/decimal.js';
import type { TokenCounts } from '../metering/usage.js';
import type { LimitScopeRow, Store, TenantRecord } from '../storage/store.js';
import {
  CounterStoreUnavailableError,
  NANO_USD_PER_USD,
  ROLLING_BUCKETS,
  type BucketAmount,
  type CounterClaim,
  type CounterSettlement,
  type CounterState,
  type CounterStore,
  type ReserveResult,
  type RollingSeed,
} from './counter-store.js';
import {
  isRolling,
  measureOf,
  rollingSpanMs,
  tokenWeightsOf,
  WEIGHT_UNITS_PER_TOKEN,
  type LimitConfig,
  type Measure,
  type TokenWeights,
} from './limits.js';
import {
  bucketAt,
  bucketLeavesAt,
  countedFrom,
  windowAt,
  type RollingBucket,
  type Window,
} from './windows.js';

/** What admission knows of a request before its upstream call. */
export interface AdmissionRequest {
  readonly requestId: string;
  readonly tenant: TenantRecord;
  readonly keyId: string;
  readonly endUser: string | null;
  /** The public model name the client asked for. */
  readonly model: string;
  /** Upper bound on input tokens, every input class together. */
  readonly worstInputTokens: number;
  /** The output cap: `max_tokens`, or the configured cap. */
  readonly worstOutputTokens: number;
  /** The worst case's charge; null when the deployment has no price. */
  readonly worstCost: Decimal | null;
  /**
   * When the request is dated, as its ledger record is (epoch ms): its
   * windows and rolling buckets are taken at this moment, so that a
   * counter rebuilt from the ledger finds it where it was counted.
   * Absent: admission's clock.
   */
  readonly servedAt?: number;
}

/** What the request really used, once settled. */
export interface AdmissionUsage {
  /** By class: a tokens limit weighs each class by its own weight. */
  readonly tokens: TokenCounts;
  /** The tenant's charge; null when unknown (the reservation is kept). */
  readonly cost: Decimal | null;
}

export type RefusalReason =
  | 'rate_limit_exceeded'
  | 'budget_exceeded'
  | 'budget_unpriced'
  | 'limits_unavailable';

/** Why a request was not admitted, for the caller's API's error. */
export class AdmissionRefusal extends Error {
  override readonly name = 'AdmissionRefusal';
  readonly reason: RefusalReason;
  readonly limitId: string | null;
  /** Seconds until the window that refused reopens, where one will. */
  readonly retryAfterSeconds: number | null;
  readonly headers: Readonly<Record<string, string>>;
  /** What the refusing limit counts, where a full limit refused. */
  readonly measure: Measure | null;

  constructor(
    reason: RefusalReason,
    message: string,
    details: {
      limitId: string | null;
      retryAfterSeconds: number | null;
      headers?: Readonly<Record<string, string>>;
      measure?: Measure;
    },
  ) {
    super(message);
    this.reason = reason;
    this.limitId = details.limitId;
    this.retryAfterSeconds = details.retryAfterSeconds;
    this.headers = details.headers ?? {};
    this.measure = details.measure ?? null;
  }
}

/** A settled counter of a limit with a window, as it stands after. */
export interface CounterReading {
  readonly limit: LimitConfig;
  readonly measure: Measure;
  readonly tenantId: string;
  /** What the counter counts: its key less the limit and the window. */
  readonly scope: string;
  readonly window: Window;
  /** The limit's maximum in the counter's unit (nano-USD for money). */
  readonly max: bigint;
  readonly state: CounterState;
}

/** Sees counters after settlements, e.g. to fire soft thresholds. */
export interface CounterObserver {
  /** Whether it wants to see this limit's counters. */
  watches(limit: LimitConfig): boolean;
  /** Resolves once it has acted; a rejection is logged, never thrown. */
  observe(readings: readonly CounterReading[]): Promise<void>;
}

interface Claimed {
  readonly limit: LimitConfig;
  readonly measure: Measure;
  readonly shape: LimitShape;
  readonly tenantId: string;
  readonly scope: string;
  /** A clock or calendar window; null for a rolling one, or none. */
  readonly window: Window | null;
  /** A rolling window's bucket for this request; null for any other. */
  readonly rolling: RollingBucket | null;
  readonly claim: CounterClaim;
}

/** What admission works out of a limit once, not on every request. */
interface LimitShape {
  /** The maximum in the counter's unit (nano-USD for money). */
  readonly max: bigint;
  readonly weights: TokenWeights;
  /** The heaviest input class's weight: an input bound's. */
  readonly heaviestInput: bigint;
  /** A rolling window's span in ms; null for any other. */
  readonly spanMs: number | null;
  /** How its counters' names give the window: `w=month:`, or null. */
  readonly windowName: string | null;
  /** How they end: the measure, and a tokens limit's weights. */
  readonly keySuffix: string;
}

/** A reservation as a request's durable record keeps it. */
interface StoredReservation {
  readonly key: string;
  readonly measure: Measure;
  /** An integer in the counter's unit, as a string. */
  readonly amount: string;
  readonly expiresAt: number | null;
  /** A rolling counter's bucket; absent for any other. */
  readonly bucket?: number;
  /** The epoch of the counter reserved in; absent in older records. */
  readonly epoch?: string;
}

/** The most a counter of a limit that does not block is let hold. */
const UNBOUNDED = BigInt(Number.MAX_SAFE_INTEGER);

/** A settlement the counter store has not taken yet. */
interface UnsettledCounters {
  readonly settlements: readonly CounterSettlement[];
  /** The claims, to show the observer once settled; none for recovery. */
  readonly claimed: readonly Claimed[];
  readonly since: number;
  retries: number;
  nextAt: number;
}

/** The first wait before a settlement is retried, doubled each time. */
const SETTLE_RETRY_FIRST_MS = 250;
const SETTLE_RETRY_MAX_MS = 30_000;

export class Admission {
  readonly #store: CounterStore;
  #limits: readonly LimitConfig[];
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Reservations in flight, by request id. */
  readonly #tickets = new Map<string, readonly Claimed[]>();
  readonly #ledger: Store | undefined;
  /** Counters being seeded from the ledger, by key. */
  readonly #seeding = new Map<string, Promise<void>>();
  /** Each limit's shape, computed once (and let go with the limit). */
  readonly #shapes = new WeakMap<LimitConfig, LimitShape>();
  readonly #observer: CounterObserver | undefined;
  /** Counters already warned of passing a limit that allows overage. */
  readonly #warnedPast = new Set<string>();
  /** Settlements the counter store did not take, retried by request id. */
  readonly #unsettled = new Map<string, UnsettledCounters>();
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #retrySettlesForMs: number;

  /** Without a `ledger`, counters start from zero. */
  constructor(
    store: CounterStore,
    limits: readonly LimitConfig[],
    logger: Logger,
    options: {
      readonly ledger?: Store;
      readonly now?: () => number;
      readonly observer?: CounterObserver;
      /**
       * How long a settlement the counter store did not take is retried.
       * It must stay below the store's memory of settlement ids
       * (SETTLED_MARKER_TTL_MS on Redis), so that a retry of one that
       * did go through is still known for a repeat.
       */
      readonly retrySettlesForMs?: number;
    } = {},
  ) {
    this.#retrySettlesForMs = options.retrySettlesForMs ?? 50 * 60_000;
    this.#ledger = options.ledger;
    this.#observer = options.observer;
    const now = options.now ?? Date.now;
    this.#store = store;
    this.#limits = limits;
    this.#logger = logger;
    this.#now = now;
  }

  /** The limits in force. */
  get limits(): readonly LimitConfig[] {
    return this.#limits;
  }

  /**
   * Puts new limits in force for requests admitted from now on. Counters
   * are named by limit id, scope and window, never by the maximum, so a
   * limit that is changed keeps what its counters hold: a reload never
   * resets live spend. Requests in flight settle against the limits they
   * were admitted under.
   */
  setLimits(limits: readonly LimitConfig[]): void {
    this.#limits = limits;
  }

  /**
   * The reservations a request holds, as JSON for its durable record, so
   * that recovery can release them if this process dies; null for none.
   */
  reservationsOf(requestId: string): string | null {
    const claimed = this.#tickets.get(requestId);
    if (!claimed || claimed.length === 0) return null;
    return JSON.stringify(
      claimed.map((c): StoredReservation => ({
        key: c.claim.key,
        measure: c.measure,
        amount: c.claim.amount.toString(),
        expiresAt: c.claim.expiresAt,
        ...(c.claim.bucket !== undefined && { bucket: c.claim.bucket }),
        ...(c.claim.epoch !== undefined && { epoch: c.claim.epoch }),
      })),
    );
  }

  /**
   * Releases the reservations of a request recovered from a dead process,
   * settled as the ledger settles it: at its worst case (concurrency
   * slots freed). Only shared counters still hold them; a process's own
   * counters died with it and are rebuilt from the ledger.
   */
  async releaseRecovered(
    requestId: string,
    reservations: string | null,
  ): Promise<void> {
    if (reservations === null || !this.#store.shared) return;
    let held: StoredReservation[];
    try {
      held = JSON.parse(reservations) as StoredReservation[];
    } catch {
      this.#logger.error(
        { requestId },
        'a recovered request has unreadable reservations',
      );
      return;
    }
    // Under the request's own id: if its process settled the counters
    // before it died (its ledger write failed, say), this counts nothing.
    await this.#settleCounters(
      requestId,
      held.map((r) => ({
        key: r.key,
        reserved: BigInt(r.amount),
        actual: r.measure === 'concurrent' ? 0n : BigInt(r.amount),
        expiresAt: r.expiresAt,
        ...(r.bucket !== undefined && { bucket: r.bucket }),
        ...(r.epoch !== undefined && { epoch: r.epoch }),
      })),
      [],
    );
  }

  /** Settlements waiting for the counter store to take them. */
  get unsettled(): number {
    return this.#unsettled.size;
  }

  /**
   * Tries once more every settlement the counter store has not taken,
   * and stops retrying: for shutdown. What is still not taken stays
   * reserved until its counter's window ends (or its idle spell, for a
   * concurrency slot), which is conservative, never forgiving.
   */
  async stop(): Promise<void> {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#retryUnsettled(true);
    if (this.#unsettled.size > 0) {
      this.#logger.error(
        { requests: [...this.#unsettled.keys()] },
        'stopping with counter settlements the counter store never took; ' +
          'their reservations stay held until their windows end',
      );
      this.#unsettled.clear();
    }
  }

  /** Whether other processes share these counters (Redis). */
  get countersShared(): boolean {
    return this.#store.shared;
  }

  /**
   * Drops a request's ticket without touching its counters: recovery will
   * release its reservations from its durable record.
   */
  forget(requestId: string): void {
    this.#tickets.delete(requestId);
  }

  /** Requests holding a reservation now. */
  get inFlight(): number {
    return this.#tickets.size;
  }

  /**
   * Whether a blocking limit in force counts this scope's requests by an
   * amount that grows with their output (tokens whose output weighs
   * anything, or money), so that their output cap must be one the
   * upstream honours for the worst case to be a bound
   * (src/gateway/inference/output-cap.ts). A limit that allows overage
   * refuses nothing, so no bound of its is at stake.
   */
  boundsOutput(
    scope: Pick<AdmissionRequest, 'tenant' | 'keyId' | 'endUser' | 'model'>,
  ): boolean {
    return this.#limits.some((limit) => {
      const measure = measureOf(limit);
      if (measure === 'requests' || measure === 'concurrent') return false;
      if (limit.onExceed !== 'block' || !inScope(limit, scope)) return false;
      return (
        measure === 'budget' ||
        this.#shapeOf(limit, measure).weights.output > 0n
      );
    });
  }

  /**
   * Reserves the request's worst case in every limit that applies, or
   * throws AdmissionRefusal. Resolves with the rate-limit headers for the
   * answer, in OpenAI's style.
   */
  async admit(
    request: AdmissionRequest,
  ): Promise<Readonly<Record<string, string>>> {
    const now = this.#now();
    const claimed = this.#claims(request, now);
    if (claimed.length === 0) return {};

    let result: ReserveResult;
    try {
      result = await this.#reserve(request, claimed);
    } catch (error) {
      if (!(error instanceof CounterStoreUnavailableError)) throw error;
      return this.#storeDown(request, claimed, error);
    }
    if (!result.admitted) {
      if (!result.refused) throw new Error('counters were never seeded');
      const refused = claimed.find((c) => c.claim === result.refused);
      if (!refused) throw new Error('the counter store refused no claim');
      throw this.#refusal(refused, result.state, result.buckets, now);
    }
    // A claim is settled where the store reserved it: in that epoch of
    // the counter, and a rolling claim in the bucket it was reserved in.
    const held = claimed.map((c, i) => {
      const state = result.states[i];
      return {
        ...c,
        claim: {
          ...c.claim,
          ...(state?.bucket !== undefined && { bucket: state.bucket }),
          ...(state?.epoch !== undefined && { epoch: state.epoch }),
        },
      };
    });
    this.#tickets.set(request.requestId, held);
    held.forEach((c, i) => this.#warnIfPassed(request, c, result.states[i]));
    return rateLimitHeaders(held, result.states, now);
  }

  /**
   * Settles a request's reservation to what it used; `usage` null
   * releases it (nothing was served: only the request itself counts);
   * `'worst'` keeps the worst case as used, for a request whose usage
   * cannot be known (never forgiving).
   */
  async settle(
    requestId: string,
    usage: AdmissionUsage | 'worst' | null,
  ): Promise<void> {
    const claimed = this.#tickets.get(requestId);
    if (!claimed) return;
    this.#tickets.delete(requestId);
    const settlements = claimed.map((c) => ({
      key: c.claim.key,
      reserved: c.claim.amount,
      actual: actualAmount(c, usage),
      expiresAt: c.claim.expiresAt,
      ...(c.claim.bucket !== undefined && { bucket: c.claim.bucket }),
      ...(c.claim.epoch !== undefined && { epoch: c.claim.epoch }),
    }));
    await this.#settleCounters(requestId, settlements, claimed);
  }

  /**
   * Settles in the counter store under the request's id, or, when the
   * store cannot be reached, keeps the settlement and retries it with
   * backoff: a reservation never settled would hold its room (a
   * concurrency slot, above all) long after the request ended. The id
   * makes a retry of a settlement that did go through, its answer lost,
   * count nothing.
   */
  async #settleCounters(
    requestId: string,
    settlements: readonly CounterSettlement[],
    claimed: readonly Claimed[],
  ): Promise<void> {
    try {
      await this.#store.settle(settlements, requestId);
    } catch (error) {
      if (!(error instanceof CounterStoreUnavailableError)) {
        this.#logger.error(
          { err: error, requestId },
          'could not settle a reservation in the counter store',
        );
        return;
      }
      const now = this.#now();
      this.#unsettled.set(requestId, {
        settlements,
        claimed,
        since: now,
        retries: 0,
        nextAt: now + SETTLE_RETRY_FIRST_MS,
      });
      this.#logger.error(
        { err: error, requestId, unsettled: this.#unsettled.size },
        'COUNTER STORE DOWN: could not settle a reservation; retrying it ' +
          'until the store is back',
      );
      this.#scheduleRetry();
      return;
    }
    if (claimed.length > 0) await this.#observe(requestId, claimed);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#unsettled.size === 0) return;
    const next = Math.min(
      ...[...this.#unsettled.values()].map((u) => u.nextAt),
    );
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = undefined;
        void this.#retryUnsettled(false).finally(() => this.#scheduleRetry());
      },
      Math.max(0, next - this.#now()),
    );
    this.#retryTimer.unref();
  }

  /** One round of retries: those due, or all when `all`. */
  async #retryUnsettled(all: boolean): Promise<void> {
    const now = this.#now();
    for (const [requestId, unsettled] of [...this.#unsettled]) {
      if (!all && unsettled.nextAt > now) continue;
      try {
        await this.#store.settle(unsettled.settlements, requestId);
      } catch (error) {
        if (now - unsettled.since >= this.#retrySettlesForMs) {
          this.#unsettled.delete(requestId);
          this.#logger.error(
            { err: error, requestId },
            'gave up settling a reservation; it stays held until its ' +
              'window ends',
          );
          continue;
        }
        unsettled.retries += 1;
        unsettled.nextAt =
          now +
          Math.min(
            SETTLE_RETRY_MAX_MS,
            SETTLE_RETRY_FIRST_MS * 2 ** unsettled.retries,
          );
        // The store is still down: the others would fail the same way.
        if (!all) break;
        continue;
      }
      this.#unsettled.delete(requestId);
      this.#logger.info(
        { requestId, retries: unsettled.retries + 1 },
        'settled a reservation the counter store had not taken',
      );
      if (unsettled.claimed.length > 0) {
        await this.#observe(requestId, unsettled.claimed);
      }
    }
  }

  /** Shows the observer the settled counters it watches. */
  async #observe(
    requestId: string,
    claimed: readonly Claimed[],
  ): Promise<void> {
    const observer = this.#observer;
    const watched = claimed.filter(
      (c): c is Claimed & { window: Window } =>
        c.window !== null && observer?.watches(c.limit) === true,
    );
    if (!observer || watched.length === 0) return;
    try {
      const states = await this.#store.read(watched.map((c) => c.claim.key));
      await observer.observe(
        watched.map((c, i) => ({
          limit: c.limit,
          measure: c.measure,
          tenantId: c.tenantId,
          scope: c.scope,
          window: c.window,
          max: c.shape.max,
          state: states[i] ?? { used: 0n, reserved: 0n },
        })),
      );
    } catch (error) {
      this.#logger.error(
        { err: error, requestId },
        'could not check the thresholds of settled counters',
      );
    }
  }

  /** Reserves, seeding from the ledger the counters that need it first. */
  async #reserve(
    request: AdmissionRequest,
    claimed: readonly Claimed[],
  ): Promise<ReserveResult> {
    const claims = claimed.map((c) => c.claim);
    for (let round = 0; round < 3; round += 1) {
      const result = await this.#store.reserve(claims);
      if (result.admitted || result.refused) return result;
      await Promise.all(
        result.unseeded.map((claim) => {
          const c = claimed.find((one) => one.claim === claim);
          return c ? this.#seed(request, c) : Promise.resolve();
        }),
      );
    }
    return this.#store.reserve(claims);
  }

  /** Seeds one counter from the ledger; concurrent callers share it. */
  #seed(request: AdmissionRequest, c: Claimed): Promise<void> {
    const key = c.claim.key;
    let seeding = this.#seeding.get(key);
    if (!seeding) {
      seeding = this.#ledgerAmount(request, c)
        .then((used) => this.#store.seed(key, used, c.claim.expiresAt))
        .finally(() => this.#seeding.delete(key));
      this.#seeding.set(key, seeding);
    }
    return seeding;
  }

  /**
   * What the ledger says the counter's scope used in its window so far:
   * settled requests at their usage and charge, open ones (in flight
   * elsewhere, or cut off by a crash) and unknown charges at their worst
   * case, each rounded as a settlement would be. A rolling window's, by
   * bucket: each request in the bucket of its date, as it was counted.
   */
  async #ledgerAmount(
    request: AdmissionRequest,
    c: Claimed,
  ): Promise<bigint | RollingSeed> {
    const { limit, window, rolling } = c;
    const span = rolling
      ? {
          from: countedFrom(rolling),
          to: (rolling.bucket + 1) * rolling.bucketMs,
        }
      : window && { from: window.start, to: window.end };
    const none = rolling ? { bucket: rolling.bucket, used: [] } : 0n;
    if (!this.#ledger || !span) return none;
    const rows = await this.#ledger.limitScopeUsage({
      tenantId: request.tenant.id,
      ...(limit.key !== undefined && { keyId: limit.key }),
      ...(limit.endUser !== undefined && {
        endUser:
          limit.endUser === '*'
            ? request.endUser
            : limit.endUser === ''
              ? null
              : limit.endUser,
      }),
      ...(limit.model !== undefined && { model: limit.model }),
      ...span,
    });
    if (!rolling) {
      return rows.reduce((used, row) => used + ledgerAmount(c, row), 0n);
    }
    const byBucket = new Map<number, bigint>();
    for (const row of rows) {
      const bucket = Math.floor(row.servedAt / rolling.bucketMs);
      byBucket.set(bucket, (byBucket.get(bucket) ?? 0n) + ledgerAmount(c, row));
    }
    return {
      bucket: rolling.bucket,
      used: [...byBucket].map(([bucket, amount]) => ({ bucket, amount })),
    };
  }

  #claims(request: AdmissionRequest, now: number): Claimed[] {
    const at = request.servedAt ?? now;
    const claimed: Claimed[] = [];
    for (const limit of this.#limits) {
      if (!applies(limit, request)) continue;
      const measure = measureOf(limit);
      const shape = this.#shapeOf(limit, measure);
      const window =
        limit.per && !isRolling(limit.per)
          ? windowAt(limit.per, at, request.tenant.timezone)
          : null;
      const rolling = shape.spanMs === null ? null : bucketAt(shape.spanMs, at);
      const scope = counterScope(limit, request);
      claimed.push({
        limit,
        measure,
        shape,
        tenantId: request.tenant.id,
        scope,
        window,
        rolling,
        claim: {
          key: counterKey(limit, shape, scope, window),
          max: limit.onExceed === 'block' ? shape.max : UNBOUNDED,
          amount: reservedAmount(measure, shape, request),
          expiresAt: rolling
            ? bucketLeavesAt(rolling, rolling.bucket)
            : (window?.end ?? null),
          rebuild: window !== null || rolling !== null,
          ...(rolling && { bucket: rolling.bucket }),
        },
      });
    }
    return claimed;
  }

  #shapeOf(limit: LimitConfig, measure: Measure): LimitShape {
    let shape = this.#shapes.get(limit);
    if (!shape) {
      const weights = tokenWeightsOf(limit);
      const spanMs = isRolling(limit.per)
        ? rollingSpanMs(limit.per.rolling)
        : null;
      // limitSchema refuses such a span; a limit built past it must not
      // pass for one with no window.
      if (spanMs === undefined) {
        throw new RangeError(`the limit '${limit.id}' has no readable span`);
      }
      shape = {
        max: maxOf(limit, measure),
        weights,
        heaviestInput: [
          weights.cacheRead,
          weights.cacheWrite,
          weights.cacheWrite1h,
        ].reduce((a, b) => (b > a ? b : a), weights.input),
        spanMs,
        ...counterNaming(limit, spanMs),
      };
      this.#shapes.set(limit, shape);
    }
    return shape;
  }

  #storeDown(
    request: AdmissionRequest,
    claimed: readonly Claimed[],
    error: Error,
  ): Readonly<Record<string, string>> {
    const closed = claimed.find((c) => c.limit.onStoreDown === 'closed');
    this.#logger.error(
      {
        err: error,
        requestId: request.requestId,
        tenantId: request.tenant.id,
        limits: claimed.map((c) => c.limit.id),
        admitted: closed === undefined,
      },
      closed
        ? 'COUNTER STORE DOWN: refusing a request whose limits fail closed'
        : 'COUNTER STORE DOWN: admitting a request uncounted (its limits ' +
            'fail open)',
    );
    if (closed) {
      throw new AdmissionRefusal(
        'limits_unavailable',
        `The limit '${closed.limit.id}' cannot be checked right now; try ` +
          'again shortly.',
        { limitId: closed.limit.id, retryAfterSeconds: 1 },
      );
    }
    return {};
  }

  #refusal(
    refused: Claimed,
    state: CounterState,
    buckets: readonly BucketAmount[] | undefined,
    now: number,
  ): AdmissionRefusal {
    const { limit, measure, window, rolling } = refused;
    const max = refused.shape.max;
    const unit = measure === 'tokens' && limit.tokenWeights ? 'weighted ' : '';
    if (refused.claim.amount > max) {
      // No window will ever hold it: telling the client to retry would
      // have it wait for nothing.
      return new AdmissionRefusal(
        measure === 'budget' ? 'budget_exceeded' : 'rate_limit_exceeded',
        `This request's worst case (${describeAmount(measure, refused.claim.amount, unit)}) ` +
          `is larger than the whole of the limit '${limit.id}' ` +
          `(${describeAmount(measure, max, unit)}); lower max_tokens or the input.`,
        { limitId: limit.id, retryAfterSeconds: null, measure },
      );
    }
    // When the refused claim would fit, if nothing else claims meanwhile:
    // a window's end, or when enough of a rolling span's oldest buckets
    // have left it.
    const reopensAt = rolling
      ? roomFreesAt(
          rolling,
          buckets ?? [],
          state.used + state.reserved + refused.claim.amount - max,
        )
      : (window?.end ?? null);
    const retryAfterSeconds =
      reopensAt === null ? 1 : Math.max(1, Math.ceil((reopensAt - now) / 1000));
    const left = max - state.used - state.reserved;
    if (measure === 'budget') {
      return new AdmissionRefusal(
        'budget_exceeded',
        `This request could cost up to ${formatNano(refused.claim.amount)} ` +
          `USD, more than is left of the budget '${limit.id}' ` +
          `(${formatNano(left < 0n ? 0n : left)} of ${limit.budgetUsd} USD ` +
          `${isRolling(limit.per) ? `in the last ${limit.per.rolling}` : `this ${limit.per}`}).`,
        { limitId: limit.id, retryAfterSeconds, measure },
      );
    }
    const what =
      measure === 'concurrent'
        ? `${limit.concurrent} requests in flight at once`
        : `${String(max)} ${unit}${measure} per ` +
          (isRolling(limit.per) ? `rolling ${limit.per.rolling}` : limit.per);
    // The refusing limit's standing, in OpenAI's headers, so clients that
    // back off on them see why.
    const headers =
      reopensAt !== null && (measure === 'requests' || measure === 'tokens')
        ? {
            [`x-ratelimit-limit-${measure}`]: String(max),
            [`x-ratelimit-remaining-${measure}`]: String(left < 0n ? 0n : left),
            [`x-ratelimit-reset-${measure}`]: resetIn(reopensAt - now),
          }
        : {};
    return new AdmissionRefusal(
      'rate_limit_exceeded',
      `Rate limit '${limit.id}' reached: ${what}` +
        (measure === 'tokens'
          ? `; ${String(left < 0n ? 0n : left)} left, and this request may ` +
            `use up to ${refused.claim.amount} ${unit}tokens (its input ` +
            'bound plus its output cap: lower max_tokens to fit).'
          : '.'),
      { limitId: limit.id, retryAfterSeconds, headers, measure },
    );
  }

  #warnIfPassed(
    request: AdmissionRequest,
    c: Claimed,
    state: CounterState | undefined,
  ): void {
    if (c.limit.onExceed === 'block' || !state) return;
    const max = c.shape.max;
    // By what was used, not reserved: a worst case past the maximum is
    // not yet overage, and mostly never is.
    if (state.used <= max) return;
    // Once per counter: past a plan that bills overage, every request of
    // the rest of the month is past it, and that is the plan working.
    if (this.#warnedPast.has(c.claim.key)) return;
    if (this.#warnedPast.size >= 10_000) this.#warnedPast.clear();
    this.#warnedPast.add(c.claim.key);
    this.#logger.warn(
      {
        requestId: request.requestId,
        tenantId: request.tenant.id,
        limit: c.limit.id,
        // Money as USD, not the counter's nano-dollars.
        max: describeAmount(c.measure, max, ''),
        used: describeAmount(c.measure, state.used, ''),
      },
      'a counter used past a limit that allows overage; its further ' +
        'requests are admitted without another warning',
    );
  }
}

/** Whether a limit's scope takes in requests of this one. */
function inScope(
  limit: LimitConfig,
  scope: Pick<AdmissionRequest, 'tenant' | 'keyId' | 'endUser' | 'model'>,
): boolean {
  if (
    limit.tenant !== undefined &&
    limit.tenant !== scope.tenant.id &&
    limit.tenant !== scope.tenant.name
  ) {
    return false;
  }
  if (limit.key !== undefined && limit.key !== scope.keyId) return false;
  if (limit.model !== undefined && limit.model !== scope.model) return false;
  return (
    limit.endUser === undefined ||
    limit.endUser === '*' ||
    limit.endUser === (scope.endUser ?? '')
  );
}

/** Whether a limit counts this request. */
function applies(limit: LimitConfig, request: AdmissionRequest): boolean {
  if (!inScope(limit, request)) return false;
  if (limit.budgetUsd !== undefined && request.worstCost === null) {
    throw new AdmissionRefusal(
      'budget_unpriced',
      `The model '${request.model}' has no price, so the budget ` +
        `'${limit.id}' cannot admit it.`,
      { limitId: limit.id, retryAfterSeconds: null },
    );
  }
  return true;
}

/**
 * The counter a request counts in: the limit, its scope, and its window.
 */
function counterKey(
  limit: LimitConfig,
  shape: LimitShape,
  scope: string,
  window: Window | null,
): string {
  const parts = [`l=${limit.id}`, scope];
  if (shape.windowName !== null) {
    parts.push(shape.windowName + (window?.id ?? ''));
  }
  parts.push(shape.keySuffix);
  return parts.join('|');
}

/**
 * The parts of a limit's counters' names that are the same for every
 * request. The measure and the window's unit are in them: a limit
 * redefined under the same id (from a budget to tokens, from days to
 * months) starts counters of its own rather than reading the old ones in
 * new units. So are a tokens limit's weights, which are its unit too. A
 * rolling counter is one for as long as it is used, named by its span
 * and bucket count, since they lay out its buckets; each new one is
 * rebuilt from the ledger.
 */
function counterNaming(
  limit: LimitConfig,
  spanMs: number | null,
): { windowName: string | null; keySuffix: string } {
  const per = limit.per;
  const windowName =
    spanMs !== null
      ? `w=rolling:${spanMs}ms/${ROLLING_BUCKETS}`
      : per !== undefined && !isRolling(per)
        ? `w=${per}:`
        : null;
  const suffix = [`x=${measureOf(limit)}`];
  if (limit.tokenWeights) suffix.push(`g=${weightsName(limit)}`);
  return { windowName, keySuffix: suffix.join('|') };
}

/**
 * What a limit's counter counts for a request: the tenant (a limit
 * without one counts each tenant apart) and the scope the limit names.
 */
function counterScope(limit: LimitConfig, request: AdmissionRequest): string {
  const parts = [`t=${request.tenant.id}`];
  if (limit.key !== undefined) parts.push(`k=${limit.key}`);
  if (limit.model !== undefined) parts.push(`m=${limit.model}`);
  if (limit.endUser === '*') {
    parts.push(`u=${encodeURIComponent(request.endUser ?? '')}`);
  } else if (limit.endUser !== undefined) {
    parts.push(`u=${encodeURIComponent(limit.endUser)}`);
  }
  return parts.join('|');
}

function maxOf(limit: LimitConfig, measure: Measure): bigint {
  switch (measure) {
    case 'requests':
      return BigInt(limit.requests ?? 0);
    case 'tokens':
      return BigInt(limit.tokens ?? 0);
    case 'concurrent':
      return BigInt(limit.concurrent ?? 0);
    case 'budget':
      return toNano(parseDecimal(limit.budgetUsd ?? '0'));
  }
}

function reservedAmount(
  measure: Measure,
  shape: LimitShape,
  request: AdmissionRequest,
): bigint {
  switch (measure) {
    case 'requests':
    case 'concurrent':
      return 1n;
    case 'tokens':
      return worstTokens(
        shape,
        request.worstInputTokens,
        request.worstOutputTokens,
      );
    case 'budget':
      // applies() refused an unpriced request under a budget.
      return request.worstCost ? toNano(request.worstCost) : 0n;
  }
}

function actualAmount(
  c: Claimed,
  usage: AdmissionUsage | 'worst' | null,
): bigint {
  switch (c.measure) {
    case 'requests':
      return 1n;
    case 'concurrent':
      return 0n;
    case 'tokens':
      if (usage === 'worst') return c.claim.amount;
      return usage ? weighTokens(c.shape.weights, usage.tokens) : 0n;
    case 'budget':
      if (usage === 'worst') return c.claim.amount;
      if (!usage) return 0n;
      // An unknown charge keeps the worst case: never forgiving.
      return usage.cost === null ? c.claim.amount : toNano(usage.cost);
  }
}

/**
 * What a request in the ledger counts for in a counter, as a settlement
 * (or, still open, its reservation) would have counted it.
 */
function ledgerAmount(c: Claimed, row: LimitScopeRow): bigint {
  switch (c.measure) {
    case 'requests':
      return 1n;
    case 'concurrent':
      return 0n;
    case 'tokens':
      return row.pending
        ? worstTokens(
            c.shape,
            row.reservedInputTokens,
            row.reservedOutputTokens,
          )
        : weighTokens(c.shape.weights, row.tokens);
    case 'budget': {
      const worst =
        row.reservedCost === null ? 0n : toNano(parseDecimal(row.reservedCost));
      if (row.pending || row.charges.some((charge) => charge === null)) {
        return worst;
      }
      return toNano(
        sumDecimals(row.charges.map((charge) => parseDecimal(charge ?? '0'))),
      );
    }
  }
}

/**
 * Tokens as a tokens limit counts them: each class at its weight, summed
 * in millionths of a token, then rounded up to a whole token. This is the
 * one place a count is rounded: once per request, as it settles (or as
 * the ledger's record of it is read back), never per class.
 */
function weighTokens(weights: TokenWeights, tokens: TokenCounts): bigint {
  return wholeTokensUp(
    BigInt(tokens.inputTokens) * weights.input +
      BigInt(tokens.cacheReadTokens) * weights.cacheRead +
      BigInt(tokens.cacheWriteTokens) * weights.cacheWrite +
      BigInt(tokens.cacheWrite1hTokens) * weights.cacheWrite1h +
      BigInt(tokens.outputTokens) * weights.output,
  );
}

/**
 * A request's worst case under a tokens limit: the whole input bound at
 * the heaviest input class (the bound does not say how the input will
 * split between cache reads, writes and the rest) plus the output cap at
 * the output weight, rounded up as `weighTokens` rounds. No usage within
 * those bounds weighs more, so it settles at or below its reservation.
 */
function worstTokens(shape: LimitShape, input: number, output: number): bigint {
  return wholeTokensUp(
    BigInt(input) * shape.heaviestInput + BigInt(output) * shape.weights.output,
  );
}

function wholeTokensUp(millionths: bigint): bigint {
  return (millionths + WEIGHT_UNITS_PER_TOKEN - 1n) / WEIGHT_UNITS_PER_TOKEN;
}

/** A tokens limit's weights, as a stable part of its counters' names. */
function weightsName(limit: LimitConfig): string {
  const weights = tokenWeightsOf(limit);
  return [
    weights.input,
    weights.cacheRead,
    weights.cacheWrite,
    weights.cacheWrite1h,
    weights.output,
  ].join(',');
}

/**
 * When enough of a rolling counter's oldest buckets will have left its
 * span to free `excess`, if nothing else claims meanwhile. Reservations
 * that settle below their worst case may free room sooner; that cannot
 * be known in advance. Without the buckets, once the request's own
 * bucket has left, so has all that is counted now.
 */
function roomFreesAt(
  rolling: RollingBucket,
  buckets: readonly BucketAmount[],
  excess: bigint,
): number {
  let freed = 0n;
  for (const { bucket, amount } of buckets) {
    freed += amount;
    if (freed >= excess) return bucketLeavesAt(rolling, bucket);
  }
  return bucketLeavesAt(rolling, rolling.bucket);
}

function describeAmount(
  measure: Measure,
  amount: bigint,
  unit: string,
): string {
  return measure === 'budget'
    ? `${formatNano(amount)} USD`
    : `${String(amount)} ${unit}${measure}`;
}

/** USD as a whole count of 10^-9 USD, rounded up: a bound stays a bound. */
export function toNano(usd: Decimal): bigint {
  const nano = usd.times(fromInteger(NANO_USD_PER_USD));
  return BigInt(roundDecimal(nano, 0, 'up').toFixed(0));
}

/** Nano-USD as a decimal string of USD. */
export function formatNano(nano: bigint): string {
  return formatDecimal(fromInteger(nano).div(fromInteger(NANO_USD_PER_USD)));
}

/**
 * OpenAI's rate-limit headers for the tightest request and token limits
 * that apply, as their counters stand after this reservation.
 */
function rateLimitHeaders(
  claimed: readonly Claimed[],
  states: readonly CounterState[],
  now: number,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [measure, suffix] of [
    ['requests', 'requests'],
    ['tokens', 'tokens'],
  ] as const) {
    let tightest: { max: bigint; left: bigint; resetsAt: number } | undefined;
    claimed.forEach((c, i) => {
      const state = states[i];
      if (c.measure !== measure || !state) return;
      if (c.limit.onExceed !== 'block') return;
      // A window resets at its end. A rolling counter is back to its
      // maximum once the bucket this request just reserved in (its
      // newest) has left the span.
      const resetsAt = c.rolling
        ? bucketLeavesAt(c.rolling, c.rolling.bucket)
        : c.window?.end;
      if (resetsAt === undefined) return;
      const max = c.claim.max;
      const left = max - state.used - state.reserved;
      if (!tightest || left < tightest.left) {
        tightest = { max, left: left < 0n ? 0n : left, resetsAt };
      }
    });
    if (!tightest) continue;
    headers[`x-ratelimit-limit-${suffix}`] = String(tightest.max);
    headers[`x-ratelimit-remaining-${suffix}`] = String(tightest.left);
    headers[`x-ratelimit-reset-${suffix}`] = resetIn(tightest.resetsAt - now);
  }
  return headers;
}

/** A duration as OpenAI writes resets: `1s`, `6m0s`, `1h2m3s`. */
export function resetIn(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}
