/**
 * The storage interface every module goes through (DESIGN.md, "Storage and
 * scale"). The embedded implementation is SQLite (`sqlite/`); a PostgreSQL
 * one mirrors it file for file and passes the same test suite.
 *
 * Every query names its tenant. Amounts are decimal strings; token counts
 * are integers. Methods that write resolve only once the write is durable.
 */
import type {
  NormalizedUsage,
  TokenClass,
  TokenCounts,
} from '../metering/usage.js';

export interface TenantRecord {
  readonly id: string;
  readonly name: string;
  /** IANA time zone in which the tenant's days and months run. */
  readonly timezone: string;
  readonly createdAt: number;
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string | null;
  /** SHA-256 of the key's secret part; the key itself is never stored. */
  readonly secretHash: Buffer;
  /** Public model names the key may call; `null` means all. */
  readonly models: readonly string[] | null;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

/** What a request looks like before the upstream call: its worst case. */
export interface OpenRequestRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly keyId: string;
  readonly endUser: string | null;
  /** The public model name the caller asked for. */
  readonly model: string;
  readonly deploymentId: string;
  readonly provider: string;
  readonly upstreamModel: string;
  readonly priceKey: string;
  readonly stream: boolean;
  /** When the gateway admitted the request (epoch ms); usage is dated so. */
  readonly servedAt: number;
  /** Upper bound on input tokens (see metering/reserve.ts). */
  readonly reservedInputTokens: number;
  readonly reservedOutputTokens: number;
  /** Worst-case cost at the deployment's price, or null if unpriced. */
  readonly reservedCost: string | null;
  /** The gateway process that admitted it. */
  readonly instanceId: string;
  /**
   * The limit counters the request holds a reservation in (JSON, see
   * src/admission/admission.ts), for recovery to release if its process
   * dies; absent when no limit applied.
   */
  readonly reservations?: string | null;
  /**
   * The price key the tenant is charged at whichever deployment serves
   * (a route's own price); null or absent: the serving deployment's.
   */
  readonly tenantPriceKey?: string | null;
  /**
   * The upstream attempt in flight, 1 first; the deployment fields name
   * its deployment. Recovery settles a crashed request as this attempt.
   */
  readonly attempt?: number;
}

/** The deployment an attempt went to, as the ledger records it. */
export interface AttemptDeployment {
  readonly deploymentId: string;
  readonly provider: string;
  readonly upstreamModel: string;
  readonly priceKey: string;
}

/** A retry or fallback about to be made, recorded before its call. */
export interface AttemptStart extends AttemptDeployment {
  readonly requestId: string;
  readonly tenantId: string;
  readonly attempt: number;
}

/** A gateway process that admits requests into the ledger. */
export interface InstanceRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  readonly stoppedAt: number | null;
}

export type RequestState = 'pending' | 'settled' | 'failed' | 'recovered';

/** Per-1M-token rates by class, as decimal strings; null = unknown. */
export type RateStrings = Readonly<Record<TokenClass, string | null>>;

export interface UsageEventRecord {
  /** `<request id>:<attempt>`: a second copy is refused forever. */
  readonly id: string;
  readonly requestId: string;
  readonly attempt: number;
  readonly tenantId: string;
  readonly endUser: string | null;
  readonly model: string;
  readonly deploymentId: string;
  readonly provider: string;
  readonly upstreamModel: string;
  readonly servedAt: number;
  readonly usage: NormalizedUsage;
  /** True when the counts are not the provider's own final numbers. */
  readonly estimated: boolean;
  /** Whether this attempt's response is the one the client received. */
  readonly served: boolean;
  readonly source: 'gateway' | 'recovery';
  /** The provider's usage block exactly as received, if any. */
  readonly rawUsage: unknown;
}

export interface RatingRecord {
  readonly eventId: string;
  readonly tenantId: string;
  readonly priceBookVersion: string;
  readonly providerRateId: string | null;
  readonly providerRates: RateStrings;
  /** What the provider bills us; null when a price is unknown. */
  readonly providerCost: string | null;
  readonly tenantRateId: string | null;
  readonly tenantRates: RateStrings;
  /** What we bill the tenant; null when a price is unknown. */
  readonly tenantCharge: string | null;
  /** Why a cost is unknown, e.g. `no_price`, `no_rate:cacheRead`. */
  readonly unknown: readonly string[];
  readonly ratedAt: number;
}

