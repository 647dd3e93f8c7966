import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ProtocolError } from '../../app/protocol/index.ts';
import { ConfigError } from '../../app/gateway/config.ts';
import { authorizeJoin, claimPatternMatches, compileNamespaces, loadNamespaces } from '../../app/gateway/namespaces.ts';
import { EXAMPLE_NAMESPACES, writeNamespaces } from '../helpers/namespaces.ts';

const base = { HISTORY_SIZE: 1000, HISTORY_TTL_SECONDS: 86_400, AUTH_MODE: 'jwt' as const };
const example = () => compileNamespaces(parse(EXAMPLE_NAMESPACES), base);

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
  return 'allowed';
}

describe('namespace configuration', () => {
  it('ships a default (the demo) that declares counter, chat and user', () => {
    const defaults = loadNamespaces({ ...base, NAMESPACES_FILE: undefined, AUTH_MODE: 'none' });
    expect(defaults.all.map((ns) => ns.name)).toEqual(['counter', 'chat', 'user']);
    expect(defaults.resolve('counter:global').operations).toEqual(['counter']);
    expect(defaults.resolve('user:ann').join).toBe('owner');
    expect(defaults.anyPublic).toBe(false);
  });

  it('resolves rooms to namespaces and names the known ones for a room in none', () => {
    const ns = example();
    expect(ns.resolve('orders:acme-1').name).toBe('orders');
    expect(() => ns.resolve('admin:x')).toThrow(/admin:x is in no declared namespace; this gateway has: orders, tickets, lobby, team, user/);
  });

  it('fills history from the global settings and turns size 0 or TTL 0 into live-only rooms', () => {
    const ns = example();
    expect(ns.resolve('team:a').history).toEqual({ size: 1000, ttlSeconds: 86_400 });
    expect(ns.resolve('orders:a').history).toEqual({ size: 100, ttlSeconds: 3600 });
    expect(ns.resolve('lobby:a').history).toEqual({ size: 0, ttlSeconds: 0 });
    expect(ns.resolve('lobby:a').keyTtlSeconds).toBe(86_400);
  });

  it.each([
    ['namespaces: {}', 'namespaces: declare at least one namespace'],
    ['namespaces: { Orders: { join: claim } }', 'namespaces.Orders'],
    ['namespaces: { orders: { join: everyone } }', 'namespaces.orders.join'],
    ['namespaces: { orders: { join: claim, publish: all } }', 'namespaces.orders.publish'],
    ['namespaces: { orders: { join: claim, maxPayloadBytes: -1 } }', 'namespaces.orders.maxPayloadBytes'],
    ['namespaces: { orders: { join: claim, history: { size: -1 } } }', 'namespaces.orders.history.size'],
    ['namespaces: { orders: { join: claim, colour: red } }', 'colour'],
    ['namespaces: { orders: { join: owner, claim: roles } }', 'namespaces.orders.claim: only applies to join: claim'],
    ['namespaces: { orders: { join: claim, types: ["order:x"] } }', 'namespaces.orders.types: only applies to publish: members'],
    ['namespaces: { orders: { join: claim, publish: members, schema: { type: objekt } } }', 'namespaces.orders.schema: not a valid JSON Schema'],
    ['namespaces: { orders: { join: claim, publish: members, types: ["Order"] } }', 'namespaces.orders.types.0'],
  ])('refuses %s naming the field', (yaml, message) => {
    expect(() => compileNamespaces(parse(yaml), base)).toThrow(ConfigError);
    expect(() => compileNamespaces(parse(yaml), base)).toThrow(message);
  });

  it('refuses token namespaces without JWT auth, and unreadable or malformed files naming the variable', () => {
    expect(() => compileNamespaces(parse('namespaces: { t: { join: token } }'), { ...base, AUTH_MODE: 'none' })).toThrow(
      'namespaces.t.join: token needs AUTH_MODE=jwt',
    );
    expect(() => loadNamespaces({ ...base, NAMESPACES_FILE: '/nonexistent/ns.yaml' })).toThrow('NAMESPACES_FILE=/nonexistent/ns.yaml: cannot be read');
    expect(() => loadNamespaces({ ...base, NAMESPACES_FILE: writeNamespaces('namespaces: [unclosed') })).toThrow(/NAMESPACES_FILE=.*: not YAML or JSON/);
  });

  it('reads JSON as well as YAML', () => {
    const file = writeNamespaces(JSON.stringify({ namespaces: { orders: { join: 'claim' } } }), 'ns.json');
    expect(loadNamespaces({ ...base, NAMESPACES_FILE: file }).resolve('orders:x').join).toBe('claim');
  });

  it('checks client publishes: policy, type, size and JSON Schema', () => {
    const ns = example();
    const code = (room: string, type: string, payload: unknown): string => {
      try {
        ns.resolve(room).checkClientPublish(type, payload);
        return 'ok';
      } catch (err) {
        return (err as ProtocolError).code;
      }
    };
    expect(code('tickets:1', 'ticket:note', { text: 'hi' })).toBe('ok');
    expect(code('orders:acme-1', 'order:updated', {})).toBe('forbidden');
    expect(code('tickets:1', 'ticket:other', { text: 'hi' })).toBe('payload_invalid');
    expect(code('tickets:1', 'ticket:note', { text: '' })).toBe('payload_invalid');
    expect(code('tickets:1', 'ticket:note', { text: 'hi', extra: 1 })).toBe('payload_invalid');
    expect(code('tickets:1', 'ticket:note', { text: 'x'.repeat(300) })).toBe('payload_too_large');
    expect(code('lobby:1', 'anything:goes', { any: ['shape'] })).toBe('ok');
  });
});

