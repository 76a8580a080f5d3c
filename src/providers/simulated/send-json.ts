/**
 * JSON answers of the simulated upstream, successes and errors alike.
 * The length is set, as OpenAI sets it, so keep-alive clients reuse the
 * connection without chunked framing.
 */
import type { ServerResponse } from 'node:http';

import type { WireError } from './wire-error.js';

export function sendJson(
  response: ServerResponse,
  status: number,
  json: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  response.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
  });
  response.end(json);
}

export function sendWireError(response: ServerResponse, error: WireError) {
  sendJson(response, error.status, error.toBody(), error.headers);
}
