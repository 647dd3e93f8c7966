import { createGatewayClient, type GatewayClient, type GatewayClientOptions } from '../client/index.ts';
import type { DurableEnvelope, EnvelopePayloads, RoomSnapshot } from '../protocol/index.ts';

// The transport ladder on the page: one reader per rung, each counting its own HTTP requests and the
// delivery latency of what it receives, so the rungs can be compared side by side.

export const RUNGS = ['short-poll', 'long-poll', 'sse', 'websocket'] as const;
export type Rung = (typeof RUNGS)[number];
/** `auto`: the SDK's default ladder — long-polling, upgraded to WebSocket, short polling as the fallback. */
export type RungChoice = Rung | 'auto';

/** Readers over SSE and short polling only read; their page writes over this Socket.IO connection. */
export const READ_ONLY_RUNGS: ReadonlySet<RungChoice> = new Set(['sse', 'short-poll']);

export interface ReaderCallbacks {
  message(envelope: DurableEnvelope): void;
  reset(room: string, seq: number, snapshot: RoomSnapshot): void;
  state(state: string): void;
  pod?(pod: string | null): void;
  error?(message: string, retryable: boolean): void;
}

export interface Reader {
  readonly rung: RungChoice;
  /** What carries it right now: `websocket`, `polling`, `short-poll`, `sse`, or null. */
  transport(): string | null;
  /** HTTP requests made so far (a WebSocket counts its upgrade request once per connection). */
  requests(): number;
  /** The SDK client behind it (not for SSE): it writes when its rung can. */
  readonly client: GatewayClient | null;
  readonly latency: LatencyWindow;
  close(): void;
}

export interface ReaderOptions {
  readonly url: string;
  readonly credentials: { token: string } | { userId: string };
  readonly rooms: readonly string[];
  /** Marks this reader's Socket.IO requests (`?rung=`), so the browser's resource timing attributes them. */
  readonly marker: string;
  readonly callbacks: ReaderCallbacks;
}

/** Delivery latency (receipt time − the envelope's `ts`, stamped where its seq was assigned), last 50. */
export class LatencyWindow {
  readonly #samples: number[] = [];

  add(envelope: DurableEnvelope): void {
    this.#samples.push(Math.max(0, Date.now() - envelope.ts));
    if (this.#samples.length > 50) this.#samples.shift();
  }

  get last(): number | null {
    return this.#samples.at(-1) ?? null;
  }

  get median(): number | null {
    if (this.#samples.length === 0) return null;
    const sorted = [...this.#samples].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }
}

/** Requests per minute over the last minute (scaled up while less than a minute has passed). */
export class RateWindow {
  readonly #since = Date.now();
  readonly #points: { at: number; total: number }[] = [];

  perMinute(total: number): number | null {
    const now = Date.now();
    this.#points.push({ at: now, total });
    while (this.#points.length > 1 && this.#points[0]!.at < now - 60_000) this.#points.shift();
    const first = this.#points[0]!;
    const base = now - first.at < 5_000 ? { at: this.#since, total: 0 } : first;
    const elapsed = now - base.at;
    // The first seconds hold the handshake's requests: a rate from them would mislead.
    return elapsed < 10_000 ? null : ((total - base.total) * 60_000) / elapsed;
  }
}

const resourceCounts = new Map<string, number>();
let observing = false;

/** Counts the browser's HTTP requests per `rung=` marker (long-polling GETs and POSTs, handshakes). */
function observeResources(): void {
  if (observing || typeof PerformanceObserver === 'undefined') return;
  observing = true;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const marker = /[?&]rung=([\w-]+)/.exec(entry.name)?.[1];
      if (marker) resourceCounts.set(marker, (resourceCounts.get(marker) ?? 0) + 1);
    }
    // The observer has them; the buffer (250 entries by default) would fill and warn.
    performance.clearResourceTimings();
  }).observe({ type: 'resource', buffered: true });
}

export function openReader(rung: RungChoice, opts: ReaderOptions): Reader {
  return rung === 'sse' ? openSseReader(opts) : openClientReader(rung, opts);
}

function openClientReader(rung: Exclude<RungChoice, 'sse'>, opts: ReaderOptions): Reader {
  observeResources();
  const transports: GatewayClientOptions['transports'] = {
    auto: ['polling', 'websocket', 'short-poll'] as const,
    'long-poll': ['polling'] as const,
    websocket: ['websocket'] as const,
    'short-poll': ['short-poll'] as const,
  }[rung];
  const latency = new LatencyWindow();
  const client = createGatewayClient({
    url: opts.url,
    ...opts.credentials,
    rooms: opts.rooms,
    transports,
    upgrade: rung !== 'long-poll',
    directMessages: false,
    socketOptions: { query: { rung: opts.marker } },
  });
  let upgrades = 0;
  client.on('message', (envelope) => {
    latency.add(envelope);
    opts.callbacks.message(envelope);
  });
  client.on('reset', ({ room, seq, snapshot }) => opts.callbacks.reset(room, seq, snapshot));
  client.on('state', (state) => {
    if (state === 'connected' && rung === 'websocket') upgrades += 1;
    opts.callbacks.state(state);
    if (state !== 'connected' && state !== 'draining') opts.callbacks.pod?.(null);
  });
  client.on('hello', ({ pod }) => opts.callbacks.pod?.(pod));
  client.on('error', (err) => opts.callbacks.error?.(err.message, err.retryable));
  return {
    rung,
    client,
    latency,
    transport: () => client.transport,
    // WebSocket upgrades are not in resource timing: one request per connection.
    requests: () => (resourceCounts.get(opts.marker) ?? 0) + client.shortPollStats.requests + upgrades,
    close: () => client.close(),
  };
}

function openSseReader(opts: ReaderOptions): Reader {
  const latency = new LatencyWindow();
  let requests = 0;
  let open = 0;
  const sources = opts.rooms.map((room) => {
    const query = new URLSearchParams({ room, ...('token' in opts.credentials ? { token: opts.credentials.token } : { userId: opts.credentials.userId }) });
    const source = new EventSource(`${opts.url}/sse?${query}`);
    requests += 1;
    source.onopen = () => {
      open += 1;
      opts.callbacks.state(open === opts.rooms.length ? 'connected' : 'connecting');
    };
    source.onerror = () => {
      // EventSource reconnects by itself (with Last-Event-ID) unless the server refused for good.
      open = Math.max(0, open - 1);
      if (source.readyState === EventSource.CONNECTING) requests += 1;
      opts.callbacks.state(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    };
    source.addEventListener('room:reset', (event) => {
      const envelope = JSON.parse((event as MessageEvent<string>).data) as { room: string; seq: number; payload: EnvelopePayloads['room:reset'] };
      opts.callbacks.reset(envelope.room, envelope.seq, envelope.payload.snapshot);
    });
    for (const type of ['counter:changed', 'chat:message'] as const) {
      source.addEventListener(type, (event) => {
        const envelope = JSON.parse((event as MessageEvent<string>).data) as DurableEnvelope;
        latency.add(envelope);
        opts.callbacks.message(envelope);
      });
    }
    return source;
  });
  opts.callbacks.state('connecting');
  return {
    rung: 'sse',
    client: null,
    latency,
    transport: () => (open > 0 ? 'sse' : null),
    requests: () => requests,
    close: () => sources.forEach((source) => source.close()),
  };
}
