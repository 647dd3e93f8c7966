import { WebSocket } from 'ws';

/** Ack ids and their pending requests, shared by the WebSocket and the long-polling raw clients. */
class PendingAcks {
  readonly #pending = new Map<number, (args: unknown[]) => void>();
  #nextId = 1;

  request(event: string, payload: unknown, timeoutMs = 10_000, send: (frame: string) => unknown): Promise<unknown[]> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no ack for ${event} (id ${id}) within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (args) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(args);
      });
      Promise.resolve(send(`42${id}${JSON.stringify([event, payload])}`)).catch((err: unknown) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err as Error);
      });
    });
  }

  settle(id: number, args: unknown[]): void {
    this.#pending.get(id)?.(args);
  }
}

/**
 * A bare Engine.IO v4 / Socket.IO v5 client over a raw `ws` WebSocket — for what the stock client
 * cannot do: send malformed frames, and stop reading its socket (a slow consumer).
 */
export interface RawSocketIo {
  readonly ws: WebSocket;
  /** Every text frame received, in order (ping frames excluded). */
  readonly frames: string[];
  /** Socket.IO events received: `[name, ...args]`. */
  readonly events: unknown[][];
  /** Resolves with the close code once the WebSocket closes. */
  readonly closed: Promise<number>;
  /** Emits `event` with an ack id and resolves with the ack's arguments. */
  request(event: string, payload: unknown, timeoutMs?: number): Promise<unknown[]>;
  /** Sends one raw text or binary WebSocket frame as-is. */
  sendRaw(frame: string | Buffer): void;
  /** Stops reading the TCP socket (the kernel buffers fill, then the server's). */
  pause(): void;
  resume(): void;
  close(): void;
}

export interface RawConnectOptions {
  /** The Socket.IO CONNECT payload (`auth`). */
  readonly auth?: unknown;
  /** Answer the server's pings (default true); false makes a zombie peer. */
  readonly answerPings?: boolean;
  /** Send the Socket.IO CONNECT and wait for its answer (default true). */
  readonly connect?: boolean;
}

/** Opens the WebSocket transport, does the Engine.IO handshake and (by default) the Socket.IO CONNECT. */
export async function connectRaw(baseUrl: string, opts: RawConnectOptions = {}): Promise<RawSocketIo> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  const events: unknown[][] = [];
  const acks = new PendingAcks();
  let onOpenPacket: (() => void) | null = null;
  let onConnectAnswer: ((frame: string) => void) | null = null;
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const frame = data.toString();
    if (frame === '2') {
      if (opts.answerPings ?? true) ws.send('3');
      return;
    }
    frames.push(frame);
    if (frame.startsWith('0')) onOpenPacket?.();
    else if (frame.startsWith('40') || frame.startsWith('44')) onConnectAnswer?.(frame);
    else if (frame.startsWith('42')) {
      const parsed = parsePacketBody(frame.slice(2));
      if (parsed && Array.isArray(parsed.body)) events.push(parsed.body);
    } else if (frame.startsWith('43')) {
      const parsed = parsePacketBody(frame.slice(2));
      if (parsed?.id !== undefined && Array.isArray(parsed.body)) acks.settle(parsed.id, parsed.body);
    }
  });
  await new Promise<void>((resolve, reject) => {
    onOpenPacket = resolve;
    ws.once('error', reject);
    void closed.then((code) => reject(new Error(`WebSocket closed (${code}) before the Engine.IO open packet`)));
  });
  if (opts.connect ?? true) {
    const answer = await new Promise<string>((resolve, reject) => {
      onConnectAnswer = resolve;
      ws.send(opts.auth === undefined ? '40' : `40${JSON.stringify(opts.auth)}`);
      void closed.then((code) => reject(new Error(`WebSocket closed (${code}) before the Socket.IO CONNECT answer`)));
    });
    if (answer.startsWith('44')) throw new Error(`Socket.IO CONNECT refused: ${answer.slice(2)}`);
  }
  return {
    ws,
    frames,
    events,
    closed,
    request: (event, payload, timeoutMs) => acks.request(event, payload, timeoutMs, (frame) => ws.send(frame)),
    sendRaw: (frame) => ws.send(frame),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    close: () => ws.close(),
  };
}

/** Splits `<ackId?><json>` (after the packet type digits). */
function parsePacketBody(rest: string): { id?: number; body: unknown } | null {
  const match = /^(\d*)(.*)$/s.exec(rest);
  if (!match) return null;
  try {
    return { ...(match[1] ? { id: Number(match[1]) } : {}), body: JSON.parse(match[2]!) };
  } catch {
    return null;
  }
}

