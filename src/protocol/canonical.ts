/**
 * The gateway's own shape of a chat exchange, between the inbound API a
 * client called and the upstream API a deployment speaks.
 *
 * When the two are the same API the gateway passes the upstream's bytes
 * through and only reads usage from them. When they differ, the request is
 * decoded into these types by the inbound protocol, encoded for the
 * upstream by the upstream protocol, and the answer goes back the other
 * way. The stream events follow Anthropic's block structure because it is
 * the richest of the three: OpenAI's and Bedrock's streams map onto it
 * without loss.
 *
 * Anything one side cannot express is refused with `UntranslatableError`,
 * never dropped (DESIGN.md, "The request path", step 4).
 */
import type { NormalizedUsage } from '../metering/usage.js';

/** The wire APIs the gateway speaks, inbound and upstream. */
export const WIRE_APIS = [
  'openai-chat',
  'openai-responses',
  'anthropic-messages',
  'bedrock-converse',
] as const;
export type WireApi = (typeof WIRE_APIS)[number];

export type ContentBlock =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type: 'image';
      /** `base64` carries `data`; `url` carries `url`. */
      readonly source:
        | {
            readonly kind: 'base64';
            readonly mediaType: string;
            readonly data: string;
          }
        | { readonly kind: 'url'; readonly url: string };
    }
  | {
      readonly type: 'tool_use';
      readonly id: string;
      readonly name: string;
      /** The parsed arguments: a JSON object. */
      readonly input: Readonly<Record<string, unknown>>;
    }
  | {
      readonly type: 'tool_result';
      readonly toolUseId: string;
      readonly content: readonly (
        | { readonly type: 'text'; readonly text: string }
        | Extract<ContentBlock, { type: 'image' }>
      )[];
      readonly isError: boolean;
    }
  | {
      readonly type: 'thinking';
      readonly text: string;
      /** The provider's signature, needed to send thinking back to it. */
      readonly signature: string | null;
    };

export interface CanonicalMessage {
  readonly role: 'user' | 'assistant';
  readonly content: readonly ContentBlock[];
}

export interface CanonicalTool {
  readonly name: string;
  readonly description: string | null;
  /** A JSON Schema object describing the tool's input. */
  readonly inputSchema: Readonly<Record<string, unknown>>;
}

export type ToolChoice =
  | { readonly type: 'auto' }
  | { readonly type: 'none' }
  /** The model must call some tool (OpenAI `required`, Anthropic `any`). */
  | { readonly type: 'any' }
  | { readonly type: 'tool'; readonly name: string };

export interface CanonicalChatRequest {
  /** The model as the client named it: a public alias. */
  readonly model: string;
  /** System prompt parts, in order; empty when there is none. */
  readonly system: readonly string[];
  readonly messages: readonly CanonicalMessage[];
  readonly tools: readonly CanonicalTool[];
  readonly toolChoice: ToolChoice | null;
  /** The client's output cap; null when it set none. */
  readonly maxOutputTokens: number | null;
  readonly temperature: number | null;
  readonly topP: number | null;
  readonly stopSequences: readonly string[];
  /** Extended thinking budget in tokens, where the client asked for it. */
  readonly thinkingBudgetTokens: number | null;
  readonly stream: boolean;
  /** OpenAI's `stream_options.include_usage`; true for other APIs. */
  readonly includeUsage: boolean;
  /** End user named in the body (OpenAI `user`, Anthropic metadata). */
  readonly endUser: string | null;
  /**
   * Where the client's body makes the upstream read input the body does
   * not carry (a previous response, a file by id: src/metering/
   * hidden-input.ts), the first such field. Set by the gateway, not by a
   * decoder; absent when there is none.
   */
  readonly unseenInput?: string;
  /**
   * Input text in the client's body that this form does not model (a
   * Responses `text.format` schema), counted when usage is estimated. Set
   * by the gateway; absent when there is none.
   */
  readonly unmodelledText?: string;
}

export type StopReason =
  'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'content_filter';

export interface CanonicalChatResponse {
  /** The upstream's own id for the message. */
  readonly id: string;
  /** The model the upstream says answered (may be a dated name). */
  readonly model: string;
  readonly content: readonly ContentBlock[];
  readonly stopReason: StopReason | null;
  readonly stopSequence: string | null;
  readonly usage: NormalizedUsage;
  /** The provider's usage block, untouched, for the ledger. */
  readonly rawUsage: unknown;
}

/**
 * One step of a streamed answer. Blocks are numbered from 0 in the order
 * they start; deltas name their block.
 */
export type CanonicalStreamEvent =
  | {
      readonly type: 'message_start';
      readonly id: string;
      readonly model: string;
    }
  | {
      readonly type: 'block_start';
      readonly index: number;
      readonly block:
        | { readonly type: 'text' }
        | { readonly type: 'thinking' }
        | {
            readonly type: 'tool_use';
            readonly id: string;
            readonly name: string;
          };
    }
  | {
      readonly type: 'text_delta';
      readonly index: number;
      readonly text: string;
    }
  | {
      readonly type: 'thinking_delta';
      readonly index: number;
      readonly text: string;
    }
  | {
      readonly type: 'signature_delta';
      readonly index: number;
      readonly signature: string;
    }
  /** A fragment of a tool call's JSON arguments. */
  | {
      readonly type: 'tool_input_delta';
      readonly index: number;
      readonly json: string;
    }
  | { readonly type: 'block_stop'; readonly index: number }
  | {
      readonly type: 'message_stop';
      readonly stopReason: StopReason | null;
      readonly stopSequence: string | null;
    }
  /**
   * Usage. `final: false` is what is known early (Anthropic's
   * `message_start` input counts); `final: true` is the provider's last
   * word, which the request is settled from.
   */
  | {
      readonly type: 'usage';
      readonly usage: NormalizedUsage;
      readonly raw: unknown;
      readonly final: boolean;
    }
  /** The upstream reported an error inside the stream. */
  | { readonly type: 'error'; readonly error: UpstreamErrorInfo };

