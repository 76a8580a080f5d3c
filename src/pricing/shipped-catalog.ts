/**
 * The price catalog shipped with Tollgate, validated on first use.
 */
import catalogJson from './catalog.json' with { type: 'json' };
import { catalogSchema, type Catalog } from './catalog-schema.js';

let parsed: Catalog | undefined;

export function shippedCatalog(): Catalog {
  parsed ??= catalogSchema.parse(catalogJson);
  return parsed;
}
