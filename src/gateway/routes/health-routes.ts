import type { FastifyInstance } from 'fastify';

import type { GatewayContext } from '../gateway-context.js';

/** `GET /health`: 200 while serving, 503 once shutdown has begun. */
export function registerHealthRoutes(
  app: FastifyInstance,
  ctx: GatewayContext,
): void {
  app.get('/health', async (_request, reply) => {
    if (ctx.isShuttingDown()) {
      return reply.code(503).send({ status: 'shutting_down' });
    }
    return { status: 'ok', inflight: ctx.inflight.size };
  });
}
