/**
 * What the ledger keeps of a request's routing: the decision, the plan,
 * every attempt and pass-by (DESIGN.md, "The request path", step 3), and
 * the outcomes of the attempts that came before the one that answered.
 */
import type { AttemptOutcome, SettleContext } from '../../metering/meter.js';
import type { FastifyReply } from 'fastify';

import type { AttemptsOutcome } from '../../routing/attempts.js';
import type { RoutePlan } from '../../routing/router.js';
import type { AttemptFailure } from '../../routing/attempts.js';
import { ApiError } from '../api-error.js';
import { attemptDeployment } from './admission-record.js';
import type { Attempted } from './attempt-upstream.js';
import { settleClientGone, upstreamFailure, type Settle } from './lifecycle.js';

/** The routing record as stored with the request (JSON). */
export interface RoutingRecord {
  readonly decision: RoutePlan['decision'];
  /** Deployment ids in the order they were to be tried. */
  readonly plan: readonly string[];
  readonly attempts: Extract<AttemptsOutcome<unknown>, { kind: 'none' }>['log'];
}

export class AttemptLedger {
  readonly #plan: RoutePlan;
  #outcome: AttemptsOutcome<unknown> | undefined;

  constructor(plan: RoutePlan) {
    this.#plan = plan;
  }

  record(outcome: AttemptsOutcome<unknown>): void {
    this.#outcome = outcome;
  }

  /** The outcome of the attempt that answered (or the first, if none). */
  final(outcome: Parameters<Settle>[0]): AttemptOutcome {
    const last = this.#outcome;
    if (last?.kind !== 'answered') return { attempt: 1, ...outcome };
    return {
      attempt: last.attempt,
      deployment: attemptDeployment(last.deployment),
      ...outcome,
    };
  }

  context(): SettleContext {
    const outcome = this.#outcome;
    const record: RoutingRecord = {
      decision: this.#plan.decision,
      plan: this.#plan.deployments.map((d) => d.id),
      attempts: outcome?.log ?? [],
    };
    return {
      earlier: (outcome?.earlier ?? []).map((e): AttemptOutcome => ({
        attempt: e.attempt,
        deployment: attemptDeployment(e.deployment),
        usage: e.failure.usage,
        statusCode: e.failure.statusCode,
        errorCode: e.failure.errorCode,
        upstreamRequestId: null,
      })),
      routing: JSON.stringify(record),
    };
  }
}

/** No attempt was made: every deployment was passed by, or not recorded. */
export function noDeploymentError(
  reason: 'circuit_open' | 'deadline' | 'unusable' | 'unrecorded',
  cause?: unknown,
): ApiError {
  if (reason === 'unrecorded') {
    // Only the ledger's refusal stops an attempt before its call.
    return new ApiError(
      'ledger_unavailable',
      'The gateway could not record its next attempt at the request, so ' +
        'it made none; try again shortly.',
      { retryAfter: '1', cause },
    );
  }
  return new ApiError(
    'no_deployment_available',
    reason === 'deadline'
      ? 'No upstream provider answered before the routing deadline.'
      : 'No deployment of this model can take requests right now; ' +
          'try again shortly.',
  );
}

/** The client's error for an attempt that got no answer at all. */
export function attemptError(
  failure: AttemptFailure | null,
  error: unknown,
): ApiError {
  if (failure?.errorCode === 'upstream_timeout') {
    return new ApiError(
      'upstream_timeout',
      'The upstream provider did not answer in time.',
      { cause: error },
    );
  }
  return upstreamFailure(error);
}

/**
 * The answer the attempts ended with, to serve; or, when there is none
 * (every deployment passed by, or the last attempt got no answer at
 * all), the request settled and its error thrown, or, for a client that
 * left, settled and undefined.
 */
export async function answerOf(
  outcome: AttemptsOutcome<Attempted>,
  settle: Settle,
  reply: FastifyReply,
  clientLeft: () => boolean,
): Promise<Exclude<Attempted, { kind: 'thrown' }> | undefined> {
  if (outcome.kind === 'none') {
    const failure = noDeploymentError(outcome.reason, outcome.error);
    await settle({
      usage: { kind: 'none' },
      statusCode: failure.status,
      errorCode: failure.code,
      upstreamRequestId: null,
    });
    throw failure;
  }
  const value = outcome.value;
  if (value.kind !== 'thrown') return value;
  // An answer cut off after its 200 may be billed: it is estimated.
  const usage = outcome.failure?.usage ?? { kind: 'none' };
  if (clientLeft()) {
    await settleClientGone(reply, settle, usage, null);
    return undefined;
  }
  const failure = attemptError(outcome.failure, value.error);
  await settle({
    usage,
    statusCode: failure.status,
    errorCode: failure.code,
    upstreamRequestId: null,
  });
  throw failure;
}
