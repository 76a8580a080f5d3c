/**
 * Who is calling: a tenant's virtual key or the admin token.
 *
 * Keys arrive as `Authorization: Bearer <key>`, as the OpenAI SDKs send
 * them, or as Anthropic's SDK sends them, `x-api-key: <key>`. A missing, malformed, unknown or revoked key is refused the same
 * way, so probing reveals nothing about which keys exist.
 */
import type { FastifyRequest } from 'fastify';

import type { ApiKeyRecord, Store, TenantRecord } from '../storage/store.js';
import { parseKey, secretMatches, tokensEqual } from '../tenants/api-keys.js';
import { ApiError } from './api-error.js';

export interface TenantCaller {
  readonly kind: 'tenant';
  readonly tenant: TenantRecord;
  readonly key: ApiKeyRecord;
}

export interface AdminCaller {
  readonly kind: 'admin';
}

export type Caller = TenantCaller | AdminCaller;

export class Authenticator {
  readonly #store: Store;
  readonly #adminToken: string | undefined;

  constructor(store: Store, adminToken: string | undefined) {
    this.#store = store;
    this.#adminToken = adminToken;
  }

  /** A tenant key, or 401. */
  async tenant(request: FastifyRequest): Promise<TenantCaller> {
    const token = bearerToken(request);
    if (this.#isAdminToken(token)) {
      throw new ApiError(
        'invalid_api_key',
        'This endpoint takes a tenant key; the admin token is not one. ' +
          'Admin routes are under /admin/v1.',
      );
    }
    const caller = await this.#tenantFromToken(token);
    if (!caller) throw invalidKey();
    return caller;
  }

  /** A tenant key or the admin token, or 401. */
  async tenantOrAdmin(request: FastifyRequest): Promise<Caller> {
    const token = bearerToken(request);
    if (this.#isAdminToken(token)) return { kind: 'admin' };
    const caller = await this.#tenantFromToken(token);
    if (!caller) throw invalidKey();
    return caller;
  }

  /** The admin token, or 401. */
  admin(request: FastifyRequest): AdminCaller {
    if (this.#adminToken === undefined) {
      throw new ApiError(
        'admin_required',
        'The admin API is disabled: set adminToken in the config or the ' +
          'TOLLGATE_ADMIN_TOKEN environment variable.',
      );
    }
    if (!this.#isAdminToken(bearerToken(request))) {
      throw new ApiError(
        'admin_required',
        'This endpoint needs the admin token as a Bearer token.',
      );
    }
    return { kind: 'admin' };
  }

  #isAdminToken(token: string): boolean {
    return (
      this.#adminToken !== undefined && tokensEqual(token, this.#adminToken)
    );
  }

  async #tenantFromToken(token: string): Promise<TenantCaller | undefined> {
    const parsed = parseKey(token);
    if (!parsed) return undefined;
    const key = await this.#store.findApiKey(parsed.id);
    if (!key || !secretMatches(parsed.secret, key.secretHash)) return undefined;
    if (key.revokedAt !== null) return undefined;
    const tenant = await this.#store.findTenant(key.tenantId);
    if (!tenant) return undefined;
    return { kind: 'tenant', tenant, key };
  }
}

/**
 * The key as each SDK sends it: `Authorization: Bearer` (OpenAI, and the
 * AWS SDK with a Bedrock API key), else `x-api-key` (Anthropic).
 */
function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (!header) {
    const apiKey = request.headers['x-api-key'];
    if (typeof apiKey === 'string' && apiKey.trim() !== '') {
      return apiKey.trim();
    }
    throw new ApiError(
      'missing_api_key',
      'You did not provide an API key. Send it as ' +
        '"Authorization: Bearer <key>" or "x-api-key: <key>".',
    );
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) {
    throw new ApiError(
      'missing_api_key',
      'The Authorization header must be "Bearer <key>".',
    );
  }
  return match[1];
}

function invalidKey(): ApiError {
  return new ApiError(
    'invalid_api_key',
    'Incorrect API key provided, or the key was revoked.',
  );
}

/** Whether a key may call a public model name. */
export function keyAllows(key: ApiKeyRecord, model: string): boolean {
  return key.models === null || key.models.includes(model);
}
