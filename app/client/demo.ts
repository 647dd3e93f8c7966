import type { AckBodies } from '../protocol/index.ts';
import { DEFAULT_COUNTER_ROOM } from '../protocol/rooms.ts';
import type { GatewayClient } from './index.ts';

// The demo's operations (namespaces with `operations: [counter]`, `[chat]`, `[direct]`): helpers over
// the generic client, kept out of its core so an application's bundle does not carry them.

type Ok<E extends keyof AckBodies> = { readonly ok: true } & AckBodies[E];

/** Adds `by` to a counter room atomically on the server; every member gets `counter:changed`. */
export async function incrementCounter(client: GatewayClient, room: string = DEFAULT_COUNTER_ROOM, by = 1): Promise<Ok<'counter:increment'>> {
  const ack = await client.request('counter:increment', { room, by });
  client.notePublished(ack.room, ack.seq);
  return ack;
}

export function readCounter(client: GatewayClient, room: string = DEFAULT_COUNTER_ROOM): Promise<Ok<'counter:read'>> {
  return client.request('counter:read', { room });
}

export async function sendChat(client: GatewayClient, room: string, text: string): Promise<Ok<'chat:send'>> {
  const ack = await client.request('chat:send', { room, text });
  client.notePublished(ack.room, ack.seq);
  return ack;
}

/** A direct message into `user:<to>`; the recipient's client needs `directMessages: true` to follow its room. */
export function sendDirect(client: GatewayClient, to: string, text: string): Promise<Ok<'dm:send'>> {
  return client.request('dm:send', { to, text });
}
