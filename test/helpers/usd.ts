/**
 * Exact USD amounts for test expectations, in BigInt picodollars, sharing
 * no code with the gateway's decimal arithmetic.
 */

/**
 * Σ tokens × rate / 10^6 as a canonical decimal string, for rates in USD
 * per 1M tokens with at most six decimals.
 *
 * @example usd([1000, '2.5'], [200, '10']) // '0.0045'
 */
export function usd(...terms: readonly (readonly [number, string])[]): string {
  let picoDollars = 0n;
  for (const [tokens, rate] of terms) {
    const [whole = '0', fraction = ''] = rate.split('.');
    if (fraction.length > 6) throw new Error(`rate ${rate} is too precise`);
    const microRate = BigInt(whole + fraction.padEnd(6, '0'));
    picoDollars += BigInt(tokens) * microRate;
  }
  const scale = 10n ** 12n;
  const whole = picoDollars / scale;
  const fraction = (picoDollars % scale)
    .toString()
    .padStart(12, '0')
    .replace(/0+$/, '');
  return fraction === '' ? String(whole) : `${whole}.${fraction}`;
}