export interface Settlement {
  readonly requestId: string;
  readonly tenantId: string;
  readonly state: Exclude<RequestState, 'pending'>;
  readonly finishedAt: number;
  readonly statusCode: number | null;
  readonly errorCode: string | null;
  readonly upstreamRequestId: string | null;
  /** The deployment that served; absent: the one recorded at open. */
  readonly served?: AttemptDeployment & { readonly attempt: number };
  /** The routing record (JSON): the decision and every attempt. */
  readonly routing?: string | null;
  readonly events: readonly {
    readonly event: UsageEventRecord;
    readonly rating: RatingRecord;
  }[];
}

export interface RequestDetail {
  readonly request: OpenRequestRecord & {
    readonly state: RequestState;
    readonly finishedAt: number | null;
    readonly statusCode: number | null;
    readonly errorCode: string | null;
    readonly upstreamRequestId: string | null;
    /** How it was routed (JSON, see src/gateway/inference/routing-record.ts). */
    readonly routing: string | null;
  };
  readonly events: readonly {
    readonly event: UsageEventRecord;
    readonly rating: RatingRecord | undefined;
  }[];
}

/** Whose data a read may see: one tenant, or all of them (admin only). */
export type TenantScope =
  { readonly tenantId: string } | { readonly allTenants: true };

export type UsageDimension = 'tenant' | 'model' | 'endUser' | 'day';

export interface DayWindow {
  /** The label, e.g. `2026-12-03`, in the zone the windows were cut in. */
  readonly day: string;
  readonly from: number;
  readonly to: number;
}

export interface UsageQuery {
  readonly scope: TenantScope;
  readonly from: number;
  readonly to: number;
  readonly groupBy: readonly UsageDimension[];
  /** Required when grouping by day: the days covering [from, to). */
  readonly days?: readonly DayWindow[];
  /**
   * Only the attempts whose answers clients received, as invoices count;
   * otherwise retries and fallbacks too, as provider costs count.
   */
  readonly servedOnly?: boolean;
}

/**
 * Usage summed over events that share a group and the same rates, so the
 * exact cost of the row is `Σ tokens × rate` per class. Callers merge rows
 * into their groups and do that arithmetic in decimals.
 */
export interface RatedUsageRow {
  readonly tenantId?: string;
  readonly model?: string;
  readonly endUser?: string | null;
  readonly day?: string;
  readonly requests: number;
  readonly events: number;
  readonly estimatedEvents: number;
  readonly tokens: Readonly<Record<TokenClass | 'reasoning', number>>;
  readonly providerRates: RateStrings;
  readonly tenantRates: RateStrings;
  /** False when some event in the row has an unknown provider cost. */
  readonly providerCostKnown: boolean;
  readonly tenantChargeKnown: boolean;
}

/** The requests a limit counts, for rebuilding its counter. */
export interface LimitScopeQuery {
  readonly tenantId: string;
  readonly keyId?: string;
  /** An end user's name; null for requests that named none. */
  readonly endUser?: string | null;
  /** The public model name. */
  readonly model?: string;
  readonly from: number;
  readonly to: number;
}

/** One admitted request in a limit's scope, as the ledger has it. */
export interface LimitScopeRow {
  readonly requestId: string;
  /**
   * Counted at its reserved worst case: still open (in flight elsewhere,
   * or left by a crash), or settled by recovery at that worst case. The
   * recovered estimate is written as plain input and output, priced at
   * plain rates, which a weighted or money limit would count for less
   * than the reservation a live counter kept.
   */
  readonly pending: boolean;
  /** When it was admitted: where a rolling window counts it. */
  readonly servedAt: number;
  /** The tokens its served usage events hold, summed class by class. */
  readonly tokens: TokenCounts;
  /** Its reserved worst case: the input bound and the output cap. */
  readonly reservedInputTokens: number;
  readonly reservedOutputTokens: number;
  /** Its events' tenant charges; null where one is unknown. */
  readonly charges: readonly (string | null)[];
  readonly reservedCost: string | null;
}

