/**
 * Assembles and runs the gateway: store, price book, recovery, limits and
 * their webhooks, providers, routes, and the HTTP server; and takes it
 * down gracefully.
 */
import type { Duplex } from 'node:stream';

import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify';
import type { Logger } from 'pino';

import { Admission } from '../admission/admission.js';
import type { LimitConfig } from '../admission/limits.js';
import {
  limitsInForce,
  scopeProblems,
  watchManagedLimits,
} from '../admission/managed-limits.js';
import type { CounterStore } from '../admission/counter-store.js';
import { MemoryCounterStore } from '../admission/memory-counter-store.js';
import { RedisCounterStore } from '../admission/redis-counter-store.js';
import { ThresholdWatcher } from '../admission/thresholds.js';
import type { Config } from '../config/config-schema.js';
import { resolveSecret } from '../config/load-config.js';
import { Meter } from '../metering/meter.js';
import {
  SettlementSpool,
  type SpoolRetry,
} from '../metering/settlement-spool.js';
import { createLogger } from '../observability/logger.js';
import type { Catalog } from '../pricing/catalog-schema.js';
import { PriceBook } from '../pricing/price-book.js';
import { shippedCatalog } from '../pricing/shipped-catalog.js';
import { createProviderRegistry } from '../providers/provider-registry.js';
import { operatorPrices, RouteTable } from '../routing/route-table.js';
import { DeploymentHealth } from '../routing/deployment-health.js';
import { Router } from '../routing/router.js';
import { SqliteStore } from '../storage/sqlite/sqlite-store.js';
import type { Store } from '../storage/store.js';
import { newId } from '../util/ids.js';
import { WebhookWorker } from '../webhooks/webhook-worker.js';
import { anthropicInbound } from '../protocol/anthropic/anthropic-inbound.js';
import {
  bedrockConverseInbound,
  bedrockConverseStreamInbound,
} from '../protocol/bedrock/bedrock-inbound.js';
import type { InboundProtocol, WireApi } from '../protocol/canonical.js';
import { openAIChatInbound } from '../protocol/openai/openai-chat-inbound.js';
import { openAIResponsesInbound } from '../protocol/openai/openai-responses-inbound.js';
import { ApiError, toClientError, toOpenAIErrorBody } from './api-error.js';
import { Authenticator } from './authenticate.js';
import { ConfigReloadError, planReload } from './config-reload.js';
import { createDualProtocolServer } from './dual-protocol-server.js';
import { handleChatCompletions } from './chat/chat-completions.js';
import type { GatewayContext, ReloadOutcome } from './gateway-context.js';
import { handleEmbeddings } from './inference/handle-embeddings.js';
import { handleInference } from './inference/handle-inference.js';
import { REQUEST_ID_HEADERS } from './inference/relay-stream.js';
import { InflightRequests } from './inflight.js';
import { InstanceRegistry } from './instance-registry.js';
import { registerAdminRoutes } from './routes/admin-routes.js';
import { registerHealthRoutes } from './routes/health-routes.js';
import { registerLimitRoutes } from './routes/limit-routes.js';
import { registerModelRoutes } from './routes/model-routes.js';
import { registerUsageRoutes } from './routes/usage-routes.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The wire API a route speaks, for errors in its own format. */
    api?: WireApi;
  }
}

/** The inbound protocol whose error format each API's routes answer in. */
const ERROR_FORMATS: Readonly<Record<WireApi, InboundProtocol>> = {
  'openai-chat': openAIChatInbound,
  'openai-responses': openAIResponsesInbound,
  'anthropic-messages': anthropicInbound,
  'bedrock-converse': bedrockConverseInbound,
};

/** How often a running gateway looks for requests of dead instances. */
const RECOVERY_INTERVAL_MS = 15_000;

