/**
 * Rooms are namespaced `kind:name`. Anyone may join `counter:*` and `chat:*`; `user:<id>` is the
 * per-user room direct messages go to, and only that user may join it (the gateway checks).
 */
export const ROOM_KINDS = ['counter', 'chat', 'user'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];

export const ROOM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const USER_ID_PATTERN = ROOM_NAME_PATTERN;

/** `kind:name` with a name as above; the zod schema is `roomSchema` in schemas.ts. */
export const ROOM_PATTERN = /^(counter|chat|user):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const DEFAULT_COUNTER_ROOM = 'counter:global';
export const DEFAULT_CHAT_ROOM = 'chat:lobby';

export function roomKind(room: string): RoomKind {
  return room.slice(0, room.indexOf(':')) as RoomKind;
}

export function userRoom(userId: string): string {
  return `user:${userId}`;
}
