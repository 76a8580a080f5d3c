/**
 * Months and days in a tenant's time zone. Each expected instant is local
 * midnight converted by hand with the zone's offset on that date (from the
 * IANA rules: New York -05:00 / -04:00 from the second Sunday of March to
 * the first Sunday of November; Paris +01:00 / +02:00 from the last Sunday
 * of March to the last Sunday of October; Kolkata +05:30 all year; Chatham
 * +12:45 / +13:45 from the last Sunday of September to the first Sunday of
 * April).
 */
import { describe, expect, it } from 'vitest';

import {
  PeriodError,
  dayWindows,
  monthPeriod,
  parseInstant,
} from '../../src/billing/periods.js';

const HOUR = 3_600_000;
const utc = (iso: string): number => {
  const ms = Date.parse(iso);
  if (!iso.endsWith('Z') || Number.isNaN(ms)) throw new Error(iso);
  return ms;
};

describe('monthPeriod', () => {
  it.each([
    // [month, zone, first instant, first instant of the next month, hours]
    ['2026-02', 'UTC', '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z', 672],
    ['2028-02', 'UTC', '2028-02-01T00:00:00Z', '2028-03-01T00:00:00Z', 696],
    // Paris in winter: local midnight is 23:00 UTC the day before.
    [
      '2026-12',
      'Europe/Paris',
      '2026-11-30T23:00:00Z',
      '2026-12-31T23:00:00Z',
      744,
    ],
    // Paris in March: the 29th has 23 hours, so the month has 743.
    [
      '2026-03',
      'Europe/Paris',
      '2026-02-28T23:00:00Z',
      '2026-03-31T22:00:00Z',
      743,
    ],
    // New York, March 2026: clocks go forward on the 8th.
    [
      '2026-03',
      'America/New_York',
      '2026-03-01T05:00:00Z',
      '2026-04-01T04:00:00Z',
      743,
    ],
    // New York, November 2026: clocks go back on the 1st.
    [
      '2026-11',
      'America/New_York',
      '2026-11-01T04:00:00Z',
      '2026-12-01T05:00:00Z',
      721,
    ],
    [
      '2026-01',
      'Asia/Kolkata',
      '2025-12-31T18:30:00Z',
      '2026-01-31T18:30:00Z',
      744,
    ],
    // Chatham in its winter: +12:45 throughout.
    [
      '2026-07',
      'Pacific/Chatham',
      '2026-06-30T11:15:00Z',
      '2026-07-31T11:15:00Z',
      744,
    ],
    // Chatham in April: +13:45 until the 5th, then +12:45.
    [
      '2026-04',
      'Pacific/Chatham',
      '2026-03-31T10:15:00Z',
      '2026-04-30T11:15:00Z',
      721,
    ],
  ])('%s in %s is [%s, %s), %i hours', (month, zone, from, to, hours) => {
    const period = monthPeriod(month, zone);
    expect(period).toEqual({ from: utc(from), to: utc(to) });
    expect(period.to - period.from).toBe(hours * HOUR);
  });

  it('is not 31 × 24 hours in a daylight-saving month', () => {
    const march = monthPeriod('2026-03', 'America/New_York');
    expect(march.to - march.from).not.toBe(31 * 24 * HOUR);
    expect(march.to - march.from).toBe(31 * 24 * HOUR - HOUR);
  });

  it('starts a month at the first instant that exists', () => {
    // Paraguay went to summer time at 00:00 on Sunday 2023-10-01: that
    // midnight never happened, and October began at 01:00 -03:00, which is
    // 04:00 UTC. November began at 00:00 -03:00, 03:00 UTC.
    expect(monthPeriod('2023-10', 'America/Asuncion')).toEqual({
      from: utc('2023-10-01T04:00:00Z'),
      to: utc('2023-11-01T03:00:00Z'),
    });
  });

  it.each([
    'UTC',
    'Europe/Paris',
    'America/New_York',
    'Asia/Kolkata',
    'Pacific/Chatham',
    'America/Asuncion',
    'America/Santiago',
  ])('tiles the years in %s with no gap and no overlap', (zone) => {
    for (const year of [2023, 2026]) {
      for (let month = 1; month <= 12; month++) {
        const text = `${year}-${String(month).padStart(2, '0')}`;
        const next =
          month === 12
            ? `${year + 1}-01`
            : `${year}-${String(month + 1).padStart(2, '0')}`;
        expect(monthPeriod(text, zone).to, `${zone} ${text}`).toBe(
          monthPeriod(next, zone).from,
        );
      }
    }
  });

  it.each(['2026-13', '2026-00', '2026-1', '26-01', '2026-01-01', '', 'May'])(
    'refuses the month %j',
    (month) => {
      expect(() => monthPeriod(month, 'UTC')).toThrow(PeriodError);
    },
  );

  it('refuses a zone that does not exist', () => {
    expect(() => monthPeriod('2026-03', 'Mars/Olympus_Mons')).toThrow(
      PeriodError,
    );
  });
});

