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

/** `../shared/data` beside the project, or wherever TOLLGATE_SHARED_DATA says. */
export const SHARED_DATA =
  process.env['TOLLGATE_SHARED_DATA'] ??
  join(projectRoot, '..', 'shared', 'data');

export const sharedDataPresent = existsSync(SHARED_DATA);

if (!sharedDataPresent) {
  if (process.env['CI']) {
    throw new Error(`CI: ${SHARED_DATA} is missing; these suites must run`);
  }
  console.warn(
    `skipping suites that read ${SHARED_DATA}: it is not there ` +
      '(set TOLLGATE_SHARED_DATA to its path)',
  );
}

/** Path of a file under `../shared/data`. */
export function sharedFile(relative: string): string {
  return join(SHARED_DATA, relative);
}