export interface GatewayOptions {
  readonly config: Config;
  /** Defaults to SQLite at `config.database.path`. */
  readonly store?: Store;
  readonly logger?: Logger;
  /** Overrides `config.adminToken` and `TOLLGATE_ADMIN_TOKEN`. */
  readonly adminToken?: string;
  /** Defaults to the shipped catalog. */
  readonly catalog?: Catalog;
  /**
   * Where a reload reads the config from (the `--config` file, say);
   * without one, reloads take a config given to `reload()`.
   */
  readonly reloadSource?: () => Promise<Config>;
  /** Where settlements the store refuses wait for it (settlement-spool.ts). */
  readonly spool?: {
    /**
     * Defaults to `<database path>.spool`, where the next start on the
     * same database looks; null keeps them in memory only.
     */
    readonly directory?: string | null;
    /** How soon a drain is tried again while the store refuses. */
    readonly retry?: SpoolRetry;
  };
}

export interface Gateway {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly priceBook: PriceBook;
  /** Limits and budgets, with the reservations in flight. */
  readonly admission: Admission;
  /** Requests a previous crash left open, settled at start. */
  readonly recovered: number;
  /** The routes in force and what is known of each deployment. */
  readonly router: Router;
  /**
   * Puts the reloadable sections of `next` (else of the reload source)
   * in force, all or none; throws ConfigReloadError or ConfigError with
   * the reason when it cannot, and the config in force stays.
   */
  reload(next?: Config): Promise<ReloadOutcome>;
  /** Stops accepting, lets in-flight requests finish and settle, closes. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const config = options.config;
  const logger = options.logger ?? createLogger(config.logging.level);
  // What start-up has taken, released in reverse if a later step fails, so
  // a failed start (say, the port is taken) does not linger.
  const acquired: (() => Promise<void>)[] = [];
  try {
    const store =
      options.store ??
      new SqliteStore({
        path: config.database.path,
        synchronous: config.database.synchronous,
      });
    acquired.push(() => store.close());

    const catalog = options.catalog ?? shippedCatalog();
    const priceBook = PriceBook.create(catalog, operatorPrices(config));
    const instances = new InstanceRegistry(store, { id: newId('gw') });
    const spool = new SettlementSpool(store, {
      // null, from an embedder, keeps the spool in memory.
      directory:
        options.spool?.directory === undefined
          ? (config.database.spoolPath ??
            SettlementSpool.directoryFor(config.database.path))
          : options.spool.directory,
      instanceId: instances.id,
      logger,
      ...(options.spool?.retry && { retry: options.spool.retry }),
    });
    const meter = new Meter(store, priceBook, logger, { spool });
    await store.savePriceBook(
      priceBook.version,
      JSON.stringify({ operatorPrices: operatorPrices(config) }),
    );
    await instances.start((error) =>
      logger.error({ err: error }, 'could not renew this instance heartbeat'),
    );
    acquired.push(() => instances.stop());
    // Released before the instance's stop is recorded: what its last
    // drain leaves stays on disk, for whoever finds the instance gone.
    acquired.push(() => spool.close().then(() => undefined));
    const counters = await openCounterStore(config);
    acquired.push(() => counters.close());
    const webhooks = openWebhooks(config, store, logger);
    if (webhooks) acquired.push(() => webhooks.stop());
    const limits = await limitsInForce(config, store, logger);
    warnUnmatchedLimits(limits, store, logger);
    const admission = new Admission(counters, limits, logger, {
      ledger: store,
      ...(webhooks && {
        observer: new ThresholdWatcher(store, {
          onQueued: () => webhooks.wake(),
        }),
      }),
    });
    // Before the counter store closes: a last try at settlements it has
    // not taken yet.
    acquired.push(() => admission.stop());
    // After admission exists: a dead process's reservations on shared
    // counters are released as its requests are recovered.
    const recovered = await recoverAbandoned({
      spool,
      meter,
      instances,
      admission,
      logger,
    });
    // The config in force: a reload swaps its reloadable sections.
    let current = config;
    const managedLimits = watchManagedLimits(
      () => current,
      store,
      admission,
      logger,
    );
    acquired.push(() => Promise.resolve(managedLimits.stop()));
    // Events a previous run left undelivered go out from the start.
    webhooks?.start();

    const providers = await createProviderRegistry(config.providers);
    acquired.push(() => providers.close());
    const routes = RouteTable.fromConfig(config, providers.clients);
    warnUnpriced(routes, priceBook, logger);

    const router = new Router(
      routes,
      Math.random,
      new DeploymentHealth({
        opened: (deployment, policy) =>
          logger.warn(
            { deployment, failures: policy.failures, openMs: policy.openMs },
            'circuit breaker opened: the deployment is passed by until a ' +
              'probe succeeds',
          ),
        closed: (deployment) =>
          logger.info({ deployment }, 'circuit breaker closed'),
      }),
    );
    // One reload at a time, so two cannot interleave their checks.
    let reloading: Promise<unknown> = Promise.resolve();
    const reload = (next?: Config): Promise<ReloadOutcome> => {
      const run = reloading.then(async () => {
        const source = next ?? (await options.reloadSource?.());
        if (!source) {
          throw new ConfigReloadError(
            'this gateway was started without a config file to reload from',
          );
        }
        const plan = planReload(current, source, providers.clients);
        let book = ctx.meter.priceBook;
        if (plan.pricesChanged) {
          try {
            book = PriceBook.create(catalog, operatorPrices(plan.config));
          } catch (error) {
            throw new ConfigReloadError((error as Error).message);
          }
          await store.savePriceBook(
            book.version,
            JSON.stringify({ operatorPrices: operatorPrices(plan.config) }),
          );
        }
        const limits = await limitsInForce(plan.config, store, logger);
        // From here nothing can fail: the new sections go in together.
        current = plan.config;
        router.replace(plan.routes);
        meter.usePriceBook(book);
        admission.setLimits(limits);
        warnUnpriced(plan.routes, book, logger);
        warnUnmatchedLimits(plan.config.limits, store, logger);
        const outcome: ReloadOutcome = {
          priceBook: book.version,
          models: plan.routes.aliases(),
          needsRestart: plan.needsRestart,
        };
        logger.info(outcome, 'config reloaded');
        return outcome;
      });
      reloading = run.catch(() => undefined);
      return run;
    };

    let shuttingDown = false;
    const ctx: GatewayContext = {
      get config() {
        return current;
      },
      reloadConfig: () => reload(),
      store,
      meter,
      admission,
      reloadLimits: () => managedLimits.reload(),
      router,
      auth: new Authenticator(
        store,
        options.adminToken ??
          resolveSecret(config.adminToken, 'adminToken') ??
          nonEmpty(process.env['TOLLGATE_ADMIN_TOKEN']),
      ),
      inflight: new InflightRequests(),
      instanceId: instances.id,
      spooledSettlements: () => spool.size,
      logger,
      isShuttingDown: () => shuttingDown,
    };

    const app = buildApp(ctx);
    acquired.push(() => app.close());
    await app.listen({ host: config.server.host, port: config.server.port });
    return running({
      app,
      ctx,
      priceBook,
      recovered,
      providers,
      counters,
      webhooks,
      instances,
      spool,
      stopLimits: () => managedLimits.stop(),
      reload,
      stop: () => {
        shuttingDown = true;
      },
    });
  } catch (error) {
    for (const release of acquired.reverse()) {
      await release().catch(() => undefined);
    }
    throw error;
  }
}

function running(parts: {
  app: FastifyInstance;
  ctx: GatewayContext;
  priceBook: PriceBook;
  recovered: number;
  providers: { close(): Promise<void> };
  counters: CounterStore;
  webhooks: WebhookWorker | undefined;
  instances: InstanceRegistry;
  spool: SettlementSpool;
  stopLimits: () => void;
  reload: (next?: Config) => Promise<ReloadOutcome>;
  stop: () => void;
}): Gateway {
  const { app, ctx, priceBook, recovered, providers, instances, spool } = parts;
  const { config, store, logger } = ctx;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://${formatHost(config.server.host)}:${port}`;
  logger.info(
    { url, priceBook: priceBook.version, recovered, instance: ctx.instanceId },
    'gateway listening',
  );

  // Another process sharing the database may die while this one runs;
  // its spool is drained and its requests recovered here once it is
  // found gone (instance-registry.ts).
  const recovery = setInterval(() => {
    recoverAbandoned({
      spool,
      meter: ctx.meter,
      instances,
      admission: ctx.admission,
      logger,
    }).catch((error: unknown) =>
      logger.error({ err: error }, 'periodic recovery failed'),
    );
  }, RECOVERY_INTERVAL_MS);
  recovery.unref();

  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    store,
    priceBook,
    admission: ctx.admission,
    recovered,
    router: ctx.router,
    reload: parts.reload,
    close() {
      closing ??= (async () => {
        parts.stop();
        clearInterval(recovery);
        parts.stopLimits();
        const stopped = app.close();
        await ctx.inflight.drain(config.server.shutdownGraceMs);
        // Keep-alive connections that went idle after close() began (a
        // stream that just finished) would hold the server open until
        // their timeout; close each one as soon as it is idle.
        const sweep = setInterval(() => app.server.closeIdleConnections(), 20);
        // A client that holds a connection without finishing a request
        // would keep the process up; after a last moment, cut it off.
        const cutoff = setTimeout(() => app.server.closeAllConnections(), 1000);
        await stopped.finally(() => {
          clearInterval(sweep);
          clearTimeout(cutoff);
        });
        await providers.close();
        // After the last settlements, a last drain; what the store still
        // refuses stays spooled on disk for the next start.
        await spool.close();
        // After the last settlements: what they queued waits in the store.
        await parts.webhooks?.stop();
        await parts.counters.close();
        try {
          await instances.stop();
        } catch (error) {
          // A store that is down must not keep the rest from closing;
          // without the stop, this instance is taken for gone once its
          // process has exited or its heartbeat is stale.
          logger.error({ err: error }, "could not record this instance's stop");
        }
        await store.close();
        logger.info('gateway stopped');
      })();
      return closing;
    },
  };
}

/**
 * Settles what gateway instances that are gone left open: first from
 * their spools (claimed, then drained into the ledger with the exact
 * usage), then by recovery at the reserved worst case for the requests
 * no spool holds. Run at start, and periodically for the instances that
 * share the database.
 */
async function recoverAbandoned(parts: {
  spool: SettlementSpool;
  meter: Meter;
  instances: InstanceRegistry;
  admission: Admission;
  logger: Logger;
}): Promise<number> {
  const { spool, meter, instances, admission, logger } = parts;
  const abandoned = (ids: readonly string[]) => instances.abandoned(ids);
  try {
    await spool.adopt(abandoned);
    if (spool.size > 0) await spool.drain();
  } catch (error) {
    // A spool folder that cannot be read must not stop the recovery of
    // every other request; what it holds waits for the next round.
    logger.error(
      { err: error },
      'could not take over the spools of stopped gateways; recovering the rest',
    );
  }
  return meter.recover(abandoned, (request) =>
    admission.releaseRecovered(request.id, request.reservations ?? null),
  );
}

/**
 * Says at start which deployments have no price in force, rather than
 * leaving it to the first request's "unknown price" warning.
 */
function warnUnpriced(
  routes: RouteTable,
  priceBook: PriceBook,
  logger: Logger,
): void {
  const now = Date.now();
  for (const alias of routes.aliases()) {
    for (const deployment of routes.resolve(alias)?.deployments ?? []) {
      if (!priceBook.lookup(deployment.priceKey, now, 0)) {
        logger.warn(
          {
            model: alias,
            deployment: deployment.id,
            priceKey: deployment.priceKey,
          },
          'no price in force for this deployment: its usage will have an ' +
            'unknown cost until a price is configured (prices: or priceAs:)',
        );
      }
    }
  }
}

function buildApp(ctx: GatewayContext): FastifyInstance {
  // Typed as Fastify's base logger so the app has the default instance
  // type that the route modules are written against.
  const loggerInstance: FastifyBaseLogger = ctx.logger;
  const app = Fastify({
    loggerInstance,
    // One line per request comes from the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => newId('req'),
    requestIdHeader: false,
    bodyLimit: ctx.config.server.bodyLimitBytes,
    forceCloseConnections: 'idle',
    // Refusals while closing come from the onRequest hook below, in the
    // API's error shape rather than Fastify's.
    return503OnClosing: false,
    serverFactory: (handler) =>
      createDualProtocolServer(handler, {
        requestTimeoutMs: ctx.config.server.requestTimeoutMs,
        // Fastify's own default, longer than common clients' idle pools.
        keepAliveTimeoutMs: 72_000,
      }),
    clientErrorHandler: (error, socket) => {
      answerClientError(error, socket);
    },
  });
  // Every body the gateway takes is JSON. Fastify also parses text/plain
  // by default, which would hand a handler a string and answer a wrong
  // content type with 400 instead of 415.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // Anthropic's and the AWS SDKs read the id from their own headers.
    const api = request.routeOptions.config.api;
    if (api) reply.header(REQUEST_ID_HEADERS[api], request.id);
    if (ctx.isShuttingDown() && request.url !== '/health') {
      // HTTP/2 has no such header (Node warns and drops it).
      if (request.raw.httpVersionMajor === 1) {
        reply.header('connection', 'close');
      }
      throw new ApiError('shutting_down', 'The gateway is shutting down.');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        requestId: request.id,
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const apiError = toApiError(error, ctx.config.server.bodyLimitBytes);
    if (apiError.status >= 500 && apiError.code !== 'upstream_timeout') {
      request.log.error(
        { err: error, requestId: request.id },
        apiError.message,
      );
    }
    // Tollgate's stable code, for every API: Anthropic's and Bedrock's error
    // bodies have no field of their own for it.
    reply.header('x-tollgate-error-code', apiError.code);
    reply.headers(apiError.headers);
    if (apiError.retryAfter !== undefined) {
      reply.header('retry-after', apiError.retryAfter);
    }
    const inbound =
      ERROR_FORMATS[request.routeOptions.config.api ?? 'openai-chat'];
    if (inbound.api === 'openai-chat' || inbound.api === 'openai-responses') {
      return reply
        .code(apiError.status)
        .send(toOpenAIErrorBody(apiError, request.id));
    }
    const { status, headers, body } = inbound.encodeError(
      toClientError(apiError, request.id),
    );
    return reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError(
      'not_found',
      `Unknown endpoint: ${request.method} ${request.url.split('?')[0] ?? ''}`,
    );
    return reply.code(error.status).send(toOpenAIErrorBody(error, request.id));
  });

