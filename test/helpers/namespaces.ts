import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The namespace configuration of docs/namespaces.md's worked example, plus one namespace per remaining
 * policy, so one fleet exercises every policy: claim (orders), token (tickets), public and live-only
 * (lobby), authenticated with member publishes (team), owner (user), presence (team).
 */
export const EXAMPLE_NAMESPACES = `
namespaces:
  orders:
    join: claim
    claim: rooms
    publish: none
    history: { size: 100, ttlSeconds: 3600 }
  tickets:
    join: token
    publish: members
    types: ['ticket:note']
    maxPayloadBytes: 200
    schema:
      type: object
      required: [text]
      additionalProperties: false
      properties:
        text: { type: string, minLength: 1, maxLength: 100 }
  lobby:
    join: public
    publish: members
    history: { size: 0 }
  team:
    join: authenticated
    publish: members
    presence: true
  user:
    join: owner
    publish: none
    operations: [direct]
`;

/** Writes `text` to a fresh temporary file and returns its path. */
export function writeNamespaces(text: string = EXAMPLE_NAMESPACES, name = 'namespaces.yaml'): string {
  const file = join(mkdtempSync(join(tmpdir(), 'rt-ns-')), name);
  writeFileSync(file, text);
  return file;
}
