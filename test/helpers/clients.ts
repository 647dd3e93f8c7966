import { io, type Socket } from 'socket.io-client';
import { isControlType } from '../../app/protocol/envelope.ts';
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
  socket.onAny((type: string, e: DurableEnvelope & TestClient['control'][number]) => (isControlType(type) ? control.push(e) : received.push(e)));
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

/**
 * Resumes `room` from `lastSeq` as the protocol says (docs/protocol.md, "Pages"): the join replays one
 * page; while its ack or a `history:fetch` says `more`, the next page is fetched after the last seq.
 * Resolves with every envelope of the room after `lastSeq` (replayed, fetched and live), in seq order.
 */
export async function resumeRoom(client: TestClient, room: string, lastSeq: number): Promise<{ join: Ack<{ more?: boolean; seq: number; resume: string }>; envelopes: DurableEnvelope[] }> {
  const join = await client.request<{ more?: boolean; seq: number; resume: string }>('room:join', { room, lastSeq });
  if (!join.ok) return { join, envelopes: [] };
  const fetched: DurableEnvelope[] = [];
  let more = join.more === true;
  const after = (): number => Math.max(lastSeq, ...client.received.filter((e) => e.room === room && e.seq <= join.seq).map((e) => e.seq), ...fetched.map((e) => e.seq));
  while (more) {
    const page = await client.request<{ mode: string; envelopes: DurableEnvelope[]; more?: boolean }>('history:fetch', { room, afterSeq: after() });
    if (!page.ok || page.mode !== 'replay') throw new Error(`history:fetch failed while resuming ${room}: ${JSON.stringify(page).slice(0, 200)}`);
    fetched.push(...page.envelopes);
    more = page.more === true;
  }
  const bySeq = new Map<number, DurableEnvelope>();
  for (const e of [...client.received.filter((e) => e.room === room), ...fetched]) if (e.seq > lastSeq) bySeq.set(e.seq, e);
  return { join, envelopes: [...bySeq.values()].sort((a, b) => a.seq - b.seq) };
}
