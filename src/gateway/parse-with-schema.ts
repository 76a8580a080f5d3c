/**
 * Validates a body or query against a zod schema, refusing with a coded
 * 400 that names the first offending field.
 */
import type { z } from 'zod';

import { ApiError } from './api-error.js';

export function parseWithSchema<T extends z.ZodType>(
  schema: T,
  value: unknown,
): z.output<T> {
  // zod leaves `input` out of issues unless asked; without it, a field of
  // the wrong type would read as missing.
  const result = schema.safeParse(value ?? {}, { reportInput: true });
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue?.path.join('.') ?? '';
  const message = issue?.message ?? 'invalid request';
  return fail(
    issue?.code === 'invalid_type' && issue.input === undefined
      ? new ApiError(
          'missing_required_parameter',
          `Missing required parameter: '${param}'.`,
          { param },
        )
      : new ApiError(
          issue?.code === 'invalid_type' ? 'invalid_type' : 'invalid_value',
          `Invalid '${param || 'body'}': ${message}.`,
          param ? { param } : {},
        ),
  );
}

function fail(error: ApiError): never {
  throw error;
}
