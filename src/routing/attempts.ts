/**
 * Walks a request's plan: tries deployments in order, retrying one with
 * exponential backoff and jitter (or its `Retry-After`) where a failure
 * is transient, falling back to the next where the failure is one the
 * route falls back on, passing by deployments whose breaker is open, all
 * within the per-attempt and overall deadlines.
 *
 * An attempt ends when the answer begins (headers, and for a stream its
 * first event), so a stream falls back only before any byte of it
 * reaches the client. What happens after that is the caller's.
 */
import { decorrelatedJitterGenerator, ExponentialBackoff } from 'cockatiel';
import type { IBackoff } from 'cockatiel';

import type { FallbackTrigger } from '../config/config-schema.js';
import type { AttemptUsage } from '../metering/meter.js';
import type { DeploymentHealth } from './deployment-health.js';
import type { Deployment, Route } from './route-table.js';
import type { RoutePlan } from './router.js';

/** Why an attempt did not give the answer. */
export interface AttemptFailure {
  /** Which fallback class it is in; null for a final answer (a 400). */
  readonly trigger: FallbackTrigger | null;
  /** How long the upstream asked to be left alone, if it said. */
  readonly retryAfterMs: number | null;
  readonly statusCode: number | null;
  readonly errorCode: string;
  /** What the provider may bill for it (a filtered answer is billed). */
  readonly usage: AttemptUsage;
}

/** One attempt's result: a value to answer with, failed or not. */
export interface AttemptResult<T> {
  readonly value: T;
  /** Null when the value is the answer. */
  readonly failure: AttemptFailure | null;
}

/** An entry of the routing record: one attempt, or one pass-by. */
export interface AttemptLog {
  /** The attempt's number (the usage event's); null for a pass-by. */
  readonly attempt: number | null;
  readonly deployment: string;
  readonly outcome: 'answered' | 'failed' | 'skipped';
  /** Why it failed or was passed by: a trigger, an error code, a state. */
  readonly reason: string | null;
  readonly statusCode: number | null;
  /** From the attempt's start to its answer or failure. */
  readonly ms: number;
  /** Waited before it (backoff or `Retry-After`). */
  readonly waitedMs: number;
}

/** An earlier attempt that failed, for the ledger. */
export interface FailedAttempt {
  readonly attempt: number;
  readonly deployment: Deployment;
  readonly failure: AttemptFailure;
}

export type AttemptsOutcome<T> =
  | {
      /** The last attempt made: its value is what the client gets. */
      readonly kind: 'answered';
      readonly value: T;
      readonly failure: AttemptFailure | null;
      readonly deployment: Deployment;
      readonly attempt: number;
      readonly earlier: readonly FailedAttempt[];
      readonly log: readonly AttemptLog[];
    }
  | {
      /**
       * No attempt was made: every deployment was passed by, or the
       * next attempt could not be recorded (`unrecorded`, with why).
       */
      readonly kind: 'none';
      readonly reason: 'circuit_open' | 'deadline' | 'unusable' | 'unrecorded';
      readonly error?: unknown;
      readonly earlier: readonly FailedAttempt[];
      readonly log: readonly AttemptLog[];
    };

export interface AttemptContext {
  /** Aborted when the client leaves, the deadline passes, or shutdown. */
  readonly signal: AbortSignal;
  /** Why the signal was aborted by routing itself, if it was. */
  readonly timedOut: () => 'attempt' | 'overall' | null;
}

