/**
 * Writes a stream of SSE frames to a response and closes it with
 * `data: [DONE]`, or cuts it short the way a failing upstream does.
 *
 * The simulated upstream runs inside benchmarks, so with no interval the
 * frames go out as fast as the socket takes them: they are joined into
 * batches of about 16 KiB (one write, one chunk of the chunked encoding),
 * and the pump waits for `drain` whenever the socket's buffer is full, so a
 * slow reader holds a bounded amount of memory. Timers are used only when
 * an interval is asked for, and stop with the response.
 */
import type { ServerResponse } from 'node:http';

const DONE = 'data: [DONE]\n\n';

/** Enough frames per write to amortise the write; small enough to stream. */
const BATCH_CHARS = 16 * 1024;

export interface StreamCut {
  /** Chunks sent before the cut; past the end, the cut replaces `[DONE]`. */
  readonly afterChunks: number;
  /** `drop` destroys the socket; `stall` leaves it open and silent. */
  readonly then: 'drop' | 'stall';
}

export interface PumpOptions {
  /** Pause between consecutive frames; 0 for none. */
  readonly intervalMs: number;
  readonly cut?: StreamCut | undefined;
}

/**
 * Starts pumping and returns at once; the response's headers must be set.
 * The last frame and `[DONE]` leave together, with no pause between them.
 */
export function pumpSse(
  response: ServerResponse,
  frames: Iterator<string, void>,
  options: PumpOptions,
): void {
  const { intervalMs, cut } = options;
  let sent = 0;
  let next = frames.next();
  let timer: NodeJS.Timeout | undefined;
  response.once('close', () => clearTimeout(timer));

  const finish = (batch: string): void => {
    if (cut === undefined) {
      response.end(batch + DONE);
    } else if (cut.then === 'drop') {
      // Flush what was promised before the cut, then fail mid-body: the
      // client sees an unterminated chunked body, as on a reset.
      response.write(batch, () => response.destroy());
    } else {
      response.write(batch);
    }
  };

  const pump = (): void => {
    let batch = '';
    while (!response.destroyed) {
      if (next.done === true || sent === cut?.afterChunks) {
        finish(batch);
        return;
      }
      batch += next.value;
      sent++;
      next = frames.next();

      const more = next.done !== true && sent !== cut?.afterChunks;
      if (more && intervalMs > 0) {
        response.write(batch);
        timer = setTimeout(pump, intervalMs);
        return;
      }
      if (more && batch.length >= BATCH_CHARS) {
        const drained = response.write(batch);
        batch = '';
        if (!drained) {
          response.once('drain', pump);
          return;
        }
      }
    }
  };

  pump();
}
