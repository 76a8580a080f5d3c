/**
 * `tollgate serve`: runs the gateway until SIGTERM or SIGINT, then stops
 * accepting, lets in-flight requests finish and settle, and exits. SIGHUP
 * reloads the config file's routes, prices, entitlements and limits.
 */
import { startGateway, type Gateway } from '../gateway/gateway.js';
import { loadCliConfig, type ConfigFlags } from './cli-config.js';

export async function serveCommand(flags: ConfigFlags): Promise<void> {
  const config = await loadCliConfig(flags);
  if (!flags.config) {
    console.error(
      'tollgate: no --config given; serving the built-in simulated models ' +
        `(${Object.keys(config.models).join(', ')})`,
    );
  }
  const gateway = await startGateway({
    config,
    ...(flags.config && { reloadSource: () => loadCliConfig(flags) }),
  });
  reloadOnHangup(gateway, flags.config !== undefined);
  console.error(
    `tollgate: listening on ${gateway.url} (database ${config.database.path}` +
      `, price book ${gateway.priceBook.version})` +
      (gateway.recovered > 0
        ? `; recovered ${gateway.recovered} request(s) a crash left open`
        : ''),
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.error(`tollgate: ${signal}: finishing in-flight requests`);
      gateway.close().then(resolve, (error: unknown) => {
        console.error('tollgate: shutdown failed:', error);
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * SIGHUP re-reads the config file; a refused one leaves the old. Without
 * a file there is nothing to re-read, but the signal must not end the
 * process (its default) without draining it.
 */
function reloadOnHangup(gateway: Gateway, fromFile: boolean): void {
  process.on('SIGHUP', () => {
    if (!fromFile) {
      console.error(
        'tollgate: SIGHUP: serving the built-in config; nothing to reload',
      );
      return;
    }
    gateway.reload().then(
      (outcome) =>
        console.error(
          `tollgate: SIGHUP: config reloaded (price book ` +
            `${outcome.priceBook})` +
            (outcome.needsRestart.length > 0
              ? `; needs a restart to apply: ${outcome.needsRestart.join(', ')}`
              : ''),
        ),
      (error: unknown) =>
        console.error(
          `tollgate: SIGHUP: config not reloaded, the one in force stays: ` +
            (error instanceof Error ? error.message : String(error)),
        ),
    );
  });
}
