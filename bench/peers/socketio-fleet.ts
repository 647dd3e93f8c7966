// Peer: one pod of a vanilla Socket.IO fleet, as the Socket.IO docs scale it out — Socket.IO 4.8 with
// @socket.io/redis-adapter on a shared Redis, behind a sticky load balancer. The bench's chaos contender
// (bench/chaos.ts) runs N of these in the local fleet (scripts/fleet/fleet.ts, `main`) instead of gateways.
// Nothing else: no seqs, no history, no connection state recovery, no drain; SIGTERM is `io.close()`.
// `/readyz` and `/healthz` answer 200 while the process listens, on PORT (HAProxy's check) and on
// INTERNAL_PORT (where the fleet waits for a pod to start).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { serveSocketIoPeer } from './socketio.ts';

const probe = (req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(req.url === '/readyz' || req.url === '/healthz' ? 200 : 404).end();
};
const pub = new Redis(process.env.REDIS_URL!);
const sub = pub.duplicate();
const io = serveSocketIoPeer({ adapter: createAdapter(pub, sub) }, probe);
createServer(probe).listen(Number(process.env.INTERNAL_PORT), '127.0.0.1');
process.on('SIGTERM', () => void io.close(() => process.exit(0)));