/** A webhook in the outbox, as queued. */
export interface WebhookEventRecord {
  /** Deterministic: a second event with an id queued before is ignored. */
  readonly id: string;
  readonly tenantId: string;
  readonly type: string;
  /** The JSON body, sent (and signed) byte for byte on every attempt. */
  readonly body: string;
  readonly createdAt: number;
}

/** A queued webhook taken for one delivery attempt. */
export interface WebhookDelivery extends WebhookEventRecord {
  /** Which attempt this is, from 1. */
  readonly attempt: number;
}

/** How a delivery attempt ended. */
export type WebhookOutcome =
  | { readonly id: string; readonly at: number; readonly delivered: true }
  | {
      readonly id: string;
      readonly at: number;
      readonly delivered: false;
      readonly error: string;
      /** When to try again; null gives up (the event is kept, failed). */
      readonly retryAt: number | null;
    };

/** A limit kept in the database: its id and its definition as JSON. */
export interface StoredLimit {
  readonly id: string;
  /** The limit as `limitSchema` reads it, serialised. */
  readonly definition: string;
  readonly updatedAt: number;
}

export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

export interface Store {
  createTenant(tenant: TenantRecord): Promise<void>;
  findTenant(idOrName: string): Promise<TenantRecord | undefined>;
  listTenants(): Promise<TenantRecord[]>;

  createApiKey(key: ApiKeyRecord): Promise<void>;
  findApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(tenantId: string): Promise<ApiKeyRecord[]>;
  /** Revokes a key of the tenant; false if it has no such live key. */
  revokeApiKey(tenantId: string, keyId: string, at: number): Promise<boolean>;

  /** Records an admitted request, durably, before its upstream call. */
  openRequest(request: OpenRequestRecord): Promise<void>;
  /** Writes a request's usage events and ratings and closes it, atomically. */
  settleRequest(settlement: Settlement): Promise<void>;
  /** Requests admitted but never settled (a crash left them). */
  listOpenRequests(): Promise<OpenRequestRecord[]>;
  /**
   * Records that an open request is now on attempt `attempt` at another
   * (or the same) deployment; durable before that attempt's call. An
   * attempt before the one recorded is refused.
   */
  beginAttempt(start: AttemptStart): Promise<void>;
  findRequest(
    scope: TenantScope,
    requestId: string,
  ): Promise<RequestDetail | undefined>;

  summarizeUsage(query: UsageQuery): Promise<RatedUsageRow[]>;
  /** The requests admitted in a limit's scope and window. */
  limitScopeUsage(query: LimitScopeQuery): Promise<LimitScopeRow[]>;

  /** Records a gateway process as alive. */
  registerInstance(instance: InstanceRecord): Promise<void>;
  /** Renews a live instance's heartbeat. */
  heartbeatInstance(id: string, at: number): Promise<void>;
  /** Records that an instance stopped cleanly. */
  stopInstance(id: string, at: number): Promise<void>;
  /** The instances named, as recorded (unknown ids are left out). */
  findInstances(ids: readonly string[]): Promise<InstanceRecord[]>;

  /**
   * Queues a webhook durably; false when one with its id was queued
   * before (whether delivered or not), so it is sent at most once.
   */
  enqueueWebhook(event: WebhookEventRecord): Promise<boolean>;
  /**
   * Takes up to `limit` undelivered webhooks due at `now`, of every
   * tenant (for the delivery worker): counts an attempt for each and
   * leases it until `now + leaseMs`, so no other worker takes it before,
   * and a crashed worker's lease runs out.
   */
  claimWebhooks(
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<WebhookDelivery[]>;
  /** Records how a delivery attempt ended. */
  finishWebhookAttempt(outcome: WebhookOutcome): Promise<void>;

  /** Limits managed through the admin API and CLI. */
  listLimits(): Promise<StoredLimit[]>;
  /** Creates or replaces a limit. */
  putLimit(limit: StoredLimit): Promise<void>;
  /** Deletes a limit; false if there was none of that id. */
  deleteLimit(id: string): Promise<boolean>;

  /** Keeps the content of every price book a rating names. */
  savePriceBook(version: string, content: string): Promise<void>;

  close(): Promise<void>;
}
