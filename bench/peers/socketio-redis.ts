// Peer: plain Socket.IO with @socket.io/redis-adapter (run two of these on one Redis): join a room,
// broadcast to it across processes, ack the sender — the stock way to scale Socket.IO out.
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { serveSocketIoPeer } from './socketio.ts';

const pub = new Redis(process.env.REDIS_URL!);
const sub = pub.duplicate();
serveSocketIoPeer({ adapter: createAdapter(pub, sub) });
