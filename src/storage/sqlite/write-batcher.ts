/**
 * Group commit for SQLite: writes queued during one turn of the event loop
 * share a single transaction, so concurrent requests share one disk sync
 * instead of paying for one each.
 *
 * Each write runs in its own savepoint, so one failing write (say, a
 * duplicate id) is rejected alone and the rest of the batch still commits.
 * A write's promise settles only after the transaction that holds it has
 * committed.
 */
import type { Database } from 'better-sqlite3';

interface PendingWrite {
  readonly apply: () => void;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class WriteBatcher {
  readonly #db: Database;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  #closed = false;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Runs `apply` inside the next batch; resolves once it is committed. */
  write(apply: () => void): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error('the store is closed'));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ apply, resolve, reject });
      if (!this.#scheduled) {
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
      runAll(batch);
    } catch (error) {
      for (const write of batch) write.reject(error);
      return;
    }
    for (const write of batch) {
      if (failures.has(write)) write.reject(failures.get(write));
      else write.resolve();
    }
  }

  /** Commits what is queued and refuses later writes. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
