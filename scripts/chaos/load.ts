import { type ConnectionState, createGatewayClient, type GatewayClient, type GatewayClientOptions } from '../../app/client/index.ts';
import { sendChat } from '../../app/client/demo.ts';
import { checkDeliveries, type DeliveryCheck } from './measure.ts';
import { startStockClient } from './stock.ts';

/**
 * The load: SDK clients over WebSocket and long-polling through the edge, each following a few
 * rooms that get a steady numbered stream, some of them publishing too. Every client records what
 * its application saw, so loss, duplicates and reconnects are measured where users feel them.
 */

export interface PopulationOptions {
  readonly url: string;
  readonly clients: number;
  readonly rooms: number;
  readonly roomsPerClient: number;
  /** Room names get this prefix, so each population's rooms (and seqs) are its own. */
  readonly roomPrefix: string;
  /** Stream messages per second into each room. */
  readonly streamPerRoomPerSecond: number;
  /** Share of clients that also publish, each one message every `publishEveryMs`. */
  readonly publisherShare: number;
  readonly publishEveryMs: number;
  /** Client options for this population (drain hint and backoff jitter on, or off for the contrast). */
  readonly client: Pick<GatewayClientOptions, 'honourDrainHint' | 'backoff'>;
  /** Handshakes per second while connecting. */
  readonly connectRatePerSecond: number;
  /** A JWT for a user id, when the gateways require one (AUTH_MODE=jwt); unset: each client sends its user id. */
  readonly getToken?: (userId: string) => Promise<string>;
  /**
   * `sdk` (default): the client SDK. `stock`: the plain `socket.io-client` with default options and
   * no application code beyond joining its rooms when a connection is not recovered (scripts/chaos/stock.ts);
   * the stream still comes from SDK clients, and stock clients do not publish.
   */
  readonly kind?: 'sdk' | 'stock';
}

/** What the chaos driver reads of a client, whichever kind it is. */
export interface PopulationClient {
  readonly state: ConnectionState;
  readonly pod: string | null;
  lastSeq(room: string): number | null;
  sendChat(room: string, text: string): Promise<{ readonly seq: number }>;
  close(): void;
}

/** An SDK client as the chaos driver sees it (its chat publishes go through the demo helper). */
function populationOf(client: GatewayClient): PopulationClient {
  return {
    get state() {
      return client.state;
    },
    get pod() {
      return client.pod;
    },
    lastSeq: (room) => client.lastSeq(room),
    sendChat: (room, text) => sendChat(client, room, text),
    close: () => client.close(),
  };
}

export interface ClientRecord {
  readonly id: number;
  readonly transport: 'websocket' | 'polling';
  readonly client: PopulationClient;
  readonly rooms: string[];
  /** Pod of each connection, with when it was made. */
  readonly connections: { pod: string; at: number }[];
  /** When a connection was lost (or left on a drain hint) and when the next one was up. */
  readonly outages: { lostAt: number; backAt: number | null; drainHinted: boolean }[];
  readonly hints: { at: number; reconnectAfterMs: number }[];
  readonly deliveries: Map<string, { joinedAt: number | null; delivered: number[] }>;
  readonly errors: Map<string, number>;
  /** Stock clients: reconnects Socket.IO reported recovered, and those after which the application joined again. */
  readonly recovery?: { recovered: number; resynced: number };
}

export interface PopulationStats {
  readonly published: number;
  readonly publishFailures: number;
  readonly delivered: number;
  /** Stock populations: reconnects recovered by Socket.IO's connection state recovery, and resyncs. */
  readonly recovered?: number;
  readonly resynced?: number;
}

