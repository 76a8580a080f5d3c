/**
 * Which gateway processes are alive, so recovery settles only requests
 * whose process is gone and never one that another live process sharing
 * the database is still serving.
 *
 * Each process records itself at start, renews a heartbeat while it runs
 * and records a clean stop. An instance is taken for dead when it stopped;
 * on this host, when its process is gone (its id no longer exists, or now
 * names a process that started after the instance did); on another host,
 * when its heartbeat is older than `staleAfterMs`. On this host the
 * process itself is asked rather than the heartbeat, because a ledger
 * outage stops every heartbeat while the gateway goes on serving (its
 * settlements spooled): its requests must not be recovered under it.
 * Where the process's start cannot be read (no /proc), a stale heartbeat
 * still counts, against a reused process id. Requests of an instance the
 * store does not know (written before instances were recorded) are taken
 * as abandoned.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

import type { InstanceRecord, Store } from '../storage/store.js';

export interface InstanceRegistryOptions {
  readonly id: string;
  /** @default 5000 */
  readonly heartbeatMs?: number;
  /** @default 30000 */
  readonly staleAfterMs?: number;
}

export class InstanceRegistry {
  readonly id: string;
  readonly #store: Store;
  readonly #heartbeatMs: number;
  readonly #staleAfterMs: number;
  readonly #host = hostname();
  #timer: NodeJS.Timeout | undefined;

  constructor(store: Store, options: InstanceRegistryOptions) {
    this.id = options.id;
    this.#store = store;
    this.#heartbeatMs = options.heartbeatMs ?? 5000;
    this.#staleAfterMs = options.staleAfterMs ?? 30_000;
  }

  /** Records this process and starts its heartbeat. */
  async start(onHeartbeatError: (error: unknown) => void): Promise<void> {
    const now = Date.now();
    await this.#store.registerInstance({
      id: this.id,
      host: this.#host,
      pid: process.pid,
      startedAt: now,
      heartbeatAt: now,
      stoppedAt: null,
    });
    this.#timer = setInterval(() => {
      this.#store
        .heartbeatInstance(this.id, Date.now())
        .catch(onHeartbeatError);
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  /** Records a clean stop; call once this process has settled everything. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#store.stopInstance(this.id, Date.now());
  }

  /** Of the instance ids given, the ones whose requests are abandoned. */
  async abandoned(ids: readonly string[]): Promise<ReadonlySet<string>> {
    const others = [...new Set(ids)].filter((id) => id !== this.id);
    const known = new Map(
      (await this.#store.findInstances(others)).map((i) => [i.id, i]),
    );
    const now = Date.now();
    return new Set(
      others.filter((id) => {
        const instance = known.get(id);
        return instance === undefined || this.#isDead(instance, now);
      }),
    );
  }

  #isDead(instance: InstanceRecord, now: number): boolean {
    if (instance.stoppedAt !== null) return true;
    const stale = now - instance.heartbeatAt > this.#staleAfterMs;
    if (instance.host !== this.#host) return stale;
    if (!processExists(instance.pid)) return true;
    const started = processStartedAt(instance.pid);
    if (started === undefined) return stale;
    // /proc dates a start to the second: a process started after the
    // instance registered is another one, under a reused id.
    return started > instance.startedAt + 2_000;
  }
}

/**
 * When a process on this host started (ms since the epoch), from Linux's
 * /proc; undefined where that cannot be read. Its start is counted in
 * clock ticks since boot, 100 a second on every Linux build in use.
 */
function processStartedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold
    // spaces: the start time is field 22, the 20th after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const boot = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    if (!boot || !Number.isFinite(ticks)) return undefined;
    return Number(boot[1]) * 1000 + ticks * 10;
  } catch {
    return undefined;
  }
}

function processExists(pid: number): boolean {
  try {
    // Signal 0 checks for the process without touching it.
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