  app.post(
    '/v1/chat/completions',
    { config: { api: 'openai-chat' } },
    (request, reply) => handleChatCompletions(ctx, request, reply),
  );
  app.post(
    '/v1/responses',
    { config: { api: 'openai-responses' } },
    (request, reply) =>
      handleInference(ctx, openAIResponsesInbound, request, reply, null),
  );
  app.post(
    '/v1/embeddings',
    { config: { api: 'openai-chat' } },
    (request, reply) => handleEmbeddings(ctx, request, reply),
  );
  app.post(
    '/v1/messages',
    { config: { api: 'anthropic-messages' } },
    (request, reply) =>
      handleInference(ctx, anthropicInbound, request, reply, null),
  );
  // The AWS SDK's Bedrock runtime client, pointed at the gateway.
  app.post<{ Params: { modelId: string } }>(
    '/model/:modelId/converse',
    { config: { api: 'bedrock-converse' } },
    (request, reply) =>
      handleInference(
        ctx,
        bedrockConverseInbound,
        request,
        reply,
        request.params.modelId,
      ),
  );
  app.post<{ Params: { modelId: string } }>(
    '/model/:modelId/converse-stream',
    { config: { api: 'bedrock-converse' } },
    (request, reply) =>
      handleInference(
        ctx,
        bedrockConverseStreamInbound,
        request,
        reply,
        request.params.modelId,
      ),
  );
  registerModelRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerLimitRoutes(app, ctx);
  registerHealthRoutes(app, ctx);
  return app;
}

