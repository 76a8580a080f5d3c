/**
 * What every route handler needs, built once at start.
 */
import type { Logger } from 'pino';

import type { Admission } from '../admission/admission.js';
import type { Config } from '../config/config-schema.js';
import type { Meter } from '../metering/meter.js';
import type { Router } from '../routing/router.js';
import type { Store } from '../storage/store.js';
import type { Authenticator } from './authenticate.js';
import type { InflightRequests } from './inflight.js';

/** What a config reload put in force. */
export interface ReloadOutcome {
  /** The price book version in force after it. */
  readonly priceBook: string;
  /** The public model names served after it. */
  readonly models: readonly string[];
  /** Sections that changed but apply only on restart. */
  readonly needsRestart: readonly string[];
}

export interface GatewayContext {
  /** The config in force; a reload replaces its reloadable sections. */
  readonly config: Config;
  /** Re-reads the config source and puts it in force (config-reload.ts). */
  readonly reloadConfig: () => Promise<ReloadOutcome>;
  readonly store: Store;
  readonly meter: Meter;
  /** Limits and budgets, checked before every upstream call. */
  readonly admission: Admission;
  /** Reloads the managed limits now (after the admin API changed one). */
  readonly reloadLimits: () => Promise<void>;
  /** The routes in force (reloadable) and what is known of deployments. */
  readonly router: Router;
  readonly auth: Authenticator;
  readonly inflight: InflightRequests;
  /** Names this process on the requests it admits. */
  readonly instanceId: string;
  /**
   * Settlements the ledger store refused that wait in this process's
   * spool for it to come back (see metering/settlement-spool.ts).
   */
  readonly spooledSettlements: () => number;
  readonly logger: Logger;
  /** True once shutdown has begun: new requests are refused. */
  readonly isShuttingDown: () => boolean;
}