export interface DeliveryReport extends DeliveryCheck {
  /** Client-rooms checked. */
  readonly streams: number;
  /** Resets after the first join (a gap older than history: a loss the SDK could only paper over). */
  readonly lateResets: number;
  readonly examples: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Population {
  readonly records: ClientRecord[] = [];
  readonly #opts: PopulationOptions;
  readonly #roomNames: string[];
  readonly #acked = new Map<string, Set<number>>();
  #timers: NodeJS.Timeout[] = [];
  #inFlight = new Set<Promise<unknown>>();
  #published = 0;
  #publishFailures = 0;
  #delivered = 0;
  readonly #lateResets = new Map<string, number>();
  #streamClients: GatewayClient[] = [];

  constructor(opts: PopulationOptions) {
    this.#opts = opts;
    this.#roomNames = Array.from({ length: opts.rooms }, (_, i) => `chat:${opts.roomPrefix}-${i}`);
    for (const room of this.#roomNames) this.#acked.set(room, new Set());
  }

  get rooms(): readonly string[] {
    return this.#roomNames;
  }

  get stats(): PopulationStats {
    const base = { published: this.#published, publishFailures: this.#publishFailures, delivered: this.#delivered };
    if (this.#opts.kind !== 'stock') return base;
    const sum = (key: 'recovered' | 'resynced'): number => this.records.reduce((total, r) => total + (r.recovery?.[key] ?? 0), 0);
    return { ...base, recovered: sum('recovered'), resynced: sum('resynced') };
  }

  /** Connects every client (half WebSocket, half long-polling) and joins its rooms. */
  async connect(): Promise<void> {
    const o = this.#opts;
    const batch = Math.max(1, Math.round(o.connectRatePerSecond / 10));
    for (let i = 0; i < o.clients; i += 1) {
      const rooms = Array.from({ length: o.roomsPerClient }, (_, k) => this.#roomNames[(i + k * 7) % this.#roomNames.length]!);
      this.records.push(this.#spawn(i, i % 2 === 0 ? 'websocket' : 'polling', [...new Set(rooms)]));
      if ((i + 1) % batch === 0) await sleep(100);
    }
    await this.waitAll('every client connected and joined', (r) => r.client.state === 'connected' && r.rooms.every((room) => r.deliveries.get(room)!.joinedAt !== null), 60_000);
    // The stream comes from two extra clients over WebSocket, each taking half the rooms.
    for (let s = 0; s < 2; s += 1) {
      const client = createGatewayClient({ url: o.url, ...this.#identity(`${o.roomPrefix}-stream-${s}`), transports: ['websocket'], ...o.client });
      client.on('error', () => {});
      this.#streamClients.push(client);
    }
  }

  /** Who a client is: a token source for that user when the gateways require JWTs, else the user id itself. */
  #identity(userId: string): Pick<GatewayClientOptions, 'userId' | 'getToken'> {
    const getToken = this.#opts.getToken;
    return getToken ? { getToken: () => getToken(userId) } : { userId };
  }

  #spawnStock(id: number, transport: 'websocket' | 'polling', rooms: string[]): ClientRecord {
    const getToken = this.#opts.getToken;
    const userId = `${this.#opts.roomPrefix}-${id}`;
    const stock = startStockClient({
      url: this.#opts.url,
      transport,
      rooms,
      auth: getToken ? (cb) => void getToken(userId).then((token) => cb({ token })) : { userId },
    });
    const { socket } = stock;
    const client: PopulationClient = {
      get state() {
        return socket.connected ? 'connected' : 'reconnecting';
      },
      get pod() {
        const pod = stock.connections.at(-1)?.pod;
        return pod === undefined || pod === '?' ? null : pod;
      },
      lastSeq: (room) => stock.deliveries.get(room)?.delivered.at(-1) ?? stock.deliveries.get(room)?.joinedAt ?? null,
      sendChat: () => Promise.reject(new Error('stock clients in the chaos population do not publish')),
      close: () => void socket.disconnect(),
    };
    const recovery = { recovered: 0, resynced: 0 };
    const record: ClientRecord = {
      id,
      transport,
      client,
      rooms,
      connections: stock.connections,
      outages: [],
      hints: [],
      deliveries: stock.deliveries,
      errors: new Map(),
      recovery,
    };
    socket.on('server:draining', (e: { payload: { reconnectAfterMs: number } }) => record.hints.push({ at: Date.now(), reconnectAfterMs: e.payload.reconnectAfterMs }));
    socket.on('disconnect', () => record.outages.push({ lostAt: Date.now(), backAt: null, drainHinted: record.hints.length > 0 }));
    socket.on('connect', () => {
      const open = record.outages.at(-1);
      if (open && open.backAt === null) open.backAt = Date.now();
      if (stock.connections.length > 1) recovery[socket.recovered ? 'recovered' : 'resynced'] += 1;
    });
    socket.on('connect_error', (err) => record.errors.set(err.message, (record.errors.get(err.message) ?? 0) + 1));
    socket.on('chat:message', () => (this.#delivered += 1));
    return record;
  }

  #spawn(id: number, transport: 'websocket' | 'polling', rooms: string[]): ClientRecord {
    const o = this.#opts;
    if (o.kind === 'stock') return this.#spawnStock(id, transport, rooms);
    const client = createGatewayClient({
      url: o.url,
      ...this.#identity(`${o.roomPrefix}-${id}`),
      transports: [transport],
      rooms,
      ...o.client,
    });
    const record: ClientRecord = {
      id,
      transport,
      client: populationOf(client),
      rooms,
      connections: [],
      outages: [],
      hints: [],
      deliveries: new Map(rooms.map((room) => [room, { joinedAt: null, delivered: [] }])),
      errors: new Map(),
    };
    let hinted = false;
    client.on('hello', ({ pod }) => {
      record.connections.push({ pod, at: Date.now() });
      const open = record.outages.at(-1);
      if (open && open.backAt === null) open.backAt = Date.now();
    });
    client.on('draining', ({ reconnectAfterMs }) => {
      hinted = true;
      record.hints.push({ at: Date.now(), reconnectAfterMs });
    });
    client.on('state', (state, previous) => {
      const wasUp = previous === 'connected' || previous === 'draining';
      if (wasUp && state === 'reconnecting') {
        record.outages.push({ lostAt: Date.now(), backAt: null, drainHinted: hinted });
        hinted = false;
      }
    });
    client.on('reset', ({ room, seq }) => {
      const d = record.deliveries.get(room);
      if (!d) return;
      if (d.joinedAt === null) d.joinedAt = seq;
      else this.#lateResets.set(`${id}/${room}`, (this.#lateResets.get(`${id}/${room}`) ?? 0) + 1);
    });
    client.on('joined', ({ room, seq }) => {
      const d = record.deliveries.get(room);
      if (d && d.joinedAt === null) d.joinedAt = seq;
    });
    client.on('message', (envelope) => {
      this.#delivered += 1;
      record.deliveries.get(envelope.room)?.delivered.push(envelope.seq);
    });
    client.on('error', (err) => record.errors.set(err.code, (record.errors.get(err.code) ?? 0) + 1));
    return record;
  }

  /** Starts the numbered stream and the client publishers. */
  startTraffic(): void {
    const o = this.#opts;
    let n = 0;
    const streamEvery = 1_000 / o.streamPerRoomPerSecond;
    this.#timers.push(
      setInterval(() => {
        n += 1;
        this.#roomNames.forEach((room, i) => this.#publish(populationOf(this.#streamClients[i % 2]!), room, `stream ${n}`));
      }, streamEvery),
    );
    const publishers = o.kind === 'stock' || o.publisherShare <= 0 ? [] : this.records.filter((_, i) => i % Math.round(1 / o.publisherShare) === 0);
    publishers.forEach((record, k) => {
      // Spread publishers over the period so their messages do not come in bursts.
      const start = setTimeout(() => {
        let m = 0;
        this.#timers.push(setInterval(() => this.#publish(record.client, record.rooms[m++ % record.rooms.length]!, `from ${record.id} #${m}`), o.publishEveryMs));
      }, (k * o.publishEveryMs) / publishers.length);
      this.#timers.push(start);
    });
  }

  #publish(client: PopulationClient, room: string, text: string): void {
    if (client.state === 'closed') return;
    const p = client.sendChat(room, text).then(
      (ack) => {
        this.#published += 1;
        this.#acked.get(room)!.add(ack.seq);
      },
      () => (this.#publishFailures += 1),
    );
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  /** Stops publishing, waits for answers, sends one acked marker per room and waits until every client has it. */
  async quiesce(timeoutMs = 30_000): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await Promise.allSettled([...this.#inFlight]);
    const markers = await Promise.all(
      this.#roomNames.map(async (room, i) => {
        const ack = await sendChat(this.#streamClients[i % 2]!, room, 'marker');
        this.#acked.get(room)!.add(ack.seq);
        return [room, ack.seq] as const;
      }),
    );
    const finalSeq = new Map(markers);
    await this.waitAll(
      'every client to receive the final marker of each of its rooms',
      (r) => r.rooms.every((room) => (r.client.lastSeq(room) ?? 0) >= finalSeq.get(room)!),
      timeoutMs,
    );
  }

  /** Exactly-once, in-order delivery of every seq since each client's first join, up to the markers. */
  checkDeliveries(): DeliveryReport {
    const total = { lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 };
    const examples: string[] = [];
    let streams = 0;
    const finalSeq = new Map([...this.#acked].map(([room, seqs]) => [room, Math.max(...seqs)]));
    for (const record of this.records) {
      for (const [room, d] of record.deliveries) {
        streams += 1;
        if (d.joinedAt === null) {
          examples.push(`client ${record.id} never joined ${room}`);
          continue;
        }
        const check = checkDeliveries({ joinedAt: d.joinedAt, delivered: d.delivered }, finalSeq.get(room)!);
        for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += check[key];
        if ((check.lost || check.duplicates || check.outOfOrder || check.unexpected) && examples.length < 5) {
          examples.push(`client ${record.id} (${record.transport}) ${room}: ${JSON.stringify(check)}`);
        }
      }
    }
    const lateResets = [...this.#lateResets.values()].reduce((a, b) => a + b, 0);
    return { ...total, streams, lateResets, examples };
  }

  async waitAll(what: string, check: (r: ClientRecord) => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const behind = this.records.filter((r) => !check(r));
      if (behind.length === 0) return;
      if (Date.now() > deadline) {
        const sample = behind.slice(0, 3).map((r) => `#${r.id} ${r.transport} state=${r.client.state} pod=${r.client.pod} errors=${JSON.stringify(Object.fromEntries(r.errors))}`);
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${behind.length} of ${this.records.length} clients behind, e.g. ${sample.join('; ')}`);
      }
      await sleep(100);
    }
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const r of this.records) r.client.close();
    for (const c of this.#streamClients) c.close();
  }
}
