/**
 * `POST /v1/chat/completions` on the simulated upstream: validate as
 * OpenAI would, plan the answer, wait out the simulated latency, then
 * answer in JSON or as an event stream, or fail as the request's
 * `tollgate_sim_fault` says.
 *
 * Validation answers at once; only a valid request "reaches the model" and
 * waits `latencyMs`, as time to first byte does upstream.
 */
import type { ServerResponse } from 'node:http';

import { chatChunkFrames } from './chat-chunk-frames.js';
import { chatCompletionBody } from './chat-completion-body.js';
import { parseChatRequest, type ChatRequest } from './parse-chat-request.js';
import { planCompletion, type CompletionPlan } from './plan-completion.js';
import { pumpSse, type StreamCut } from './pump-sse.js';
import { sendJson, sendWireError } from './send-json.js';
import {
  parseSimulatedFault,
  statusFaultError,
  type SimulatedFault,
} from './simulated-fault.js';

export interface ChatAnswerSettings {
  readonly latencyMs: number;
  readonly chunkIntervalMs: number;
  readonly tokensPerChunk: number;
}

/** Throws a `WireError` (400) for a request OpenAI would refuse. */
export function answerChatCompletion(
  response: ServerResponse,
  body: unknown,
  settings: ChatAnswerSettings,
): void {
  const request = parseChatRequest(body);
  const fault = parseSimulatedFault(request.metadata);
  const plan = planCompletion(request);

  afterDelay(response, settings.latencyMs, () => {
    if (fault?.kind === 'status') {
      sendWireError(response, statusFaultError(fault.status, request.model));
    } else if (fault?.kind === 'hang') {
      // Say nothing; the client's timeout or the server's close ends it.
    } else if (request.stream) {
      stream(response, request, plan, fault, settings);
    } else if (fault?.kind === 'drop-after') {
      response.destroy();
    } else if (fault?.kind !== 'stall-after') {
      sendJson(response, 200, chatCompletionBody(plan));
    }
  });
}

function stream(
  response: ServerResponse,
  request: ChatRequest,
  plan: CompletionPlan,
  fault: SimulatedFault | undefined,
  settings: ChatAnswerSettings,
): void {
  const frames = chatChunkFrames(plan, {
    tokensPerChunk: settings.tokensPerChunk,
    includeUsage: request.includeUsage,
    withholdUsage: fault?.kind === 'no-usage',
    includeObfuscation: request.includeObfuscation,
  });
  let cut: StreamCut | undefined;
  if (fault?.kind === 'drop-after') {
    cut = { afterChunks: fault.chunks, then: 'drop' };
  } else if (fault?.kind === 'stall-after') {
    cut = { afterChunks: fault.chunks, then: 'stall' };
  }

  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
  });
  pumpSse(response, frames, { intervalMs: settings.chunkIntervalMs, cut });
}

/** Runs `then` after `ms`, synchronously when 0, never after a close. */
function afterDelay(
  response: ServerResponse,
  ms: number,
  then: () => void,
): void {
  if (ms <= 0) {
    then();
    return;
  }
  const timer = setTimeout(then, ms);
  response.once('close', () => clearTimeout(timer));
}