export async function runAttempts<T>(args: {
  readonly route: Route;
  readonly plan: RoutePlan;
  readonly health: DeploymentHealth;
  /** The client's (and shutdown's) signal. */
  readonly signal: AbortSignal;
  /**
   * Whether the client has gone without aborting the signal (a client
   * of a non-streamed request, whose call is left to finish so that its
   * usage is known): no further attempt is made for it.
   */
  readonly clientGone?: () => boolean;
  /** Whether a deployment can serve this request at all (translation). */
  readonly usable?: (deployment: Deployment) => boolean;
  /**
   * Called before every attempt but a first one at the plan's first
   * usable deployment (where the request was recorded), to record it
   * durably.
   */
  readonly begin: (attempt: number, deployment: Deployment) => Promise<void>;
  readonly attempt: (
    deployment: Deployment,
    attempt: number,
    context: AttemptContext,
  ) => Promise<AttemptResult<T>>;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * Lets go of a failed attempt's value once another attempt supersedes
   * it (closes a stream nobody will read).
   */
  readonly discard?: (value: T) => void;
}): Promise<AttemptsOutcome<T>> {
  const { route, plan, health } = args;
  const policy = route.retry;
  const sleep = args.sleep ?? sleepUnlessAborted;
  const started = Date.now();
  const deadline =
    policy.timeoutMs === null ? Infinity : started + policy.timeoutMs;
  const recorded = plan.deployments.find((d) => args.usable?.(d) ?? true);
  let unrecorded: { error: unknown } | undefined;
  const log: AttemptLog[] = [];
  const earlier: FailedAttempt[] = [];
  let attempts = 0;
  let passedBy: 'circuit_open' | 'deadline' | 'unusable' = 'unusable';
  let last:
    | {
        value: T;
        failure: AttemptFailure | null;
        deployment: Deployment;
        attempt: number;
      }
    | undefined;

  deployments: for (const deployment of plan.deployments) {
    if (args.usable && !args.usable(deployment)) {
      log.push(skipped(deployment, 'untranslatable'));
      continue;
    }
    const backoff = new ExponentialBackoff({
      generator: decorrelatedJitterGenerator,
      initialDelay: policy.initialBackoffMs,
      maxDelay: policy.maxBackoffMs,
    });
    let delay: IBackoff<unknown> | undefined;
    let waitedMs = 0;
    for (let tryOfThis = 0; tryOfThis <= policy.retries; tryOfThis++) {
      if (attempts >= policy.maxAttempts) break deployments;
      if (args.signal.aborted || args.clientGone?.()) break deployments;
      if (Date.now() >= deadline) {
        passedBy = 'deadline';
        log.push(skipped(deployment, 'deadline'));
        break deployments;
      }
      const number = attempts + 1;
      const begun = Date.now();
      const verdict = await health.guard(
        deployment.id,
        route.breaker,
        async () => {
          attempts = number;
          // The request was recorded at the plan's first usable
          // deployment; any other attempt is recorded before its call.
          if (number > 1 || deployment !== recorded) {
            try {
              await args.begin(number, deployment);
            } catch (error) {
              // Not recorded, not made: says nothing of the deployment.
              unrecorded = { error };
              return { failed: 'neutral' as const, value: null };
            }
          }
          // The last attempt's answer will not be the client's now.
          if (last) args.discard?.(last.value);
          const result = await timed(
            args.signal,
            policy.attemptTimeoutMs,
            deadline,
            (context) => args.attempt(deployment, number, context),
          );
          return {
            failed: countsAgainst(result.failure, args.signal),
            value: result,
          };
        },
      );
      if (unrecorded) {
        return {
          kind: 'none',
          reason: 'unrecorded',
          error: unrecorded.error,
          earlier,
          log,
        };
      }
      if (!verdict.ran) {
        passedBy = 'circuit_open';
        log.push(skipped(deployment, verdict.reason));
        continue deployments;
      }
      // Null only when not recorded, which returned above.
      const result = verdict.value as AttemptResult<T>;
      const ms = Date.now() - begun;
      last = { ...result, deployment, attempt: number };
      const failure = result.failure;
      if (failure === null) {
        health.observeLatency(deployment.id, ms);
        log.push({
          attempt: number,
          deployment: deployment.id,
          outcome: 'answered',
          reason: null,
          statusCode: 200,
          ms,
          waitedMs,
        });
        return { kind: 'answered', ...last, earlier, log };
      }
      log.push({
        attempt: number,
        deployment: deployment.id,
        outcome: 'failed',
        reason: failure.trigger ?? failure.errorCode,
        statusCode: failure.statusCode,
        ms,
        waitedMs,
      });
      if (args.signal.aborted || failure.trigger === null) break deployments;

      const fallBack = policy.fallbackOn.has(failure.trigger);
      // What a retry of the same deployment waits, if one is worth it
      // (and allowed: no wait for an attempt maxAttempts rules out).
      let wait: number | null = null;
      if (
        tryOfThis < policy.retries &&
        attempts < policy.maxAttempts &&
        retriable(failure.trigger)
      ) {
        delay = delay ? delay.next(undefined) : backoff.next();
        wait = Math.max(delay.duration, failure.retryAfterMs ?? 0);
        if (
          failure.retryAfterMs !== null &&
          failure.retryAfterMs > policy.maxRetryAfterMs
        ) {
          wait = null;
        }
        if (wait !== null && Date.now() + wait >= deadline) wait = null;
      }
      if (wait === null) {
        if (!fallBack) break deployments;
        earlier.push({ attempt: number, deployment, failure });
        continue deployments;
      }
      earlier.push({ attempt: number, deployment, failure });
      await sleep(wait, args.signal);
      waitedMs = wait;
    }
  }

  if (last) {
    // The last attempt's answer is the client's; it is not "earlier".
    const own = earlier.findIndex((e) => e.attempt === last.attempt);
    if (own >= 0) earlier.splice(own, 1);
    return { kind: 'answered', ...last, earlier, log };
  }
  return { kind: 'none', reason: passedBy, earlier, log };
}

