/**
 * The settlement spool: where the meter keeps a request's exact
 * settlement when the ledger store cannot take it (disk full, an I/O
 * error, a database locked past its timeout, a PostgreSQL outage), and
 * from where it is drained into the store once the store is back
 * (DESIGN.md, "Storage and scale": a store outage spools usage locally
 * and drains it with nothing lost or doubled).
 *
 * On disk it is one append-only JSON Lines file per gateway instance, in
 * a directory beside the database: `<db>.spool/<instance id>.jsonl`. A
 * line is one whole `Settlement` as the meter computed it, and appends
 * are synced to disk before the meter reports success, so what a client
 * was served is on disk before its response ends. When an instance dies,
 * the next gateway to see it gone claims its file by renaming it to
 * `<own id>~<old name>`: a rename is atomic, so exactly one claims it.
 *
 * Replaying is safe because the store closes a request only while it is
 * pending and refuses a second usage event of an id forever: a line
 * replayed after a crash mid-drain, or one that recovery got to first, is
 * refused with a ConflictError instead of being counted twice. What the
 * spool itself must guarantee is that nothing acknowledged is lost: a
 * line leaves its file only once the store has taken it, by an atomic
 * rewrite (temporary file, sync, rename), and a line no one can read is
 * kept for an operator, never dropped.
 *
 * @example
 * const spool = new SettlementSpool(store, {
 *   directory: SettlementSpool.directoryFor('tollgate.db'),
 *   instanceId: 'gw_1',
 *   logger,
 * });
 * await spool.append(settlement, storeError); // durable on resolve
 * await spool.drain(); // { settled: 1, duplicates: 0, left: 0 }
 */
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  unlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { Logger } from 'pino';

import {
  ConflictError,
  type Settlement,
  type Store,
} from '../storage/store.js';

/** Bumped when a line's shape changes; a newer line is kept unread. */
const SPOOL_VERSION = 1;

/** What a drain attempt waits while the store still refuses. */
export interface SpoolRetry {
  readonly firstMs: number;
  readonly maxMs: number;
}

export interface SettlementSpoolOptions {
  /**
   * Where the files live; null keeps the spool in memory only, for an
   * in-memory database that loses everything on exit anyway.
   */
  readonly directory: string | null;
  /** This gateway instance: its own file is named after it. */
  readonly instanceId: string;
  readonly logger: Logger;
  /** @default { firstMs: 1000, maxMs: 5000 }, doubling in between */
  readonly retry?: SpoolRetry;
}

/** What one drain did. */
export interface DrainOutcome {
  /** Taken by the store. */
  readonly settled: number;
  /** Refused as settled before (a replay, or recovery first): dropped. */
  readonly duplicates: number;
  /** Still waiting for the store. */
  readonly left: number;
}

/** The two store calls a drain makes. */
export type SpoolLedger = Pick<Store, 'settleRequest' | 'findRequest'>;

interface SpoolLine {
  readonly v: typeof SPOOL_VERSION;
  readonly settlement: Settlement;
}

interface SpoolFile {
  readonly path: string;
  /** Lines that could not be read: rewritten as they are, never dropped. */
  readonly unreadable: string[];
}

interface Entry {
  readonly settlement: Settlement;
  /** The line as it is on disk, newline included. */
  readonly line: string;
  /** Null for a spool kept in memory. */
  readonly file: SpoolFile | null;
}