describe('parseInstant', () => {
  it.each([
    // A date is local midnight in the zone.
    ['2026-12-03', 'Europe/Paris', '2026-12-02T23:00:00Z'],
    ['2026-07-03', 'Europe/Paris', '2026-07-02T22:00:00Z'],
    ['2026-12-03', 'Asia/Kolkata', '2026-12-02T18:30:00Z'],
    ['2026-12-03', 'UTC', '2026-12-03T00:00:00Z'],
    // A timestamp carries its own offset; the zone does not matter.
    ['2026-12-03T10:00:00Z', 'Europe/Paris', '2026-12-03T10:00:00Z'],
    ['2026-12-03T10:00:00+05:30', 'Europe/Paris', '2026-12-03T04:30:00Z'],
    ['2026-12-03T10:00:00+12:45', 'UTC', '2026-12-02T21:15:00Z'],
    [
      '2026-12-03T10:00:00.250-05:00',
      'Asia/Kolkata',
      '2026-12-03T15:00:00.250Z',
    ],
    ['2026-12-03T10:00:00-0500', 'UTC', '2026-12-03T15:00:00Z'],
  ])('reads %s in %s as %s', (text, zone, expected) => {
    expect(parseInstant(text, zone)).toBe(utc(expected));
  });

  it.each([
    ['a naive timestamp', '2026-12-03T10:00:00'],
    ['a naive timestamp without seconds', '2026-12-03T10:00'],
    ['a naive hour', '2026-12-03T10'],
    ['a day that does not exist', '2026-02-30'],
    ['an hour that does not exist', '2026-12-03T25:00:00Z'],
    ['a word', 'yesterday'],
    ['nothing', ''],
    ['epoch milliseconds', '1764756000000'],
    ['a trailing space', '2026-12-03T10:00:00Z '],
  ])('refuses %s (%j)', (_, text) => {
    expect(() => parseInstant(text, 'Europe/Paris')).toThrow(PeriodError);
  });
});

