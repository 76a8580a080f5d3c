/**
 * The meter: records each admitted request before its upstream call, then
 * settles it with the provider's usage, priced, in one atomic write.
 *
 * The lifecycle keeps DESIGN.md's "durable first" rule: a request is
 * `pending` on disk before any upstream byte is sent, and a crash leaves it
 * there for `recover` to settle at its reserved worst case, marked
 * estimated. Usage events are immutable; each carries the deterministic id
 * `<request id>:<attempt>`, which the store refuses to hold twice.
 */
import type { Logger } from 'pino';

import { formatDecimal } from '../money/decimal.js';
import type { PriceBook } from '../pricing/price-book.js';
import {
  describeUnknown,
  formatRate,
  rateUsage,
  type Rating,
} from '../pricing/rate-usage.js';
import {
  ConflictError,
  type OpenRequestRecord,
  type RateStrings,
  type RatingRecord,
  type Settlement,
  type Store,
  type UsageEventRecord,
} from '../storage/store.js';
import { totalInputTokens, type NormalizedUsage } from './usage.js';

/** What one upstream attempt consumed, as far as the gateway knows. */
export type AttemptUsage =
  | {
      readonly kind: 'reported';
      readonly usage: NormalizedUsage;
      /** The provider's usage block, untouched. */
      readonly raw: unknown;
    }
  | {
      /** The provider's final usage never arrived; counted from what we saw. */
      readonly kind: 'estimated';
      readonly usage: NormalizedUsage;
      readonly raw: unknown;
    }
  | { readonly kind: 'none' };

export interface AttemptOutcome {
  readonly attempt: number;
  readonly usage: AttemptUsage;
  readonly statusCode: number | null;
  readonly errorCode: string | null;
  readonly upstreamRequestId: string | null;
}

export interface SettledRequest {
  readonly event: UsageEventRecord | undefined;
  readonly rating: Rating | undefined;
}

export class Meter {
  readonly #store: Store;
  readonly #priceBook: PriceBook;
  readonly #logger: Logger;

  constructor(store: Store, priceBook: PriceBook, logger: Logger) {
    this.#store = store;
    this.#priceBook = priceBook;
    this.#logger = logger;
  }

  get priceBook(): PriceBook {
    return this.#priceBook;
  }

  /** Makes the admitted request durable; call before the upstream call. */
  open(request: OpenRequestRecord): Promise<void> {
    return this.#store.openRequest(request);
  }