/**
 * A bare Engine.IO v4 / Socket.IO v5 client over HTTP long-polling — for a polling client that stops
 * polling (a slow consumer the WebSocket client cannot model: the server keeps everything in its own
 * write buffer, nothing sits in the kernel).
 */
export interface RawPollingSocketIo {
  readonly sid: string;
  /** Socket.IO events received: `[name, ...args]`. */
  readonly events: unknown[][];
  /** Resolves with why the session ended: `close packet` or the HTTP status of a refused poll. */
  readonly closed: Promise<string>;
  request(event: string, payload: unknown, timeoutMs?: number): Promise<unknown[]>;
  /** Issues no new GET after the one in flight (if any) is answered. */
  pause(): void;
  resume(): void;
  close(): void;
}

const RECORD_SEPARATOR = '\x1e';

/** Engine.IO handshake over polling, the Socket.IO CONNECT, then a GET loop that answers pings. */
export async function connectRawPolling(baseUrl: string, opts: { auth?: unknown } = {}): Promise<RawPollingSocketIo> {
  const endpoint = `${baseUrl}/socket.io/?EIO=4&transport=polling`;
  const open = await fetch(endpoint);
  const openBody = await open.text();
  if (!open.ok || !openBody.startsWith('0')) throw new Error(`Engine.IO polling handshake failed: ${open.status} ${openBody}`);
  const { sid } = JSON.parse(openBody.slice(1)) as { sid: string };
  const sessionUrl = `${endpoint}&sid=${encodeURIComponent(sid)}`;
  const post = async (body: string): Promise<void> => {
    const res = await fetch(sessionUrl, { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
    await res.text();
    if (!res.ok) throw new Error(`POST of ${body.slice(0, 40)} answered ${res.status}`);
  };
  const events: unknown[][] = [];
  const acks = new PendingAcks();
  let paused = false;
  let polling = false;
  let ended = false;
  let onConnectAnswer: ((packet: string) => void) | null = null;
  let endSession!: (why: string) => void;
  const closed = new Promise<string>((resolve) => (endSession = resolve));
  void closed.then(() => (ended = true));

  function handle(packet: string): void {
    if (packet === '2') void post('3').catch(() => {});
    else if (packet === '1') endSession('close packet');
    else if (packet.startsWith('40') || packet.startsWith('44')) onConnectAnswer?.(packet);
    else if (packet.startsWith('42')) {
      const parsed = parsePacketBody(packet.slice(2));
      if (parsed && Array.isArray(parsed.body)) events.push(parsed.body);
    } else if (packet.startsWith('43')) {
      const parsed = parsePacketBody(packet.slice(2));
      if (parsed?.id !== undefined && Array.isArray(parsed.body)) acks.settle(parsed.id, parsed.body);
    }
  }

  async function pollLoop(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      while (!paused && !ended) {
        const res = await fetch(sessionUrl).catch((err: unknown) => ({ ok: false, status: `error ${(err as Error).message}`, text: async () => '' }));
        // The gateway may cut the transport mid-body; a rejection here would escape `void pollLoop()`.
        const body = await res.text().catch((err: unknown) => new Error(`body cut: ${(err as Error).message}`));
        if (body instanceof Error) return endSession(body.message);
        if (!res.ok) return endSession(`HTTP ${res.status}`);
        for (const packet of body.split(RECORD_SEPARATOR)) handle(packet);
      }
    } finally {
      polling = false;
    }
  }

  const connected = new Promise<string>((resolve) => (onConnectAnswer = resolve));
  await post(opts.auth === undefined ? '40' : `40${JSON.stringify(opts.auth)}`);
  void pollLoop();
  const answer = await Promise.race([connected, closed.then((why) => Promise.reject(new Error(`session ended (${why}) before the Socket.IO CONNECT answer`)))]);
  if (answer.startsWith('44')) throw new Error(`Socket.IO CONNECT refused: ${answer.slice(2)}`);
  return {
    sid,
    events,
    closed,
    request: (event, payload, timeoutMs) => acks.request(event, payload, timeoutMs, post),
    pause: () => void (paused = true),
    resume() {
      paused = false;
      void pollLoop();
    },
    close() {
      paused = true;
      if (!ended) void post('1').catch(() => {});
      endSession('closed by the client');
    },
  };
}
