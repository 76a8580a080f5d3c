/**
 * Virtual API keys: `tg_<key id>_<secret>`.
 *
 * The key id is public and indexes the stored record; the secret is 32
 * random bytes, stored only as its SHA-256 and compared in constant time.
 * A key is shown once, when it is created (DESIGN.md, "Tenancy and
 * security").
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY_PATTERN = /^tg_(key_[0-9a-z]{26})_([A-Za-z0-9_-]{43})$/;

export interface NewKey {
  readonly id: string;
  /** The full key, to show to its owner once. */
  readonly key: string;
  readonly secretHash: Buffer;
}

export function generateKey(id: string): NewKey {
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `tg_${id}_${secret}`, secretHash: hashSecret(secret) };
}

export interface ParsedKey {
  readonly id: string;
  readonly secret: string;
}

/** Splits a presented key; `undefined` if it is not shaped like one. */
export function parseKey(presented: string): ParsedKey | undefined {
  const match = KEY_PATTERN.exec(presented);
  if (!match?.[1] || !match[2]) return undefined;
  return { id: match[1], secret: match[2] };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time check of a presented secret against a stored hash. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return (
    presented.length === storedHash.length &&
    timingSafeEqual(presented, storedHash)
  );
}

/** Constant-time equality of two tokens of any length. */
export function tokensEqual(a: string, b: string): boolean {
  return timingSafeEqual(hashSecret(a), hashSecret(b));
}