  /** Settles a request with its outcome: usage event, rating, state. */
  async settle(
    request: OpenRequestRecord,
    outcome: AttemptOutcome,
  ): Promise<SettledRequest> {
    const now = Date.now();
    if (outcome.usage.kind === 'none') {
      await this.#store.settleRequest({
        requestId: request.id,
        tenantId: request.tenantId,
        state: 'failed',
        finishedAt: now,
        statusCode: outcome.statusCode,
        errorCode: outcome.errorCode,
        upstreamRequestId: outcome.upstreamRequestId,
        events: [],
      });
      return { event: undefined, rating: undefined };
    }

    const { usage, raw } = outcome.usage;
    const event = usageEvent(request, outcome.attempt, usage, {
      estimated: outcome.usage.kind === 'estimated',
      source: 'gateway',
      raw,
    });
    const rating = this.#rate(request.priceKey, usage, request.servedAt);
    const settlement: Settlement = {
      requestId: request.id,
      tenantId: request.tenantId,
      state: outcome.errorCode === null ? 'settled' : 'failed',
      finishedAt: now,
      statusCode: outcome.statusCode,
      errorCode: outcome.errorCode,
      upstreamRequestId: outcome.upstreamRequestId,
      events: [
        { event, rating: ratingRecord(event, rating, this.#priceBook, now) },
      ],
    };
    await this.#store.settleRequest(settlement);
    this.#logUsage(event, rating);
    this.#warnOvershoot(request, usage);
    return { event, rating };
  }

  /**
   * Settles every request a crashed process left open, at its reserved
   * worst case, marked estimated: the upstream's usage of a cut-off call
   * cannot be had after the fact from a Chat Completions provider.
   * `abandoned` tells which admitting instances are gone; requests of a
   * live instance are its own to settle.
   */
  async recover(
    abandoned: (instanceIds: readonly string[]) => Promise<ReadonlySet<string>>,
    /** Called once each request is settled, e.g. to free its limits. */
    onRecovered: (request: OpenRequestRecord) => Promise<void> = () =>
      Promise.resolve(),
  ): Promise<number> {
    const pending = await this.#store.listOpenRequests();
    const dead = await abandoned(pending.map((r) => r.instanceId));
    const open = pending.filter((r) => dead.has(r.instanceId));
    const now = Date.now();
    let recovered = 0;
    for (const request of open) {
      const usage: NormalizedUsage = {
        inputTokens: request.reservedInputTokens,
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        cacheWrite1hTokens: 0,
        outputTokens: request.reservedOutputTokens,
        reasoningTokens: 0,
        units: {},
      };
      // TODO(#5): record the attempt in flight once retries exist; until
      // then every request has exactly one attempt.
      const event = usageEvent(request, 1, usage, {
        estimated: true,
        source: 'recovery',
        raw: undefined,
      });
      const rating = this.#rate(request.priceKey, usage, request.servedAt);
      try {
        await this.#store.settleRequest({
          requestId: request.id,
          tenantId: request.tenantId,
          state: 'recovered',
          finishedAt: now,
          statusCode: null,
          errorCode: 'interrupted',
          upstreamRequestId: null,
          events: [
            {
              event,
              rating: ratingRecord(event, rating, this.#priceBook, now),
            },
          ],
        });
      } catch (error) {
        // Another replica's recovery settled it first: once is enough.
        if (error instanceof ConflictError) continue;
        throw error;
      }
      recovered += 1;
      await onRecovered(request);
      this.#logger.warn(
        { requestId: request.id, tenantId: request.tenantId },
        'recovered a request left open by a crash; settled at its ' +
          'reserved worst case, marked estimated',
      );
    }
    return recovered;
  }

  #rate(priceKey: string, usage: NormalizedUsage, servedAt: number): Rating {
    const price = this.#priceBook.lookup(
      priceKey,
      servedAt,
      totalInputTokens(usage),
    );
    return rateUsage(usage, price);
  }

  /**
   * Usage above the worst case reserved means the bound was not one (an
   * upstream that ignored `max_tokens`, or a tokenizer unlike ours); say
   * so, since limits that trust the reservation could be overrun.
   */
  #warnOvershoot(request: OpenRequestRecord, usage: NormalizedUsage): void {
    const input = totalInputTokens(usage);
    if (
      input <= request.reservedInputTokens &&
      usage.outputTokens <= request.reservedOutputTokens
    ) {
      return;
    }
    this.#logger.warn(
      {
        requestId: request.id,
        tenantId: request.tenantId,
        deployment: request.deploymentId,
        inputTokens: input,
        reservedInputTokens: request.reservedInputTokens,
        outputTokens: usage.outputTokens,
        reservedOutputTokens: request.reservedOutputTokens,
      },
      'usage exceeded the worst case reserved for the request',
    );
  }

  #logUsage(event: UsageEventRecord, rating: Rating): void {
    const { usage } = event;
    const fields = {
      requestId: event.requestId,
      tenantId: event.tenantId,
      endUser: event.endUser,
      model: event.model,
      deployment: event.deploymentId,
      upstreamModel: event.upstreamModel,
      inputTokens: usage.inputTokens,
      cacheReadTokens: usage.cacheReadTokens,
      cacheWriteTokens: usage.cacheWriteTokens + usage.cacheWrite1hTokens,
      outputTokens: usage.outputTokens,
      reasoningTokens: usage.reasoningTokens,
      cost: rating.total === null ? null : formatDecimal(rating.total),
      estimated: event.estimated,
    };
    if (rating.total === null) {
      this.#logger.warn(
        { ...fields, unknown: describeUnknown(rating.unknown) },
        'usage with unknown price',
      );
    } else {
      this.#logger.info(fields, 'usage');
    }
  }
}

function usageEvent(
  request: OpenRequestRecord,
  attempt: number,
  usage: NormalizedUsage,
  how: {
    estimated: boolean;
    source: UsageEventRecord['source'];
    raw: unknown;
  },
): UsageEventRecord {
  return {
    id: `${request.id}:${attempt}`,
    requestId: request.id,
    attempt,
    tenantId: request.tenantId,
    endUser: request.endUser,
    model: request.model,
    deploymentId: request.deploymentId,
    provider: request.provider,
    upstreamModel: request.upstreamModel,
    servedAt: request.servedAt,
    usage,
    estimated: how.estimated,
    served: true,
    source: how.source,
    rawUsage: how.raw,
  };
}

function rateStrings(rating: Rating): RateStrings {
  const strings: Record<string, string | null> = {};
  for (const charge of rating.charges) {
    strings[charge.tokenClass] = formatRate(charge.rate);
  }
  return strings as RateStrings;
}

/**
 * Until plans exist the tenant is charged the provider's price
 * (DESIGN.md: "the catalog price until a plan says otherwise").
 */
function ratingRecord(
  event: UsageEventRecord,
  rating: Rating,
  priceBook: PriceBook,
  ratedAt: number,
): RatingRecord {
  const rates = rateStrings(rating);
  const total = rating.total === null ? null : formatDecimal(rating.total);
  return {
    eventId: event.id,
    tenantId: event.tenantId,
    priceBookVersion: priceBook.version,
    providerRateId: rating.rateId,
    providerRates: rates,
    providerCost: total,
    tenantRateId: rating.rateId,
    tenantRates: rates,
    tenantCharge: total,
    unknown: describeUnknown(rating.unknown),
    ratedAt,
  };
}
