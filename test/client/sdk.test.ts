// The SDK against a scripted Socket.IO server: a real server and real transports, but the test
// decides what the server sends, so gaps, duplicates, drain hints and refusals happen on cue.
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient, type GatewayClientOptions } from '../../app/client/index.ts';
import { readCounter } from '../../app/client/demo.ts';
import { controlEnvelope, type DurableEnvelope, PROTOCOL_VERSION } from '../../app/protocol/index.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

const ROOM = 'chat:script';

function chat(seq: number, room = ROOM): DurableEnvelope {
  return { v: PROTOCOL_VERSION, type: 'chat:message', room, seq, payload: { from: 'srv', text: String(seq) }, ts: Date.now() };
}

interface Handshake {
  readonly at: number;
  readonly auth: Record<string, unknown>;
}

interface Script {
  /** Refuse a handshake with this code, or let it in (null). */
  refuse?: (auth: Record<string, unknown>) => string | null;
  /** What `room:join` sends before its ack, and the ack's seq. */
  onJoin?: (socket: ServerSocket, payload: { room: string; lastSeq?: number | null }) => number;
  onHistory?: (payload: { room: string; afterSeq: number }) => unknown;
  /** Refuse this `room:join` with an error body, or let it through (null). */
  refuseJoin?: (payload: { room: string }) => { code: string; message: string; retryAfterMs?: number } | null;
  /** How long a `room:join` runs before its ack; like the gateway, a second join of the room meanwhile is refused. */
  joinDelayMs?: number;
}

class ScriptedServer {
  readonly handshakes: Handshake[] = [];
  readonly received: { event: string; payload: unknown }[] = [];
  readonly sockets: ServerSocket[] = [];
  readonly io: Server;
  readonly http: HttpServer;
  script: Script = {};

  constructor() {
    this.http = createServer();
    this.io = new Server(this.http);
    this.io.use((socket, next) => {
      const auth = socket.handshake.auth as Record<string, unknown>;
      this.handshakes.push({ at: Date.now(), auth });
      const code = this.script.refuse?.(auth) ?? null;
      if (code === null) return next();
      const err = new Error(`refused: ${code}`) as Error & { data: unknown };
      err.data = { code, message: `refused: ${code}`, retryable: code === 'draining' };
      next(err);
    });
    this.io.on('connection', (socket) => {
      this.sockets.push(socket);
      // Like RoomHub: one join per room and connection at a time; room:leave ends a running join.
      const joinsRunning = new Map<string, object>();
      socket.emit('server:hello', controlEnvelope('server:hello', null, { pod: `pod-${this.sockets.length}`, userId: 'u1', transport: socket.conn.transport.name }));
      socket.onAny((event: string, payload: unknown, ack: (r: unknown) => void) => {
        this.received.push({ event, payload });
        if (event === 'room:join') {
          const p = payload as { room: string; lastSeq?: number | null };
          if (p.room.startsWith('user:')) return ack({ ok: true, room: p.room, seq: 1, resume: 'fresh', replayed: 0 });
          if (joinsRunning.has(p.room)) return ack({ ok: false, error: { code: 'bad_request', message: `a join of ${p.room} is already in progress` } });
          const refusal = this.script.refuseJoin?.(p) ?? null;
          if (refusal) return ack({ ok: false, error: refusal });
          const token = {};
          joinsRunning.set(p.room, token);
          const finish = (): void => {
            if (joinsRunning.get(p.room) !== token) return ack({ ok: false, error: { code: 'not_joined', message: `left ${p.room} while joining it` } });
            joinsRunning.delete(p.room);
            const seq = this.script.onJoin?.(socket, p) ?? 0;
            ack({ ok: true, room: p.room, seq, resume: p.lastSeq == null ? 'fresh' : 'replay', replayed: 0 });
          };
          if (this.script.joinDelayMs) setTimeout(finish, this.script.joinDelayMs);
          else finish();
        } else if (event === 'room:leave') {
          joinsRunning.delete((payload as { room: string }).room);
          ack({ ok: true, room: (payload as { room: string }).room });
        } else if (event === 'history:fetch') {
          ack(this.script.onHistory?.(payload as { room: string; afterSeq: number }) ?? { ok: false, error: { code: 'internal', message: 'no script' } });
        } else if (event === 'auth:refresh') {
          ack({ ok: true, exp: 2_000_000_000 });
        } else {
          ack({ ok: false, error: { code: 'unknown_event', message: event } });
        }
      });
    });
  }

