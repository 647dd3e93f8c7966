import { WebSocket } from 'ws';

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
  const acks = new Map<number, (args: unknown[]) => void>();
  let nextAckId = 1;
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
      if (parsed?.id !== undefined && Array.isArray(parsed.body)) acks.get(parsed.id)?.(parsed.body);
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
    request(event, payload, timeoutMs = 10_000) {
      const id = nextAckId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          acks.delete(id);
          reject(new Error(`no ack for ${event} (id ${id}) within ${timeoutMs} ms`));
        }, timeoutMs);
        acks.set(id, (args) => {
          clearTimeout(timer);
          acks.delete(id);
          resolve(args);
        });
        ws.send(`42${id}${JSON.stringify([event, payload])}`);
      });
    },
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
