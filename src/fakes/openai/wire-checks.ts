/**
 * Small checks shared by the fake's request validators, each refusing with
 * the 400 OpenAI sends: `invalid_request_error` with the `param` at fault.
 */
import { WireError } from '../../providers/simulated/wire-error.js';

export type Fields = Readonly<Record<string, unknown>>;

export function invalidValue(param: string, message: string): WireError {
  return new WireError(400, message, { param, code: 'invalid_value' });
}

export function missingParam(param: string): WireError {
  return new WireError(400, `Missing required parameter: '${param}'.`, {
    param,
    code: 'missing_required_parameter',
  });
}

function invalidType(param: string, expected: string): WireError {
  return new WireError(
    400,
    `Invalid type for '${param}': expected ${expected}.`,
    { param, code: 'invalid_type' },
  );
}

export function checkObject(value: unknown, param: string): Fields {
  if (value === undefined || value === null) throw missingParam(param);
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidType(param, 'an object');
  }
  return value as Fields;
}

export function checkString(value: unknown, param: string): string {
  if (value === undefined || value === null) throw missingParam(param);
  if (typeof value !== 'string') throw invalidType(param, 'a string');
  return value;
}

/** An integer of at least `min`, or null when absent. */
export function checkCount(
  fields: Fields,
  field: string,
  min = 1,
): number | null {
  const value = fields[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw invalidType(field, 'an integer');
  }
  if (value < min) {
    throw new WireError(
      400,
      `Invalid '${field}': integer below minimum value. Expected a value ` +
        `>= ${min}, but got ${value} instead.`,
      { param: field, code: 'integer_below_min_value' },
    );
  }
  return value;
}

/**
 * `stream_options` is refused on a non-streamed request; returns its
 * `include_usage`.
 */
export function checkStreamOptions(fields: Fields, stream: boolean): boolean {
  const options = fields['stream_options'];
  if (options === undefined || options === null) return false;
  if (!stream) {
    throw new WireError(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is " +
        'enabled.',
      { param: 'stream_options' },
    );
  }
  return checkObject(options, 'stream_options')['include_usage'] === true;
}

/** A value as a refusal message quotes it. */
export function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
