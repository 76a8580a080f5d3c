/**
 * The raw HTTP clients the stream benchmark times with: undici over
 * HTTP/1.1, as the OpenAI and Anthropic SDKs talk, and Node's HTTP/2 with
 * prior knowledge, as the AWS SDK talks to a Bedrock endpoint. Each hands
 * back the body as the bytes arrive, with no parsing of its own.
 */
import { connect, type ClientHttp2Session } from 'node:http2';

import { Pool } from 'undici';

export interface StreamRequest {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface StreamResponse {
  readonly status: number;
  readonly body: AsyncIterable<Uint8Array>;
}

export interface Transport {
  readonly protocol: 'http/1.1' | 'h2';
  /** POSTs the request; resolves on the response's headers. */
  send(request: StreamRequest, signal: AbortSignal): Promise<StreamResponse>;
  close(): Promise<void>;
}

export function http1Transport(origin: string): Transport {
  const pool = new Pool(origin, { connections: 256 });
  return {
    protocol: 'http/1.1',
    async send(request, signal) {
      const response = await pool.request({
        method: 'POST',
        path: request.path,
        headers: request.headers,
        body: request.body,
        signal,
      });
      return { status: response.statusCode, body: response.body };
    },
    close: () => pool.close(),
  };
}

/** One HTTP/2 connection, every request a stream of it. */
export function http2Transport(origin: string): Transport {
  let session: ClientHttp2Session | undefined;
  const open = (): ClientHttp2Session => {
    if (session === undefined || session.closed || session.destroyed) {
      session = connect(origin);
      // A broken connection fails its streams; the next request reconnects.
      session.on('error', () => undefined);
    }
    return session;
  };
  return {
    protocol: 'h2',
    send(request, signal) {
      return new Promise((resolve, reject) => {
        const stream = open().request(
          { ':method': 'POST', ':path': request.path, ...request.headers },
          { signal },
        );
        stream.once('error', reject);
        stream.once('response', (headers) =>
          resolve({ status: Number(headers[':status']), body: stream }),
        );
        stream.end(request.body);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (session === undefined || session.closed) resolve();
        else session.close(() => resolve());
      }),
  };
}
