// A bench client process: opens many idle connections (stock socket.io-client over WebSocket, or raw
// `ws`) to one server and holds them, so the server's memory and CPU are measured without the
// clients' in the same process (and each process stays under its open-file limit).
//   parent → {cmd: 'connect', kind, url, count, concurrency} → {cmd: 'connected', connected, failed, ms, fds}
//   parent → {cmd: 'close'} → {cmd: 'closed'}
import { readdirSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';

export interface ConnectCommand {
  readonly cmd: 'connect';
  readonly kind: 'socket.io' | 'ws';
  readonly url: string;
  readonly count: number;
  readonly concurrency: number;
}

export interface ConnectedReport {
  readonly cmd: 'connected';
  readonly connected: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly ms: number;
  readonly fds: number;
}

const held: (Socket | WebSocket)[] = [];

function openOne(command: ConnectCommand, index: number): Promise<void> {
  if (command.kind === 'ws') {
    const ws = new WebSocket(command.url, { perMessageDeflate: false });
    held.push(ws);
    return new Promise((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  }
  const socket = io(command.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { userId: `idle-${process.pid}-${index}` } });
  held.push(socket);
  return new Promise((resolve, reject) => socket.once('connect', () => resolve()).once('connect_error', reject));
}

async function connectAll(command: ConnectCommand): Promise<ConnectedReport> {
  const started = performance.now();
  let next = 0;
  let connected = 0;
  let failed = 0;
  let firstError: string | null = null;
  await Promise.all(
    Array.from({ length: Math.min(command.concurrency, command.count) }, async () => {
      while (next < command.count) {
        const index = next;
        next += 1;
        try {
          await openOne(command, index);
          connected += 1;
        } catch (err) {
          failed += 1;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  return { cmd: 'connected', connected, failed, firstError, ms: performance.now() - started, fds: readdirSync('/proc/self/fd').length };
}

process.on('message', (message: ConnectCommand | { cmd: 'close' }) => {
  if (message.cmd === 'connect') {
    void connectAll(message).then((report) => process.send!(report));
  } else if (message.cmd === 'close') {
    for (const connection of held.splice(0)) {
      if (connection instanceof WebSocket) connection.terminate();
      else connection.disconnect();
    }
    process.send!({ cmd: 'closed' });
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ cmd: 'ready' });
