// Peer: a single Socket.IO process with the in-memory adapter: join a room, broadcast to it, ack the sender.
// SIGTERM/SIGINT close it the stock way (io.close()) and exit, so `--cpu-prof` can write its profile.
import { serveSocketIoPeer } from './socketio.ts';

const io = serveSocketIoPeer();
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void io.close(() => process.exit(0)));
