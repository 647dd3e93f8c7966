import { describe, expect, it } from 'vitest';
import {
  CLIENT_EVENTS,
  CONTROL_TYPES,
  DURABLE_TYPES,
  ERROR_CODES,
  clientEventSchemas,
  envelopeSchema,
  MAX_TEXT_LENGTH,
  roomSchema,
} from '../../app/protocol/index.ts';
import { readFileSync } from 'node:fs';

describe('protocol schemas', () => {
  it('accepts namespaced rooms and refuses anything else', () => {
    for (const room of ['counter:global', 'chat:lobby', 'user:alice', 'chat:a.b_c-1']) expect(roomSchema.safeParse(room).success).toBe(true);
    for (const room of ['lobby', 'chat:', 'chat:-x', 'Admin:x', '1chat:x', 'chat:has space', `chat:${'x'.repeat(65)}`, 42, null]) {
      expect(roomSchema.safeParse(room).success, JSON.stringify(room)).toBe(false);
    }
  });

  it('fills defaults and refuses unknown fields, wrong types and oversized text', () => {
    expect(clientEventSchemas['counter:increment'].parse({})).toEqual({ room: 'counter:global', by: 1 });
    expect(clientEventSchemas['counter:increment'].safeParse({ room: 'chat:x' }).success).toBe(false);
    expect(clientEventSchemas['chat:send'].safeParse({ room: 'chat:x', text: 'hi', extra: 1 }).success).toBe(false);
    expect(clientEventSchemas['chat:send'].safeParse({ room: 'chat:x', text: 'x'.repeat(MAX_TEXT_LENGTH + 1) }).success).toBe(false);
    expect(clientEventSchemas['room:join'].safeParse({ room: 'chat:x', lastSeq: -1 }).success).toBe(false);
    expect(clientEventSchemas['room:join'].safeParse({ room: 'chat:x', lastSeq: 1.5 }).success).toBe(false);
    expect(clientEventSchemas['dm:send'].safeParse({ to: 'bob', text: 'hi' }).success).toBe(true);
  });

  it('validates envelopes', () => {
    expect(envelopeSchema.safeParse({ v: 1, type: 'chat:message', room: 'chat:x', seq: 3, payload: {}, ts: 1 }).success).toBe(true);
    expect(envelopeSchema.safeParse({ v: 2, type: 'chat:message', room: 'chat:x', seq: 3, payload: {}, ts: 1 }).success).toBe(false);
    expect(envelopeSchema.safeParse({ v: 1, type: 'nope', room: null, seq: null, payload: {}, ts: 1 }).success).toBe(false);
  });

  it('documents every event, envelope type and error code in docs/protocol.md', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    for (const name of [...CLIENT_EVENTS, ...DURABLE_TYPES, ...CONTROL_TYPES, ...Object.keys(ERROR_CODES)]) {
      expect(doc, `docs/protocol.md lacks \`${name}\``).toContain(`\`${name}\``);
    }
  });
});
