// One error taxonomy for operating errors. Programmer errors are `assert` failures and crash.
// Codes are stable: they appear in API responses, logs and docs/errors.md.

export const ErrorCode = {
  config: "VIGIL_ERR_CONFIG",
  usage: "VIGIL_ERR_USAGE",
  badRequest: "VIGIL_ERR_BAD_REQUEST",
  notFound: "VIGIL_ERR_NOT_FOUND",
  tooLarge: "VIGIL_ERR_TOO_LARGE",
  methodNotAllowed: "VIGIL_ERR_METHOD_NOT_ALLOWED",
  unsupportedMediaType: "VIGIL_ERR_UNSUPPORTED_MEDIA_TYPE",
  unauthorized: "VIGIL_ERR_UNAUTHORIZED",
  forbidden: "VIGIL_ERR_FORBIDDEN",
  store: "VIGIL_ERR_STORE",
  decode: "VIGIL_ERR_DECODE",
  crypto: "VIGIL_ERR_CRYPTO",
  unavailable: "VIGIL_ERR_UNAVAILABLE",
  internal: "VIGIL_ERR_INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class VigilError extends Error {
  readonly code: ErrorCode;
  /** Where in the input the problem is, e.g. `pools.web.check.expect.status[1]`. */
  readonly path: string | undefined;
  /** The file the input came from, when there is one. */
  readonly file: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { path?: string; file?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "VigilError";
    this.code = code;
    this.path = opts.path;
    this.file = opts.file;
  }

  /** The one-line form printed by the CLI: `vigil.yaml: pools.web.interval: expected a duration`. */
  describe(): string {
    const where = [this.file, this.path].filter((s) => s !== undefined && s !== "").join(": ");
    return where === "" ? this.message : `${where}: ${this.message}`;
  }
}

export function isVigilError(e: unknown): e is VigilError {
  return e instanceof VigilError;
}
