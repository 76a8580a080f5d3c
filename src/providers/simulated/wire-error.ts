/**
 * An error as api.openai.com sends it: an HTTP status plus
 * `{"error":{"message","type","param","code"}}`. The `openai` SDKs turn
 * this body into typed exceptions (`BadRequestError`, `RateLimitError`…),
 * so the simulated upstream must match it field for field for the gateway's
 * error mapping to be tested against something real.
 *
 * Messages copy OpenAI's wording where it is known, so a test that greps a
 * message reads the same against the real API.
 *
 * @see https://platform.openai.com/docs/guides/error-codes
 */

export interface WireErrorFields {
  readonly type?: string;
  /** The request field at fault, dotted (`messages[0].role`). */
  readonly param?: string | null;
  readonly code?: string | null;
  /** Extra response headers, such as `retry-after` on a 429. */
  readonly headers?: Readonly<Record<string, string>>;
}

export class WireError extends Error {
  override readonly name = 'WireError';
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, fields: WireErrorFields = {}) {
    super(message);
    this.status = status;
    this.type = fields.type ?? 'invalid_request_error';
    this.param = fields.param ?? null;
    this.code = fields.code ?? null;
    this.headers = fields.headers ?? {};
  }

  /** The JSON body, with OpenAI's key order. */
  toBody(): string {
    return JSON.stringify({
      error: {
        message: this.message,
        type: this.type,
        param: this.param,
        code: this.code,
      },
    });
  }
}
