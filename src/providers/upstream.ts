/**
 * What every provider adapter gives the gateway: a response whose body can
 * be streamed through without buffering.
 */
import type { Readable } from 'node:stream';

import type { WireApi } from '../protocol/canonical.js';

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /**
   * The answer's bytes. A client built on an SDK that parses the wire for
   * us (Bedrock's event stream) gives an object-mode stream of the API's
   * event objects instead, one per event.
   */
  readonly body: Readable;
  /** The provider's own id for the call, for reconciliation and support. */
  readonly upstreamRequestId: string | null;
}

/** A chat call to any upstream API. */
export interface UpstreamChatCall {
  /**
   * The request body in the upstream API's format; a string is sent as it
   * is (JSON already serialised, to size the worst case from its bytes).
   */
  readonly body: Readonly<Record<string, unknown>> | string;
  /** The model id sent upstream (Bedrock puts it in the path). */
  readonly upstreamModel: string;
  readonly stream: boolean;
  readonly signal: AbortSignal;
}

/**
 * A provider client. `sendChat` resolves once the upstream's status and
 * headers are in (an error status included) and throws UpstreamError only
 * when no answer came at all.
 */
export interface UpstreamClient {
  readonly api: WireApi;
  sendChat(call: UpstreamChatCall): Promise<UpstreamResponse>;
  /** OpenAI's `POST /embeddings`, where the provider offers it. */
  embeddings?(
    body: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<UpstreamResponse>;
}
