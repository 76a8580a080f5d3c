/**
 * Admission: before any upstream call, a request reserves its worst case
 * in every limit that applies to it, atomically, or is refused; after the
 * response its reservation is settled to what it really used (DESIGN.md,
 * "The request path", step 2, and "Usage, exactly once").
 *
 * The worst case is the metering bound (input bound plus output cap) and
 * its cost at the deployment's price. Limits count what the tenant is
 * charged.
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
import type { Store, TenantRecord } from '../storage/store.js';
import {
  CounterStoreUnavailableError,
  NANO_USD_PER_USD,
  type CounterClaim,
  type CounterState,
  type CounterStore,
  type ReserveResult,
} from './counter-store.js';
import { measureOf, type LimitConfig, type Measure } from './limits.js';
import { windowAt, type Window } from './windows.js';

/** What admission knows of a request before its upstream call. */
export interface AdmissionRequest {
  readonly requestId: string;
  readonly tenant: TenantRecord;
  readonly keyId: string;
  readonly endUser: string | null;
  /** The public model name the client asked for. */
  readonly model: string;
  /** Input bound plus output cap. */
  readonly worstTokens: number;
  /** The worst case's charge; null when the deployment has no price. */
  readonly worstCost: Decimal | null;
}

/** What the request really used, once settled. */
export interface AdmissionUsage {
  readonly tokens: number;
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

  constructor(
    reason: RefusalReason,
    message: string,
    details: {
      limitId: string | null;
      retryAfterSeconds: number | null;
      headers?: Readonly<Record<string, string>>;
    },
  ) {
    super(message);
    this.reason = reason;
    this.limitId = details.limitId;
    this.retryAfterSeconds = details.retryAfterSeconds;
    this.headers = details.headers ?? {};
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
  readonly tenantId: string;
  readonly scope: string;
  readonly window: Window | null;
  readonly claim: CounterClaim;
}

/** A reservation as a request's durable record keeps it. */
interface StoredReservation {
  readonly key: string;
  readonly measure: Measure;
  /** An integer in the counter's unit, as a string. */
  readonly amount: string;
  readonly expiresAt: number | null;
}

/** The most a counter of a limit that does not block is let hold. */
const UNBOUNDED = BigInt(Number.MAX_SAFE_INTEGER);

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
  /** Each limit's maximum in its counter's unit, computed once. */
  readonly #maxima = new Map<LimitConfig, bigint>();
  readonly #observer: CounterObserver | undefined;

