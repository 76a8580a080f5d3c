/**
 * Sends an answer's bytes the way a real (or a failing) upstream does:
 * late, in chunks cut at arbitrary byte boundaries, paced, or cut off by a
 * stall or a dropped connection.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { seededRandom } from '../../util/seeded-random.js';

export interface Delivery {
  /** Delay before the status and headers. @default 0 */
  readonly latencyMs?: number;
  /**
   * Largest chunk written at once. With `chunkSeed`, each chunk is a
   * seeded random size from 1 to `chunkBytes`; without, exactly that.
   * @default the whole body in one write
   */
  readonly chunkBytes?: number;
  readonly chunkSeed?: number;
  /** Pause between chunks. @default 0 */
  readonly chunkIntervalMs?: number;
  /** Send this many bytes, then go silent with the connection open. */
  readonly stallAfterBytes?: number;
  /** Send this many bytes, then reset the connection (or HTTP/2 stream). */
  readonly dropAfterBytes?: number;
}

/** What both HTTP/1.1 and HTTP/2 compatibility responses offer. */
export interface FakeResponse {
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  write(chunk: Buffer, callback?: () => void): unknown;
  end(chunk?: Buffer): unknown;
  destroy(): unknown;
  flushHeaders?(): unknown;
  once(event: 'close', listener: () => void): unknown;
}

export function deliver(
  response: FakeResponse,
  answer: {
    readonly status: number;
    readonly headers: Readonly<Record<string, string>>;
    readonly body: Buffer;
  },
  delivery: Delivery,
): void {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  response.once('close', () => {
    closed = true;
    clearTimeout(timer);
  });

  const cut = delivery.dropAfterBytes ?? delivery.stallAfterBytes;
  const body = cut === undefined ? answer.body : answer.body.subarray(0, cut);
  const chunks = chunked(body, delivery);
  const whole = cut === undefined;

  const drop = delivery.dropAfterBytes !== undefined;

  const send = (): void => {
    if (closed) return;
    response.writeHead(answer.status, {
      ...answer.headers,
      ...(whole && { 'content-length': String(answer.body.byteLength) }),
    });
    if (!whole) response.flushHeaders?.();
    const interval = delivery.chunkIntervalMs ?? 0;
    let next = 0;
    const pump = (): void => {
      while (!closed && next < chunks.length) {
        const chunk = chunks[next++] as Buffer;
        const last = next === chunks.length;
        // A drop resets the connection once its bytes have left.
        response.write(
          chunk,
          last && drop ? () => response.destroy() : undefined,
        );
        if (interval > 0 && !last) {
          timer = setTimeout(pump, interval);
          return;
        }
      }
      if (closed) return;
      if (whole) response.end();
      else if (drop && chunks.length === 0) response.destroy();
      // A stall leaves the response open and silent.
    };
    pump();
  };

  const latency = delivery.latencyMs ?? 0;
  if (latency > 0) timer = setTimeout(send, latency);
  else send();
}

function chunked(body: Buffer, delivery: Delivery): Buffer[] {
  const most = delivery.chunkBytes;
  if (most === undefined || most <= 0) return body.byteLength > 0 ? [body] : [];
  const random =
    delivery.chunkSeed === undefined
      ? undefined
      : seededRandom(delivery.chunkSeed);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < body.byteLength;) {
    const size = random === undefined ? most : 1 + Math.floor(random() * most);
    chunks.push(body.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}
