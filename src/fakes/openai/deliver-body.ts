/**
 * Writes a fake answer the way a real upstream's bytes can arrive: after a
 * delay, in pieces of chosen or seeded random sizes, paced, or cut off by
 * a stall (the connection stays open and silent), a drop (the socket is
 * destroyed mid-body) or a reset before any byte of the answer.
 *
 * Without re-chunking, each piece (an SSE event, a JSON body) is one
 * write, so a client sees events arrive whole and in time.
 */
import type { ServerResponse } from 'node:http';

import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export interface Delivery {
  /** Delay before the status line. */
  readonly latencyMs?: number;
  /** Re-chunk the body into writes of this many bytes (the last shorter). */
  readonly chunkBytes?: number;
  /** With chunkBytes: sizes drawn from 1…chunkBytes by this seed. */
  readonly chunkSeed?: number;
  /** Pause between writes. */
  readonly chunkIntervalMs?: number;
  /**
   * Stop writing after this many body bytes; keep the connection open.
   * At 0, the status and headers are sent, then nothing.
   */
  readonly stallAfterBytes?: number;
  /** Destroy the connection after this many body bytes. */
  readonly dropAfterBytes?: number;
  /**
   * Destroy the connection instead of answering, after `latencyMs`: the
   * client gets no status line at all, as from a proxy or a process that
   * dies mid-request. `dropAfterBytes: 0`, by contrast, sends the status
   * and headers first.
   */
  readonly resetBeforeStatus?: boolean;
}

export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly contentType: string;
  readonly pieces: readonly Buffer[];
}

export function deliverBody(
  response: ServerResponse,
  answer: Answer,
  delivery: Delivery,
): void {
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, then: () => void) => {
    if (ms <= 0) {
      then();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      then();
    }, ms);
    timers.add(timer);
  };
  response.once('close', () => timers.forEach((timer) => clearTimeout(timer)));

  const body = Buffer.concat(answer.pieces);
  const pieces = cut(rechunk(answer.pieces, delivery), delivery);
  const whole =
    delivery.stallAfterBytes === undefined &&
    delivery.dropAfterBytes === undefined;

  later(delivery.latencyMs ?? 0, () => {
    if (delivery.resetBeforeStatus === true) {
      response.destroy();
      return;
    }
    response.writeHead(answer.status, {
      ...answer.headers,
      'content-type': answer.contentType,
      // A JSON body announces its length, as OpenAI's do; a stream is chunked.
      ...(answer.contentType === 'application/json' && {
        'content-length': String(body.length),
      }),
    });
    let next = 0;
    const write = (): void => {
      if (response.destroyed) return;
      const piece = pieces[next++];
      if (piece === undefined) {
        finish();
        return;
      }
      response.write(piece);
      later(delivery.chunkIntervalMs ?? 0, write);
    };
    const finish = (): void => {
      if (whole) response.end();
      else if (delivery.dropAfterBytes !== undefined) {
        // Let what was written reach the client, then fail mid-body.
        response.write(Buffer.alloc(0), () => response.destroy());
      } else if (pieces.length === 0) {
        // A stall before the first body byte still sends the headers.
        response.flushHeaders();
      }
      // A stall writes nothing more and leaves the connection open.
    };
    write();
  });
}

function rechunk(pieces: readonly Buffer[], delivery: Delivery): Buffer[] {
  const size = delivery.chunkBytes;
  if (size === undefined) return [...pieces];
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError('chunkBytes must be a positive integer');
  }
  const body = Buffer.concat(pieces);
  const rng =
    delivery.chunkSeed === undefined
      ? null
      : xoroshiro128plus(delivery.chunkSeed);
  const out: Buffer[] = [];
  for (let at = 0; at < body.length;) {
    const length = rng === null ? size : uniformInt(rng, 1, size);
    out.push(body.subarray(at, at + length));
    at += length;
  }
  return out;
}

/** The pieces up to the stall or drop point, the last one shortened. */
function cut(pieces: Buffer[], delivery: Delivery): Buffer[] {
  const limit = delivery.dropAfterBytes ?? delivery.stallAfterBytes;
  if (limit === undefined) return pieces;
  const out: Buffer[] = [];
  let left = limit;
  for (const piece of pieces) {
    if (left <= 0) break;
    out.push(piece.subarray(0, left));
    left -= piece.length;
  }
  return out;
}
