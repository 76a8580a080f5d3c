/**
 * The output cap a request is sent with when it states none.
 *
 * A request's worst case is its input bound plus its output cap, and the
 * limits that count tokens or money reserve that worst case (DESIGN.md,
 * "The request path", step 2). A request that states no cap has none for
 * the upstream to honour: it may generate up to the model's own maximum,
 * far past the configured cap its reservation was made with, and so past
 * the limit. Under such a limit the gateway therefore sends the configured
 * cap upstream, which makes the reservation a true bound; elsewhere the
 * request goes as the client wrote it, since a cap the client never asked
 * for can cut an answer short.
 */
import type {
  CanonicalChatRequest,
  WireApi,
} from '../../protocol/canonical.js';
import type { TenantRecord } from '../../storage/store.js';
import type { GatewayContext } from '../gateway-context.js';

/** Who asks, and for what: what decides whether a limit applies. */
export interface CapScope {
  readonly tenant: TenantRecord;
  readonly keyId: string;
  readonly endUser: string | null;
  /** The public model name. */
  readonly model: string;
}

/**
 * The cap to impose on a request, or null to send it as it is: one that
 * states a cap of its own keeps it.
 */
export function outputCapFor(
  ctx: GatewayContext,
  scope: CapScope,
  request: Pick<
    CanonicalChatRequest,
    'maxOutputTokens' | 'thinkingBudgetTokens'
  >,
): number | null {
  return request.maxOutputTokens === null
    ? imposedOutputCap(ctx, scope, request.thinkingBudgetTokens)
    : null;
}

/**
 * The cap to impose on a request that states none, or null to send it as
 * it is. A thinking budget comes out of the same cap on every API that
 * takes one (Anthropic and Bedrock refuse a cap at or below it), so the
 * cap then sits that far above the configured one.
 */
export function imposedOutputCap(
  ctx: GatewayContext,
  scope: CapScope,
  thinkingBudgetTokens: number | null,
): number | null {
  const { defaultMaxOutputTokens, imposeOutputCap } = ctx.config.metering;
  if (imposeOutputCap === 'never') return null;
  if (imposeOutputCap === 'underLimits' && !ctx.admission.boundsOutput(scope)) {
    return null;
  }
  return thinkingBudgetTokens === null
    ? defaultMaxOutputTokens
    : thinkingBudgetTokens + defaultMaxOutputTokens;
}

/** The canonical request with `cap` as its output cap, if it had none. */
export function capCanonical(
  request: CanonicalChatRequest,
  cap: number | null,
): CanonicalChatRequest {
  if (cap === null || request.maxOutputTokens !== null) return request;
  return { ...request, maxOutputTokens: cap };
}

/**
 * The client's body, to pass through to an upstream of its own API, with
 * `cap` in the field that API reads it from.
 */
export function capBody(
  api: WireApi,
  body: Readonly<Record<string, unknown>>,
  cap: number,
): Readonly<Record<string, unknown>> {
  switch (api) {
    case 'openai-chat':
      // `max_tokens` is refused by OpenAI's reasoning models; the newer
      // field is read by every model and by vLLM and llama.cpp's servers.
      return { ...body, max_completion_tokens: cap };
    case 'openai-responses':
      return { ...body, max_output_tokens: cap };
    case 'anthropic-messages':
      // Required by the Messages API, so always present already.
      return { ...body, max_tokens: cap };
    case 'bedrock-converse': {
      const config = body['inferenceConfig'];
      return {
        ...body,
        inferenceConfig: {
          ...(typeof config === 'object' && config !== null ? config : {}),
          maxTokens: cap,
        },
      };
    }
  }
}
