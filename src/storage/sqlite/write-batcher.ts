/**
 * Group commit for SQLite: writes queued during one turn of the event loop
 * share a single transaction, so concurrent requests share one disk sync
 * instead of paying for one each.
 *
 * Each write runs in its own savepoint, so one failing write (say, a
 * duplicate id) is rejected alone and the rest of the batch still commits.
 * A write's promise settles only after the transaction that holds it has
 * committed.
 *
 * The transaction takes the write lock first (BEGIN IMMEDIATE). When
 * another connection holds it (another gateway sharing the file, or an
 * operator's `sqlite3` shell), the batch is tried again after a short
 * wait rather than inside SQLite's own busy wait: better-sqlite3 runs on
 * the event loop, so a busy wait of seconds would stall every request
 * the process serves, health checks included. Only once the lock has been
 * held for `busyWaitMs` do the writes fail (and settlements spool).
 */
import type { Database } from 'better-sqlite3';

interface PendingWrite {
  readonly apply: () => void;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export interface WriteBatcherOptions {
  /** How long writes wait for a lock another connection holds. */
  readonly busyWaitMs?: number;
}

/** The first wait for a held lock, doubled up to the last. */
const BUSY_RETRY_FIRST_MS = 5;
const BUSY_RETRY_MAX_MS = 100;

export class WriteBatcher {
  readonly #db: Database;
  readonly #busyWaitMs: number;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  #closed = false;
  /** While the lock is held elsewhere: since when, and the next wait. */
  #busy: { since: number; waitMs: number; timer: NodeJS.Timeout } | undefined;

  constructor(db: Database, options: WriteBatcherOptions = {}) {
    this.#db = db;
    this.#busyWaitMs = options.busyWaitMs ?? 5_000;
  }

  /** Runs `apply` inside the next batch; resolves once it is committed. */
  write(apply: () => void): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error('the store is closed'));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ apply, resolve, reject });
      // While the lock is held elsewhere, the retry takes this one too.
      if (!this.#scheduled && this.#busy === undefined) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued so far. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;

    const failures = new Map<PendingWrite, unknown>();
    const runOne = this.#db.transaction((write: PendingWrite) => write.apply());
    const runAll = this.#db.transaction((writes: PendingWrite[]) => {
      for (const write of writes) {
        try {
          runOne(write);
        } catch (error) {
          failures.set(write, error);
        }
      }
    });
    try {
      runAll.immediate(batch);
    } catch (error) {
      if (isBusy(error) && this.#retryLater(batch)) return;
      this.#busy = undefined;
      for (const write of batch) write.reject(error);
      return;
    }
    this.#busy = undefined;
    for (const write of batch) {
      if (failures.has(write)) write.reject(failures.get(write));
      else write.resolve();
    }
  }

  /** Commits what is queued and refuses later writes. */
  close(): void {
    this.#closed = true;
    if (this.#busy) clearTimeout(this.#busy.timer);
    this.#busy = undefined;
    this.flush();
  }

  /**
   * Puts a batch the lock refused back at the head of the queue, to be
   * tried after a wait; false once the lock has been held too long (or
   * the store is closing), when the writes fail.
   */
  #retryLater(batch: PendingWrite[]): boolean {
    if (this.#closed) return false;
    const now = Date.now();
    const since = this.#busy?.since ?? now;
    if (now - since >= this.#busyWaitMs) return false;
    const waitMs = Math.min(
      BUSY_RETRY_MAX_MS,
      this.#busy ? this.#busy.waitMs * 2 : BUSY_RETRY_FIRST_MS,
    );
    this.#queue = [...batch, ...this.#queue];
    if (this.#busy) clearTimeout(this.#busy.timer);
    this.#busy = {
      since,
      waitMs,
      timer: setTimeout(() => this.flush(), waitMs),
    };
    return true;
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}
