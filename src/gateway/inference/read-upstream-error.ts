/**
 * Reads an upstream's error answer, within a bound: the bytes, and their
 * JSON value when they are JSON (the text otherwise, for the message).
 */
import type { Readable } from 'node:stream';

/** Error bodies larger than this are not read in full. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface UpstreamErrorBody {
  readonly bytes: Buffer;
  /** The parsed JSON, the text when it is not JSON, or null when empty. */
  readonly parsed: unknown;
}

export async function readUpstreamError(
  body: Readable,
): Promise<UpstreamErrorBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(JSON.stringify(chunk));
      chunks.push(buffer);
      size += buffer.length;
      if (size >= MAX_ERROR_BODY_BYTES) break;
    }
  } catch {
    // A body cut short still tells us what it managed to say.
  }
  body.destroy();
  const bytes = Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES);
  const text = bytes.toString('utf8');
  if (text.trim() === '') return { bytes, parsed: null };
  try {
    return { bytes, parsed: JSON.parse(text) as unknown };
  } catch {
    return { bytes, parsed: text };
  }
}
