/**
 * `tollgate serve`: runs the gateway until SIGTERM or SIGINT, then stops
 * accepting, lets in-flight requests finish and settle, and exits.
 */
import { startGateway } from '../gateway/gateway.js';
import { loadCliConfig, type ConfigFlags } from './cli-config.js';

export async function serveCommand(flags: ConfigFlags): Promise<void> {
  const config = await loadCliConfig(flags);
  if (!flags.config) {
    console.error(
      'tollgate: no --config given; serving the built-in simulated models ' +
        `(${Object.keys(config.models).join(', ')})`,
    );
  }
  const gateway = await startGateway({ config });
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
