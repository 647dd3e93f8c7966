import { z } from 'zod';
import type { DurableEnvelope, Envelope } from './envelope.ts';
import type { ErrorCode } from './errors.ts';
import { DEFAULT_COUNTER_ROOM } from './rooms.ts';
import { idempotencyKeySchema, messageTypeSchema, roomSchema, userIdSchema } from './schemas.ts';

/** Longest chat or direct message text, in UTF-16 code units. */
export const MAX_TEXT_LENGTH = 2_000;
/** Most envelopes one `history:fetch` or resume replays; a larger gap gets `room:reset`. */
export const MAX_REPLAY = 1_000;
/** Most envelopes one page (a `history:fetch` ack, a `room:join` replay) carries; `HISTORY_PAGE_BYTES` bounds its bytes. */
export const MAX_PAGE_ENVELOPES = 200;

const seqSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const textSchema = z.string().min(1, 'text must not be empty').max(MAX_TEXT_LENGTH, `text must be at most ${MAX_TEXT_LENGTH} characters`);

/** Client→server events and their payload schemas. Every one of them expects an ack. */
export const clientEventSchemas = {
  /**
   * Join a room: with `lastSeq`, replay what was missed (or `room:reset`); without, a `room:reset` snapshot.
   * `token` is a subscription token, for namespaces whose join policy is `token`.
   */
  'room:join': z.strictObject({ room: roomSchema, lastSeq: seqSchema.nullish(), token: z.string().min(1).max(8_192).optional() }),
  'room:leave': z.strictObject({ room: roomSchema }),
  /** Fill a gap: envelopes of `room` with seq > `afterSeq`, or a reset when that is older than history. */
  'history:fetch': z.strictObject({ room: roomSchema, afterSeq: seqSchema }),
  'counter:increment': z.strictObject({
    room: roomSchema.refine((r) => r.startsWith('counter:'), 'room must be a counter:* room').default(DEFAULT_COUNTER_ROOM),
    by: z.number().int().min(1).max(1_000).default(1),
  }),
  'counter:read': z.strictObject({
    room: roomSchema.refine((r) => r.startsWith('counter:'), 'room must be a counter:* room').default(DEFAULT_COUNTER_ROOM),
  }),
  'chat:send': z.strictObject({
    room: roomSchema.refine((r) => r.startsWith('chat:'), 'room must be a chat:* room'),
    text: textSchema,
  }),
  'dm:send': z.strictObject({ to: userIdSchema, text: textSchema }),
  /**
   * Publish an application message into a room whose namespace lets members publish (docs/namespaces.md).
   * A retry with the same `idempotencyKey` within the window returns the first result instead of publishing again.
   */
  publish: z.strictObject({
    room: roomSchema,
    type: messageTypeSchema,
    payload: z.unknown().refine((payload) => payload !== undefined, 'payload is required (null is allowed)'),
    idempotencyKey: idempotencyKeySchema.optional(),
  }),
  /** Who is in a room across the fleet, for namespaces with presence on; the socket must have joined it. */
  'presence:get': z.strictObject({ room: roomSchema }),
  /** Replace the connection's token before it expires; same subject required. */
  'auth:refresh': z.strictObject({ token: z.string().min(1).max(8_192) }),
} as const;

export type ClientEventName = keyof typeof clientEventSchemas;
export type ClientEventPayload<E extends ClientEventName> = z.input<(typeof clientEventSchemas)[E]>;
export type ParsedClientEvent<E extends ClientEventName> = z.output<(typeof clientEventSchemas)[E]>;

export const CLIENT_EVENTS = Object.keys(clientEventSchemas) as ClientEventName[];

export function isClientEvent(name: unknown): name is ClientEventName {
  return typeof name === 'string' && Object.hasOwn(clientEventSchemas, name);
}

/** Snapshot sent with `room:reset`: the room's latest state and the envelopes still in history. */
export interface RoomSnapshot {
  /** Kind-specific state: `{value}` for counters, `null` for chat and user rooms. */
  readonly state: unknown;
  readonly recent: readonly DurableEnvelope[];
}

export type HistoryResult =
  /**
   * `seq` is the room's latest seq. `more: true` when the envelopes stop short of it because one
   * reply is bounded (`HISTORY_PAGE_BYTES`): fetch again after the last one.
   */
  | { readonly mode: 'replay'; readonly seq: number; readonly envelopes: readonly DurableEnvelope[]; readonly more?: boolean }
  | { readonly mode: 'reset'; readonly seq: number; readonly snapshot: RoomSnapshot };

/** Success bodies of each ack (the `ok:true` side). */
export interface AckBodies {
  /** `more: true`: the replay was one page; `history:fetch` after the last replayed seq gets the rest (live envelopes already flow). */
  'room:join': { room: string; seq: number; resume: 'fresh' | 'replay' | 'reset'; replayed: number; more?: boolean };
  'room:leave': { room: string };
  'history:fetch': HistoryResult;
  'counter:increment': { room: string; seq: number; value: number };
  'counter:read': { room: string; seq: number; value: number };
  'chat:send': { room: string; seq: number };
  'dm:send': { room: string; seq: number };
  publish: { room: string; seq: number; duplicate: boolean };
  'presence:get': PresenceSnapshot;
  'auth:refresh': { exp: number | null };
}

/** Who is in a room across the fleet: each user once, with how many connections they have there. */
export interface PresenceSnapshot {
  readonly room: string;
  readonly users: readonly { readonly userId: string; readonly connections: number }[];
  readonly connections: number;
}

/** Payloads of server→client envelopes, by type. */
export interface EnvelopePayloads {
  'counter:changed': { value: number; by: number; from: string };
  'chat:message': { from: string; text: string };
  'dm:message': { from: string; to: string; text: string };
  'room:reset': { snapshot: RoomSnapshot };
  'room:members': { count: number };
  'server:draining': { pod: string; reconnectAfterMs: number };
  'auth:refresh': { exp: number; refreshBy: number };
  'server:hello': { pod: string; userId: string; transport: string };
  'connection:closing': { reason: ErrorCode; message: string; reconnect: boolean };
  'presence:join': { userId: string };
  'presence:leave': { userId: string };
}

export type TypedEnvelope<T extends keyof EnvelopePayloads> = Envelope<EnvelopePayloads[T]> & { readonly type: T };
