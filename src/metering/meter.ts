/**
 * The meter: records each admitted request before its upstream call, then
 * settles it with the provider's usage, priced, in one atomic write.
 *
 * The lifecycle keeps DESIGN.md's "durable first" rule: a request is
 * `pending` on disk before any upstream byte is sent, and a crash leaves it
 * there for `recover` to settle at its reserved worst case, marked
 * estimated. Usage events are immutable; each carries the deterministic id
 * `<request id>:<attempt>`, which the store refuses to hold twice.
 *
 * When the store cannot take a settlement, the exact one is kept in the
 * settlement spool (settlement-spool.ts) and drained into the store once
 * it is back; recovery passes by the requests a spool holds.
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
  type AttemptDeployment,
  type OpenRequestRecord,
  type RateStrings,
  type RatingRecord,
  type Settlement,
  type Store,
  type UsageEventRecord,
} from '../storage/store.js';
import { totalInputTokens, type NormalizedUsage } from './usage.js';
import type { SettlementSpool } from './settlement-spool.js';

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
  /** Where the attempt went; absent: the deployment the request names. */
  readonly deployment?: AttemptDeployment;
  readonly usage: AttemptUsage;
  readonly statusCode: number | null;
  readonly errorCode: string | null;
  readonly upstreamRequestId: string | null;
}

/** What settles a request besides its final attempt. */
export interface SettleContext {
  /**
   * Earlier attempts (retries, fallbacks) that did not give the answer.
   * Those the provider may bill (usage other than none) are recorded at
   * their own deployment's price as provider cost, charged to nobody.
   */
  readonly earlier?: readonly AttemptOutcome[];
  /** The routing record, JSON. */
  readonly routing?: string;
}

export interface SettledRequest {
  readonly event: UsageEventRecord | undefined;
  readonly rating: Rating | undefined;
  /**
   * The store refused the write and the settlement waits in the spool,
   * durably, to be drained into the ledger when the store is back.
   */
  readonly spooled: boolean;
}

export interface MeterOptions {
  /**
   * Where settlements the store refuses are kept until it takes them;
   * without one, such a request is left pending for recovery.
   */
  readonly spool?: SettlementSpool;
}

export class Meter {
  readonly #store: Store;
  #priceBook: PriceBook;
  /**
   * The book each open request was admitted under: it is rated by that
   * one even if a reload puts another in force before it settles.
   */
  readonly #openBooks = new Map<string, PriceBook>();
  readonly #logger: Logger;
  readonly #spool: SettlementSpool | undefined;

  constructor(
    store: Store,
    priceBook: PriceBook,
    logger: Logger,
    options: MeterOptions = {},
  ) {
    this.#store = store;
    this.#priceBook = priceBook;
    this.#logger = logger;
    this.#spool = options.spool;
  }

  get priceBook(): PriceBook {
    return this.#priceBook;
  }

  /** Puts another price book in force for requests admitted from now. */
  usePriceBook(priceBook: PriceBook): void {
    this.#priceBook = priceBook;
  }

  /** Makes the admitted request durable; call before the upstream call. */
  async open(request: OpenRequestRecord): Promise<void> {
    this.#openBooks.set(request.id, this.#priceBook);
    try {
      await this.#store.openRequest(request);
    } catch (error) {
      this.#openBooks.delete(request.id);
      throw error;
    }
  }

  /**
   * Settles a request with its final attempt's outcome (usage event,
   * rating, state) and the earlier attempts that cost something, in one
   * write. The tenant is charged for the final attempt alone: at the
   * route's price if it sets one, else at the serving deployment's.
   *
   * A store that cannot take the write (anything but a ConflictError)
   * has the settlement spooled instead, and this resolves as settled;
   * it rejects only when the spool cannot take it either.
   */
  async settle(
    request: OpenRequestRecord,
    outcome: AttemptOutcome,
    context: SettleContext = {},
  ): Promise<SettledRequest> {
    const now = Date.now();
    const book = this.#openBooks.get(request.id) ?? this.#priceBook;
    const events: Settlement['events'][number][] = [];
    for (const attempt of context.earlier ?? []) {
      if (attempt.usage.kind === 'none') continue;
      const { event, provider } = this.#attemptEvent(
        book,
        request,
        attempt,
        false,
      );
      events.push({
        event,
        rating: ratingRecord(event, provider, null, book, now),
      });
      this.#logUsage(event, provider, null);
    }

