import type { FastifyInstance } from 'fastify';

import type { GatewayContext } from '../gateway-context.js';

/**
 * `GET /health`: 200 while serving, 503 once shutdown has begun. `spooled`
 * counts the settlements the ledger store refused that wait in this
 * process's spool: above zero, the store is down or refusing writes.
 * The gateway still serves then (usage is kept exactly, on local disk),
 * so it stays 200, and a load balancer keeps sending it traffic; alert
 * on the count instead. `unsettled` likewise counts the counter
 * settlements the counter store (Redis) has not taken yet: their
 * reservations still hold room until it is back and they are retried.
 */
export function registerHealthRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  app.get('/health', async (_request, reply) => {
    if (ctx.isShuttingDown()) {
      return reply.code(503).send({ status: 'shutting_down' });
    }
    return {
      status: 'ok',
      inflight: ctx.inflight.size,
      spooled: ctx.spooledSettlements(),
      unsettled: ctx.admission.unsettled,
    };
  });
}
