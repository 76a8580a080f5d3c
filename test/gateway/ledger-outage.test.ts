/**
 * A ledger store that refuses settlements (DESIGN.md, "Storage and
 * scale": a store outage spools usage locally and drains it when the
 * store is back, with nothing lost or doubled), driven with the `openai`
 * SDK over real HTTP. While the store refuses, clients are served and
 * their exact settlements wait in the spool; once it is back the ledger
 * holds each request once, with its actual usage and charge; a restart
 * with a backlog drains it before recovery could settle those requests
 * at their worst case; and a crash mid-append is tolerated.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';

import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { afterEach, describe, expect, it, vi } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  startSimulatedUpstream,
  type SimulatedUpstream,
} from '../../src/providers/simulated/simulated-upstream.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { testPrices } from '../helpers/test-prices.js';
import { usd } from '../helpers/usd.js';

/** What the test's one model costs, USD per 1M tokens, cache at input. */
const RATES = { input: '2.5', output: '10' };
const TOKEN_LIMIT = 1_000_000;
const HELPERS = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers');

/** Calls whose counts the simulated upstream is told to report. */
const CALLS = [
  { prompt: 120, cached: 20, completion: 30, stream: false },
  { prompt: 64, cached: 0, completion: 12, stream: true },
  { prompt: 90, cached: 40, completion: 7, stream: false },
] as const;

type Call = (typeof CALLS)[number];

interface Served {
  readonly id: string;
  readonly call: Call;
  readonly remainingTokens: number;
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A store whose writes of `methods` fail, as an I/O error fails them. */
function refusing(
  outage: { failing: boolean },
  methods: readonly (keyof Store)[] = ['settleRequest'],
) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, property) {
        const refused = methods.some((m) => m === property);
        if (refused && outage.failing) {
          return () =>
            Promise.reject(
              Object.assign(new Error('disk I/O error'), {
                code: 'SQLITE_IOERR',
              }),
            );
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function'
          ? (value as (...args: unknown[]) => unknown).bind(target)
          : value;
      },
    });
}

function configInput(upstreamUrl: string, db: string): ConfigInput {
  return {
    server: { port: 0, shutdownGraceMs: 5_000 },
    database: { path: db },
    logging: { level: 'silent' },
    providers: {
      sim: { type: 'openai-compatible', baseUrl: upstreamUrl, apiKey: 'k' },
    },
    models: {
      chat: {
        deployments: [
          {
            provider: 'sim',
            model: 'gpt-4o',
            prices: testPrices(RATES.input, RATES.output),
          },
        ],
      },
      // Falls back from the first to the second on a server error.
      pair: {
        deployments: [
          { id: 'pair/a', provider: 'sim', model: 'gpt-4o', weight: 100 },
          { id: 'pair/b', provider: 'sim', model: 'gpt-4o-mini', weight: 0 },
        ],
        circuitBreaker: false,
      },
    },
    limits: [
      { id: 'tokens', tokens: TOKEN_LIMIT, per: 'day' },
      // A slot left held would refuse every later call.
      { id: 'one-at-a-time', concurrent: 1 },
    ],
  };
}

/** A folder with a database, a tenant and its key, and an upstream. */
async function setUp(): Promise<{
  db: string;
  key: string;
  upstream: SimulatedUpstream;
}> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-outage-'));
  cleanup.push(() => rm(folder, { recursive: true, force: true }));
  const upstream = await startSimulatedUpstream();
  cleanup.push(() => upstream.close());
  const db = join(folder, 'tollgate.db');
  const store = new SqliteStore({ path: db });
  const tenant = await createTenant(store, { name: 'outage' });
  const { key } = await createApiKey(store, tenant, {});
  await store.close();
  return { db, key, upstream };
}

async function start(args: {
  readonly db: string;
  readonly upstream: SimulatedUpstream;
  readonly outage?: { failing: boolean };
  readonly refuse?: readonly (keyof Store)[];
  readonly logs?: string[];
  readonly spoolPath?: string;
}): Promise<Gateway> {
  const input = configInput(args.upstream.url, args.db);
  const config = parseConfig(
    args.spoolPath === undefined
      ? input
      : { ...input, database: { path: args.db, spoolPath: args.spoolPath } },
    'the outage test config',
  );
  const gateway = await startGateway({
    config,
    ...(args.outage && {
      store: refusing(
        args.outage,
        args.refuse,
      )(new SqliteStore({ path: args.db })),
    }),
    logger: args.logs ? captured(args.logs) : createLogger('silent'),
    spool: { retry: { firstMs: 20, maxMs: 100 } },
  });
  cleanup.push(() => gateway.close());
  return gateway;
}

