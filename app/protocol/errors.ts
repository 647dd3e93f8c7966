/**
 * Error codes, written once. Acks carry them as `{ok:false, error:{code, message}}`; handshake
 * refusals carry them as `connect_error` data `{code, message, retryable}`.
 */
export const ERROR_CODES = {
  /** The payload failed its schema; the message says which field and what is allowed. */
  bad_request: 'bad_request',
  /** No handler for this event name. */
  unknown_event: 'unknown_event',
  /** The event was sent without an acknowledgement callback where one is required. */
  ack_required: 'ack_required',
  /** Per-socket rate limit exceeded; retry after `retryAfterMs`. */
  rate_limited: 'rate_limited',
  /** The operation needs a room the socket has not joined. */
  not_joined: 'not_joined',
  /** The action is not allowed for this identity. */
  forbidden: 'forbidden',
  /** Handshake without a token while auth is on. */
  auth_required: 'auth_required',
  /** Token failed verification (signature, algorithm, audience, issuer, shape). */
  auth_invalid: 'auth_invalid',
  /** Token is past `exp`; refresh it and reconnect. */
  token_expired: 'token_expired',
  /** A refresh token names another subject than the connection's. */
  auth_subject_mismatch: 'auth_subject_mismatch',
  /** The instance is at its connection limit or connection rate; retry elsewhere. */
  over_capacity: 'over_capacity',
  /** The instance is draining; retry elsewhere. */
  draining: 'draining',
  /** The backplane (Redis) is unreachable; nothing was published. Retry after it is back. */
  backplane_unavailable: 'backplane_unavailable',
  /** The socket's outbound buffer passed the hard limit, or stopped draining; reconnect and resume. */
  slow_consumer: 'slow_consumer',
  /**
   * The connection has more unsent bytes than the high-water mark: read what is queued, then retry
   * after `retryAfterMs`. Nothing was done.
   */
  send_backlog: 'send_backlog',
  /** The connection already follows the most rooms one connection may follow; leave one first. */
  room_limit: 'room_limit',
  /** The user already holds the most connections one user may hold on this instance. */
  too_many_connections: 'too_many_connections',
  /** The room's namespace is not declared in the gateway's namespace configuration. */
  unknown_namespace: 'unknown_namespace',
  /** The payload is larger than its namespace (or the server API) allows. */
  payload_too_large: 'payload_too_large',
  /** The payload failed its namespace's JSON Schema, or its type is not allowed there. */
  payload_invalid: 'payload_invalid',
  /** A subscription token failed verification, or is for another room or user. */
  subscription_token_invalid: 'subscription_token_invalid',
  /** A subscription token is past `exp`; get a new one from the application and join again. */
  subscription_token_expired: 'subscription_token_expired',
  /** A server API call without `Authorization: Bearer <API key>`. */
  api_key_required: 'api_key_required',
  /** A server API call with a key that is not (or no longer) configured. */
  api_key_invalid: 'api_key_invalid',
  /** No such server API route (or the server API is off). */
  not_found: 'not_found',
  /** The server ended the connection on request (server API `disconnect`); do not reconnect. */
  disconnected_by_server: 'disconnected_by_server',
  /** Anything else; the gateway logged it. */
  internal: 'internal',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes a client should retry after a backoff (possibly on another instance). */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'rate_limited',
  'over_capacity',
  'draining',
  'backplane_unavailable',
  'slow_consumer',
  'send_backlog',
  'too_many_connections',
]);

export interface ErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryAfterMs?: number;
}

export type Ack<T extends object = object> = ({ readonly ok: true } & T) | { readonly ok: false; readonly error: ErrorBody };

/** Thrown inside handlers to turn into an error ack; anything else becomes `internal`. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  toBody(): ErrorBody {
    return this.retryAfterMs === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, retryAfterMs: this.retryAfterMs };
  }
}

export function errorAck(code: ErrorCode, message: string, retryAfterMs?: number): Ack<never> {
  return { ok: false, error: new ProtocolError(code, message, retryAfterMs).toBody() };
}

/** Data of a refused handshake, as `connect_error` `err.data`. */
export interface HandshakeRefusal {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
}

/**
 * The body of an HTTP refusal of a new connection (an Engine.IO handshake or `GET /sse`): status 503
 * (full, draining) or 429 (too fast) with `Retry-After`. The stock client sees a transport error and
 * retries with its backoff; the SDK reads this body from the polling error to learn code and hint.
 */
export interface HttpRefusal {
  readonly ok: false;
  readonly error: ErrorBody;
}