/** Fastify's own errors (body parsing, limits) as coded API errors. */
function toApiError(error: FastifyError | Error, bodyLimit: number): ApiError {
  if (error instanceof ApiError) return error;
  const code = 'code' in error ? error.code : undefined;
  switch (code ?? '') {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(
        'request_too_large',
        `The request body is larger than this gateway accepts ` +
          `(${bodyLimit.toLocaleString('en-US')} bytes).`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        'unsupported_media_type',
        'Send the request body as application/json.',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(
        'invalid_json',
        'The request body is empty; send a JSON object.',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(
        'invalid_json',
        'We could not parse the JSON body of your request. Send valid JSON.',
      );
    default:
      break;
  }
  if (
    error instanceof SyntaxError ||
    (error as FastifyError).statusCode === 400
  ) {
    return new ApiError(
      'invalid_json',
      'We could not parse the JSON body of your request. Send valid JSON.',
    );
  }
  return new ApiError('internal_error', 'The gateway failed unexpectedly.', {
    cause: error,
  });
}

/**
 * A request Node's HTTP parser refused before Fastify saw it (a malformed
 * request line or header, headers too large, a request that took too
 * long): answer in the OpenAI error shape with a request id, then close.
 */
function answerClientError(error: Error, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const code = (error as { code?: string }).code;
  const [status, reason, apiError] =
    code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ([408, 'Request Timeout', 'request_timeout'] as const)
      : code === 'HPE_HEADER_OVERFLOW'
        ? ([
            431,
            'Request Header Fields Too Large',
            'request_too_large',
          ] as const)
        : ([400, 'Bad Request', 'invalid_request'] as const);
  const requestId = newId('req');
  const body = JSON.stringify({
    error: {
      message:
        status === 408
          ? 'The request was not received in time.'
          : 'The HTTP request could not be parsed.',
      type: 'invalid_request_error',
      param: null,
      code: apiError,
      request_id: requestId,
    },
  });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
}

/**
 * A limit naming a tenant or a key that does not exist counts nothing:
 * a misspelt name would leave a budget unenforced, so say so, at start
 * and after each reload. Said, not refused: a config's limit may name a
 * tenant created later. (The admin API and the CLI look the scope up as
 * they take a limit, and refuse it: checkManagedLimit.)
 */
function warnUnmatchedLimits(
  limits: readonly LimitConfig[],
  store: Store,
  logger: Logger,
): void {
  void (async () => {
    for (const limit of limits) {
      for (const problem of await scopeProblems(limit, store)) {
        logger.warn(
          {
            limit: limit.id,
            [problem.field]: limit[problem.field],
            reason: problem.message,
          },
          problem.field === 'tenant'
            ? 'a limit names a tenant that does not exist (yet): it counts ' +
                'nothing'
            : 'a limit names a key no request can use: it counts nothing',
        );
      }
    }
  })().catch((error: unknown) =>
    logger.error({ err: error }, 'could not check the limits against tenants'),
  );
}

/**
 * The limit counters: in this process, or on Redis, which must answer at
 * start (a replica that cannot reach the shared counters must not count
 * alone).
 */
async function openCounterStore(config: Config): Promise<CounterStore> {
  if (config.counters.store === 'memory') return new MemoryCounterStore();
  const url = resolveSecret(config.counters.url, 'counters.url');
  if (url === undefined) throw new Error('counters.url is not set');
  try {
    return await RedisCounterStore.connect({
      url,
      prefix: config.counters.prefix,
    });
  } catch (error) {
    throw new Error(
      `counters.store is redis, and Redis at ${redactUrl(url)} does not ` +
        `answer (${(error as Error).message}); refusing to start with ` +
        'limits counted by this process alone',
      { cause: error },
    );
  }
}

/** The limit thresholds' webhook sender, when webhooks are configured. */
function openWebhooks(
  config: Config,
  store: Store,
  logger: Logger,
): WebhookWorker | undefined {
  if (!config.webhooks) return undefined;
  const { url, timeoutMs, maxAttempts } = config.webhooks;
  const secret = resolveSecret(config.webhooks.secret, 'webhooks.secret');
  if (secret === undefined) throw new Error('webhooks.secret is not set');
  return new WebhookWorker(store, {
    url,
    secret,
    timeoutMs,
    maxAttempts,
    logger,
  });
}

/** A URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

function formatHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
