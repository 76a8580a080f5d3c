/**
 * Drives a running gateway with the official `openai` SDK from a trace,
 * the way a real application would, and reads back what it metered.
 *
 * Row i goes to tenant `i mod N` and model `i mod M`. Each request carries
 * a prompt of about the row's size and `max_tokens` equal to the row's
 * output count, so the gateway sees real body sizes. The exact counts ride
 * along in `metadata`, which the gateway forwards like any other field and
 * which the simulated upstream reports back in its usage block; the
 * gateway itself meters only from that usage block. Client retries are
 * off, so every row is exactly one request.
 */
import OpenAI from 'openai';

import type { TraceRow } from './trace.js';

export interface ReplayTenant {
  readonly name: string;
  readonly key: string;
}

export type StreamMode = 'off' | 'on' | 'mixed';

export interface ReplayOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8787`. */
  readonly gatewayUrl: string;
  readonly tenants: readonly ReplayTenant[];
  readonly models: readonly string[];
  readonly rows: readonly TraceRow[];
  readonly concurrency: number;
  /** `max`: as fast as possible; a number scales the trace's own gaps. */
  readonly speed: number | 'max';
  /** `mixed` streams the odd rows. */
  readonly stream: StreamMode;
  readonly onRow?: (result: RowResult) => void;
}

export interface RowResult {
  readonly index: number;
  readonly tenant: number;
  readonly model: string;
  readonly streamed: boolean;
  /** The gateway's id for the request, from `x-request-id`. */
  readonly requestId: string | null;
  /** The whole response reached the client. */
  readonly completed: boolean;
  readonly error: string | null;
}

/** Metadata keys the simulated upstream reads its token counts from. */
export const SIM_PROMPT_TOKENS = 'tollgate_sim_prompt_tokens';
export const SIM_COMPLETION_TOKENS = 'tollgate_sim_completion_tokens';

export async function runReplay(options: ReplayOptions): Promise<RowResult[]> {
  if (options.tenants.length === 0) throw new Error('replay needs a tenant');
  if (options.models.length === 0) throw new Error('replay needs a model');

  const clients = options.tenants.map(
    (tenant) =>
      new OpenAI({
        baseURL: `${options.gatewayUrl}/v1`,
        apiKey: tenant.key,
        maxRetries: 0,
        timeout: 10 * 60_000,
      }),
  );
  const results: RowResult[] = new Array<RowResult>(options.rows.length);
  const origin = options.rows[0]?.at ?? 0;
  const started = performance.now();
  let next = 0;

  const worker = async () => {
    while (next < options.rows.length) {
      const position = next++;
      const row = options.rows[position];
      if (!row) break;
      if (options.speed !== 'max') {
        const due = started + (row.at - origin) / options.speed;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const tenant = row.index % options.tenants.length;
      const client = clients[tenant];
      const model = options.models[row.index % options.models.length];
      if (!client || model === undefined) throw new Error('unreachable');
      const streamed =
        options.stream === 'on' ||
        (options.stream === 'mixed' && row.index % 2 === 1);
      const result = await sendRow(client, row, tenant, model, streamed);
      results[position] = result;
      options.onRow?.(result);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, options.concurrency) }, worker),
  );
  return results;
}

async function sendRow(
  client: OpenAI,
  row: TraceRow,
  tenant: number,
  model: string,
  streamed: boolean,
): Promise<RowResult> {
  const base = { index: row.index, tenant, model, streamed };
  const request = {
    model,
    messages: [
      { role: 'user' as const, content: promptOfSize(row.inputTokens) },
    ],
    max_tokens: Math.max(1, row.outputTokens),
    metadata: {
      [SIM_PROMPT_TOKENS]: String(row.inputTokens),
      [SIM_COMPLETION_TOKENS]: String(row.outputTokens),
    },
  };
  let requestId: string | null = null;
  try {
    if (streamed) {
      const { data: stream, response } = await client.chat.completions
        .create({
          ...request,
          stream: true,
          stream_options: { include_usage: true },
        })
        .withResponse();
      requestId = response.headers.get('x-request-id');
      let sawUsage = false;
      for await (const chunk of stream) {
        if (chunk.usage) sawUsage = true;
      }
      if (!sawUsage) throw new Error('the stream ended without its usage');
    } else {
      const { response } = await client.chat.completions
        .create(request)
        .withResponse();
      requestId = response.headers.get('x-request-id');
    }
    return { ...base, requestId, completed: true, error: null };
  } catch (error) {
    const id =
      error instanceof OpenAI.APIError
        ? (error.requestID ?? requestId)
        : requestId;
    return {
      ...base,
      requestId: id ?? null,
      completed: false,
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

/**
 * A prompt of about `tokens` tokens: one short word per token, which every
 * BPE tokenizer in use encodes as one token each.
 */
export function promptOfSize(tokens: number): string {
  return 'a '.repeat(Math.max(1, tokens)).trimEnd();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
