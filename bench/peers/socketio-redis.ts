// Peer: plain Socket.IO with @socket.io/redis-adapter (run two of these on one Redis): join a room,
// broadcast to it across processes, ack the sender — the stock way to scale Socket.IO out.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const pub = new Redis(process.env.REDIS_URL!);
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, { serveClient: false, adapter: createAdapter(pub, sub) });
io.on('connection', (socket) => {
  socket.on('join', (room: string, ack: () => void) => {
    void socket.join(room);
    ack();
  });
  socket.on('send', (msg: { room: string; text: string }, ack: () => void) => {
    io.to(msg.room).emit('message', msg);
    ack();
  });
});
http.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