  get latest(): ServerSocket {
    return this.sockets.at(-1)!;
  }

  joinsOf(room: string): { room: string; lastSeq?: number | null }[] {
    return this.received.filter((r) => r.event === 'room:join' && (r.payload as { room: string }).room === room).map((r) => r.payload as { room: string; lastSeq?: number | null });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await this.io.close();
  }
}

const open: { server: ScriptedServer; clients: GatewayClient[] }[] = [];
afterEach(async () => {
  for (const { server, clients } of open.splice(0)) {
    for (const c of clients) c.close();
    await server.close();
  }
});

/** A scripted server whose joins start the room at seq 10 with a reset, and a client joined to it. */
async function setup(options: Partial<GatewayClientOptions> = {}, script: Script = {}): Promise<{ server: ScriptedServer; client: GatewayClient; delivered: number[] }> {
  const server = new ScriptedServer();
  server.script = {
    onJoin: (socket, { room, lastSeq }) => {
      if (lastSeq == null) socket.emit('room:reset', controlEnvelope('room:reset', room, { snapshot: { state: null, recent: [] } }, 10));
      return lastSeq ?? 10;
    },
    ...script,
  };
  const url = await server.listen();
  const client = createGatewayClient({ url, userId: 'u1', directMessages: true, transports: ['websocket'], backoff: { baseMs: 20, capMs: 200 }, gapFetchDelayMs: 50, ...options });
  open.push({ server, clients: [client] });
  const delivered: number[] = [];
  client.on('message', (e) => e.room === ROOM && delivered.push(e.seq));
  await client.join(ROOM);
  return { server, client, delivered };
}

describe('GatewayClient ordering, duplicates and gaps', () => {
  it('delivers in seq order once each, and fills a gap that persists with history:fetch', async () => {
    const { server, client, delivered } = await setup({}, { onHistory: ({ afterSeq }) => ({ ok: true, mode: 'replay', seq: 14, envelopes: [chat(afterSeq + 1), chat(afterSeq + 2)] }) });
    for (const seq of [11, 13, 14, 11]) server.latest.emit('chat:message', chat(seq));
    await waitFor('11..14 delivered', () => delivered.length === 4);
    server.latest.emit('chat:message', chat(13));
    server.latest.emit('chat:message', chat(15));
    await waitFor('15 delivered', () => delivered.length === 5);
    expect(delivered).toEqual([11, 12, 13, 14, 15]);
    expect(server.received.filter((r) => r.event === 'history:fetch').map((r) => r.payload)).toEqual([{ room: ROOM, afterSeq: 11 }]);
    expect(client.stats).toMatchObject({ gapFetches: 1, duplicatesDropped: 2, delivered: 5 });
  });

  it('applies a reset from history:fetch when the gap is older than the history', async () => {
    const { server, client, delivered } = await setup(
      {},
      { onHistory: () => ({ ok: true, mode: 'reset', seq: 50, snapshot: { state: null, recent: [] } }) },
    );
    const resets: number[] = [];
    client.on('reset', (r) => resets.push(r.seq));
    server.latest.emit('chat:message', chat(51)); // 11..50 missing
    await waitFor('51 delivered after the reset', () => delivered.includes(51));
    expect(delivered).toEqual([51]);
    expect(resets).toEqual([50]);
    expect(client.lastSeq(ROOM)).toBe(51);
  });

  it('resumes every room from its last seq when the transport drops, and takes the replay', async () => {
    const { server, client, delivered } = await setup();
    server.latest.emit('chat:message', chat(11));
    await waitFor('11 delivered', () => delivered.length === 1);
    server.script.onJoin = (socket, { room, lastSeq }) => {
      for (let seq = (lastSeq ?? 10) + 1; seq <= 13; seq += 1) socket.emit('chat:message', chat(seq, room));
      return 13;
    };
    server.latest.conn.close(); // what a crash looks like to the client: transport close
    await waitFor('12, 13 replayed', () => delivered.length === 3);
    expect(delivered).toEqual([11, 12, 13]);
    expect(server.joinsOf(ROOM).map((j) => j.lastSeq)).toEqual([null, 11]);
    expect(client.stats.connects).toBe(2);
    // The user's own room for direct messages is joined and resumed too.
    expect(server.joinsOf('user:u1').length).toBe(2);
  });
});

