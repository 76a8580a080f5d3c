/**
 * The fake's check of an embeddings body (`POST /v1/embeddings`).
 *
 * @see https://platform.openai.com/docs/api-reference/embeddings/create
 */
import { WireError } from '../../providers/simulated/wire-error.js';
import {
  checkObject,
  invalidValue,
  shown,
  type Fields,
} from './wire-checks.js';

export interface CheckedEmbeddingsRequest {
  readonly model: string | null;
  /** One entry per embedding to return: its text, or its token count. */
  readonly inputs: readonly (string | number)[];
  readonly base64: boolean;
}

export function validateEmbeddingsRequest(
  body: unknown,
  modelRequired: boolean,
): CheckedEmbeddingsRequest {
  const fields: Fields = checkObject(body, 'body');
  const model = fields['model'];
  if (typeof model !== 'string' && modelRequired) {
    throw new WireError(400, 'you must provide a model parameter');
  }

  const format = fields['encoding_format'] ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw invalidValue(
      'encoding_format',
      `Invalid value: '${shown(format)}'. Supported values are: 'float' ` +
        "and 'base64'.",
    );
  }
  return {
    model: typeof model === 'string' ? model : null,
    inputs: embeddingInputs(fields['input']),
    base64: format === 'base64',
  };
}

/** A string, strings, a token array, or token arrays; never empty. */
function embeddingInputs(input: unknown): (string | number)[] {
  const refuse = () =>
    invalidValue(
      'input',
      "'input' must be a non-empty string, array of strings, array of " +
        'tokens, or array of token arrays.',
    );
  if (typeof input === 'string') {
    if (input === '') throw refuse();
    return [input];
  }
  if (!Array.isArray(input) || input.length === 0) throw refuse();
  if (input.every((entry) => typeof entry === 'number')) return [input.length];
  return input.map((entry: unknown) => {
    if (typeof entry === 'string' && entry !== '') return entry;
    if (
      Array.isArray(entry) &&
      entry.length > 0 &&
      entry.every((token) => typeof token === 'number')
    ) {
      return entry.length;
    }
    throw refuse();
  });
}
