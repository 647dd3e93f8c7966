import { z } from 'zod';

/**
 * Rooms are namespaced `kind:name`. Anyone may join `counter:*` and `chat:*`; `user:<id>` is the
 * per-user room direct messages go to, and only that user may join it (the gateway checks).
 */
export const ROOM_KINDS = ['counter', 'chat', 'user'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];

export const ROOM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const USER_ID_PATTERN = ROOM_NAME_PATTERN;

export const roomSchema = z
  .string()
  .max(80)
  .regex(/^(counter|chat|user):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
    message: 'room must be "counter:<name>", "chat:<name>" or "user:<id>" with a name of 1-64 letters, digits, ".", "_" or "-"',
  });

export const userIdSchema = z.string().regex(USER_ID_PATTERN, {
  message: 'user id must be 1-64 letters, digits, ".", "_" or "-"',
});

export const DEFAULT_COUNTER_ROOM = 'counter:global';
export const DEFAULT_CHAT_ROOM = 'chat:lobby';

export function roomKind(room: string): RoomKind {
  return room.slice(0, room.indexOf(':')) as RoomKind;
}

export function userRoom(userId: string): string {
  return `user:${userId}`;
}
