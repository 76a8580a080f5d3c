/**
 * Fault injection: `metadata.tollgate_sim_fault` makes the simulated
 * upstream fail the way real upstreams do, so the gateway's handling of
 * each failure (retries, timeouts, half-metered streams) can be tested.
 *
 * - `status:<code>`: answer that status (400–599) with an OpenAI error
 *   body; a 429 also carries `retry-after: 1`.
 * - `hang`: never answer, until the client gives up or the server closes.
 * - `drop-after:<k>`: send k stream chunks, then destroy the socket
 *   without `[DONE]`. A non-streaming request loses its socket unanswered.
 * - `stall-after:<k>`: send k stream chunks, then go silent with the
 *   socket open. A non-streaming request hangs.
 * - `no-usage`: leave out the usage chunk even when the request asked for
 *   it (`stream_options.include_usage`).
 *
 * An unknown fault is a 400, so a typo cannot pass for a healthy run.
 */
import { WireError } from './wire-error.js';

export const SIM_FAULT_KEY = 'tollgate_sim_fault';

export type SimulatedFault =
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'hang' }
  | { readonly kind: 'drop-after'; readonly chunks: number }
  | { readonly kind: 'stall-after'; readonly chunks: number }
  | { readonly kind: 'no-usage' };

const FAULT_PATTERN =
  /^(?:(hang|no-usage)|(status|drop-after|stall-after):(\d{1,6}))$/;

export function parseSimulatedFault(
  metadata: Readonly<Record<string, string>>,
): SimulatedFault | undefined {
  const value = metadata[SIM_FAULT_KEY];
  if (value === undefined) return undefined;

  const match = FAULT_PATTERN.exec(value);
  const [, bare, kind, digits] = match ?? [];
  if (bare === 'hang' || bare === 'no-usage') return { kind: bare };

  const number = Number(digits);
  if (kind === 'drop-after' || kind === 'stall-after') {
    return { kind, chunks: number };
  }
  if (kind === 'status' && number >= 400 && number <= 599) {
    return { kind, status: number };
  }
  throw new WireError(
    400,
    `Invalid 'metadata.${SIM_FAULT_KEY}': '${value}' is none of hang, ` +
      'no-usage, status:<400-599>, drop-after:<k>, stall-after:<k>.',
    { param: `metadata.${SIM_FAULT_KEY}`, code: 'invalid_value' },
  );
}

/** What api.openai.com says with each status, as near as is known. */
export function statusFaultError(status: number, model: string): WireError {
  switch (status) {
    case 401:
      return new WireError(status, 'Incorrect API key provided.', {
        code: 'invalid_api_key',
      });
    case 404:
      return new WireError(
        status,
        `The model \`${model}\` does not exist or you do not have access ` +
          'to it.',
        { code: 'model_not_found' },
      );
    case 429:
      return new WireError(
        status,
        `Rate limit reached for ${model} on requests per min (RPM). ` +
          'Please try again in 1s.',
        {
          type: 'requests',
          code: 'rate_limit_exceeded',
          headers: { 'retry-after': '1' },
        },
      );
    case 500:
      return new WireError(
        status,
        'The server had an error while processing your request. Sorry ' +
          'about that!',
        { type: 'server_error' },
      );
    case 503:
      return new WireError(
        status,
        'The server is overloaded or not ready yet.',
        { type: 'server_error' },
      );
  }
  return new WireError(status, `Simulated upstream failure (${status}).`, {
    type: status >= 500 ? 'server_error' : 'invalid_request_error',
  });
}
