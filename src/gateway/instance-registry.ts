/**
 * Which gateway processes are alive, so recovery settles only requests
 * whose process is gone and never one that another live process sharing
 * the database is still serving.
 *
 * Each process records itself at start, renews a heartbeat while it runs
 * and records a clean stop. An instance is taken for dead when it stopped,
 * when it ran on this host under a process id that no longer exists, or
 * when its heartbeat is older than `staleAfterMs` (another host, or a
 * process id reused since). Requests of an instance the store does not
 * know (written before instances were recorded) are taken as abandoned.
 */
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
    if (now - instance.heartbeatAt > this.#staleAfterMs) return true;
    return instance.host === this.#host && !processExists(instance.pid);
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
