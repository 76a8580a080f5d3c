/**
 * The simulated model's prose: one short word and a space per token, from
 * a fixed cycle, so a test can rebuild any answer from its token count and
 * the answer's length in tokens is plain to see.
 *
 * Choice `c` starts `c` words into the cycle, so the choices of an `n > 1`
 * request differ from one another, as sampled answers would.
 */
const WORDS = [
  'the ',
  'quick ',
  'brown ',
  'fox ',
  'jumps ',
  'over ',
  'a ',
  'lazy ',
  'dog ',
  'again ',
] as const;

/**
 * Tokens `first` to `first + count - 1` of choice `choice`'s answer.
 *
 * @example simText(0, 0, 3) === 'the quick brown '
 */
export function simText(choice: number, first: number, count: number): string {
  let text = '';
  for (let i = first; i < first + count; i++) {
    text += WORDS[(choice + i) % WORDS.length];
  }
  return text;
}
