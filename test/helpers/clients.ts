import { io, type Socket } from 'socket.io-client';
import { CONTROL_TYPES, DURABLE_TYPES } from '../../app/protocol/envelope.ts';
import type { Ack, DurableEnvelope } from '../../app/protocol/index.ts';

export interface TestClient {
  readonly socket: Socket;
  /** Every durable envelope received, in arrival order. */
  readonly received: DurableEnvelope[];
  /** Every control envelope received, by type. */
  readonly control: { type: string; payload: unknown; room: string | null; seq: number | null }[];
  request<T extends object = Record<string, unknown>>(event: string, payload: unknown): Promise<Ack<T>>;
}

/** The stock socket.io-client, connected, recording what it receives: `[client, cleanup]`. */
export async function connectClient(
  url: string,
  opts: { userId?: string; token?: string; transports?: ('websocket' | 'polling')[]; reconnection?: boolean } = {},
): Promise<[TestClient, () => void]> {
  const socket = io(url, {
    auth: opts.token ? { token: opts.token } : { userId: opts.userId },
    transports: opts.transports ?? ['websocket'],
    reconnection: opts.reconnection ?? false,
    forceNew: true,
  });
  const received: DurableEnvelope[] = [];
  const control: TestClient['control'] = [];
  for (const type of DURABLE_TYPES) socket.on(type, (e: DurableEnvelope) => received.push(e));
  for (const type of CONTROL_TYPES) socket.on(type, (e: TestClient['control'][number]) => control.push(e));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  const client: TestClient = {
    socket,
    received,
    control,
    request: (event, payload) => socket.timeout(10_000).emitWithAck(event, payload),
  };
  return [client, () => void socket.disconnect()];
}