describe('GatewayClient joins', () => {
  it('sends one room:join per room and connection, however often join() is called', async () => {
    const { server, client } = await setup();
    const again = await Promise.all([client.join(ROOM), client.join('chat:second'), client.join('chat:second')]);
    expect(again.map((j) => j.room)).toEqual([ROOM, 'chat:second', 'chat:second']);
    expect(server.joinsOf(ROOM)).toHaveLength(1);
    expect(server.joinsOf('chat:second')).toHaveLength(1);
    expect(client.rooms).toEqual(expect.arrayContaining([ROOM, 'chat:second']));
  });

  it('sends one room:join when a state listener joins the room as the connection comes up', async () => {
    const server = new ScriptedServer();
    server.script = { joinDelayMs: 20 };
    const url = await server.listen();
    const client = createGatewayClient({ url, userId: 'u1', transports: ['websocket'] });
    open.push({ server, clients: [client] });
    const outcomes: string[] = [];
    client.on('state', (s) => s === 'connected' && void client.join('chat:lobby').then(() => outcomes.push('joined'), (e: { code: string }) => outcomes.push(e.code)));
    await waitFor('the join to settle', () => outcomes.length === 1);
    expect(outcomes).toEqual(['joined']);
    expect(server.joinsOf('chat:lobby')).toHaveLength(1);
    expect(client.rooms).toContain('chat:lobby');
  });

  it('retries a join refused as retryable (or internal) on the same connection', async () => {
    const refusals = [
      { code: 'backplane_unavailable', message: 'redis blip', retryAfterMs: 30 },
      { code: 'internal', message: 'something broke' },
    ];
    const { server, client } = await setup({ requestTimeoutMs: 3000 }, { refuseJoin: ({ room }) => (room === ROOM ? (refusals.shift() ?? null) : null) });
    expect(server.joinsOf(ROOM)).toHaveLength(3);
    expect(client.rooms).toContain(ROOM);
    expect(client.stats.connects).toBe(1);
  });

  it('join, leave, join within one round trip: the second join is sent and counts', async () => {
    const { server, client } = await setup({}, { joinDelayMs: 100 });
    const first = client.join('chat:a').catch((e: { code: string }) => e.code);
    await client.leave('chat:a');
    const second = await client.join('chat:a');
    expect(second.room).toBe('chat:a');
    expect(server.received.filter((r) => (r.payload as { room?: string }).room === 'chat:a').map((r) => r.event)).toEqual(['room:join', 'room:leave', 'room:join']);
    expect(await first).toMatchObject({ room: 'chat:a' }); // the first caller is answered by the join that counts
    expect(client.rooms).toContain('chat:a');
  });
});

