/**
 * Counters on Redis, shared by every gateway replica. Each check-and-
 * reserve and each settlement is one Lua script, which Redis runs alone:
 * no other replica's request can come between a check and its
 * reservation.
 *
 * A counter is a hash (`u` used, `r` reserved) that expires when its
 * window has ended. A counter with no window (concurrency) expires after
 * an idle spell instead, so that the reservations of a replica that
 * crashed do not hold its slots forever.
 *
 * Redis scripts compute in doubles, so every amount stays below 2^53
 * (for money, about 9 million USD per counter in units of 10^-9 USD);
 * a larger one is refused before it is sent.
 *
 * TODO(#4): hash-tag keys by tenant so that a request's counters share a
 * Redis Cluster slot; today the store wants a single Redis (or a cluster
 * proxy that allows multi-key scripts).
 */
import { createClient, type RedisClientType } from 'redis';

import {
  CounterStoreUnavailableError,
  type CounterClaim,
  type CounterSettlement,
  type CounterState,
  type CounterStore,
  type ReserveResult,
} from './counter-store.js';

/** How long an untouched counter with no window is kept. */
export const IDLE_COUNTER_TTL_MS = 15 * 60_000;

/** A window's counter is kept this long after it ends, for late settles. */
const AFTER_WINDOW_MS = 60 * 60_000;

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * KEYS: the counters. ARGV: per key, max, amount, expire-at (ms, or 0 for
 * the idle TTL), rebuild (1 or 0); then the idle TTL. Returns
 * {1, u1, r1, u2, r2, …} when every claim fits; {2, i, j, …} naming the
 * claims to rebuild whose counters have no seed (field `s`) yet; else
 * {0, index, used, reserved} for the first claim that does not fit.
 */
const RESERVE = `
local idle = tonumber(ARGV[#ARGV])
local unseeded = {2}
for i = 1, #KEYS do
  if ARGV[(i - 1) * 4 + 4] == '1' and redis.call('HEXISTS', KEYS[i], 's') == 0 then
    unseeded[#unseeded + 1] = i
  end
end
if #unseeded > 1 then return unseeded end
for i = 1, #KEYS do
  local state = redis.call('HMGET', KEYS[i], 'u', 'r')
  local used = tonumber(state[1] or '0')
  local reserved = tonumber(state[2] or '0')
  local max = tonumber(ARGV[(i - 1) * 4 + 1])
  local amount = tonumber(ARGV[(i - 1) * 4 + 2])
  if used + reserved + amount > max then
    return {0, i, state[1] or '0', state[2] or '0'}
  end
end
local out = {1}
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'r', ARGV[(i - 1) * 4 + 2])
  local expireAt = tonumber(ARGV[(i - 1) * 4 + 3])
  if expireAt > 0 then
    redis.call('PEXPIREAT', KEYS[i], expireAt)
  else
    redis.call('PEXPIRE', KEYS[i], idle)
  end
  -- Redis's own strings: Lua would print a large count as 9e+15.
  local state = redis.call('HMGET', KEYS[i], 'u', 'r')
  out[#out + 1] = state[1] or '0'
  out[#out + 1] = state[2]
end
return out
`;

/** KEYS[1]: the counter. ARGV: used, expire-at. Seeds it once. */
const SEED = `
if redis.call('HEXISTS', KEYS[1], 's') == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'u', ARGV[1])
redis.call('HSET', KEYS[1], 's', 1)
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[2]))
return 1
`;

/**
 * KEYS: the counters. ARGV: per key, minus the reserved amount, the actual
 * amount, expire-at; then the idle TTL.
 */
const SETTLE = `
local idle = tonumber(ARGV[#ARGV])
for i = 1, #KEYS do
  local reserved = redis.call('HINCRBY', KEYS[i], 'r', ARGV[(i - 1) * 3 + 1])
  if reserved < 0 then redis.call('HSET', KEYS[i], 'r', 0) end
  redis.call('HINCRBY', KEYS[i], 'u', ARGV[(i - 1) * 3 + 2])
  local expireAt = tonumber(ARGV[(i - 1) * 3 + 3])
  if expireAt > 0 then
    redis.call('PEXPIREAT', KEYS[i], expireAt)
  else
    redis.call('PEXPIRE', KEYS[i], idle)
  end
end
return 1
`;

export interface RedisCounterStoreOptions {
  /** `redis://host:port/db`. */
  readonly url: string;
  /** Prefix of every key, to share a Redis with other users. */
  readonly prefix?: string;
  /** How long one command may take before the store counts as down. */
  readonly commandTimeoutMs?: number;
}

export class RedisCounterStore implements CounterStore {
  readonly shared = true;
  readonly #client: RedisClientType;
  readonly #prefix: string;
  readonly #scripts = new Map<string, string>();

