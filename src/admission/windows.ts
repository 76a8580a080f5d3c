/**
 * The window a limit counts in at a moment: clock minutes and hours, and
 * calendar days, ISO weeks and months, all cut in the tenant's time zone,
 * so a daily budget rolls over at the tenant's midnight, on the day a
 * clock change makes 23 or 25 hours long as on any other.
 */
import { DateTime } from 'luxon';

import type { LimitWindow } from './limits.js';

export interface Window {
  /** Names the window among its limit's windows: its start, in UTC ms. */
  readonly id: string;
  readonly start: number;
  /** The first moment of the next window. */
  readonly end: number;
}

const UNITS = {
  minute: 'minute',
  hour: 'hour',
  day: 'day',
  week: 'week',
  month: 'month',
} as const satisfies Record<LimitWindow, string>;

/**
 * The last window computed for each unit and zone: nearly every request
 * falls in the same window as the one before, and cutting one with luxon
 * costs tens of microseconds.
 */
const recent = new Map<string, Window>();

export function windowAt(per: LimitWindow, at: number, zone: string): Window {
  const cacheKey = `${per}|${zone}`;
  const cached = recent.get(cacheKey);
  if (cached && cached.start <= at && at < cached.end) return cached;
  const window = cutWindow(per, at, zone);
  if (recent.size > 10_000) recent.clear();
  recent.set(cacheKey, window);
  return window;
}

function cutWindow(per: LimitWindow, at: number, zone: string): Window {
  const unit = UNITS[per];
  const start = DateTime.fromMillis(at, { zone }).startOf(unit, {
    useLocaleWeeks: false,
  });
  if (!start.isValid) throw new RangeError(`unknown time zone ${zone}`);
  const end = start.plus({ [`${unit}s`]: 1 });
  return {
    id: String(start.toMillis()),
    start: start.toMillis(),
    end: end.toMillis(),
  };
}