describe('GatewayClient drain hints', () => {
  it('moves by itself after reconnectAfterMs: closes, reconnects, resumes', async () => {
    const { server, client } = await setup();
    const states: string[] = [];
    client.on('state', (s) => states.push(s));
    server.latest.emit('server:draining', controlEnvelope('server:draining', null, { pod: 'pod-1', reconnectAfterMs: 100 }));
    await waitFor('connected to the second pod', () => client.pod === 'pod-2');
    expect(states).toEqual(['draining', 'reconnecting', 'connected']);
    expect(client.stats).toMatchObject({ drainMoves: 1, connects: 2 });
    expect(server.joinsOf(ROOM).map((j) => j.lastSeq)).toEqual([null, 10]);
  });

  it('when the server closes the transport before the hint, reconnects no earlier than the hint', async () => {
    const { server, client } = await setup();
    const hintMs = 400;
    const sentAt = Date.now();
    server.latest.emit('server:draining', controlEnvelope('server:draining', null, { pod: 'pod-1', reconnectAfterMs: hintMs }));
    await waitFor('the hint to arrive', () => client.state === 'draining');
    server.latest.conn.close();
    await waitFor('reconnected', () => client.stats.connects === 2);
    // A lower bound on when the client came back, not a speed requirement: it must wait out the hint.
    expect(server.handshakes[1]!.at - sentAt).toBeGreaterThanOrEqual(hintMs);
    expect(client.stats.drainMoves).toBe(0);
  });

  it('with honourDrainHint: false (the contrast setting) stays until the server closes it', async () => {
    const { server, client } = await setup({ honourDrainHint: false });
    server.latest.emit('server:draining', controlEnvelope('server:draining', null, { pod: 'pod-1', reconnectAfterMs: 0 }));
    await readCounter(client).catch(() => {}); // a round trip: the hint has been processed after it
    expect(client.state).toBe('connected');
    expect(client.stats.connects).toBe(1);
    server.latest.conn.close();
    await waitFor('reconnected by backoff', () => client.stats.connects === 2);
  });
});

describe('GatewayClient tokens and refusals', () => {
  it('answers auth:refresh with a token from getToken', async () => {
    const tokens = ['token-1', 'token-2'];
    const { server } = await setup({ userId: undefined, getToken: () => tokens.shift()! });
    expect(server.handshakes[0]!.auth).toEqual({ token: 'token-1' });
    server.latest.emit('auth:refresh', controlEnvelope('auth:refresh', null, { exp: 1, refreshBy: Date.now() }));
    await waitFor('auth:refresh sent', () => server.received.some((r) => r.event === 'auth:refresh'));
    expect(server.received.find((r) => r.event === 'auth:refresh')!.payload).toEqual({ token: 'token-2' });
  });

  it('after a handshake refused as token_expired, fetches a new token and gets in', async () => {
    const tokens = ['stale', 'fresh'];
    const { server, client } = await setup(
      { userId: undefined, getToken: () => tokens.shift()! },
      { refuse: (auth) => (auth.token === 'stale' ? 'token_expired' : null) },
    );
    expect(server.handshakes.map((h) => h.auth.token)).toEqual(['stale', 'fresh']);
    expect(client.state).toBe('connected');
  });

  it('without getToken, an auth refusal closes the client with the error (no retry loop)', async () => {
    const server = new ScriptedServer();
    server.script = { refuse: () => 'auth_invalid' };
    const url = await server.listen();
    const client = createGatewayClient({ url, token: 'bad', transports: ['websocket'] });
    open.push({ server, clients: [client] });
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.code));
    await waitFor('closed', () => client.state === 'closed');
    expect(errors).toEqual(['auth_invalid']);
    expect(server.handshakes).toHaveLength(1);
    await expect(readCounter(client)).rejects.toMatchObject({ code: 'closed' });
  });

  it('retries a retryable refusal (draining) with backoff until it gets in', async () => {
    let refusals = 3;
    const { server, client } = await setup({ random: () => 0.5 }, { refuse: () => (refusals-- > 0 ? 'draining' : null) });
    expect(server.handshakes).toHaveLength(4);
    expect(client.stats).toMatchObject({ connectFailures: 3, connects: 1 });
  });

  it('close() stops everything: no reconnect after the server drops it, pending calls reject', async () => {
    const { server, client } = await setup();
    client.close();
    server.latest.conn.close();
    await new Promise((r) => setTimeout(r, 300)); // ten times the backoff window
    expect(server.handshakes).toHaveLength(1);
    expect(client.state).toBe('closed');
    await expect(client.join('chat:other')).rejects.toMatchObject({ code: 'closed' });
  });

  it('close() from a state listener while a reconnect is being scheduled: no reconnect', async () => {
    const { server, client } = await setup();
    client.on('state', (s) => s === 'reconnecting' && client.close());
    server.latest.conn.close();
    await waitFor('closed', () => client.state === 'closed');
    await new Promise((r) => setTimeout(r, 300)); // ten times the backoff window
    expect(server.handshakes).toHaveLength(1);
  });
});