/**
 * What an attempt says of its deployment's health, for its breaker: a
 * 5xx, a timeout or a connection failure counts against it; an attempt
 * cut short by the client (or shutdown) says nothing.
 */
function countsAgainst(
  failure: AttemptFailure | null,
  signal: AbortSignal,
): boolean | 'neutral' {
  if (failure === null) return false;
  if (signal.aborted) return 'neutral';
  return (
    failure.trigger === 'server_error' ||
    failure.trigger === 'timeout' ||
    failure.trigger === 'connection'
  );
}

/** Failures worth trying the same deployment again for. */
function retriable(trigger: FallbackTrigger): boolean {
  return (
    trigger === 'server_error' ||
    trigger === 'rate_limited' ||
    trigger === 'timeout' ||
    trigger === 'connection'
  );
}

function skipped(deployment: Deployment, reason: string): AttemptLog {
  return {
    attempt: null,
    deployment: deployment.id,
    outcome: 'skipped',
    reason,
    statusCode: null,
    ms: 0,
    waitedMs: 0,
  };
}

/**
 * Runs one attempt under its own signal: aborted with the client's, when
 * the attempt's deadline passes, or when the overall one does. Once the
 * attempt has answered, only the client's signal can abort it (the
 * answer's body is read under it).
 */
async function timed<T>(
  outer: AbortSignal,
  attemptTimeoutMs: number | null,
  deadline: number,
  run: (context: AttemptContext) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timedOut: 'attempt' | 'overall' | null = null;
  const onOuter = () => controller.abort(outer.reason);
  if (outer.aborted) controller.abort(outer.reason);
  else outer.addEventListener('abort', onOuter, { once: true });
  const timers: NodeJS.Timeout[] = [];
  const arm = (ms: number, which: 'attempt' | 'overall') => {
    const timer = setTimeout(
      () => {
        timedOut ??= which;
        controller.abort(new Error(`routing ${which} deadline`));
      },
      Math.max(0, ms),
    );
    timer.unref();
    timers.push(timer);
  };
  const overall = deadline - Date.now();
  if (attemptTimeoutMs !== null && attemptTimeoutMs <= overall) {
    arm(attemptTimeoutMs, 'attempt');
  } else if (Number.isFinite(overall)) {
    arm(overall, 'overall');
  }
  try {
    return await run({ signal: controller.signal, timedOut: () => timedOut });
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
}

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
