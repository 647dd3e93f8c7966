import { io, type Socket } from 'socket.io-client';

/**
 * What an application that ships the stock `socket.io-client` does, and nothing more: default options,
 * joins its rooms when it connects unless Socket.IO says the connection was recovered, and shows
 * every `chat:message` it gets. No seq bookkeeping, no drain hints, no resume logic: on a reconnect
 * that is not recovered it simply joins again (its resync), and anything it missed is lost to it.
 */

export interface StockClientOptions {
  readonly url: string;
  readonly transport: 'websocket' | 'polling';
  readonly rooms: readonly string[];
  /** The handshake auth the application sends (`{token}` with JWTs, `{userId}` with AUTH_MODE=none), or socket.io-client's auth callback. */
  readonly auth: Record<string, string> | ((cb: (data: Record<string, string>) => void) => void);
}

export interface StockClient {
  readonly socket: Socket;
  readonly transport: 'websocket' | 'polling';
  readonly rooms: readonly string[];
  /** Each connection: its pod and whether Socket.IO reported it recovered. */
  readonly connections: { pod: string; at: number; recovered: boolean }[];
  /** When a connection was lost and when the next was up. */
  readonly outages: { lostAt: number; backAt: number | null; reason: string }[];
  /** Per room: the seq of the first join (the start of the checked stream) and every chat seq shown. */
  readonly deliveries: Map<string, { joinedAt: number | null; delivered: number[] }>;
  /** Reconnects that were not recovered, after which the application joined again. */
  resyncs: number;
  readonly errors: string[];
}

export function startStockClient(opts: StockClientOptions): StockClient {
  const socket = io(opts.url, {
    transports: [opts.transport],
    auth: opts.auth,
    // Node only: the stock client sends cookies (HAProxy's sticky one, which long-polling needs) only
    // with this set; a browser sends them by itself. Every other option stays at its default.
    withCredentials: true,
    forceNew: true,
  });
  const client: StockClient = {
    socket,
    transport: opts.transport,
    rooms: opts.rooms,
    connections: [],
    outages: [],
    deliveries: new Map(opts.rooms.map((room) => [room, { joinedAt: null, delivered: [] }])),
    resyncs: 0,
    errors: [],
  };
  // The gateway's hello follows Socket.IO's connect, so it names the pod of the connection just made.
  socket.on('server:hello', (e: { payload: { pod: string } }) => {
    const current = client.connections.at(-1);
    if (current) current.pod = e.payload.pod;
  });
  socket.on('connect', () => {
    client.connections.push({ pod: '?', at: Date.now(), recovered: socket.recovered });
    const open = client.outages.at(-1);
    if (open && open.backAt === null) open.backAt = Date.now();
    if (socket.recovered) return;
    if (client.connections.length > 1) client.resyncs += 1;
    for (const room of opts.rooms) {
      socket.emit('room:join', { room }, (ack: { ok: boolean; seq?: number; error?: { code: string } }) => {
        const d = client.deliveries.get(room)!;
        if (!ack.ok) client.errors.push(`join ${room}: ${ack.error?.code}`);
        else if (d.joinedAt === null) d.joinedAt = ack.seq!;
      });
    }
  });
  socket.on('disconnect', (reason) => client.outages.push({ lostAt: Date.now(), backAt: null, reason }));
  socket.on('connect_error', (err) => client.errors.push(`connect_error: ${err.message}`));
  socket.on('chat:message', (e: { room: string; seq: number }) => client.deliveries.get(e.room)?.delivered.push(e.seq));
  return client;
}

/** The pod of the current connection (from `server:hello`). */
export function podOf(client: StockClient): string | undefined {
  return client.connections.at(-1)?.pod;
}
