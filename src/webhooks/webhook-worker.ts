/**
 * Delivers the store's webhook outbox to the configured endpoint: each
 * event is POSTed as its JSON body, signed (signature.ts), and retried
 * with exponential backoff and jitter until it gets a 2xx answer or has
 * had `maxAttempts`. Attempts and the next attempt's time live in the
 * store, so a restarted gateway resumes where the last one stopped, and
 * a leased event is taken by one worker at a time.
 *
 * Delivery is at least once: a receiver may get an event twice (its 2xx
 * lost on the way back, a worker stopped or crashed mid-request) and
 * dedupes by the `tollgate-event-id` header, the event's id.
 */
import type { Logger } from 'pino';
import { request, type Dispatcher } from 'undici';

import type { Store, WebhookDelivery } from '../storage/store.js';
import { SIGNATURE_HEADER, signatureHeader } from './signature.js';

export const EVENT_ID_HEADER = 'tollgate-event-id';

export interface WebhookWorkerOptions {
  readonly url: string;
  readonly secret: string;
  /** Deadline for one attempt, answer included. */
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly logger: Logger;
  /** The first retry's nominal delay; each later one doubles, to an hour. */
  readonly retryBaseMs?: number;
  /** How often the outbox is looked at when nothing wakes the worker. */
  readonly pollMs?: number;
  /** Uniform in [0, 1): the jitter. */
  readonly random?: () => number;
  readonly now?: () => number;
  readonly dispatcher?: Dispatcher;
}

const RETRY_BASE_MS = 2_000;
const MAX_RETRY_DELAY_MS = 60 * 60_000;
const POLL_MS = 1_000;
/** How long past its deadline an attempt's lease outlives it. */
const LEASE_MARGIN_MS = 60_000;
/** Events taken and sent at once. */
const BATCH = 16;

export class WebhookWorker {
  readonly #store: Store;
  readonly #url: string;
  readonly #secret: string;
  /** The endpoint for logs: its path or query may hold a token. */
  readonly #origin: string;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #logger: Logger;
  readonly #retryBaseMs: number;
  readonly #pollMs: number;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  /** The pass over the outbox under way, if one is. */
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(store: Store, options: WebhookWorkerOptions) {
    this.#store = store;
    this.#url = options.url;
    this.#secret = options.secret;
    this.#origin = new URL(options.url).origin;
    this.#timeoutMs = options.timeoutMs;
    this.#maxAttempts = options.maxAttempts;
    this.#logger = options.logger;
    this.#retryBaseMs = options.retryBaseMs ?? RETRY_BASE_MS;
    this.#pollMs = options.pollMs ?? POLL_MS;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#dispatcher = options.dispatcher;
  }

  /** Delivers what is due now, then whatever falls due, until stopped. */
  start(): void {
    if (!this.#stopped) this.#schedule(0);
  }

  /** New events were queued: look at the outbox now. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#pass) this.#again = true;
    else this.#schedule(0);
  }

  /** Stops; an attempt in flight is cut off and left due at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#pass;
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#run(), ms);
    this.#timer.unref();
  }

  #run(): void {
    this.#again = false;
    this.#pass = this.#deliverDue()
      .catch((error: unknown) => {
        this.#logger.error({ err: error }, 'could not work the webhook outbox');
      })
      .finally(() => {
        this.#pass = undefined;
        if (!this.#stopped) this.#schedule(this.#again ? 0 : this.#pollMs);
      });
  }

  async #deliverDue(): Promise<void> {
    const leaseMs = this.#timeoutMs + LEASE_MARGIN_MS;
    while (!this.#stopped) {
      const due = await this.#store.claimWebhooks(this.#now(), leaseMs, BATCH);
      if (due.length === 0) return;
      await Promise.all(due.map((event) => this.#deliver(event)));
    }
  }

  async #deliver(event: WebhookDelivery): Promise<void> {
    const error = await this.#post(event);
    const at = this.#now();
    const fields = { event: event.id, attempt: event.attempt };
    if (error === null) {
      await this.#store.finishWebhookAttempt({
        id: event.id,
        at,
        delivered: true,
      });
      this.#logger.info(fields, 'webhook delivered');
      return;
    }

    const retryAt = this.#stopped
      ? at
      : event.attempt >= this.#maxAttempts
        ? null
        : at + this.#backoff(event.attempt);
    await this.#store.finishWebhookAttempt({
      id: event.id,
      at,
      delivered: false,
      error,
      retryAt,
    });
    const failure = { ...fields, endpoint: this.#origin, error };
    if (retryAt === null) {
      this.#logger.error(
        failure,
        `webhook undeliverable: given up after ${event.attempt} attempts`,
      );
    } else {
      this.#logger.warn(
        { ...failure, retryAt: new Date(retryAt).toISOString() },
        'webhook delivery failed; it will be retried',
      );
    }
  }

  /** One attempt: null on a 2xx answer, else what went wrong. */
  async #post(event: WebhookDelivery): Promise<string | null> {
    const seconds = Math.floor(this.#now() / 1000);
    try {
      const response = await request(this.#url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tollgate-webhooks',
          [EVENT_ID_HEADER]: event.id,
          [SIGNATURE_HEADER]: signatureHeader(
            this.#secret,
            event.body,
            seconds,
          ),
        },
        body: event.body,
        signal: AbortSignal.any([
          this.#abort.signal,
          AbortSignal.timeout(this.#timeoutMs),
        ]),
        ...(this.#dispatcher && { dispatcher: this.#dispatcher }),
      });
      await response.body.dump();
      const status = response.statusCode;
      return status >= 200 && status < 300 ? null : `HTTP ${status}`;
    } catch (error) {
      return error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error);
    }
  }

  /** The wait after a failed attempt: doubling, capped, with jitter. */
  #backoff(attempt: number): number {
    const nominal = Math.min(
      MAX_RETRY_DELAY_MS,
      this.#retryBaseMs * 2 ** (attempt - 1),
    );
    // Half to all of it, so endpoints that failed together are not all
    // retried together.
    return Math.ceil(nominal / 2 + (this.#random() * nominal) / 2);
  }
}
