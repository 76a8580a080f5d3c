/**
 * `tollgate models`: the public model names a config serves, where each
 * goes, and the price in force for it today.
 */
import type { Config } from '../config/config-schema.js';
import { formatDecimal, type Decimal } from '../money/decimal.js';
import { PriceBook } from '../pricing/price-book.js';
import { shippedCatalog } from '../pricing/shipped-catalog.js';
import {
  deploymentId,
  operatorPrices,
  priceKeyOf,
} from '../routing/route-table.js';
import { formatTable } from './format-table.js';

export function modelsText(config: Config, json: boolean): string {
  const priceBook = PriceBook.create(shippedCatalog(), operatorPrices(config));
  const now = Date.now();
  const rows = Object.entries(config.models).flatMap(([alias, model]) =>
    model.deployments.map((d) => {
      const priceKey = priceKeyOf(alias, d);
      const price = priceBook.lookup(priceKey, now, 0);
      const rate = (value: Decimal | null | undefined) =>
        value === null || value === undefined ? null : formatDecimal(value);
      return {
        model: alias,
        deployment: deploymentId(alias, d),
        provider: d.provider,
        upstream_model: d.model,
        price_key: priceKey,
        rate_id: price?.rateId ?? null,
        input: rate(price?.rates.input),
        cache_read: rate(price?.rates.cacheRead),
        cache_write: rate(price?.rates.cacheWrite),
        cache_write_1h: rate(price?.rates.cacheWrite1h),
        output: rate(price?.rates.output),
      };
    }),
  );
  if (json) return JSON.stringify(rows, null, 2);
  const show = (value: string | null) => value ?? '-';
  return [
    formatTable(
      [
        { header: 'model' },
        { header: 'provider' },
        { header: 'upstream model' },
        { header: 'input', align: 'right' },
        { header: 'cache read', align: 'right' },
        { header: 'cache write', align: 'right' },
        { header: 'cache 1h', align: 'right' },
        { header: 'output', align: 'right' },
      ],
      rows.map((r) => [
        r.model,
        r.provider,
        r.upstream_model,
        show(r.input),
        show(r.cache_read),
        show(r.cache_write),
        show(r.cache_write_1h),
        show(r.output),
      ]),
    ),
    '',
    'USD per 1M tokens in force today; "-" is unknown (usage in that class ' +
      'gets an unknown cost, never zero).',
  ].join('\n');
}
