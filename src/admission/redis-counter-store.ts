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
 * Its field `e` is its epoch, a random id the first reservation in the
 * hash writes: a hash lost (a Redis restarted empty, evicted, or failed
 * over to an empty replica) or expired comes back with another, and a
 * settlement whose epoch the hash does not hold changes nothing in it
 * (CounterSettlement.epoch). A settlement with no epoch is applied to the
 * hash as it stands, as before epochs.
 *
 * A rolling counter's hash also holds its ring of buckets: for slot `i`
 * (`bucket % 61`), `b<i>` the bucket it holds, `u<i>` and `r<i>` what it
 * used and reserved; `h` is the newest bucket a claim brought it to, and
 * `u` and `r` are the totals over the slots. With the totals kept, a
 * check reads a few fields, not the whole ring: the slots that buckets
 * leave are emptied as the newest bucket moves, one slot per bucket
 * passed, at most the whole ring after an idle spell. The hash expires
 * when its newest bucket has left the span.
 *
 * Replicas pick buckets by their own clocks, as they cut windows; a
 * clock behind the counter's newest bucket reserves in a slot already
 * taken by a later bucket, which counts it longer rather than less.
 *
 * Redis scripts compute in doubles, so every amount stays below 2^53
 * (for money, about 9 million USD per counter in units of 10^-9 USD);
 * a larger one is refused before it is sent.
 *
 * Keys carry their tenant as a hash tag, so that one request's counters
 * share a Redis Cluster slot and each script may touch them all.
 * TODO(#4): connect with node-redis's cluster client when `counters`
 * names several nodes; today the store connects to one endpoint (a
 * single Redis, or a proxy in front of a cluster).
 *
 * A settlement may carry an id (the request's): a marker key remembers it
 * for an hour, and the settle script applies nothing when the marker is
 * already set, so a retried or recovered settlement counts once. A marker
 * lost with its counters does no harm: a retry then finds counters of
 * another epoch, and changes nothing.
 */
import { randomUUID } from 'node:crypto';

import { createClient, type RedisClientType } from 'redis';

import {
  CounterStoreUnavailableError,
  ROLLING_BUCKETS,
  type BucketAmount,
  type CounterClaim,
  type CounterSettlement,
  type CounterState,
  type CounterStore,
  type ReserveResult,
  type RollingSeed,
} from './counter-store.js';

/** How long an untouched counter with no window is kept. */
export const IDLE_COUNTER_TTL_MS = 15 * 60_000;

/** A window's counter is kept this long after it ends, for late settles. */
const AFTER_WINDOW_MS = 60 * 60_000;

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * How long a settlement's id is remembered. A settlement is repeated by
 * a retry after Redis went quiet mid-script, or by recovery releasing a
 * request its process had settled before it died (within seconds when
 * other replicas run); an hour covers both with room, and bounds the
 * markers kept to an hour's requests.
 */
export const SETTLED_MARKER_TTL_MS = 60 * 60_000;

/** The tenant part of a counter key (`t=<tenant id>`). */
const TENANT_PART = /(?:^|\|)(t=[^|{}]*)/;

/** Slots in a rolling counter's ring. */
const RING = ROLLING_BUCKETS + 1;

/**
 * Lua shared by the scripts that touch rolling counters. `int` writes an
 * integer as Redis reads one: Lua would print a large count as 9e+15.
 * `advance` brings a counter to bucket `k`: the slots that the buckets
 * since its newest will take hold buckets that have left the span, so
 * they are emptied and their amounts taken from the totals; a bucket
 * older than the newest changes nothing. `slotOf` is a bucket's slot,
 * taken for it if empty; after `advance` it holds that bucket, none, or
 * (for a clock behind) a later one, which then counts the amount longer.
 */
const RING_LUA = `
local RING = ${RING}
local function int(n) return string.format('%.0f', n) end
local function advance(key, k)
  local h = tonumber(redis.call('HGET', key, 'h') or '-1')
  if k <= h then return end
  local from = math.max(h + 1, k - RING + 1)
  local freedUsed, freedReserved = 0, 0
  for j = from, k do
    local i = j % RING
    local held = redis.call('HMGET', key, 'b' .. i, 'u' .. i, 'r' .. i)
    if held[1] then
      freedUsed = freedUsed + tonumber(held[2] or '0')
      freedReserved = freedReserved + tonumber(held[3] or '0')
      redis.call('HDEL', key, 'b' .. i, 'u' .. i, 'r' .. i)
    end
  end
  if freedUsed ~= 0 then redis.call('HINCRBY', key, 'u', int(-freedUsed)) end
  if freedReserved ~= 0 then
    redis.call('HINCRBY', key, 'r', int(-freedReserved))
  end
  redis.call('HSET', key, 'h', int(k))
end
local function slotOf(key, k)
  local i = k % RING
  redis.call('HSETNX', key, 'b' .. i, int(k))
  return i
end
`;

/**
 * KEYS: the counters. ARGV: per key, max, amount, expire-at (ms, or 0 for
 * the idle TTL), rebuild (1 or 0), bucket (empty unless rolling); then
 * the idle TTL, then an epoch for a counter that has none. Returns {1,
 * u1, r1, b1, e1, u2, …} when every claim fits (b: the bucket a rolling
 * claim was reserved in, else empty; e: the counter's epoch);
 * {2, i, j, …} naming the claims to rebuild whose counters have no seed
 * (field `s`) yet; else {0, index, used, reserved, b1, held1, …} for the
 * first claim that does not fit, with a rolling counter's buckets.
 */
const RESERVE = `${RING_LUA}
local idle = tonumber(ARGV[#ARGV - 1])
local epoch = ARGV[#ARGV]
local unseeded = {2}
for i = 1, #KEYS do
  if ARGV[(i - 1) * 5 + 4] == '1' and redis.call('HEXISTS', KEYS[i], 's') == 0 then
    unseeded[#unseeded + 1] = i
  end
end
if #unseeded > 1 then return unseeded end
for i = 1, #KEYS do
  local bucket = ARGV[(i - 1) * 5 + 5]
  if bucket ~= '' then advance(KEYS[i], tonumber(bucket)) end
  local state = redis.call('HMGET', KEYS[i], 'u', 'r')
  local used = tonumber(state[1] or '0')
  local reserved = tonumber(state[2] or '0')
  local max = tonumber(ARGV[(i - 1) * 5 + 1])
  local amount = tonumber(ARGV[(i - 1) * 5 + 2])
  if used + reserved + amount > max then
    local out = {0, i, state[1] or '0', state[2] or '0'}
    if bucket ~= '' then
      for slot = 0, RING - 1 do
        local held = redis.call(
          'HMGET', KEYS[i], 'b' .. slot, 'u' .. slot, 'r' .. slot)
        if held[1] then
          out[#out + 1] = held[1]
          out[#out + 1] = int(tonumber(held[2] or '0') + tonumber(held[3] or '0'))
        end
      end
    end
    return out
  end
end
local out = {1}
for i = 1, #KEYS do
  local amount = ARGV[(i - 1) * 5 + 2]
  local bucket = ARGV[(i - 1) * 5 + 5]
  redis.call('HSETNX', KEYS[i], 'e', epoch)
  redis.call('HINCRBY', KEYS[i], 'r', amount)
  local held = ''
  if bucket ~= '' then
    -- A claim dated before the oldest bucket the ring holds (its clock
    -- behind the counter's newest by a whole span) is reserved in that
    -- oldest bucket, whose slot is its own, so that its settlement finds
    -- it; it then counts a little longer, never less.
    local k = math.max(
      tonumber(bucket),
      tonumber(redis.call('HGET', KEYS[i], 'h') or '0') - RING + 1)
    redis.call('HINCRBY', KEYS[i], 'r' .. slotOf(KEYS[i], k), amount)
    held = int(k)
  end
  local expireAt = tonumber(ARGV[(i - 1) * 5 + 3])
  if expireAt > 0 then
    redis.call('PEXPIREAT', KEYS[i], expireAt)
  else
    redis.call('PEXPIRE', KEYS[i], idle)
  end
  -- Redis's own strings: Lua would print a large count as 9e+15.
  local state = redis.call('HMGET', KEYS[i], 'u', 'r', 'e')
  out[#out + 1] = state[1] or '0'
  out[#out + 1] = state[2]
  out[#out + 1] = held
  out[#out + 1] = state[3]
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
 * KEYS[1]: a rolling counter. ARGV: expire-at, the newest bucket, then
 * pairs of bucket and used. Seeds it once, bucket by bucket.
 */
const SEED_ROLLING = `${RING_LUA}
local key = KEYS[1]
if redis.call('HEXISTS', key, 's') == 1 then return 0 end
-- Until seeded, a rolling counter to rebuild is written by nothing else
-- (a claim waits for the seed, a settlement leaves a gone counter be), so
-- there is nothing here to keep; starting clean keeps the totals the
-- sums of the ring.
redis.call('DEL', key)
redis.call('HSET', key, 's', 1, 'u', 0, 'r', 0, 'h', ARGV[2])
for p = 3, #ARGV - 1, 2 do
  local k = tonumber(ARGV[p])
  local h = tonumber(redis.call('HGET', key, 'h'))
  if k >= h - (RING - 1) then
    advance(key, k)
    redis.call('HINCRBY', key, 'u' .. slotOf(key, k), ARGV[p + 1])
    redis.call('HINCRBY', key, 'u', ARGV[p + 1])
  end
end
redis.call('PEXPIREAT', key, tonumber(ARGV[1]))
return 1
`;

/**
 * KEYS: the counters, then the settlement's marker if it has an id.
 * ARGV: per counter, minus the reserved amount, the actual amount,
 * expire-at, bucket (empty unless rolling), epoch (empty for none); then
 * the idle TTL, then the marker's TTL (empty for no marker). Returns 0,
 * changing nothing, when the marker is already set: this settlement was
 * applied before. A counter whose epoch is not the settlement's is left
 * alone, as is a rolling counter that is gone (see CounterStore.seed); a
 * rolling counter settles in its bucket's slot if the slot still holds
 * that bucket.
 */
const SETTLE = `${RING_LUA}
local markerTtl = ARGV[#ARGV]
local idle = tonumber(ARGV[#ARGV - 1])
local counters = #KEYS
if markerTtl ~= '' then
  counters = counters - 1
  if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', markerTtl) then
    return 0
  end
end
for i = 1, counters do
  local bucket = ARGV[(i - 1) * 5 + 4]
  local epoch = ARGV[(i - 1) * 5 + 5]
  if epoch ~= '' and redis.call('HGET', KEYS[i], 'e') ~= epoch then
    -- Not the counter reserved in: that one went, reservation and all.
  elseif bucket == '' then
    local reserved = redis.call('HINCRBY', KEYS[i], 'r', ARGV[(i - 1) * 5 + 1])
    if reserved < 0 then redis.call('HSET', KEYS[i], 'r', 0) end
    redis.call('HINCRBY', KEYS[i], 'u', ARGV[(i - 1) * 5 + 2])
    local expireAt = tonumber(ARGV[(i - 1) * 5 + 3])
    if expireAt > 0 then
      redis.call('PEXPIREAT', KEYS[i], expireAt)
    else
      redis.call('PEXPIRE', KEYS[i], idle)
    end
  elseif redis.call('HEXISTS', KEYS[i], 'h') == 1 then
    local slot = tonumber(bucket) % RING
    local held = redis.call('HMGET', KEYS[i], 'b' .. slot, 'r' .. slot)
    if held[1] == bucket then
      local release = math.min(
        tonumber(held[2] or '0'), -tonumber(ARGV[(i - 1) * 5 + 1]))
      if release > 0 then
        redis.call('HINCRBY', KEYS[i], 'r' .. slot, int(-release))
        redis.call('HINCRBY', KEYS[i], 'r', int(-release))
      end
      redis.call('HINCRBY', KEYS[i], 'u' .. slot, ARGV[(i - 1) * 5 + 2])
      redis.call('HINCRBY', KEYS[i], 'u', ARGV[(i - 1) * 5 + 2])
    end
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
    for (const script of [RESERVE, SETTLE, SEED, SEED_ROLLING]) {
      await store.#load(script);
    }
    return store;
  }

  async reserve(claims: readonly CounterClaim[]): Promise<ReserveResult> {
    if (claims.length === 0) return { admitted: true, states: [] };
    const args = claims.flatMap((claim) => [
      exact(claim.max),
      exact(claim.amount),
      String(expireAt(claim.expiresAt)),
      claim.rebuild === true ? '1' : '0',
      bucketArg(claim.bucket),
    ]);
    const reply = (await this.#run(
      RESERVE,
      claims.map((claim) => this.#key(claim.key)),
      [...args, String(IDLE_COUNTER_TTL_MS), randomUUID()],
    )) as (number | string)[];
    if (Number(reply[0]) === 1) {
      const states: CounterState[] = claims.map((_, i) => {
        const bucket = reply[3 + i * 4];
        const epoch = reply[4 + i * 4];
        return {
          used: BigInt(reply[1 + i * 4] ?? 0),
          reserved: BigInt(reply[2 + i * 4] ?? 0),
          ...(bucket !== undefined &&
            bucket !== '' && { bucket: Number(bucket) }),
          ...(epoch !== undefined && { epoch: String(epoch) }),
        };
      });
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
    const state = {
      used: BigInt(reply[2] ?? 0),
      reserved: BigInt(reply[3] ?? 0),
    };
    if (refused.bucket === undefined) {
      return { admitted: false, refused, state };
    }
    const buckets: BucketAmount[] = [];
    for (let i = 4; i + 1 < reply.length; i += 2) {
      const amount = BigInt(reply[i + 1] ?? 0);
      if (amount > 0n) buckets.push({ bucket: Number(reply[i]), amount });
    }
    buckets.sort((a, b) => a.bucket - b.bucket);
    return { admitted: false, refused, state, buckets };
  }

  async settle(
    settlements: readonly CounterSettlement[],
    id?: string,
  ): Promise<boolean> {
    const [first] = settlements;
    if (!first) return true;
    const args = settlements.flatMap((s) => [
      exact(-s.reserved),
      exact(s.actual),
      String(expireAt(s.expiresAt)),
      bucketArg(s.bucket),
      s.epoch ?? '',
    ]);
    const keys = settlements.map((s) => this.#key(s.key));
    // The marker shares the first counter's tenant tag, so that a
    // request's keys all hash to one Redis Cluster slot.
    if (id !== undefined) keys.push(this.#key(`settled:${id}`, first.key));
    const applied = await this.#run(SETTLE, keys, [
      ...args,
      String(IDLE_COUNTER_TTL_MS),
      id === undefined ? '' : String(SETTLED_MARKER_TTL_MS),
    ]);
    return Number(applied) === 1;
  }

  async read(keys: readonly string[]): Promise<CounterState[]> {
    try {
      const replies = await Promise.all(
        keys.map((key) => this.#client.hmGet(this.#key(key), ['u', 'r'])),
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
    used: bigint | RollingSeed,
    expiresAt: number | null,
  ): Promise<void> {
    const expiry = String(
      expireAt(expiresAt) || Date.now() + IDLE_COUNTER_TTL_MS,
    );
    if (typeof used === 'bigint') {
      await this.#run(SEED, [this.#key(key)], [exact(used), expiry]);
      return;
    }
    await this.#run(
      SEED_ROLLING,
      [this.#key(key)],
      [
        expiry,
        bucketArg(used.bucket),
        ...used.used.flatMap((b) => [bucketArg(b.bucket), exact(b.amount)]),
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

  /**
   * A counter's Redis key: the prefix, the tenant part of `tagOf` (or of
   * the key itself) as a hash tag, then the key. Every counter a request
   * claims names its tenant, so a request's keys share one Redis Cluster
   * slot and its multi-key scripts are allowed there.
   */
  #key(key: string, tagOf: string = key): string {
    const tenant = TENANT_PART.exec(tagOf)?.[1];
    return tenant === undefined
      ? this.#prefix + key
      : `${this.#prefix}{${tenant}}${key}`;
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

/** A bucket as the scripts read it: an integer, or empty for none. */
function bucketArg(bucket: number | undefined): string {
  if (bucket === undefined) return '';
  if (!Number.isSafeInteger(bucket) || bucket < 0) {
    throw new RangeError(`the bucket ${bucket} is not a whole number`);
  }
  return String(bucket);
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