describe('dayWindows', () => {
  it('gives New York a 23-hour day when clocks go forward', () => {
    const days = dayWindows(
      utc('2026-03-07T05:00:00Z'),
      utc('2026-03-10T04:00:00Z'),
      'America/New_York',
    );
    expect(days).toEqual([
      {
        day: '2026-03-07',
        from: utc('2026-03-07T05:00:00Z'),
        to: utc('2026-03-08T05:00:00Z'),
      },
      {
        day: '2026-03-08',
        from: utc('2026-03-08T05:00:00Z'),
        to: utc('2026-03-09T04:00:00Z'),
      },
      {
        day: '2026-03-09',
        from: utc('2026-03-09T04:00:00Z'),
        to: utc('2026-03-10T04:00:00Z'),
      },
    ]);
    expect(days.map((d) => (d.to - d.from) / HOUR)).toEqual([24, 23, 24]);
  });

  it('gives New York a 25-hour day when clocks go back', () => {
    const days = dayWindows(
      utc('2026-10-31T04:00:00Z'),
      utc('2026-11-03T05:00:00Z'),
      'America/New_York',
    );
    expect(days.map((d) => d.day)).toEqual([
      '2026-10-31',
      '2026-11-01',
      '2026-11-02',
    ]);
    expect(days[1]).toEqual({
      day: '2026-11-01',
      from: utc('2026-11-01T04:00:00Z'),
      to: utc('2026-11-02T05:00:00Z'),
    });
    expect(days.map((d) => (d.to - d.from) / HOUR)).toEqual([24, 25, 24]);
  });

  it('cuts Paris at local midnight across both changes', () => {
    const spring = dayWindows(
      utc('2026-03-28T23:00:00Z'),
      utc('2026-03-29T22:00:00Z'),
      'Europe/Paris',
    );
    expect(spring).toEqual([
      {
        day: '2026-03-29',
        from: utc('2026-03-28T23:00:00Z'),
        to: utc('2026-03-29T22:00:00Z'),
      },
    ]);
    const autumn = dayWindows(
      utc('2026-10-24T22:00:00Z'),
      utc('2026-10-25T23:00:00Z'),
      'Europe/Paris',
    );
    expect(autumn.map((d) => [d.day, (d.to - d.from) / HOUR])).toEqual([
      ['2026-10-25', 25],
    ]);
  });

  it('covers a whole month in contiguous local days', () => {
    const march = monthPeriod('2026-03', 'America/New_York');
    const days = dayWindows(march.from, march.to, 'America/New_York');
    expect(days).toHaveLength(31);
    expect(days[0]?.from).toBe(march.from);
    expect(days.at(-1)?.to).toBe(march.to);
    days.forEach((day, i) => {
      expect(day.day).toBe(`2026-03-${String(i + 1).padStart(2, '0')}`);
      if (i > 0) expect(day.from).toBe(days[i - 1]?.to);
    });
    const hours = days.map((d) => (d.to - d.from) / HOUR);
    expect(hours.filter((h) => h !== 24)).toEqual([23]);
  });

  it('clips the first and last day to the range', () => {
    const days = dayWindows(
      utc('2026-12-03T10:00:00Z'),
      utc('2026-12-04T10:00:00Z'),
      'Asia/Kolkata',
    );
    // 10:00Z is 15:30 in Kolkata; the 4th starts at 2026-12-03T18:30Z.
    expect(days).toEqual([
      {
        day: '2026-12-03',
        from: utc('2026-12-03T10:00:00Z'),
        to: utc('2026-12-03T18:30:00Z'),
      },
      {
        day: '2026-12-04',
        from: utc('2026-12-03T18:30:00Z'),
        to: utc('2026-12-04T10:00:00Z'),
      },
    ]);
  });

  it('is empty for an empty range', () => {
    const at = utc('2026-12-03T10:00:00Z');
    expect(dayWindows(at, at, 'UTC')).toEqual([]);
  });

  it('keeps cutting at midnight after a day that began in a gap', () => {
    // Chile went to summer time at 00:00 on Sunday 2026-09-06 (-04:00 to
    // -03:00): that day began at 01:00 local, 04:00 UTC, and lasted 23
    // hours; the 7th began at 00:00 -03:00, 03:00 UTC.
    const days = dayWindows(
      utc('2026-09-05T04:00:00Z'),
      utc('2026-09-08T03:00:00Z'),
      'America/Santiago',
    );
    expect(days).toEqual([
      {
        day: '2026-09-05',
        from: utc('2026-09-05T04:00:00Z'),
        to: utc('2026-09-06T04:00:00Z'),
      },
      {
        day: '2026-09-06',
        from: utc('2026-09-06T04:00:00Z'),
        to: utc('2026-09-07T03:00:00Z'),
      },
      {
        day: '2026-09-07',
        from: utc('2026-09-07T03:00:00Z'),
        to: utc('2026-09-08T03:00:00Z'),
      },
    ]);
  });
});
