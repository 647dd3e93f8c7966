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
import type { Backplane } from './backplane/backplane.ts';
import type { Identity } from './auth.ts';
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
}

type Handler<E extends ClientEventName> = (ctx: ConnectionContext, payload: ParsedClientEvent<E>) => Promise<AckBodies[E]>;

function assertOwnRoom(ctx: ConnectionContext, room: string): void {
  if (room.startsWith('user:') && room !== userRoom(ctx.identity().userId)) {
    throw new ProtocolError('forbidden', `${room} belongs to another user; you may only join ${userRoom(ctx.identity().userId)}`);
  }
}

const handlers: { [E in ClientEventName]: Handler<E> } = {
  async 'room:join'(ctx, { room, lastSeq }) {
    assertOwnRoom(ctx, room);
    // socket.rooms includes the socket's own id room.
    if (!ctx.socket.rooms.has(room) && ctx.socket.rooms.size - 1 >= ctx.limits.maxRooms) {
      throw new ProtocolError('room_limit', `this connection already follows ${ctx.limits.maxRooms} rooms (MAX_ROOMS_PER_CONNECTION); leave one first`);
    }
    await ctx.session?.beforeJoin(room);
    const { more, ...result } = await ctx.hub.join(ctx.member, room, lastSeq ?? null, { pageBytes: ctx.limits.pageBytes });
    ctx.membersChanged(room);
    return more ? { room, ...result, more } : { room, ...result };
  },
  async 'room:leave'(ctx, { room }) {
    ctx.hub.leave(ctx.member, room);
    ctx.session?.left(room);
    ctx.membersChanged(room);
    return { room };
  },
  async 'history:fetch'(ctx, { room, afterSeq }) {
    assertOwnRoom(ctx, room);
    const history = await ctx.backplane.history(room, afterSeq, 50, MAX_PAGE_ENVELOPES);
    if (history.mode === 'reset') return { ...history, snapshot: { ...history.snapshot, recent: newestWithin(history.snapshot.recent, ctx.limits.pageBytes) } };
    const { page, more } = pageOf(history.envelopes, ctx.limits.pageBytes, history.seq);
    return more ? { ...history, envelopes: page, more } : history;
  },
  async 'counter:increment'(ctx, { room, by }) {
    const envelope = await ctx.backplane.publish({ room, type: 'counter:changed', counterBy: by, from: ctx.identity().userId });
    return { room, seq: envelope.seq, value: (envelope.payload as { value: number }).value };
  },
  async 'counter:read'(ctx, { room }) {
    return { room, ...(await ctx.backplane.readCounter(room)) };
  },
  async 'chat:send'(ctx, { room, text }) {
    const envelope = await ctx.backplane.publish({ room, type: 'chat:message', payload: { from: ctx.identity().userId, text }, from: ctx.identity().userId });
    return { room, seq: envelope.seq };
  },
  async 'dm:send'(ctx, { to, text }) {
    const from = ctx.identity().userId;
    const room = userRoom(to);
    const envelope = await ctx.backplane.publish({ room, type: 'dm:message', payload: { from, to, text }, from });
    return { room, seq: envelope.seq };
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