  /** Without a `ledger`, counters start from zero. */
  constructor(
    store: CounterStore,
    limits: readonly LimitConfig[],
    logger: Logger,
    options: {
      readonly ledger?: Store;
      readonly now?: () => number;
      readonly observer?: CounterObserver;
    } = {},
  ) {
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
      })),
    );
  }

  /**
   * Releases the reservations of a request recovered from a dead process,
   * settled as the ledger settles it: at its worst case (concurrency
   * slots freed). Only shared counters still hold them; a process's own
   * counters died with it and are rebuilt from the ledger.
   */
  async releaseRecovered(reservations: string | null): Promise<void> {
    if (reservations === null || !this.#store.shared) return;
    let held: StoredReservation[];
    try {
      held = JSON.parse(reservations) as StoredReservation[];
    } catch {
      this.#logger.error('a recovered request has unreadable reservations');
      return;
    }
    try {
      await this.#store.settle(
        held.map((r) => ({
          key: r.key,
          reserved: BigInt(r.amount),
          actual: r.measure === 'concurrent' ? 0n : BigInt(r.amount),
          expiresAt: r.expiresAt,
        })),
      );
    } catch (error) {
      this.#logger.error(
        { err: error },
        "could not release a dead process's reservations",
      );
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
      throw this.#refusal(refused, result.state, now);
    }
    this.#tickets.set(request.requestId, claimed);
    claimed.forEach((c, i) => this.#warnIfPassed(request, c, result.states[i]));
    return rateLimitHeaders(claimed, result.states, now);
  }

  /**
   * Settles a request's reservation to what it used; `usage` null
   * releases it (nothing was served: only the request itself counts).
   */
  async settle(requestId: string, usage: AdmissionUsage | null): Promise<void> {
    const claimed = this.#tickets.get(requestId);
    if (!claimed) return;
    this.#tickets.delete(requestId);
    const settlements = claimed.map((c) => ({
      key: c.claim.key,
      reserved: c.claim.amount,
      actual: actualAmount(c, usage),
      expiresAt: c.claim.expiresAt,
    }));
    try {
      await this.#store.settle(settlements);
    } catch (error) {
      // The worst case stays reserved until the counter's window ends:
      // conservative, never forgiving.
      this.#logger.error(
        { err: error, requestId },
        'could not settle a reservation in the counter store',
      );
      return;
    }
    await this.#observe(requestId, claimed);
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
          max: this.#maxOf(c.limit, c.measure),
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
   * case, each rounded as a settlement would be.
   */
  async #ledgerAmount(request: AdmissionRequest, c: Claimed): Promise<bigint> {
    const { limit, window } = c;
    if (!this.#ledger || !window) return 0n;
    const rows = await this.#ledger.limitScopeUsage({
      tenantId: request.tenant.id,
      ...(limit.key !== undefined && { keyId: limit.key }),
      ...(limit.endUser !== undefined && {
        endUser: limit.endUser === '*' ? request.endUser : limit.endUser,
      }),
      ...(limit.model !== undefined && { model: limit.model }),
      from: window.start,
      to: window.end,
    });
    let used = 0n;
    for (const row of rows) {
      switch (c.measure) {
        case 'requests':
          used += 1n;
          break;
        case 'tokens':
          used += BigInt(row.pending ? row.reservedTokens : row.tokens);
          break;
        case 'budget': {
          const worst =
            row.reservedCost === null
              ? 0n
              : toNano(parseDecimal(row.reservedCost));
          if (row.pending || row.charges.some((charge) => charge === null)) {
            used += worst;
          } else {
            used += toNano(
              sumDecimals(
                row.charges.map((charge) => parseDecimal(charge ?? '0')),
              ),
            );
          }
          break;
        }
        case 'concurrent':
          break;
      }
    }
    return used;
  }

  #claims(request: AdmissionRequest, now: number): Claimed[] {
    const claimed: Claimed[] = [];
    for (const limit of this.#limits) {
      if (!applies(limit, request)) continue;
      const measure = measureOf(limit);
      const window = limit.per
        ? windowAt(limit.per, now, request.tenant.timezone)
        : null;
      const amount = reservedAmount(measure, request);
      const max =
        limit.onExceed === 'block' ? this.#maxOf(limit, measure) : UNBOUNDED;
      const scope = counterScope(limit, request);
      claimed.push({
        limit,
        measure,
        tenantId: request.tenant.id,
        scope,
        window,
        claim: {
          key: counterKey(limit, scope, window),
          max,
          amount,
          expiresAt: window?.end ?? null,
          rebuild: window !== null,
        },
      });
    }
    return claimed;
  }

  #maxOf(limit: LimitConfig, measure: Measure): bigint {
    let max = this.#maxima.get(limit);
    if (max === undefined) {
      max = maxOf(limit, measure);
      this.#maxima.set(limit, max);
    }
    return max;
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
    now: number,
  ): AdmissionRefusal {
    const { limit, measure, window } = refused;
    const max = this.#maxOf(limit, measure);
    if (refused.claim.amount > max) {
      // No window will ever hold it: telling the client to retry would
      // have it wait for nothing.
      return new AdmissionRefusal(
        measure === 'budget' ? 'budget_exceeded' : 'rate_limit_exceeded',
        `This request's worst case (${describeAmount(measure, refused.claim.amount)}) ` +
          `is larger than the whole of the limit '${limit.id}' ` +
          `(${describeAmount(measure, max)}); lower max_tokens or the input.`,
        { limitId: limit.id, retryAfterSeconds: null },
      );
    }
    const retryAfterSeconds = window
      ? Math.max(1, Math.ceil((window.end - now) / 1000))
      : 1;
    if (measure === 'budget') {
      return new AdmissionRefusal(
        'budget_exceeded',
        `This request could cost up to ${formatNano(refused.claim.amount)} ` +
          `USD, more than is left of the budget '${limit.id}' ` +
          `(${formatNano(maxOf(limit, measure) - state.used - state.reserved)} ` +
          `of ${limit.budgetUsd} USD this ${limit.per}).`,
        { limitId: limit.id, retryAfterSeconds },
      );
    }
    const what =
      measure === 'concurrent'
        ? `${limit.concurrent} requests in flight at once`
        : `${String(maxOf(limit, measure))} ${measure} per ${limit.per}`;
    // The refusing limit's standing, in OpenAI's headers, so clients that
    // back off on them see why.
    const left = max - state.used - state.reserved;
    const headers =
      window && (measure === 'requests' || measure === 'tokens')
        ? {
            [`x-ratelimit-limit-${measure}`]: String(max),
            [`x-ratelimit-remaining-${measure}`]: String(left < 0n ? 0n : left),
            [`x-ratelimit-reset-${measure}`]: resetIn(window.end - now),
          }
        : {};
    return new AdmissionRefusal(
      'rate_limit_exceeded',
      `Rate limit '${limit.id}' reached: ${what}` +
        (measure === 'tokens'
          ? ` (this request may use up to ${refused.claim.amount} tokens).`
          : '.'),
      { limitId: limit.id, retryAfterSeconds, headers },
    );
  }

  #warnIfPassed(
    request: AdmissionRequest,
    c: Claimed,
    state: CounterState | undefined,
  ): void {
    if (c.limit.onExceed === 'block' || !state) return;
    const max = maxOf(c.limit, c.measure);
    if (state.used + state.reserved <= max) return;
    this.#logger.warn(
      {
        requestId: request.requestId,
        tenantId: request.tenant.id,
        limit: c.limit.id,
        max: String(max),
        held: String(state.used + state.reserved),
      },
      'request admitted past a limit that allows overage',
    );
  }
}

