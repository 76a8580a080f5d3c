/**
 * Identifiers: a type prefix, then a millisecond timestamp and randomness in
 * Crockford base32, so ids sort by creation time and never collide in
 * practice (80 random bits).
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

export function newId(prefix: string, now: number = Date.now()): string {
  let time = '';
  let rest = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET.charAt(rest % 32) + time;
    rest = Math.floor(rest / 32);
  }
  const random = randomBytes(10);
  let tail = '';
  // 80 random bits → 16 base32 digits, 5 bits at a time.
  let buffer = 0;
  let bits = 0;
  for (const byte of random) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      tail += ALPHABET.charAt((buffer >> bits) & 31);
    }
  }
  return `${prefix}_${time}${tail}`;
}
