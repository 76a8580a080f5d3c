/**
 * A canonical answer as Converse JSON, for a Bedrock client whose request
 * went to another API.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax
 */
import type { NormalizedUsage } from '../../metering/usage.js';
import {
  UntranslatableError,
  type CanonicalChatResponse,
  type ContentBlock,
} from '../canonical.js';
import { converseStopReason } from './converse-stop-reason.js';

type Json = Record<string, unknown>;

const IMAGE_FORMATS: Readonly<Record<string, string>> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

/**
 * The Converse body. Bedrock states the time the model took in
 * `metrics.latencyMs`; the gateway passes it in, as measured upstream.
 */
export function encodeConverseResponse(
  response: CanonicalChatResponse,
  latencyMs: number,
): Json {
  return {
    output: {
      message: {
        role: 'assistant',
        content: response.content.map((block, index) =>
          encodeAnswerBlock(block, `content[${index}]`),
        ),
      },
    },
    stopReason: converseStopReason(response.stopReason),
    usage: converseUsage(response.usage),
    metrics: { latencyMs },
  };
}

/**
 * Normalised usage as Converse's `TokenUsage`: cache tokens outside
 * `inputTokens`, and one-hour cache writes detailed in `cacheDetails`.
 */
export function converseUsage(usage: NormalizedUsage): Json {
  const written = usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  return {
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    totalTokens:
      usage.inputTokens + usage.outputTokens + usage.cacheReadTokens + written,
    cacheReadInputTokens: usage.cacheReadTokens,
    cacheWriteInputTokens: written,
    ...(usage.cacheWrite1hTokens > 0 && {
      // Bedrock lists the longer lifetime first.
      cacheDetails: [
        { ttl: '1h', inputTokens: usage.cacheWrite1hTokens },
        ...(usage.cacheWriteTokens > 0
          ? [{ ttl: '5m', inputTokens: usage.cacheWriteTokens }]
          : []),
      ],
    }),
  };
}

function encodeAnswerBlock(block: ContentBlock, param: string): Json {
  switch (block.type) {
    case 'text':
      return { text: block.text };
    case 'tool_use':
      return {
        toolUse: { toolUseId: block.id, name: block.name, input: block.input },
      };
    case 'thinking':
      return {
        reasoningContent: {
          reasoningText: {
            text: block.text,
            ...(block.signature !== null && { signature: block.signature }),
          },
        },
      };
    case 'image': {
      const { source } = block;
      const format =
        source.kind === 'base64'
          ? IMAGE_FORMATS[source.mediaType.toLowerCase()]
          : undefined;
      if (source.kind === 'url' || format === undefined) {
        throw new UntranslatableError(
          'a Converse answer carries images only as png, jpeg, gif or ' +
            'webp bytes',
          param,
        );
      }
      return { image: { format, source: { bytes: source.data } } };
    }
    case 'tool_result':
      throw new UntranslatableError(
        'a Converse answer cannot carry a tool result',
        param,
      );
  }
}
