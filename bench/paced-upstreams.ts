/**
 * What the stream benchmark and its upstreams' process
 * (paced-upstreams-process.ts) say to each other: how to pace, where the
 * upstreams listen, and the IPC commands and replies between them.
 */
export interface UpstreamPacing {
  /** Delay before the status line and headers. */
  readonly latencyMs: number;
  /** Pause between two chunks of a body. */
  readonly chunkIntervalMs: number;
  readonly anthropicChunkBytes: number;
  readonly bedrockChunkBytes: number;
  /** Output tokens of each answer (words of text, a few per delta). */
  readonly outputTokens: number;
}

export type UpstreamsCommand =
  | { readonly type: 'queue-anthropic'; readonly count: number }
  | { readonly type: 'take-arrivals' };

export type UpstreamsReply =
  | { readonly type: 'queued' }
  | {
      readonly type: 'arrivals';
      /** Arrival times since the last take, in order, by sender. */
      readonly direct: readonly number[];
      readonly gateway: readonly number[];
    };

/** Marks the requests the load generator sends without the gateway. */
export const DIRECT_HEADER = 'x-bench-direct';

export interface UpstreamUrls {
  /** Ends in `/v1`. */
  readonly openai: string;
  readonly anthropic: string;
  readonly bedrock: string;
}
