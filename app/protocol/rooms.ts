/**
 * Rooms are `namespace:name`. Which namespaces exist and who may join or publish in them is the
 * gateway's namespace configuration (docs/namespaces.md); the demo's default one declares `counter`,
 * `chat` and `user` (the per-user room direct messages go to, joined only by its owner).
 */
export const ROOM_KINDS = ['counter', 'chat', 'user'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];

export const ROOM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const USER_ID_PATTERN = ROOM_NAME_PATTERN;

/** A namespace: what comes before the room's first `:`. */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

/** `namespace:name` with a name as above; the zod schema is `roomSchema` in schemas.ts. */
export const ROOM_PATTERN = /^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Types of application messages: `scope:event` (up to four parts), e.g. `order:updated`. Types under
 * `room:`, `server:`, `auth:`, `connection:` and `presence:` belong to the protocol.
 */
export const MESSAGE_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,31}(:[a-z0-9][a-z0-9_-]{0,31}){1,3}$/;
export const RESERVED_TYPE_SCOPES = ['room', 'server', 'auth', 'connection', 'presence'] as const;

export function isReservedType(type: string): boolean {
  return (RESERVED_TYPE_SCOPES as readonly string[]).includes(type.slice(0, type.indexOf(':')));
}

/** The namespace of a room: the part before its first `:`. */
export function namespaceOf(room: string): string {
  return room.slice(0, room.indexOf(':'));
}

export const DEFAULT_COUNTER_ROOM = 'counter:global';
export const DEFAULT_CHAT_ROOM = 'chat:lobby';

export function roomKind(room: string): RoomKind {
  return room.slice(0, room.indexOf(':')) as RoomKind;
}

export function userRoom(userId: string): string {
  return `user:${userId}`;
}
