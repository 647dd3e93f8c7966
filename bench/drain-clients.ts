// The drain bench's clients, in their own process: N stock socket.io-client connections to one pod,
// each following one room. They behave as the SDK does where the drain is concerned (docs/drain.md):
// on `server:draining` they move after the hinted delay, on a lost transport they come back after a
// full-jitter delay, and every (re)join sends the last seq seen so the gateway replays the gap. Since
// there is no edge here, a move goes straight to one of the survivors. Each client checks its room's
// seqs: contiguous, no duplicates, no reset after the first join.
//   parent → {cmd: 'connect', url, survivors, count, rooms, concurrency} → {cmd: 'connected', joined, failed}
//   parent → {cmd: 'status'} → {cmd: 'status', onSurvivors, caughtUp(seqs)}
//   parent → {cmd: 'report', finalSeqs} → {cmd: 'report', lost (seqs skipped), behind (clients short of their room's final seq), ...}
import { readdirSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';

interface Client {
  readonly index: number;
  readonly room: string;
  socket: Socket | null;
  onSurvivor: boolean;
  moving: boolean;
  lastSeq: number | null;
  joinedAt: number | null;
  duplicates: number;
  gaps: number;
  lateResets: number;
}

let survivors: string[] = [];
let nextSurvivor = 0;
const clients: Client[] = [];
/** When each client rejoined its room on a survivor (epoch ms): bunched when this process is starved of CPU. */
const reconnectTimes: number[] = [];
/** When each client left the victim to move (its hint's delay ran out, or its connection was closed), epoch ms. */
const moveStarts: number[] = [];
let joinFailures = 0;
let firstError: string | null = null;

function onEnvelope(client: Client, envelope: { type: string; seq: number }): void {
  if (client.lastSeq === null) return; // before the first join's answer; that join resets to its seq
  if (envelope.seq <= client.lastSeq) {
    client.duplicates += 1;
    return;
  }
  if (envelope.seq > client.lastSeq + 1) client.gaps += envelope.seq - client.lastSeq - 1;
  client.lastSeq = envelope.seq;
}

function open(client: Client, url: string, toSurvivor: boolean): Promise<void> {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { userId: `drain-${process.pid}-${client.index}` } });
  client.socket = socket;
  socket.on('chat:message', (envelope: { type: string; seq: number }) => onEnvelope(client, envelope));
  socket.on('room:reset', (envelope: { seq: number }) => {
    if (client.lastSeq !== null) {
      client.lateResets += 1;
      client.lastSeq = Math.max(client.lastSeq, envelope.seq);
    }
  });
  socket.on('server:draining', (envelope: { payload: { reconnectAfterMs: number } }) => {
    setTimeout(() => {
      if (client.socket !== socket) return;
      move(client);
    }, Math.max(0, envelope.payload.reconnectAfterMs));
  });
  socket.on('disconnect', (reason) => {
    if (client.socket !== socket || reason === 'io client disconnect') return;
    // Full jitter over a 1 s base, as the SDK's first retry.
    setTimeout(() => move(client), Math.random() * 1_000);
  });
  return new Promise<void>((resolve, reject) => {
    socket.once('connect_error', reject);
    socket.once('connect', () => {
      socket
        .emitWithAck('room:join', { room: client.room, lastSeq: client.lastSeq })
        .then((ack: { ok: boolean; seq?: number; error?: { message: string } }) => {
          if (!ack.ok) throw new Error(`room:join refused: ${ack.error?.message}`);
          if (client.lastSeq === null) {
            client.joinedAt = ack.seq!;
            client.lastSeq = ack.seq!;
          }
          if (toSurvivor) {
            client.onSurvivor = true;
            reconnectTimes.push(performance.now() + performance.timeOrigin);
          }
          resolve();
        })
        .catch(reject);
    });
  });
}

function move(client: Client): void {
  if (!client.onSurvivor && !client.moving) moveStarts.push(performance.now() + performance.timeOrigin);
  client.moving = true;
  client.socket?.disconnect();
  client.socket = null;
  const url = survivors[nextSurvivor % survivors.length]!;
  nextSurvivor += 1;
  open(client, url, true).catch((err: unknown) => {
    joinFailures += 1;
    firstError ??= (err as Error).message;
    setTimeout(() => move(client), 200 + Math.random() * 800);
  });
}

process.on('message', (message: { cmd: string; url?: string; survivors?: string[]; count?: number; rooms?: number; concurrency?: number; finalSeqs?: Record<string, number> }) => {
  if (message.cmd === 'connect') {
    survivors = message.survivors!;
    const count = message.count!;
    for (let i = 0; i < count; i += 1) clients.push({ index: i, room: `chat:drain-${i % message.rooms!}`, socket: null, onSurvivor: false, moving: false, lastSeq: null, joinedAt: null, duplicates: 0, gaps: 0, lateResets: 0 });
    let next = 0;
    let failed = 0;
    void Promise.all(
      Array.from({ length: Math.min(message.concurrency!, count) }, async () => {
        while (next < count) {
          const client = clients[next]!;
          next += 1;
          // A refused first join (a Redis timeout on a loaded machine) is retried, as the SDK would.
          for (let attempt = 1; ; attempt += 1) {
            try {
              await open(client, message.url!, false);
              break;
            } catch (err) {
              client.socket?.disconnect();
              firstError ??= (err as Error).message;
              if (attempt === 5) {
                failed += 1;
                break;
              }
              await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
            }
          }
        }
      }),
    ).then(() => process.send!({ cmd: 'connected', joined: count - failed, failed, firstError, fds: readdirSync('/proc/self/fd').length }));
  } else if (message.cmd === 'status') {
    process.send!({ cmd: 'status', onSurvivors: clients.filter((c) => c.onSurvivor && c.socket?.connected).length, lastSeqs: lastSeqsByRoom() });
  } else if (message.cmd === 'report') {
    const finalSeqs = message.finalSeqs!;
    let lost = 0;
    let behind = 0;
    for (const client of clients) {
      const final = finalSeqs[client.room];
      if (final !== undefined && client.lastSeq !== null && client.lastSeq < final) behind += 1;
      lost += client.gaps;
    }
    process.send!({
      cmd: 'report',
      clients: clients.length,
      onSurvivors: clients.filter((c) => c.onSurvivor && c.socket?.connected).length,
      reconnectTimes,
      moveStarts,
      lost,
      behind,
      duplicates: clients.reduce((sum, c) => sum + c.duplicates, 0),
      lateResets: clients.reduce((sum, c) => sum + c.lateResets, 0),
      joinFailures,
      firstError,
      fds: readdirSync('/proc/self/fd').length,
    });
  }
});

/** The lowest last seq of any client per room: a room is caught up when it reaches the room's final seq. */
function lastSeqsByRoom(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const client of clients) {
    const seq = client.lastSeq ?? -1;
    out[client.room] = Math.min(out[client.room] ?? Infinity, seq);
  }
  return out;
}

process.on('disconnect', () => process.exit(0));
process.send!({ cmd: 'ready' });
