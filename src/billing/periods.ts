/**
 * Calendar periods in a tenant's time zone (DESIGN.md, "Time"): a month
 * or a day starts at local midnight, whatever the UTC offset or a daylight
 * saving change in between.
 */
import { DateTime } from 'luxon';

export interface Period {
  readonly from: number;
  readonly to: number;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export class PeriodError extends Error {
  override readonly name = 'PeriodError';
}

/** The month `YYYY-MM` in `zone`, as [first instant, first of next). */
export function monthPeriod(month: string, zone: string): Period {
  const match = MONTH.exec(month);
  if (!match) throw new PeriodError(`"${month}" is not a month as YYYY-MM`);
  const start = DateTime.fromObject(
    { year: Number(match[1]), month: Number(match[2]), day: 1 },
    { zone },
  );
  if (!start.isValid) throw new PeriodError(`"${zone}" is not a time zone`);
  return {
    from: start.toMillis(),
    // Where midnight of the 1st falls in a daylight-saving gap (Paraguay,
    // 2023-10-01), the month starts at 01:00; a month later is then 01:00
    // too, so cut back to that day's start or the months would overlap.
    to: start.plus({ months: 1 }).startOf('day').toMillis(),
  };
}

/**
 * An instant from a query parameter: a date `YYYY-MM-DD` (local midnight in
 * `zone`) or an ISO 8601 timestamp with an offset.
 */
export function parseInstant(text: string, zone: string): number {
  const parsed = DAY.test(text)
    ? DateTime.fromISO(text, { zone })
    : DateTime.fromISO(text, { setZone: true });
  if (
    !parsed.isValid ||
    (!DAY.test(text) && !/[zZ]|[+-]\d\d:?\d\d$/.test(text))
  ) {
    throw new PeriodError(
      `"${text}" is neither a date (YYYY-MM-DD) nor a timestamp with an ` +
        'offset (2026-12-03T10:00:00Z)',
    );
  }
  return parsed.toMillis();
}

/** The local days covering [from, to) in `zone`, each cut at midnight. */
export function dayWindows(
  from: number,
  to: number,
  zone: string,
): { day: string; from: number; to: number }[] {
  const days: { day: string; from: number; to: number }[] = [];
  let day = DateTime.fromMillis(from, { zone }).startOf('day');
  if (!day.isValid) throw new PeriodError(`"${zone}" is not a time zone`);
  if (from >= to) return days;
  while (day.toMillis() < to) {
    // A day that began in a gap (Chile, 2026-09-06) began at 01:00; the
    // next one still begins at midnight.
    const next = day.plus({ days: 1 }).startOf('day');
    days.push({
      day: day.toISODate() ?? '',
      from: Math.max(day.toMillis(), from),
      to: Math.min(next.toMillis(), to),
    });
    day = next;
  }
  return days;
}

/** Refuses a range too long to cut into days for one query. */
export const MAX_DAY_WINDOWS = 1_000;
