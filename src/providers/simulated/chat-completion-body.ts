/**
 * The non-streaming answer, key for key and in OpenAI's key order, as in
 * the recorded response this was checked against
 * (`openai_chat_nonstream_text.json` of the shared wire fixtures).
 *
 * @see https://platform.openai.com/docs/api-reference/chat/object
 */
import type { CompletionPlan } from './plan-completion.js';
import { simText } from './sim-text.js';
import { toWireUsage } from './simulated-usage.js';

/** The JSON text of a `chat.completion` object. */
export function chatCompletionBody(plan: CompletionPlan): string {
  const choices = [];
  for (let index = 0; index < plan.choices; index++) {
    choices.push({
      index,
      message: {
        role: 'assistant',
        content: simText(index, 0, plan.textTokens),
        refusal: null,
        annotations: [],
      },
      logprobs: null,
      finish_reason: plan.finishReason,
    });
  }

  return JSON.stringify({
    id: plan.id,
    object: 'chat.completion',
    created: plan.created,
    model: plan.model,
    choices,
    usage: toWireUsage(plan.usage, plan.choices),
    service_tier: 'default',
    system_fingerprint: plan.systemFingerprint,
  });
}