interface QueuedLine {
  readonly settlement: Settlement;
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class SettlementSpool {
  readonly #ledger: SpoolLedger;
  readonly #directory: string | null;
  readonly #instanceId: string;
  readonly #logger: Logger;
  readonly #retry: SpoolRetry;
  readonly #own: SpoolFile | null;
  #entries: Entry[] = [];
  #queued: QueuedLine[] = [];
  /** File operations run one at a time, in order. */
  #io: Promise<unknown> = Promise.resolve();
  #directoryMade = false;
  #draining: Promise<DrainOutcome> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Drains in a row that the store refused, for the backoff. */
  #failures = 0;
  /** Since the first settlement of an outage, until a drain empties it. */
  #spooling = false;
  #closing = false;
  #closed: Promise<DrainOutcome> | undefined;

  /**
   * The spool directory for a SQLite database file: beside it, so that
   * whoever moves or backs up the database sees it; null for an
   * in-memory database.
   */
  static directoryFor(databasePath: string): string | null {
    if (databasePath === '' || databasePath === ':memory:') return null;
    if (/^file:.*(:memory:|mode=memory)/.test(databasePath)) return null;
    return `${databasePath}.spool`;
  }

  constructor(ledger: SpoolLedger, options: SettlementSpoolOptions) {
    if (!/^[\w-]+$/.test(options.instanceId)) {
      throw new Error(`"${options.instanceId}" cannot name a spool file`);
    }
    this.#ledger = ledger;
    this.#directory = options.directory;
    this.#instanceId = options.instanceId;
    this.#logger = options.logger;
    this.#retry = options.retry ?? { firstMs: 1000, maxMs: 5000 };
    this.#own =
      options.directory === null
        ? null
        : {
            path: join(options.directory, `${options.instanceId}.jsonl`),
            unreadable: [],
          };
  }

  /** The directory of the files; null when kept in memory. */
  get directory(): string | null {
    return this.#directory;
  }

  /** Settlements waiting for the store. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Keeps a settlement the store refused (`cause` says why); resolves
   * once it is synced to disk, and rejects if it could not be written,
   * leaving the request to recovery. The first one of an outage is
   * logged as an error; the drain loop starts with it.
   */
  async append(settlement: Settlement, cause: unknown): Promise<void> {
    if (this.#closing) throw new Error('the settlement spool is closed');
    const line = `${JSON.stringify({ v: SPOOL_VERSION, settlement })}\n`;
    // The settlement replayed is the one read back from its line, so that
    // a drain in this process takes the same path as one after a restart.
    const copy = parseLine(line);
    if (!copy) throw new Error('the settlement did not survive JSON');
    if (this.#own === null || this.#directory === null) {
      this.#entries.push({ settlement: copy, line, file: null });
    } else {
      await this.#write(this.#own, this.#directory, { settlement: copy, line });
    }
    if (!this.#spooling) {
      this.#spooling = true;
      this.#logger.error(
        {
          err: cause,
          requestId: settlement.requestId,
          spool: this.#own?.path ?? 'memory',
        },
        'the ledger store refused a settlement: spooling settlements ' +
          'locally until it takes them again',
      );
    }
    this.#schedule();
  }

  /**
   * Claims the files of instances that `abandoned` says are gone (a
   * crash, or a stop with settlements left), to be drained by this one;
   * resolves with how many settlements they held. Call it, then `drain`,
   * before recovery, which would settle the same requests at their worst
   * case.
   */
  async adopt(
    abandoned: (instanceIds: readonly string[]) => Promise<ReadonlySet<string>>,
  ): Promise<number> {
    if (this.#directory === null || this.#closing) return 0;
    const directory = this.#directory;
    const others = (await listSpool(directory)).filter(
      (f) => f.owner !== this.#instanceId,
    );
    if (others.length === 0) return 0;
    const dead = await abandoned([...new Set(others.map((f) => f.owner))]);
    let adopted = 0;
    for (const found of others) {
      if (!dead.has(found.owner)) continue;
      const from = join(directory, found.name);
      if (found.temporary) {
        // A rewrite its owner never finished; the file it was to replace
        // is intact.
        await unlink(from).catch(ignoreMissing);
        continue;
      }
      // The old name is unique in the directory, so the new one is too:
      // a rename never lands on another file.
      const to = join(directory, `${this.#instanceId}~${found.name}`);
      try {
        await rename(from, to);
      } catch (error) {
        // Another live gateway claimed it first.
        if (isMissing(error)) continue;
        throw error;
      }
      await syncDirectory(directory);
      const count = await this.#exclusive(() => this.#load(to));
      adopted += count;
      this.#logger.info(
        { instance: found.owner, settlements: count, file: to },
        'adopted the spooled settlements of a gateway instance that is gone',
      );
    }
    return adopted;
  }

  /**
   * The requests whose settlements wait in a spool on this host: this
   * process's, and those in other instances' files in the directory
   * (read, not claimed). Recovery passes these by, since their exact
   * settlements are on their way.
   */
  async held(): Promise<ReadonlySet<string>> {
    const ids = new Set(this.#entries.map((e) => e.settlement.requestId));
    if (this.#directory === null) return ids;
    const directory = this.#directory;
    // A file renamed (claimed) between the listing and the read is
    // listed again under its new name.
    for (let round = 0; round < 3; round += 1) {
      let moved = false;
      for (const found of await listSpool(directory)) {
        if (found.owner === this.#instanceId || found.temporary) continue;
        let text: string;
        try {
          text = await readFile(join(directory, found.name), 'utf8');
        } catch (error) {
          if (!isMissing(error)) throw error;
          moved = true;
          continue;
        }
        for (const raw of text.split('\n')) {
          const settlement = parseLine(raw);
          if (settlement) ids.add(settlement.requestId);
        }
      }
      if (!moved) break;
    }
    return ids;
  }

  /**
   * Replays every spooled settlement through the store, once at a time
   * (a second call while one runs shares it). Taken ones leave the
   * spool; so do ones the store refuses as settled before, with a
   * warning when that was recovery's worst case. At the first other
   * refusal the drain stops, and is tried again with backoff.
   */
  drain(): Promise<DrainOutcome> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#draining ??= this.#drainOnce().finally(() => {
      this.#draining = undefined;
      this.#schedule();
    });
    return this.#draining;
  }

  /**
   * Stops the drain loop after a last drain, for shutdown: what the store
   * still refuses stays on disk, for the next start to drain.
   */
  close(): Promise<DrainOutcome> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<DrainOutcome> {
    this.#closing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#draining;
    const outcome = await this.drain();
    await this.#io;
    if (outcome.left > 0) {
      this.#logger.warn(
        { spooled: outcome.left, spool: this.#directory ?? 'memory' },
        this.#directory === null
          ? 'settlements the ledger store refused are lost with this ' +
              'in-memory database'
          : 'settlements the ledger store refused stay spooled on disk; ' +
              'the next start drains them before recovery',
      );
    }
    return outcome;
  }

  async #drainOnce(): Promise<DrainOutcome> {
    let settled = 0;
    let duplicates = 0;
    let failure: { error: unknown; entry: Entry } | undefined;
    const touched = new Set<SpoolFile>();
    for (const entry of [...this.#entries]) {
      try {
        await this.#ledger.settleRequest(entry.settlement);
        settled += 1;
      } catch (error) {
        if (!(error instanceof ConflictError)) {
          failure = { error, entry };
          break;
        }
        duplicates += 1;
        await this.#reportDuplicate(entry.settlement);
      }
      this.#entries = this.#entries.filter((e) => e !== entry);
      if (entry.file) touched.add(entry.file);
    }
    if (failure) {
      // To the back: one settlement the store keeps refusing for its own
      // reasons must not hold up the others for ever.
      const failed = failure.entry;
      this.#entries = [...this.#entries.filter((e) => e !== failed), failed];
    }
    try {
      await this.#exclusive(async () => {
        for (const file of touched) await this.#rewrite(file);
      });
    } catch (error) {
      // The lines stay on disk, and a later start replays them: the
      // store refuses them as duplicates then.
      this.#logger.error(
        { err: error, spool: this.#directory },
        'could not remove drained settlements from the spool',
      );
    }

