/**
 * Writes a fake upstream's answer the way a real network delivers it, or
 * fails to: after a delay, in pieces cut at chosen byte boundaries, paced,
 * or cut short by a stall or a dropped connection.
 */
import type { ServerResponse } from 'node:http';

import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export interface DeliveryOptions {
  /** Delay before the status and headers. */
  readonly latencyMs?: number;
  /** Writes the body in pieces of this many bytes. */
  readonly chunkBytes?: number;
  /** Writes the body in pieces of 1–64 bytes drawn from this seed. */
  readonly chunkSeed?: number;
  /** Pause between two writes. */
  readonly chunkIntervalMs?: number;
  /** Writes this many bytes, then goes silent until the server closes. */
  readonly stallAfterBytes?: number;
  /** Writes this many bytes, then destroys the socket. */
  readonly dropAfterBytes?: number;
}

export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

const MAX_SEEDED_CHUNK = 64;

/** Delivers `answer`; resolves when done, stalled, dropped or abandoned. */
export async function deliverBody(
  response: ServerResponse,
  answer: Answer,
  options: DeliveryOptions,
): Promise<void> {
  if (!(await pause(response, options.latencyMs ?? 0))) return;

  const cut = options.stallAfterBytes ?? options.dropAfterBytes;
  const body = answer.body.subarray(0, cut ?? answer.body.length);
  const headers: Record<string, string> = { ...answer.headers };
  const whole = cut === undefined && !isChunked(options);
  if (whole) headers['content-length'] = String(body.length);
  response.writeHead(answer.status, headers);
  response.flushHeaders();

  const chunks = cutBody(body, options);
  for (const [i, chunk] of chunks.entries()) {
    if (response.destroyed) return;
    if (!response.write(chunk)) {
      await new Promise((resolve) => response.once('drain', resolve));
    }
    if (i < chunks.length - 1) {
      if (!(await pause(response, options.chunkIntervalMs ?? 0))) return;
    }
  }

  if (
    options.dropAfterBytes !== undefined &&
    options.stallAfterBytes === undefined
  ) {
    // Destroy only once the promised bytes have left, as on a reset.
    response.write('', () => response.destroy());
  } else if (options.stallAfterBytes === undefined) {
    response.end();
  }
}

function isChunked(options: DeliveryOptions): boolean {
  return (
    options.chunkBytes !== undefined ||
    options.chunkSeed !== undefined ||
    (options.chunkIntervalMs ?? 0) > 0
  );
}

/** The body's pieces, in order; one piece when no chunking is asked for. */
export function cutBody(body: Buffer, options: DeliveryOptions): Buffer[] {
  const sizes = pieceSizes(options);
  if (sizes === undefined || body.length === 0) return [body];
  const chunks: Buffer[] = [];
  for (let at = 0; at < body.length;) {
    const size = sizes();
    chunks.push(body.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function pieceSizes(options: DeliveryOptions): (() => number) | undefined {
  const { chunkBytes, chunkSeed } = options;
  if (chunkBytes !== undefined) {
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
      throw new RangeError('chunkBytes must be a positive integer');
    }
    return () => chunkBytes;
  }
  if (chunkSeed !== undefined) {
    const rng = xoroshiro128plus(chunkSeed);
    return () => uniformInt(rng, 1, MAX_SEEDED_CHUNK);
  }
  return undefined;
}

/** Waits `ms`; false if the response closed meanwhile. */
function pause(response: ServerResponse, ms: number): Promise<boolean> {
  if (response.destroyed) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      response.off('close', onClose);
      resolve(true);
    }, ms);
    response.once('close', onClose);
  });
}