describe('join policies', () => {
  const ns = example();
  const verify = async (token: string, room: string, userId: string): Promise<void> => {
    if (token !== `${room}|${userId}`) throw new ProtocolError('subscription_token_invalid', 'no');
  };
  const join = (room: string, identity: Parameters<typeof authorizeJoin>[2], token?: string) =>
    refusal(authorizeJoin(ns.resolve(room), room, identity, token, verify));

  it('claim: only rooms matching a pattern in the named claim', async () => {
    const ann = { userId: 'ann', claims: { rooms: ['orders:acme-*', 'orders:vip'] } };
    expect(await join('orders:acme-42', ann)).toBe('allowed');
    expect(await join('orders:vip', ann)).toBe('allowed');
    expect(await join('orders:globex-1', ann)).toBe('forbidden');
    expect(await join('orders:vip2', ann)).toBe('forbidden');
    expect(await join('orders:acme-1', { userId: 'ann' })).toBe('forbidden');
    expect(await join('orders:acme-1', { userId: 'ann', claims: { rooms: 'orders:acme-*' } })).toBe('allowed');
  });

  it('claim patterns: * spans name characters only, everything else is literal', () => {
    expect(claimPatternMatches('orders:acme-*', 'orders:acme-')).toBe(true);
    expect(claimPatternMatches('orders:a.c', 'orders:abc')).toBe(false);
    expect(claimPatternMatches('orders:*', 'chat:x')).toBe(false);
    expect(claimPatternMatches('orders:(x|y)', 'orders:x')).toBe(false);
  });

  it('token: only with a verified subscription token', async () => {
    expect(await join('tickets:7', { userId: 'ann' }, 'tickets:7|ann')).toBe('allowed');
    expect(await join('tickets:7', { userId: 'ann' })).toBe('subscription_token_invalid');
    expect(await join('tickets:7', { userId: 'ann' }, 'tickets:8|ann')).toBe('subscription_token_invalid');
  });

  it('owner, authenticated and public; anonymous connections only in public rooms', async () => {
    expect(await join('user:ann', { userId: 'ann' })).toBe('allowed');
    expect(await join('user:bob', { userId: 'ann' })).toBe('forbidden');
    expect(await join('team:a', { userId: 'ann' })).toBe('allowed');
    expect(await join('lobby:a', { userId: 'anon-1', anonymous: true })).toBe('allowed');
    expect(await join('team:a', { userId: 'anon-1', anonymous: true })).toBe('auth_required');
    expect(await join('user:anon-1', { userId: 'anon-1', anonymous: true })).toBe('auth_required');
    expect(ns.anyPublic).toBe(true);
  });
});
