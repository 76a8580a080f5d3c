/**
 * Operator prices a test states itself, per 1M tokens, in force since
 * 2020, cache reads and writes at the input rate: the rates a test's
 * expected costs are computed from.
 */
export function testPrices(input: string, output: string) {
  return [
    {
      effectiveFrom: '2020-01-01',
      input,
      output,
      cacheRead: input,
      cacheWrite: input,
      source: 'test',
    },
  ];
}
