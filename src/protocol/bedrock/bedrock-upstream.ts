/**
 * Bedrock Converse and ConverseStream as an upstream API.
 *
 * Requests are Converse bodies without `modelId` (BedrockClient puts the
 * model in the path); answers are Converse JSON, and streams are event
 * objects from the AWS SDK or raw event-stream bytes.
 *
 * @example
 * const body = bedrockUpstream.encodeRequest(request, 'us.amazon.nova-lite-v1:0');
 * const response = await client.sendChat({ body, upstreamModel, stream, signal });
 */
import type { UpstreamProtocol } from '../canonical.js';
import { decodeBedrockError } from './bedrock-errors.js';
import { ConverseStreamDecoder } from './converse-stream-decoder.js';
import { decodeConverseResponse } from './decode-converse-response.js';
import { encodeConverseRequest } from './encode-converse-request.js';

export const bedrockUpstream: UpstreamProtocol = Object.freeze({
  api: 'bedrock-converse',
  encodeRequest: encodeConverseRequest,
  decodeResponse: decodeConverseResponse,
  createStreamDecoder: () => new ConverseStreamDecoder(),
  decodeError: decodeBedrockError,
});