    const left = this.#entries.length;
    if (failure) {
      this.#failures += 1;
      // The first refusal, then about once a minute at the longest wait.
      if (this.#failures % 12 === 1) {
        this.#logger.warn(
          { err: failure.error, settled, duplicates, spooled: left },
          'the ledger store still refuses settlements; they stay spooled',
        );
      }
    } else {
      this.#failures = 0;
      if (left === 0) this.#spooling = false;
      if (left === 0 && settled + duplicates > 0) {
        this.#logger.info(
          { settled, duplicates },
          'drained the settlement spool: the ledger holds every spooled ' +
            'settlement',
        );
      }
    }
    return { settled, duplicates, left };
  }

  /**
   * A spooled settlement the store refused as settled before: dropped,
   * since the ledger holds the request already. Which settlement it
   * holds decides how loudly: this one (a replay after a crash mid-drain)
   * is routine; recovery's worst case means the exact usage is lost to
   * the ledger, so it is logged here in full for an adjustment.
   */
  async #reportDuplicate(settlement: Settlement): Promise<void> {
    const { requestId, tenantId } = settlement;
    let state: string | undefined;
    try {
      const found = await this.#ledger.findRequest({ tenantId }, requestId);
      state = found?.request.state;
    } catch {
      state = 'unknown';
    }
    if (state === settlement.state) {
      this.#logger.info(
        { requestId, tenantId },
        'a spooled settlement was in the ledger already (replayed after a ' +
          'crash mid-drain); dropped',
      );
      return;
    }
    this.#logger.warn(
      {
        requestId,
        tenantId,
        ledgerState: state ?? 'absent',
        events: settlement.events.map(({ event, rating }) => ({
          id: event.id,
          served: event.served,
          usage: event.usage,
          providerCost: rating.providerCost,
          tenantCharge: rating.tenantCharge,
          priceBookVersion: rating.priceBookVersion,
        })),
      },
      state === 'recovered'
        ? 'recovery settled this request at its reserved worst case before ' +
            'its spooled settlement was drained; the ledger keeps the ' +
            'estimate, and the exact usage logged here is dropped'
        : 'the ledger refused a spooled settlement of a request it does ' +
            'not hold as pending; the settlement logged here is dropped',
    );
  }

  /** Queues a line for the next group write; resolves once synced. */
  #write(
    own: SpoolFile,
    directory: string,
    written: Omit<Entry, 'file'>,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ ...written, resolve, reject });
      // Lines queued while a write or a rewrite runs share the next write
      // and its one sync.
      if (this.#queued.length === 1) {
        void this.#exclusive(() => this.#writeQueued(own, directory));
      }
    });
  }

  async #writeQueued(own: SpoolFile, directory: string): Promise<void> {
    const batch = this.#queued;
    this.#queued = [];
    try {
      await this.#makeDirectory(directory);
      await appendDurably(own.path, batch.map((q) => q.line).join(''));
    } catch (error) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    // Known before the lock is let go, so that no rewrite of the file
    // runs between the write and the entries' being held.
    for (const { settlement, line, resolve } of batch) {
      this.#entries.push({ settlement, line, file: own });
      resolve();
    }
  }

  /** Reads an adopted file's settlements in; resolves with their count. */
  async #load(path: string): Promise<number> {
    const text = await readFile(path, 'utf8');
    const file: SpoolFile = { path, unreadable: [] };
    const lines = text.split('\n');
    // What follows the last newline: nothing, or an append cut short by
    // a crash, which was never acknowledged (its request is still
    // pending, for recovery) unless it happens to be whole.
    const tail = lines.pop() ?? '';
    let count = 0;
    let torn = false;
    for (const raw of lines) {
      if (raw === '') continue;
      const settlement = parseLine(raw);
      if (settlement) {
        this.#entries.push({ settlement, line: `${raw}\n`, file });
        count += 1;
      } else {
        file.unreadable.push(`${raw}\n`);
      }
    }
    if (tail !== '') {
      const settlement = parseLine(tail);
      if (settlement) {
        this.#entries.push({ settlement, line: `${tail}\n`, file });
        count += 1;
      } else {
        torn = true;
        this.#logger.warn(
          { file: path, bytes: Buffer.byteLength(tail) },
          'dropped the torn last line of a spool file (an append cut short ' +
            'by a crash); its request is left to recovery',
        );
      }
    }
    if (file.unreadable.length > 0) {
      this.#logger.error(
        { file: path, lines: file.unreadable.length },
        'a spool file holds lines this gateway cannot read; they are kept ' +
          'in it for an operator',
      );
    }
    if (torn || count === 0) await this.#rewrite(file);
    return count;
  }

  /**
   * Rewrites a file with the entries it still holds (and its unreadable
   * lines), or removes it when none are left. Runs under the I/O lock.
   */
  async #rewrite(file: SpoolFile): Promise<void> {
    const directory = dirname(file.path);
    const lines = [
      ...this.#entries.filter((e) => e.file === file).map((e) => e.line),
      ...file.unreadable,
    ];
    if (lines.length === 0) {
      await unlink(file.path).catch(ignoreMissing);
      await syncDirectory(directory);
      return;
    }
    const temporary = `${file.path}.tmp`;
    await writeDurably(temporary, lines.join(''));
    await rename(temporary, file.path);
    await syncDirectory(directory);
  }

  async #makeDirectory(directory: string): Promise<void> {
    if (this.#directoryMade) return;
    await mkdir(directory, { recursive: true });
    await syncDirectory(dirname(directory));
    this.#directoryMade = true;
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#io.then(task);
    this.#io = run.catch(() => undefined);
    return run;
  }

  #schedule(): void {
    if (this.#closing || this.#timer || this.#draining) return;
    if (this.#entries.length === 0) return;
    const delay = Math.min(
      this.#retry.maxMs,
      this.#retry.firstMs * 2 ** this.#failures,
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.drain();
    }, delay);
    this.#timer.unref();
  }
}

