import type { Socket } from 'socket.io';
import {
  type AckBodies,
  type ClientEventName,
  clientEventSchemas,
  isClientEvent,
  type ParsedClientEvent,
  ProtocolError,
  userRoom,
  type ErrorBody,
  MAX_PAGE_ENVELOPES,
} from '../protocol/index.ts';
import type { Backplane, PublishRequest } from './backplane/backplane.ts';
import type { Identity } from './auth.ts';
import { authorizeJoin, type Namespace, type Namespaces } from './namespaces.ts';
import type { Presence } from './presence.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { newestWithin, pageOf, type RoomHub, type RoomMember } from './room-hub.ts';

/** What a handler may touch for one connection. */
export interface ConnectionContext {
  readonly socket: Socket;
  readonly member: RoomMember;
  readonly hub: RoomHub;
  readonly backplane: Backplane;
  identity(): Identity;
  /** Replaces the identity after `auth:refresh`; returns the new `exp`. */
  refreshIdentity(token: string): Promise<Identity>;
  /** Chat member counts are recounted after joins and leaves. */
  membersChanged(room: string): void;
  /** The connection-state-recovery session (recovery.ts), when on: it names each room before it is joined. */
  readonly session?: { beforeJoin(room: string): Promise<void>; left(room: string): void };
  /** Most bytes of envelopes one reply carries (HISTORY_PAGE_BYTES), and rooms one socket follows. */
  readonly limits: { readonly pageBytes: number; readonly maxRooms: number };
  readonly namespaces: Namespaces;
  readonly verifySubscriptionToken: ((token: string, room: string, userId: string) => Promise<void>) | null;
  readonly idempotencyWindowSeconds: number;
  /** Who is in a room across the fleet (presence.ts); throws `forbidden` when the namespace keeps none. */
  presence(room: string): Promise<AckBodies['presence:get']>;
  readonly presenceTracker: Presence;
  readonly metrics: Metrics;
}

type Handler<E extends ClientEventName> = (ctx: ConnectionContext, payload: ParsedClientEvent<E>) => Promise<AckBodies[E]>;

/** The room's namespace, after checking that this connection may join (or read) the room. */
async function mayJoin(ctx: ConnectionContext, room: string, token?: string): Promise<Namespace> {
  const ns = ctx.namespaces.resolve(room);
  await authorizeJoin(ns, room, ctx.identity(), token, ctx.verifySubscriptionToken);
  return ns;
}

/** The namespace of `room` when it offers the demo operation `op`, and this connection may join the room. */
async function operation(ctx: ConnectionContext, room: string, op: Namespace['operations'][number]): Promise<Namespace> {
  const ns = await mayJoin(ctx, room);
  if (!ns.operations.includes(op)) throw new ProtocolError('forbidden', `the ${ns.name} namespace does not offer the ${op} operation`);
  return ns;
}

/** Per-namespace history settings of a publish. */
function historyOf(ns: Namespace): Pick<PublishRequest, 'history' | 'keyTtlSeconds'> {
  return { history: ns.history, keyTtlSeconds: ns.keyTtlSeconds };
}

