/**
 * The window a limit counts in at a moment: clock minutes and hours, and
 * calendar days, ISO weeks and months, all cut in the tenant's time zone,
 * so a daily budget rolls over at the tenant's midnight, on the day a
 * clock change makes 23 or 25 hours long as on any other.
 *
 * Or a rolling window: the span before the moment, counted in buckets of
 * a fixed width (counter-store.ts, `ROLLING_BUCKETS`). Buckets are cut
 * from the epoch, not in a time zone: a span of hours has no midnight.
 */
import { DateTime } from 'luxon';

import { ROLLING_BUCKETS } from './counter-store.js';
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

/** Where a moment falls in a rolling window. */
export interface RollingBucket {
  /** The span, in ms: a whole number of minutes. */
  readonly spanMs: number;
  /** One bucket's width: the span over ROLLING_BUCKETS, whole seconds. */
  readonly bucketMs: number;
  /** The moment's bucket: ms since the epoch over the width, floored. */
  readonly bucket: number;
}

/** The last bucket computed for each span, as `recent` is for windows. */
const recentBuckets = new Map<number, RollingBucket>();

export function bucketAt(spanMs: number, at: number): RollingBucket {
  const bucketMs = spanMs / ROLLING_BUCKETS;
  const bucket = Math.floor(at / bucketMs);
  const cached = recentBuckets.get(spanMs);
  if (cached?.bucket === bucket) return cached;
  const rolling = { spanMs, bucketMs, bucket };
  if (recentBuckets.size > 10_000) recentBuckets.clear();
  recentBuckets.set(spanMs, rolling);
  return rolling;
}

/**
 * When a bucket leaves the span: once the current bucket is
 * ROLLING_BUCKETS + 1 past it, no claim counts it any more.
 */
export function bucketLeavesAt(rolling: RollingBucket, bucket: number): number {
  return (bucket + ROLLING_BUCKETS + 1) * rolling.bucketMs;
}

/** Where the counted span of a moment's bucket begins. */
export function countedFrom(rolling: RollingBucket): number {
  return (rolling.bucket - ROLLING_BUCKETS) * rolling.bucketMs;
}
