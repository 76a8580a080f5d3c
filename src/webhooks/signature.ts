/**
 * Webhook signatures, in Stripe's scheme: the header
 * `tollgate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` signs the
 * string `<t>.<body>` with the endpoint's secret. A receiver recomputes
 * the HMAC over the raw body it got, compares in constant time, and
 * refuses a timestamp too far from its clock (a replay).
 */
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'tollgate-signature';

/** The signature header's value for `body` sent at `seconds`. */
export function signatureHeader(
  secret: string,
  body: string,
  seconds: number,
): string {
  const hmac = createHmac('sha256', secret)
    .update(`${seconds}.${body}`)
    .digest('hex');
  return `t=${seconds},v1=${hmac}`;
}