const handlers: { [E in ClientEventName]: Handler<E> } = {
  async 'room:join'(ctx, { room, lastSeq, token }) {
    let ns: Namespace;
    try {
      ns = await mayJoin(ctx, room, token);
    } catch (err) {
      if (err instanceof ProtocolError) ctx.metrics.joins.inc({ namespace: ctx.namespaces.labelOf(room), outcome: err.code });
      throw err;
    }
    // socket.rooms includes the socket's own id room and the user's tag room.
    if (!ctx.socket.rooms.has(room) && ctx.socket.rooms.size - 2 >= ctx.limits.maxRooms) {
      throw new ProtocolError('room_limit', `this connection already follows ${ctx.limits.maxRooms} rooms (MAX_ROOMS_PER_CONNECTION); leave one first`);
    }
    await ctx.session?.beforeJoin(room);
    const { more, ...result } = await ctx.hub.join(ctx.member, room, lastSeq ?? null, { pageBytes: ctx.limits.pageBytes });
    ctx.metrics.joins.inc({ namespace: ns.name, outcome: 'ok' });
    ctx.membersChanged(room);
    if (ns.presence) ctx.presenceTracker.add(room, ctx.identity().userId, ctx.socket.id);
    return more ? { room, ...result, more } : { room, ...result };
  },
  async 'room:leave'(ctx, { room }) {
    ctx.presenceTracker.remove(room, ctx.socket.id);
    ctx.hub.leave(ctx.member, room);
    ctx.session?.left(room);
    ctx.membersChanged(room);
    return { room };
  },
  async 'history:fetch'(ctx, { room, afterSeq }) {
    // A joined room was authorised at its join (perhaps with a subscription token this event does not carry).
    if (!ctx.socket.rooms.has(room)) await mayJoin(ctx, room);
    const history = await ctx.backplane.history(room, afterSeq, 50, MAX_PAGE_ENVELOPES);
    if (history.mode === 'reset') return { ...history, snapshot: { ...history.snapshot, recent: newestWithin(history.snapshot.recent, ctx.limits.pageBytes) } };
    const { page, more } = pageOf(history.envelopes, ctx.limits.pageBytes, history.seq);
    return more ? { ...history, envelopes: page, more } : history;
  },
  async 'counter:increment'(ctx, { room, by }) {
    const ns = await operation(ctx, room, 'counter');
    const envelope = await ctx.backplane.publish({ room, type: 'counter:changed', counterBy: by, from: ctx.identity().userId, ...historyOf(ns) });
    ctx.metrics.publishes.inc({ namespace: ns.name, source: 'operation', outcome: 'ok' });
    return { room, seq: envelope.seq, value: (envelope.payload as { value: number }).value };
  },
  async 'counter:read'(ctx, { room }) {
    await operation(ctx, room, 'counter');
    return { room, ...(await ctx.backplane.readCounter(room)) };
  },
  async 'chat:send'(ctx, { room, text }) {
    const ns = await operation(ctx, room, 'chat');
    const from = ctx.identity().userId;
    const envelope = await ctx.backplane.publish({ room, type: 'chat:message', payload: { from, text }, from, ...historyOf(ns) });
    ctx.metrics.publishes.inc({ namespace: ns.name, source: 'operation', outcome: 'ok' });
    return { room, seq: envelope.seq };
  },
  async 'dm:send'(ctx, { to, text }) {
    const from = ctx.identity().userId;
    const room = userRoom(to);
    const ns = ctx.namespaces.resolve(room);
    if (!ns.operations.includes('direct')) throw new ProtocolError('forbidden', `the ${ns.name} namespace does not offer the direct operation`);
    if (ctx.identity().anonymous) throw new ProtocolError('auth_required', 'direct messages need a signed-in user');
    const envelope = await ctx.backplane.publish({ room, type: 'dm:message', payload: { from, to, text }, from, ...historyOf(ns) });
    ctx.metrics.publishes.inc({ namespace: ns.name, source: 'operation', outcome: 'ok' });
    return { room, seq: envelope.seq };
  },
  async publish(ctx, { room, type, payload, idempotencyKey }) {
    const userId = ctx.identity().userId;
    let ns: Namespace;
    try {
      ns = ctx.namespaces.resolve(room);
      ns.checkClientPublish(type, payload);
      if (!ctx.socket.rooms.has(room)) throw new ProtocolError('not_joined', `join ${room} before publishing in it (the ${ns.name} namespace lets members publish)`);
    } catch (err) {
      if (err instanceof ProtocolError) ctx.metrics.publishes.inc({ namespace: ctx.namespaces.labelOf(room), source: 'client', outcome: err.code });
      throw err;
    }
    const { envelope, duplicate } = await ctx.backplane.publishOnce({
      room,
      type,
      payload,
      from: userId,
      sender: userId,
      ...historyOf(ns),
      // Scoped to the user, so one user's keys can never swallow another's publish.
      ...(idempotencyKey === undefined ? {} : { idempotencyKey: `u:${userId}:${idempotencyKey}`, idempotencyWindowSeconds: ctx.idempotencyWindowSeconds }),
    });
    ctx.metrics.publishes.inc({ namespace: ns.name, source: 'client', outcome: duplicate ? 'duplicate' : 'ok' });
    return { room, seq: envelope.seq, duplicate };
  },
  async 'presence:get'(ctx, { room }) {
    if (!ctx.socket.rooms.has(room)) throw new ProtocolError('not_joined', `join ${room} before asking who is in it`);
    return ctx.presence(room);
  },
  async 'auth:refresh'(ctx, { token }) {
    const identity = await ctx.refreshIdentity(token);
    return { exp: identity.exp };
  },
};

export type AckFn = (response: unknown) => void;

/** A check that runs before every event (rate limits); throws `ProtocolError` to refuse it. */
export type EventGuard = (ctx: ConnectionContext, event: string, args: readonly unknown[]) => void;

/**
 * Routes one inbound event: validates its payload against the protocol schema, runs the handler
 * and answers the ack. Nothing a client sends can throw out of here.
 */
export async function dispatch(
  ctx: ConnectionContext,
  event: unknown,
  args: unknown[],
  deps: { metrics: Metrics; log: Logger; guards: readonly EventGuard[] },
): Promise<void> {
  const ack = typeof args.at(-1) === 'function' ? (args.pop() as AckFn) : null;
  const eventLabel = isClientEvent(event) ? event : 'unknown';
  const answer = (response: { ok: true } | { ok: false; error: ErrorBody }): void => {
    deps.metrics.messagesIn.inc({ event: eventLabel, outcome: response.ok ? 'ok' : response.error.code });
    if (ack) ack(response);
  };
  try {
    for (const guard of deps.guards) guard(ctx, eventLabel, args);
    if (!isClientEvent(event)) {
      throw new ProtocolError('unknown_event', `unknown event ${JSON.stringify(String(event)).slice(0, 80)}; known events: ${Object.keys(clientEventSchemas).join(', ')}`);
    }
    if (!ack) throw new ProtocolError('ack_required', `${event} must be sent with an acknowledgement callback`);
    if (args.length !== 1) throw new ProtocolError('bad_request', `${event} takes exactly one payload object, got ${args.length} arguments`);
    const parsed = clientEventSchemas[event].safeParse(args[0]);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? issue.path.join('.') : 'payload';
      throw new ProtocolError('bad_request', `${event}: ${where}: ${issue?.message ?? 'invalid'}`);
    }
    const handler = handlers[event] as Handler<typeof event>;
    const body = await handler(ctx, parsed.data as never);
    answer({ ok: true, ...body });
  } catch (err) {
    if (err instanceof ProtocolError) {
      answer({ ok: false, error: err.toBody() });
    } else {
      deps.log.error({ err, event: eventLabel }, 'handler failed');
      answer({ ok: false, error: { code: 'internal', message: 'the gateway failed to handle this event; it was logged' } });
    }
  }
}
