/**
 * The fields of a Chat Completions body that admission and metering read:
 * whether it streams and shows usage, its output caps, its choices and its
 * end user.
 *
 * A Chat body is read by `parseChatRequest` when every deployment of its
 * model speaks Chat Completions, and by `decodeOpenAIChatRequest` when one
 * speaks another API. Both read these fields here, so a request is
 * reserved, limited and attributed alike on either path.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import {
  invalidValue,
  openAIEndUser,
  optionalBoolean,
  optionalCount,
  requireObject,
  type Fields,
} from './request-fields.js';

export interface ChatAdmissionFields {
  readonly stream: boolean;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  readonly includeUsage: boolean;
  /**
   * The cap the gateway states when it writes the request for another
   * API: `max_completion_tokens`, which replaces the deprecated
   * `max_tokens`, else `max_tokens`. Null when the body sets neither.
   */
  readonly outputCap: number | null;
  /**
   * The most one choice may generate when the body is forwarded as it is.
   * Given both caps, an upstream may honour either, so the larger.
   */
  readonly outputBound: number | null;
  /** `n`, 1 when absent. */
  readonly choices: number;
  /** The end user the body names, as `openAIEndUser` reads it. */
  readonly endUser: string | null;
}

/**
 * Above any model's output limit: a larger cap is a mistake, and the
 * worst case reserved from it would be meaningless.
 */
export const MAX_OUTPUT_TOKENS = 10_000_000;

/** OpenAI's own limit on `n`. */
const MAX_CHOICES = 128;

export function readChatAdmissionFields(fields: Fields): ChatAdmissionFields {
  const stream = optionalBoolean(fields, 'stream') ?? false;
  const options = fields['stream_options'];
  let includeUsage = false;
  if (options !== undefined && options !== null) {
    const streamOptions = requireObject(options, 'stream_options');
    if (!stream) {
      throw invalidValue(
        'stream_options',
        "The 'stream_options' parameter is only allowed when 'stream' is " +
          'enabled.',
      );
    }
    includeUsage =
      optionalBoolean(streamOptions, 'include_usage', 'stream_options.') ??
      false;
  }

  const maxCompletion = optionalCount(
    fields,
    'max_completion_tokens',
    MAX_OUTPUT_TOKENS,
  );
  const maxTokens = optionalCount(fields, 'max_tokens', MAX_OUTPUT_TOKENS);
  return {
    stream,
    includeUsage,
    outputCap: maxCompletion ?? maxTokens,
    outputBound:
      maxCompletion !== null && maxTokens !== null
        ? Math.max(maxCompletion, maxTokens)
        : (maxCompletion ?? maxTokens),
    choices: optionalCount(fields, 'n', MAX_CHOICES) ?? 1,
    endUser: openAIEndUser(fields),
  };
}
