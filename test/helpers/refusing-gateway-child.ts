/**
 * A gateway process whose ledger store refuses every settlement (as an
 * I/O error would), for tests that SIGKILL it with settlements spooled.
 *
 * Run as `node --import tsx refusing-gateway-child.ts <config.json>`;
 * it writes `listening <url>` to stderr once it serves, after its logs.
 */
import { readFile } from 'node:fs/promises';

import { parseConfig } from '../../src/config/load-config.js';
import { startGateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';

const [path] = process.argv.slice(2);
if (path === undefined) throw new Error('give the config file');
const config = parseConfig(
  JSON.parse(await readFile(path, 'utf8')) as unknown,
  path,
);
const store: Store = new Proxy(
  new SqliteStore({ path: config.database.path }),
  {
    get(target, property) {
      if (property === 'settleRequest') {
        return () =>
          Promise.reject(
            Object.assign(new Error('disk I/O error'), {
              code: 'SQLITE_IOERR',
            }),
          );
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(target)
        : value;
    },
  },
);
const gateway = await startGateway({
  config,
  store,
  logger: createLogger('warn', process.stderr),
});
process.stderr.write(`listening ${gateway.url}\n`);
