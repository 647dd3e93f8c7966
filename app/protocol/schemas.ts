import { z } from 'zod';
import { CONTROL_TYPES, DURABLE_TYPES, PROTOCOL_VERSION } from './envelope.ts';
import { isReservedType, MESSAGE_TYPE_PATTERN, ROOM_PATTERN, USER_ID_PATTERN } from './rooms.ts';

// Zod schemas of the protocol; the gateway validates with them. Kept apart from the constants so the
// browser bundle of the SDK and page does not carry zod.

export const envelopeSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.union([z.enum([...DURABLE_TYPES, ...CONTROL_TYPES]), z.string().regex(MESSAGE_TYPE_PATTERN)]),
  room: z.string().nullable(),
  seq: z.number().int().nonnegative().nullable(),
  payload: z.unknown(),
  ts: z.number(),
});

export const roomSchema = z
  .string()
  .max(97)
  .regex(ROOM_PATTERN, {
    message: 'room must be "<namespace>:<name>": a namespace of 1-32 lower-case letters, digits, "_" or "-" and a name of 1-64 letters, digits, ".", "_" or "-"',
  });

/** The type of an application message a client or a backend publishes. */
export const messageTypeSchema = z
  .string()
  .max(131)
  .regex(MESSAGE_TYPE_PATTERN, { message: 'type must be "scope:event" (lower-case letters, digits, "_" or "-"; e.g. "order:updated")' })
  .refine((type) => !isReservedType(type), 'types under room:, server:, auth:, connection: and presence: belong to the protocol');

/** Makes a retried publish return the first result instead of publishing twice (docs/protocol.md). */
export const idempotencyKeySchema = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, {
  message: 'idempotencyKey must be 1-128 letters, digits, ".", "_", ":" or "-"',
});

export const userIdSchema = z.string().regex(USER_ID_PATTERN, {
  message: 'user id must be 1-64 letters, digits, ".", "_" or "-"',
});