    let event: UsageEventRecord | undefined;
    let rating: Rating | undefined;
    if (outcome.usage.kind !== 'none') {
      const rated = this.#attemptEvent(book, request, outcome, true);
      event = rated.event;
      const tenantKey = request.tenantPriceKey ?? null;
      const tenant =
        tenantKey === null
          ? rated.provider
          : rate(book, tenantKey, event.usage, request.servedAt);
      events.push({
        event,
        rating: ratingRecord(event, rated.provider, tenant, book, now),
      });
      this.#logUsage(event, rated.provider, tenant);
      this.#warnOvershoot(request, event.usage);
      rating = tenant;
    }
    const served = outcome.deployment;
    const settlement: Settlement = {
      requestId: request.id,
      tenantId: request.tenantId,
      state:
        outcome.usage.kind !== 'none' && outcome.errorCode === null
          ? 'settled'
          : 'failed',
      finishedAt: now,
      statusCode: outcome.statusCode,
      errorCode: outcome.errorCode,
      upstreamRequestId: outcome.upstreamRequestId,
      ...(served && { served: { ...served, attempt: outcome.attempt } }),
      ...(context.routing !== undefined && { routing: context.routing }),
      events,
    };
    let spooled = false;
    try {
      await this.#store.settleRequest(settlement);
    } catch (error) {
      // A conflict is the ledger saying it holds the request settled
      // already: spooling it would only be refused again.
      if (error instanceof ConflictError || !this.#spool) throw error;
      await this.#spoolOrThrow(this.#spool, settlement, error);
      spooled = true;
    } finally {
      // Settled, spooled as rated, or left pending for recovery (which
      // rates it afresh).
      this.#openBooks.delete(request.id);
    }
    return { event, rating, spooled };
  }

  async #spoolOrThrow(
    spool: SettlementSpool,
    settlement: Settlement,
    refused: unknown,
  ): Promise<void> {
    try {
      await spool.append(settlement, refused);
    } catch (error) {
      this.#logger.error(
        { err: error, requestId: settlement.requestId },
        'could not spool a settlement the ledger store refused',
      );
      throw refused;
    }
  }

  /** Records attempt `n` (≥ 2) before its call, for recovery. */
  beginAttempt(
    request: OpenRequestRecord,
    attempt: number,
    deployment: AttemptDeployment,
  ): Promise<void> {
    return this.#store.beginAttempt({
      requestId: request.id,
      tenantId: request.tenantId,
      attempt,
      ...deployment,
    });
  }

  #attemptEvent(
    book: PriceBook,
    request: OpenRequestRecord,
    outcome: AttemptOutcome,
    served: boolean,
  ): { event: UsageEventRecord; provider: Rating } {
    if (outcome.usage.kind === 'none') throw new Error('no usage to record');
    const where = outcome.deployment ?? deploymentOf(request);
    const { usage, raw } = outcome.usage;
    const event = usageEvent(request, outcome.attempt, where, usage, {
      estimated: outcome.usage.kind === 'estimated',
      served,
      source: 'gateway',
      raw,
    });
    return {
      event,
      provider: rate(book, where.priceKey, usage, request.servedAt),
    };
  }

  /**
   * Settles every request a crashed process left open, at its reserved
   * worst case, marked estimated: the upstream's usage of a cut-off call
   * cannot be had after the fact from a Chat Completions provider.
   * `abandoned` tells which admitting instances are gone; requests of a
   * live instance are its own to settle. Requests whose exact settlement
   * waits in a spool on this host are passed by: the spool's drain
   * settles them (drain the spools of dead instances first, see
   * `SettlementSpool.adopt`).
   */
  async recover(
    abandoned: (instanceIds: readonly string[]) => Promise<ReadonlySet<string>>,
    /** Called once each request is settled, e.g. to free its limits. */
    onRecovered: (request: OpenRequestRecord) => Promise<void> = () =>
      Promise.resolve(),
  ): Promise<number> {
    const pending = await this.#store.listOpenRequests();
    const dead = await abandoned(pending.map((r) => r.instanceId));
    let open = pending.filter((r) => dead.has(r.instanceId));
    if (open.length > 0 && this.#spool) {
      const held = await this.#spool.held();
      open = open.filter((r) => !held.has(r.id));
    }
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
      // The attempt in flight when the process died is the one billed:
      // earlier ones of it failed before their answers began.
      const event = usageEvent(
        request,
        request.attempt ?? 1,
        deploymentOf(request),
        usage,
        { estimated: true, served: true, source: 'recovery', raw: undefined },
      );
      const book = this.#priceBook;
      const provider = rate(book, request.priceKey, usage, request.servedAt);
      const tenantKey = request.tenantPriceKey ?? null;
      const tenant =
        tenantKey === null
          ? provider
          : rate(book, tenantKey, usage, request.servedAt);
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
              rating: ratingRecord(
                event,
                provider,
                tenant,
                this.#priceBook,
                now,
              ),
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

  #logUsage(
    event: UsageEventRecord,
    rating: Rating,
    tenant: Rating | null,
  ): void {
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
      attempt: event.attempt,
      served: event.served,
      cost: rating.total === null ? null : formatDecimal(rating.total),
      charge:
        tenant === null
          ? '0'
          : tenant.total === null
            ? null
            : formatDecimal(tenant.total),
      estimated: event.estimated,
    };
    if (rating.total === null || tenant?.total === null) {
      this.#logger.warn(
        {
          ...fields,
          unknown: [
            ...new Set(
              describeUnknown([...rating.unknown, ...(tenant?.unknown ?? [])]),
            ),
          ],
        },
        'usage with unknown price',
      );
    } else {
      this.#logger.info(fields, 'usage');
    }
  }
}

