/**
 * The requests in flight, so shutdown can let them finish and settle.
 */

export class InflightRequests {
  readonly #running = new Map<AbortController, Promise<unknown>>();

  get size(): number {
    return this.#running.size;
  }

  /** Tracks `work` until it settles; `abort` stops it at a hard deadline. */
  track<T>(abort: AbortController, work: Promise<T>): Promise<T> {
    const tracked = work.finally(() => this.#running.delete(abort));
    this.#running.set(abort, tracked);
    return tracked;
  }

  /**
   * Waits up to `graceMs` for every tracked request, then aborts what is
   * left and waits for it to settle (an aborted request still records its
   * usage, marked estimated).
   */
  async drain(graceMs: number): Promise<void> {
    const all = () => Promise.allSettled(this.#running.values());
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
    });
    const outcome = await Promise.race([all(), expired]);
    clearTimeout(timer);
    if (outcome === 'expired') {
      for (const abort of this.#running.keys()) abort.abort();
      await all();
    }
  }
}
