/**
 * What every provider adapter gives the gateway: a response whose body can
 * be streamed through without buffering.
 */
import type { Readable } from 'node:stream';

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
  /** The provider's own id for the call, for reconciliation and support. */
  readonly upstreamRequestId: string | null;
}

export interface UpstreamCall {
  /** The JSON body to send, already in the upstream's format. */
  readonly body: string;
  readonly signal: AbortSignal;
}
