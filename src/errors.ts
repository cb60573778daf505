/**
 * Errors a user can act on. Every one carries a machine-readable code that the GraphQL layer
 * puts in `extensions.code` and the CLI prints before the message.
 */
export const ERROR_CODES = {
  BAD_USER_INPUT: 'An argument is malformed or out of range.',
  NOT_FOUND: 'The model, dictionary or feature named does not exist.',
  DIMENSION_MISMATCH: 'A vector or dictionary does not have the width the operation needs.',
  INPUT_TOO_LONG: 'The text is longer than the allowed number of characters or tokens.',
  BAD_FILE: 'A file is missing, truncated, or holds tensors of the wrong name, shape or value.',
  ARTIFACT_MISSING:
    'A file a model or dictionary needs is neither in the artifact store nor at the path its catalog row records.',
  UNSUPPORTED: 'The file format, architecture or option is not supported.',
  UNSAFE_CHECKPOINT:
    'A pickled checkpoint refers to code (a global or opcode) outside the allow-list of plain tensor data.',
  CONFLICT: 'The object already exists (use --replace), is being written by another process, or still has dependents.',
  OVERLOADED: 'The server queue is full; retry after the hinted delay.',
  DEADLINE_EXCEEDED: 'The request took longer than the per-request deadline.',
  UNAUTHENTICATED: 'An API key is required for this operation.',
  FORBIDDEN: 'The API key is unknown or revoked.',
  DEVICE_UNAVAILABLE: 'The requested execution provider (for example CUDA) cannot be used.',
  QUERY_TOO_COMPLEX: 'The GraphQL document exceeds the depth, alias, cost or size limits.',
  PAYLOAD_TOO_LARGE: 'The request body exceeds the size limit.',
  CURSOR_MISMATCH: 'A connection cursor was issued for another ordering than the page asked for.',
  UNSUPPORTED_MEDIA_TYPE: 'A POST body is not application/json (UTF-8).',
  DATABASE_UNAVAILABLE: 'The connection to the database was lost or it is restarting; retry the request.',
  INTERNAL_SERVER_ERROR: 'An unexpected error; the server log has the details.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AtlasError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'AtlasError';
    this.code = code;
    this.details = details;
  }
}

export function isAtlasError(e: unknown): e is AtlasError {
  return e instanceof AtlasError;
}