function parseLine(raw: string): Settlement | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { v, settlement } = value as Partial<SpoolLine>;
  if (v !== SPOOL_VERSION || typeof settlement !== 'object') return undefined;
  if (
    typeof settlement.requestId !== 'string' ||
    typeof settlement.tenantId !== 'string' ||
    !Array.isArray(settlement.events)
  ) {
    return undefined;
  }
  return settlement;
}

interface Listed {
  readonly name: string;
  /** The instance whose file it is: the part of the name before any `~`. */
  readonly owner: string;
  /** A rewrite's temporary file. */
  readonly temporary: boolean;
}

const SPOOL_NAME = /^([\w-]+)(?:~[\w~.-]+)?\.jsonl(\.tmp)?$/;

async function listSpool(directory: string): Promise<Listed[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  const listed: Listed[] = [];
  for (const name of names) {
    const match = SPOOL_NAME.exec(name);
    if (!match?.[1]) continue;
    listed.push({ name, owner: match[1], temporary: match[2] !== undefined });
  }
  return listed;
}

/**
 * Appends and syncs. A write that fails part-way would leave a torn line
 * for the next append to run into, so the file is cut back first.
 */
async function appendDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'a');
  try {
    const { size } = await handle.stat();
    try {
      await handle.appendFile(text, 'utf8');
      await handle.sync();
    } catch (error) {
      await handle.truncate(size).catch(() => undefined);
      throw error;
    }
    // A new file's name must be durable too.
    if (size === 0) await syncDirectory(dirname(path));
  } finally {
    await handle.close();
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a directory's entries (a create, a rename) durable. */
async function syncDirectory(directory: string): Promise<void> {
  let handle;
  try {
    handle = await open(directory, 'r');
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    // Some platforms cannot sync a directory (Windows); there the rename
    // itself is what they offer.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') {
      throw error;
    }
  } finally {
    await handle.close();
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function ignoreMissing(error: unknown): void {
  if (!isMissing(error)) throw error;
}
