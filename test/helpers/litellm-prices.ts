/**
 * Per-token prices read straight from the litellm catalog file in
 * `../shared/data/pricing`, as exact scaled integers, independently of
 * Tollgate's own catalog and decimal code: the JSON number's text is
 * turned into a BigInt count of 10^-18 USD, never into a float.
 */
import { readFileSync } from 'node:fs';

import { sharedFile } from './shared-data.js';

/** 10^18: prices per token are held in units of 10^-18 USD. */
export const SCALE = 10n ** 18n;

export interface TokenPrices {
  readonly input: bigint;
  readonly output: bigint;
}

/** The input and output price per token of `model`, scaled by 10^18. */
export function litellmPrices(model: string): TokenPrices {
  const text = readFileSync(
    sharedFile('pricing/litellm_model_prices_and_context_window.json'),
    'utf8',
  );
  const start = text.indexOf(`\n    ${JSON.stringify(model)}: {`);
  if (start === -1) throw new Error(`litellm has no entry ${model}`);
  const end = text.indexOf('\n    }', start);
  const block = text.slice(start, end);
  return {
    input: scaled(field(block, 'input_cost_per_token')),
    output: scaled(field(block, 'output_cost_per_token')),
  };
}

function field(block: string, name: string): string {
  const match = new RegExp(`"${name}": ([0-9.eE+-]+)`).exec(block);
  if (!match?.[1]) throw new Error(`no ${name} in ${block.slice(0, 80)}`);
  return match[1];
}

/** A JSON number's text (e.g. `2.5e-06`) as an integer × 10^-18. */
export function scaled(text: string): bigint {
  const match = /^(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) throw new Error(`not a plain positive number: ${text}`);
  const digits = `${match[1] ?? ''}${match[2] ?? ''}`;
  const exponent = Number(match[3] ?? '0') - (match[2]?.length ?? 0) + 18;
  if (exponent < 0) throw new Error(`${text} has more than 18 decimals`);
  return BigInt(digits) * 10n ** BigInt(exponent);
}

/** A decimal string such as `"0.0045"` as an integer × 10^-18. */
export function decimalToScaled(text: string): bigint {
  const [whole = '0', fraction = ''] = text.split('.');
  if (fraction.length > 18)
    throw new Error(`${text} has more than 18 decimals`);
  return BigInt(whole) * SCALE + BigInt(fraction.padEnd(18, '0'));
}
