import { z } from 'zod';
import { CONTROL_TYPES, DURABLE_TYPES, PROTOCOL_VERSION } from './envelope.ts';
import { ROOM_PATTERN, USER_ID_PATTERN } from './rooms.ts';

// Zod schemas of the protocol; the gateway validates with them. Kept apart from the constants so the
// browser bundle of the SDK and page does not carry zod.

export const envelopeSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.enum([...DURABLE_TYPES, ...CONTROL_TYPES]),
  room: z.string().nullable(),
  seq: z.number().int().nonnegative().nullable(),
  payload: z.unknown(),
  ts: z.number(),
});

export const roomSchema = z
  .string()
  .max(80)
  .regex(ROOM_PATTERN, {
    message: 'room must be "counter:<name>", "chat:<name>" or "user:<id>" with a name of 1-64 letters, digits, ".", "_" or "-"',
  });

export const userIdSchema = z.string().regex(USER_ID_PATTERN, {
  message: 'user id must be 1-64 letters, digits, ".", "_" or "-"',
});

