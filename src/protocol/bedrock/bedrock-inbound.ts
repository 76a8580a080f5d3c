/**
 * Bedrock Converse and ConverseStream as an API clients call: the AWS SDK
 * pointed at the gateway (`endpoint`), with a Tollgate key as its bearer
 * token, works unchanged.
 *
 * Bedrock says in the path, not the body, both the model
 * (`/model/{modelId}/converse`) and whether to stream (`/converse` or
 * `/converse-stream`). `decodeRequest` is told the model; the stream flag
 * has no parameter, so there is one protocol object per path:
 * `bedrockConverseInbound` and `bedrockConverseStreamInbound`.
 *
 * Valid Converse that no other API can express (cache points, guardrails,
 * documents, …) is read, not refused: `bedrockUntranslatable` lists it, for
 * the gateway to refuse only when it translates.
 *
 * @example
 * const protocol = path.endsWith('/converse-stream')
 *   ? bedrockConverseStreamInbound
 *   : bedrockConverseInbound;
 * const request = protocol.decodeRequest(body, decodeURIComponent(modelId));
 * if (upstream.api !== 'bedrock-converse') {
 *   const [refusal] = bedrockUntranslatable(body);
 *   if (refusal) throw refusal;
 * }
 */
import type { InboundProtocol, UntranslatableError } from '../canonical.js';
import { encodeBedrockError } from './bedrock-errors.js';
import { ConverseStreamEncoder } from './converse-stream-encoder.js';
import { readConverseRequest } from './decode-converse-request.js';
import { encodeConverseResponse } from './encode-converse-response.js';

export function createBedrockInbound(options: {
  readonly stream: boolean;
}): InboundProtocol {
  return Object.freeze({
    api: 'bedrock-converse',
    decodeRequest: (body, model) =>
      readConverseRequest(body, model, options.stream).request,
    // The canonical answer has no timing; Bedrock clients read 0.
    encodeResponse: (response) => encodeConverseResponse(response, 0),
    createStreamEncoder: () => new ConverseStreamEncoder(),
    encodeError: encodeBedrockError,
  } satisfies InboundProtocol);
}

/** `POST /model/{modelId}/converse` */
export const bedrockConverseInbound = createBedrockInbound({ stream: false });

/** `POST /model/{modelId}/converse-stream` */
export const bedrockConverseStreamInbound = createBedrockInbound({
  stream: true,
});

/**
 * What a valid Converse body holds that the canonical request leaves out,
 * one error per field, each naming it by its path in the body. Empty when
 * the body translates whole. Throws InvalidRequestError for a body that is
 * not valid Converse.
 */
export function bedrockUntranslatable(
  body: unknown,
): readonly UntranslatableError[] {
  // The model plays no part in what translates.
  return readConverseRequest(body, 'model', false).untranslatable;
}
