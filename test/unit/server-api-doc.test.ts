import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ERROR_CODES, MESSAGE_TYPE_PATTERN, ROOM_PATTERN } from '../../app/protocol/index.ts';
import { SERVER_API_ENDPOINTS } from '../../app/gateway/server-api.ts';

interface OpenApi {
  openapi: string;
  paths: Record<string, { post?: unknown }>;
  components: { schemas: Record<string, { pattern?: string; properties?: Record<string, { enum?: string[] }> }> };
}

describe('docs/server-api.openapi.yaml', () => {
  const doc = parse(readFileSync(new URL('../../docs/server-api.openapi.yaml', import.meta.url), 'utf8')) as OpenApi;

  it('lists exactly the endpoints the gateway serves, each as POST', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(doc.paths).sort()).toEqual(SERVER_API_ENDPOINTS.map((e) => `/api/${e}`).sort());
    for (const path of Object.values(doc.paths)) expect(path.post).toBeDefined();
  });

  it('uses the protocol\'s own room and type patterns and error codes', () => {
    expect(doc.components.schemas.Room!.pattern).toBe(ROOM_PATTERN.source);
    expect(doc.components.schemas.MessageType!.pattern).toBe(MESSAGE_TYPE_PATTERN.source);
    for (const code of doc.components.schemas.ErrorBody!.properties!.code!.enum!) expect(Object.keys(ERROR_CODES)).toContain(code);
  });

  it('is described in docs/server-api.md, endpoint by endpoint', () => {
    const prose = readFileSync(new URL('../../docs/server-api.md', import.meta.url), 'utf8');
    for (const endpoint of SERVER_API_ENDPOINTS) expect(prose).toContain(`\`/api/${endpoint}\``);
  });
});