/** What an upstream said went wrong, in API-neutral terms. */
export type ErrorKind =
  | 'invalid_request'
  | 'authentication'
  | 'permission'
  | 'not_found'
  | 'rate_limit'
  | 'overloaded'
  | 'server'
  | 'timeout'
  | 'context_length'
  | 'content_filter'
  | 'request_too_large';

export interface UpstreamErrorInfo {
  readonly kind: ErrorKind;
  /** The upstream's HTTP status (or the status its error kind implies). */
  readonly status: number;
  readonly message: string;
  /** Seconds, or an HTTP date, as the upstream's `Retry-After` said. */
  readonly retryAfter: string | null;
  /** The upstream's own error code or type, for logs. */
  readonly upstreamCode: string | null;
}

/** The gateway cannot express a request or answer in the other API. */
export class UntranslatableError extends Error {
  override readonly name = 'UntranslatableError';
  /** The field at fault, in the API the client called. */
  readonly param: string | null;
  constructor(message: string, param: string | null = null) {
    super(message);
    this.param = param;
  }
}

/** A request body the inbound API's rules refuse (a 400 to the client). */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
  readonly code:
    'missing_required_parameter' | 'invalid_type' | 'invalid_value';
  readonly param: string | null;
  constructor(
    code: InvalidRequestError['code'],
    message: string,
    param: string | null = null,
  ) {
    super(message);
    this.code = code;
    this.param = param;
  }
}

/**
 * The upstream answered in a shape its API does not allow. The request
 * fails with 502 upstream_error and its usage is estimated.
 */
export class UpstreamProtocolError extends Error {
  override readonly name = 'UpstreamProtocolError';
}

/**
 * One complete upstream stream frame (an SSE event, or one Bedrock event
 * object) with what it means. `raw` is what a client of the same API
 * receives when the gateway passes the stream through.
 */
export interface DecodedFrame {
  readonly raw: Buffer | Readonly<Record<string, unknown>>;
  readonly events: readonly CanonicalStreamEvent[];
}

/** Turns an upstream's stream into frames, incrementally. */
export interface StreamDecoder {
  /**
   * Feeds the next piece of the upstream stream: bytes at arbitrary
   * boundaries for SSE APIs, one event object for the Bedrock SDK.
   * Returns every frame completed by it. Throws UpstreamProtocolError on a
   * frame the API does not allow.
   */
  push(chunk: Buffer | Readonly<Record<string, unknown>>): DecodedFrame[];
  /** The stream ended; returns any last frame. */
  end(): DecodedFrame[];
}

/** Turns canonical events, or passed-through frames, into client bytes. */
export interface StreamEncoder {
  /** The response's content type (SSE, or Bedrock's event stream). */
  readonly contentType: string;
  /** Bytes for a translated stream's events; may be empty. */
  encode(event: CanonicalStreamEvent): Buffer;
  /** Bytes for a frame from an upstream of this same API. */
  passthrough(frame: DecodedFrame): Buffer;
  /** Bytes that end the stream with an error, in this API's format. */
  encodeError(error: ClientError): Buffer;
}

/** An error as the client will see it, before formatting. */
export interface ClientError {
  readonly status: number;
  /** Tollgate's stable error code (api-error.ts). */
  readonly code: string;
  readonly kind: ErrorKind;
  readonly message: string;
  readonly param: string | null;
  readonly requestId: string;
}

/** The side of an API that faces clients. */
export interface InboundProtocol {
  readonly api: WireApi;
  /** Decodes a request body; throws InvalidRequestError / UntranslatableError. */
  decodeRequest(body: unknown, model: string | null): CanonicalChatRequest;
  /** A translated non-streamed answer, as this API's JSON body. */
  encodeResponse(
    response: CanonicalChatResponse,
    context: { readonly requestId: string; readonly model: string },
  ): unknown;
  createStreamEncoder(context: {
    readonly requestId: string;
    readonly model: string;
    readonly includeUsage: boolean;
  }): StreamEncoder;
  /** An error's status, headers and body in this API's format. */
  encodeError(error: ClientError): {
    readonly status: number;
    readonly headers: Readonly<Record<string, string>>;
    readonly body: string;
  };
}

/** The side of an API that the gateway calls upstream. */
export interface UpstreamProtocol {
  readonly api: WireApi;
  /** A request for this API from a canonical one, for `upstreamModel`. */
  encodeRequest(
    request: CanonicalChatRequest,
    upstreamModel: string,
  ): Readonly<Record<string, unknown>>;
  /** A non-streamed answer's JSON; throws UpstreamProtocolError. */
  decodeResponse(body: unknown): CanonicalChatResponse;
  createStreamDecoder(): StreamDecoder;
  /** An error answer (status, headers, parsed body or null). */
  decodeError(
    status: number,
    headers: Readonly<Record<string, string | string[] | undefined>>,
    body: unknown,
  ): UpstreamErrorInfo;
}
