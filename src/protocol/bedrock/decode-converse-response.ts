/**
 * A Converse answer's JSON as a canonical response.
 *
 * Bedrock gives an answer no id and does not name the model that wrote it
 * (the caller chose it in the path), so both are empty strings here; the
 * gateway knows the model it asked for and the request id Bedrock sent.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax
 */
import { isRecord } from '../../metering/usage.js';
import { normalizeBedrockUsage } from '../../providers/bedrock/normalize-bedrock-usage.js';
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatResponse,
  type ContentBlock,
} from '../canonical.js';
import { decodeConverseBlock, type BlockIssues } from './converse-content.js';
import {
  canonicalStopReason,
  converseStopSequence,
} from './converse-stop-reason.js';

/** An answer that breaks Converse's rules is the upstream's fault. */
const ANSWER_ISSUES: BlockIssues = {
  invalid(message) {
    throw new UpstreamProtocolError(`Converse answer: ${message}`);
  },
  untranslatable(message, param) {
    throw new UntranslatableError(`the Bedrock answer's ${message}`, param);
  },
};

export function decodeConverseResponse(body: unknown): CanonicalChatResponse {
  if (!isRecord(body)) {
    throw new UpstreamProtocolError('Converse answer is not a JSON object');
  }
  const output = body['output'];
  const message = isRecord(output) ? output['message'] : undefined;
  if (!isRecord(message) || !Array.isArray(message['content'])) {
    throw new UpstreamProtocolError(
      'Converse answer lacks output.message.content',
    );
  }
  if (message['role'] !== 'assistant') {
    throw new UpstreamProtocolError(
      `Converse answer's role is ${JSON.stringify(message['role'])}, ` +
        'not assistant',
    );
  }

  const content: ContentBlock[] = [];
  (message['content'] as unknown[]).forEach((block, index) => {
    const decoded = decodeConverseBlock(
      block,
      `output.message.content[${index}]`,
      ANSWER_ISSUES,
    );
    if (decoded !== null) content.push(decoded);
  });

  return {
    id: '',
    model: '',
    content,
    stopReason: canonicalStopReason(body['stopReason']),
    stopSequence: converseStopSequence(body['additionalModelResponseFields']),
    usage: normalizeBedrockUsage(body['usage']),
    rawUsage: body['usage'],
  };
}
