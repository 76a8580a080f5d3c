/**
 * Real third-party data lives in `../shared/data`, read where it lies.
 *
 * A user's clone may not have it: suites that need it skip, with a one-line
 * reason. CI always has it, so under CI a missing folder fails instead.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
);

export const SHARED_DATA = join(projectRoot, '..', 'shared', 'data');

export const sharedDataPresent = existsSync(SHARED_DATA);

if (!sharedDataPresent) {
  if (process.env['CI']) {
    throw new Error(`CI: ${SHARED_DATA} is missing; these suites must run`);
  }
  console.warn(`skipping suites that read ${SHARED_DATA}: it is not there`);
}

/** Path of a file under `../shared/data`. */
export function sharedFile(relative: string): string {
  return join(SHARED_DATA, relative);
}
