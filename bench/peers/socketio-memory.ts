// Peer: a single Socket.IO process with the in-memory adapter: join a room, broadcast to it, ack the sender.
// SIGTERM/SIGINT close it the stock way (io.close()) and exit, so `--cpu-prof` can write its profile.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http, { serveClient: false });
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
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void io.close(() => process.exit(0)));
http.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