function rate(
  book: PriceBook,
  priceKey: string,
  usage: NormalizedUsage,
  servedAt: number,
): Rating {
  return rateUsage(
    usage,
    book.lookup(priceKey, servedAt, totalInputTokens(usage)),
  );
}

function deploymentOf(request: OpenRequestRecord): AttemptDeployment {
  return {
    deploymentId: request.deploymentId,
    provider: request.provider,
    upstreamModel: request.upstreamModel,
    priceKey: request.priceKey,
  };
}

function usageEvent(
  request: OpenRequestRecord,
  attempt: number,
  where: AttemptDeployment,
  usage: NormalizedUsage,
  how: {
    estimated: boolean;
    served: boolean;
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
    deploymentId: where.deploymentId,
    provider: where.provider,
    upstreamModel: where.upstreamModel,
    servedAt: request.servedAt,
    usage,
    estimated: how.estimated,
    served: how.served,
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
 * A rating: the provider's cost at the attempt's deployment, and the
 * tenant's charge at `tenant`'s rates, or nothing (zero) for an attempt
 * the tenant does not pay for. Until plans exist the tenant's rates are
 * the served deployment's or the route's (DESIGN.md: "the catalog price
 * until a plan says otherwise").
 */
function ratingRecord(
  event: UsageEventRecord,
  provider: Rating,
  tenant: Rating | null,
  priceBook: PriceBook,
  ratedAt: number,
): RatingRecord {
  const total = (rating: Rating) =>
    rating.total === null ? null : formatDecimal(rating.total);
  return {
    eventId: event.id,
    tenantId: event.tenantId,
    priceBookVersion: priceBook.version,
    providerRateId: provider.rateId,
    providerRates: rateStrings(provider),
    providerCost: total(provider),
    tenantRateId: tenant?.rateId ?? null,
    tenantRates: tenant ? rateStrings(tenant) : NOTHING_CHARGED,
    tenantCharge: tenant ? total(tenant) : '0',
    unknown: [
      ...new Set(
        describeUnknown([...provider.unknown, ...(tenant?.unknown ?? [])]),
      ),
    ],
    ratedAt,
  };
}

/** Tenant rates of an attempt the tenant is not charged for. */
const NOTHING_CHARGED: RateStrings = {
  input: '0',
  cacheRead: '0',
  cacheWrite: '0',
  cacheWrite1h: '0',
  output: '0',
};
