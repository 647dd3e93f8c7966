// No zod here: the SDK and the page import this file, and zod would dominate their bundle.

/** Bumped only on a breaking change of the envelope shape; clients refuse envelopes of another `v`. */
export const PROTOCOL_VERSION = 1;

/**
 * Durable types are stored in the room's history and carry a contiguous per-room `seq`; a client
 * that misses one can ask for it. Every type that is not a control type is durable: the demo's three
 * below, and whatever an application publishes (`order:updated`). Control types are never stored and
 * carry `seq: null`, except `room:reset`, whose `seq` is the point the client continues from.
 */
export const DURABLE_TYPES = ['counter:changed', 'chat:message', 'dm:message'] as const;
export const CONTROL_TYPES = [
  'room:reset',
  'room:members',
  'server:draining',
  'auth:refresh',
  'server:hello',
  'connection:closing',
  'presence:join',
  'presence:leave',
] as const;

export type DurableType = (typeof DURABLE_TYPES)[number];
export type ControlType = (typeof CONTROL_TYPES)[number];
/** The demo's types, the protocol's control types, and any application type (`scope:event`). */
export type EnvelopeType = DurableType | ControlType | (string & {});

/** Every server→client message, over Socket.IO (event name = `type`) and over SSE (`event:` = `type`). */
export interface Envelope<P = unknown> {
  readonly v: typeof PROTOCOL_VERSION;
  readonly type: EnvelopeType;
  /** The room the message belongs to; `null` for connection-scoped control messages. */
  readonly room: string | null;
  readonly seq: number | null;
  readonly payload: P;
  /** Milliseconds since the epoch, stamped where the seq was assigned. */
  readonly ts: number;
  /** The user id of the client that published it with `publish`; absent for server publishes. */
  readonly from?: string;
}

export interface DurableEnvelope<P = unknown> extends Envelope<P> {
  readonly room: string;
  readonly seq: number;
}

export function isDurableType(type: string): type is DurableType {
  return (DURABLE_TYPES as readonly string[]).includes(type);
}

export function isControlType(type: string): type is ControlType {
  return (CONTROL_TYPES as readonly string[]).includes(type);
}

export function isDurable(envelope: Envelope): envelope is DurableEnvelope {
  return !isControlType(envelope.type) && typeof envelope.seq === 'number' && envelope.room !== null;
}

/** A control envelope: not stored, not sequenced. */
export function controlEnvelope<P>(type: ControlType, room: string | null, payload: P, seq: number | null = null): Envelope<P> {
  return { v: PROTOCOL_VERSION, type, room, seq, payload, ts: Date.now() };
}