function captured(into: string[]) {
  return createLogger(
    'info',
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        into.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
}

function clientOf(gateway: Gateway, key: string): OpenAI {
  return new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: key,
    maxRetries: 0,
  });
}

async function serve(client: OpenAI, call: Call): Promise<Served> {
  const request = {
    model: 'chat',
    max_tokens: 100,
    // Longer than the prompt counts dictated, so they stay in the bound.
    messages: [{ role: 'user' as const, content: 'How are you? '.repeat(40) }],
    metadata: {
      tollgate_sim_prompt_tokens: String(call.prompt),
      tollgate_sim_cached_tokens: String(call.cached),
      tollgate_sim_completion_tokens: String(call.completion),
    },
  };
  if (call.stream) {
    const { data, response } = await client.chat.completions
      .create({
        ...request,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of data) usage = chunk.usage ?? usage;
    expect(usage?.completion_tokens).toBe(call.completion);
    return served(response, call);
  }
  const { data, response } = await client.chat.completions
    .create(request)
    .withResponse();
  expect(data.usage?.prompt_tokens).toBe(call.prompt);
  expect(data.usage?.completion_tokens).toBe(call.completion);
  return served(response, call);
}

function served(response: Response, call: Call): Served {
  return {
    id: response.headers.get('x-request-id') ?? '',
    call,
    remainingTokens: Number(
      response.headers.get('x-ratelimit-remaining-tokens'),
    ),
  };
}

/** What the tenant is charged for a call, from the rates stated above. */
function chargeOf(call: Call): string {
  return usd(
    [call.prompt - call.cached, RATES.input],
    [call.cached, RATES.input],
    [call.completion, RATES.output],
  );
}

interface LedgerRow {
  state: string;
  worst: number;
  events: number;
  input_tokens: number | null;
  cache_read_tokens: number | null;
  output_tokens: number | null;
  estimated: number | null;
  source: string | null;
  tenant_charge: string | null;
}

/** The ledger's view of a request, read straight from the database. */
function ledger(db: string, requestId: string): LedgerRow | undefined {
  const reader = new Database(db, { readonly: true });
  try {
    return reader
      .prepare(
        `SELECT q.state,
                q.reserved_input_tokens + q.reserved_output_tokens AS worst,
                (SELECT COUNT(*) FROM usage_events
                   WHERE request_id = q.id) AS events,
                e.input_tokens, e.cache_read_tokens, e.output_tokens,
                e.estimated, e.source, r.tenant_charge
         FROM requests q
         LEFT JOIN usage_events e ON e.request_id = q.id
         LEFT JOIN ratings r ON r.event_id = e.id
         WHERE q.id = ?`,
      )
      .get(requestId) as LedgerRow | undefined;
  } finally {
    reader.close();
  }
}

function expectExact(db: string, served: Served): void {
  const { call } = served;
  expect(ledger(db, served.id)).toMatchObject({
    state: 'settled',
    events: 1,
    input_tokens: call.prompt - call.cached,
    cache_read_tokens: call.cached,
    output_tokens: call.completion,
    estimated: 0,
    source: 'gateway',
    tenant_charge: chargeOf(call),
  });
}

async function spoolOf(
  db: string,
  directory = `${db}.spool`,
): Promise<Record<string, string[]>> {
  const files: Record<string, string[]> = {};
  for (const name of await readdir(directory).catch(() => [])) {
    const text = await readFile(join(directory, name), 'utf8');
    files[name] = text.split('\n').filter((line) => line !== '');
  }
  return files;
}

function spooledIds(files: Record<string, string[]>): string[] {
  return Object.values(files)
    .flat()
    .map(
      (line) =>
        (JSON.parse(line) as { settlement: { requestId: string } }).settlement
          .requestId,
    )
    .sort();
}

async function backlog(gateway: Gateway): Promise<number> {
  const health = (await (await fetch(`${gateway.url}/health`)).json()) as {
    spooled: number;
  };
  return health.spooled;
}

describe('a ledger store that refuses settlements', () => {
  it('serves every request, spools it, and drains it exactly once when back', async () => {
    const { db, key, upstream } = await setUp();
    const outage = { failing: true };
    const logs: string[] = [];
    const gateway = await start({ db, upstream, outage, logs });
    const client = clientOf(gateway, key);

    const served: Served[] = [];
    for (const call of CALLS) served.push(await serve(client, call));

    // Every request is waiting in the spool, exactly, and still open in
    // the ledger at its worst case.
    const files = await spoolOf(db);
    expect(Object.keys(files)).toHaveLength(1);
    expect(spooledIds(files)).toEqual(served.map((s) => s.id).sort());
    expect(await backlog(gateway)).toBe(CALLS.length);
    for (const s of served) expect(ledger(db, s.id)?.state).toBe('pending');
    expect(logs.join('')).toContain('spooling settlements locally');

    // The limits count what was used, not the worst cases: the next
    // call sees the actual usage of the ones before plus its own
    // reservation.
    const used = CALLS.reduce((sum, c) => sum + c.prompt + c.completion, 0);
    const probe = await serve(client, CALLS[0]);
    const probeWorst = ledger(db, probe.id)?.worst ?? 0;
    expect(probe.remainingTokens).toBe(TOKEN_LIMIT - used - probeWorst);
    served.push(probe);

    outage.failing = false;
    await vi.waitFor(async () => expect(await backlog(gateway)).toBe(0), {
      timeout: 5_000,
    });
    for (const s of served) expectExact(db, s);
    // Said once the drained lines have left the file as well.
    await vi.waitFor(
      () => expect(logs.join('')).toContain('drained the settlement spool'),
      { timeout: 5_000 },
    );
    expect(await spoolOf(db)).toEqual({});
  });

  it('spools into database.spoolPath when it is set', async () => {
    const { db, key, upstream } = await setUp();
    const elsewhere = await mkdtemp(join(tmpdir(), 'tollgate-spool-'));
    cleanup.push(() => rm(elsewhere, { recursive: true, force: true }));
    const spoolPath = join(elsewhere, 'spool');
    const outage = { failing: true };
    const gateway = await start({ db, upstream, outage, spoolPath });
    const served = await serve(clientOf(gateway, key), CALLS[0]);
    expect(spooledIds(await spoolOf(db, spoolPath))).toEqual([served.id]);
    expect(await spoolOf(db)).toEqual({});
    outage.failing = false;
    await vi.waitFor(async () => expect(await backlog(gateway)).toBe(0), {
      timeout: 5_000,
    });
    expectExact(db, served);
  });

  it('leaves a backlog on disk at shutdown, which the next start drains before recovery', async () => {
    const { db, key, upstream } = await setUp();
    const first = await start({ db, upstream, outage: { failing: true } });
    const served = [
      await serve(clientOf(first, key), CALLS[0]),
      await serve(clientOf(first, key), CALLS[1]),
    ];
    await first.close();
    expect(spooledIds(await spoolOf(db))).toEqual(
      served.map((s) => s.id).sort(),
    );
    for (const s of served) expect(ledger(db, s.id)?.state).toBe('pending');

    const logs: string[] = [];
    const second = await start({ db, upstream, logs });
    // Drained during start, before recovery: nothing left to recover.
    expect(second.recovered).toBe(0);
    for (const s of served) expectExact(db, s);
    expect(await spoolOf(db)).toEqual({});
    expect(logs.join('')).toContain('adopted the spooled settlements');
    expect(logs.join('')).not.toContain('reserved worst case');

    // The counters rebuilt from the ledger count the actual usage.
    const probe = await serve(clientOf(second, key), CALLS[2]);
    const used = served.reduce(
      (sum, s) => sum + s.call.prompt + s.call.completion,
      0,
    );
    const probeWorst = ledger(db, probe.id)?.worst ?? 0;
    expect(probe.remainingTokens).toBe(TOKEN_LIMIT - used - probeWorst);
  });

  it('keeps the backlog from recovery when the store still refuses at the next start', async () => {
    const { db, key, upstream } = await setUp();
    const first = await start({ db, upstream, outage: { failing: true } });
    const one = await serve(clientOf(first, key), CALLS[0]);
    await first.close();

    const outage = { failing: true };
    const second = await start({ db, upstream, outage });
    expect(second.recovered).toBe(0);
    expect(ledger(db, one.id)?.state).toBe('pending');
    expect(await backlog(second)).toBe(1);

    outage.failing = false;
    await vi.waitFor(async () => expect(await backlog(second)).toBe(0), {
      timeout: 5_000,
    });
    expectExact(db, one);
  });

  it('tolerates a torn last line, leaving that request to recovery', async () => {
    const { db, key, upstream } = await setUp();
    const first = await start({ db, upstream, outage: { failing: true } });
    const whole = await serve(clientOf(first, key), CALLS[0]);
    const torn = await serve(clientOf(first, key), CALLS[2]);
    await first.close();
    // A crash in the middle of the second append.
    const [name] = Object.keys(await spoolOf(db));
    const file = join(`${db}.spool`, name!);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.slice(0, text.indexOf('\n') + 1 + 50));

    const second = await start({ db, upstream });
    expect(second.recovered).toBe(1);
    expectExact(db, whole);
    expect(ledger(db, torn.id)).toMatchObject({
      state: 'recovered',
      events: 1,
      estimated: 1,
      source: 'recovery',
    });
    expect(await spoolOf(db)).toEqual({});
  });

  it('makes no fallback it cannot record, and spools the failure', async () => {
    const { db, key, upstream } = await setUp();
    const outage = { failing: true };
    const gateway = await start({
      db,
      upstream,
      outage,
      refuse: ['settleRequest', 'beginAttempt'],
    });
    const failed = await clientOf(gateway, key)
      .chat.completions.create({
        model: 'pair',
        messages: [{ role: 'user', content: 'Hello' }],
        metadata: { tollgate_sim_fault: 'status:500' },
      })
      .withResponse()
      .catch((error: unknown) => error as InstanceType<typeof OpenAI.APIError>);
    expect(failed).toBeInstanceOf(OpenAI.APIError);
    const error = failed as InstanceType<typeof OpenAI.APIError>;
    expect(error.status).toBe(503);
    expect(error.code).toBe('ledger_unavailable');
    expect(error.headers?.get('retry-after')).toBe('1');
    // The first attempt only: the second could not be recorded.
    expect(upstream.requests).toBe(1);
    const id = error.requestID ?? '';
    expect(spooledIds(await spoolOf(db))).toEqual([id]);

    outage.failing = false;
    await vi.waitFor(async () => expect(await backlog(gateway)).toBe(0), {
      timeout: 5_000,
    });
    expect(ledger(db, id)).toMatchObject({ state: 'failed', events: 0 });
  });

  it('refuses a request it cannot record before the upstream call', async () => {
    const { db, key, upstream } = await setUp();
    const outage = { failing: true };
    const gateway = await startGateway({
      config: parseConfig(configInput(upstream.url, db), 'no opens'),
      store: new Proxy(new SqliteStore({ path: db }), {
        get(target, property) {
          if (property === 'openRequest' && outage.failing) {
            return () => Promise.reject(new Error('database is locked'));
          }
          const value: unknown = Reflect.get(target, property);
          return typeof value === 'function'
            ? (value as (...args: unknown[]) => unknown).bind(target)
            : value;
        },
      }),
      logger: createLogger('silent'),
    });
    cleanup.push(() => gateway.close());
    const client = clientOf(gateway, key);

    const refused = await serve(client, CALLS[0]).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    const error = refused as InstanceType<typeof OpenAI.APIError>;
    expect(error.status).toBe(503);
    expect(error.code).toBe('ledger_unavailable');
    expect(error.headers?.get('retry-after')).toBe('1');
    // Nothing went upstream, so nothing served goes unrecorded.
    expect(upstream.requests).toBe(0);

    // Its reservation was released: the one slot is free.
    outage.failing = false;
    const next = await serve(client, CALLS[0]);
    expectExact(db, next);
  });
});