  private constructor(client: RedisClientType, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  /** Connects, and fails if Redis does not answer. */
  static async connect(
    options: RedisCounterStoreOptions,
  ): Promise<RedisCounterStore> {
    let connected = false;
    const client: RedisClientType = createClient({
      url: options.url,
      socket: {
        connectTimeout: options.commandTimeoutMs ?? 1_000,
        // Once up, keep trying in the background (each command fails fast
        // meanwhile); a first connection that fails fails the start.
        reconnectStrategy: (retries, cause) =>
          connected ? Math.min(50 * 2 ** retries, 2_000) : cause,
      },
      disableOfflineQueue: true,
      commandOptions: { timeout: options.commandTimeoutMs ?? 1_000 },
    });
    // Errors reach each command's caller; an unheard 'error' would crash.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw unavailable(error);
    }
    connected = true;
    const store = new RedisCounterStore(client, options.prefix ?? 'tollgate:');
    for (const script of [RESERVE, SETTLE, SEED]) await store.#load(script);
    return store;
  }

  async reserve(claims: readonly CounterClaim[]): Promise<ReserveResult> {
    if (claims.length === 0) return { admitted: true, states: [] };
    const args = claims.flatMap((claim) => [
      exact(claim.max),
      exact(claim.amount),
      String(expireAt(claim.expiresAt)),
      claim.rebuild === true ? '1' : '0',
    ]);
    const reply = (await this.#run(
      RESERVE,
      claims.map((claim) => this.#prefix + claim.key),
      [...args, String(IDLE_COUNTER_TTL_MS)],
    )) as (number | string)[];
    if (Number(reply[0]) === 1) {
      const states: CounterState[] = claims.map((_, i) => ({
        used: BigInt(reply[1 + i * 2] ?? 0),
        reserved: BigInt(reply[2 + i * 2] ?? 0),
      }));
      return { admitted: true, states };
    }
    if (Number(reply[0]) === 2) {
      const unseeded = reply
        .slice(1)
        .map((index) => claims[Number(index) - 1])
        .filter((claim): claim is CounterClaim => claim !== undefined);
      return { admitted: false, unseeded };
    }
    const refused = claims[Number(reply[1]) - 1];
    if (!refused) throw new Error('the reserve script named no claim');
    return {
      admitted: false,
      refused,
      state: { used: BigInt(reply[2] ?? 0), reserved: BigInt(reply[3] ?? 0) },
    };
  }

  async settle(settlements: readonly CounterSettlement[]): Promise<void> {
    if (settlements.length === 0) return;
    const args = settlements.flatMap((s) => [
      exact(-s.reserved),
      exact(s.actual),
      String(expireAt(s.expiresAt)),
    ]);
    await this.#run(
      SETTLE,
      settlements.map((s) => this.#prefix + s.key),
      [...args, String(IDLE_COUNTER_TTL_MS)],
    );
  }

  async read(keys: readonly string[]): Promise<CounterState[]> {
    try {
      const replies = await Promise.all(
        keys.map((key) => this.#client.hmGet(this.#prefix + key, ['u', 'r'])),
      );
      return replies.map((fields) => ({
        used: BigInt(fields[0] ?? 0),
        reserved: BigInt(fields[1] ?? 0),
      }));
    } catch (error) {
      throw unavailable(error);
    }
  }

  async seed(
    key: string,
    used: bigint,
    expiresAt: number | null,
  ): Promise<void> {
    await this.#run(
      SEED,
      [this.#prefix + key],
      [
        exact(used),
        String(expireAt(expiresAt) || Date.now() + IDLE_COUNTER_TTL_MS),
      ],
    );
  }

  async close(): Promise<void> {
    try {
      await this.#client.close();
    } catch {
      this.#client.destroy();
    }
  }

  async #load(script: string): Promise<void> {
    try {
      this.#scripts.set(script, await this.#client.scriptLoad(script));
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** EVALSHA, loading the script again if Redis forgot it (a restart). */
  async #run(
    script: string,
    keys: readonly string[],
    args: readonly string[],
  ): Promise<unknown> {
    const command = (sha: string) => [
      'EVALSHA',
      sha,
      String(keys.length),
      ...keys,
      ...args,
    ];
    try {
      try {
        return await this.#client.sendCommand(
          command(this.#scripts.get(script) ?? ''),
        );
      } catch (error) {
        if (!String((error as Error).message).startsWith('NOSCRIPT')) {
          throw error;
        }
        await this.#load(script);
        return await this.#client.sendCommand(
          command(this.#scripts.get(script) ?? ''),
        );
      }
    } catch (error) {
      throw unavailable(error);
    }
  }
}

function exact(value: bigint): string {
  if (value > MAX_EXACT || value < -MAX_EXACT) {
    throw new RangeError(
      `the counter amount ${value} is beyond what Redis scripts count exactly`,
    );
  }
  return value.toString();
}

function expireAt(at: number | null): number {
  return at === null ? 0 : at + AFTER_WINDOW_MS;
}

function unavailable(error: unknown): Error {
  if (error instanceof CounterStoreUnavailableError) return error;
  if (error instanceof RangeError) return error;
  return new CounterStoreUnavailableError(
    `Redis did not answer: ${(error as Error).message}`,
    { cause: error },
  );
}