/** Whether a limit counts this request. */
function applies(limit: LimitConfig, request: AdmissionRequest): boolean {
  if (
    limit.tenant !== undefined &&
    limit.tenant !== request.tenant.id &&
    limit.tenant !== request.tenant.name
  ) {
    return false;
  }
  if (limit.key !== undefined && limit.key !== request.keyId) return false;
  if (limit.model !== undefined && limit.model !== request.model) return false;
  if (
    limit.endUser !== undefined &&
    limit.endUser !== '*' &&
    limit.endUser !== request.endUser
  ) {
    return false;
  }
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
  scope: string,
  window: Window | null,
): string {
  const parts = [`l=${limit.id}`, scope];
  // The measure and the window's unit too: a limit redefined under the
  // same id (from a budget to tokens, from days to months) starts counters
  // of its own rather than reading the old ones in new units.
  if (window) parts.push(`w=${limit.per ?? ''}:${window.id}`);
  parts.push(`x=${measureOf(limit)}`);
  return parts.join('|');
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

function reservedAmount(measure: Measure, request: AdmissionRequest): bigint {
  switch (measure) {
    case 'requests':
    case 'concurrent':
      return 1n;
    case 'tokens':
      return BigInt(request.worstTokens);
    case 'budget':
      // applies() refused an unpriced request under a budget.
      return request.worstCost ? toNano(request.worstCost) : 0n;
  }
}

function actualAmount(c: Claimed, usage: AdmissionUsage | null): bigint {
  switch (c.measure) {
    case 'requests':
      return 1n;
    case 'concurrent':
      return 0n;
    case 'tokens':
      return BigInt(usage?.tokens ?? 0);
    case 'budget':
      if (!usage) return 0n;
      // An unknown charge keeps the worst case: never forgiving.
      return usage.cost === null ? c.claim.amount : toNano(usage.cost);
  }
}

function describeAmount(measure: Measure, amount: bigint): string {
  return measure === 'budget'
    ? `${formatNano(amount)} USD`
    : `${String(amount)} ${measure}`;
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
    let tightest: { max: bigint; left: bigint; window: Window } | undefined;
    claimed.forEach((c, i) => {
      const state = states[i];
      if (c.measure !== measure || !state || !c.window) return;
      if (c.limit.onExceed !== 'block') return;
      const max = c.claim.max;
      const left = max - state.used - state.reserved;
      if (!tightest || left < tightest.left) {
        tightest = { max, left: left < 0n ? 0n : left, window: c.window };
      }
    });
    if (!tightest) continue;
    headers[`x-ratelimit-limit-${suffix}`] = String(tightest.max);
    headers[`x-ratelimit-remaining-${suffix}`] = String(tightest.left);
    headers[`x-ratelimit-reset-${suffix}`] = resetIn(tightest.window.end - now);
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