describe('a gateway killed with settlements spooled', () => {
  it('has them drained by the next start, exactly, not recovered', async () => {
    const { db, key, upstream } = await setUp();
    const input = configInput(upstream.url, db);
    const file = `${db}.json`;
    await writeFile(file, JSON.stringify(input));
    const doomed = await spawnRefusingGateway(file);
    cleanup.push(() => doomed.kill());
    const client = new OpenAI({
      baseURL: `${doomed.url}/v1`,
      apiKey: key,
      maxRetries: 0,
    });
    const served = [
      await serve(client, CALLS[0]),
      await serve(client, CALLS[1]),
    ];
    expect(spooledIds(await spoolOf(db))).toEqual(
      served.map((s) => s.id).sort(),
    );
    expect(doomed.stderr()).toContain('spooling settlements locally');

    await doomed.kill();
    for (const s of served) expect(ledger(db, s.id)?.state).toBe('pending');

    const heir = await start({ db, upstream });
    expect(heir.recovered).toBe(0);
    for (const s of served) expectExact(db, s);
    expect(await spoolOf(db)).toEqual({});
  });
});

/** `refusing-gateway-child.ts` as its own process, and how to kill it. */
async function spawnRefusingGateway(config: string) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(HELPERS, 'refusing-gateway-child.ts'), config],
    // From the project root, where `tsx` resolves.
    { cwd: join(HELPERS, '..', '..'), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the gateway did not start:\n${stderr}`)),
      20_000,
    );
    child.stderr.on('data', (text: string) => {
      stderr += text;
      const found = /^listening (\S+)$/m.exec(stderr);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.once('exit', () => reject(new Error(`it exited:\n${stderr}`)));
  });
  return {
    url,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}
