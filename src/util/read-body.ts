/**
 * Reads a request body as UTF-8 text for the fake and simulated upstream
 * servers, keeping at most `limit` bytes: past it, `then` gets undefined,
 * once the rest has drained, so the connection stays usable.
 */
import type { Readable } from 'node:stream';

export function readBody(
  request: Readable,
  limit: number,
  then: (text: string | undefined) => void,
): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes <= limit) chunks.push(chunk);
  });
  // A client that aborts mid-body gets no answer: no one is left to read it.
  request.on('error', () => undefined);
  request.on('end', () => {
    then(bytes > limit ? undefined : Buffer.concat(chunks).toString('utf8'));
  });
}
