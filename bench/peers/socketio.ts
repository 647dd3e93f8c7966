// What the Socket.IO peers share: join a room, broadcast to it, ack the sender — the stock way.
import { createServer, type RequestListener } from 'node:http';
import { Server, type ServerOptions } from 'socket.io';

/**
 * A Socket.IO server on 127.0.0.1:$PORT with the peers' two events; tells its parent `ready` once it
 * listens. `onRequest` answers what is not Socket.IO's (a health check).
 */
export function serveSocketIoPeer(options: Partial<ServerOptions> = {}, onRequest?: RequestListener): Server {
  const http = onRequest ? createServer(onRequest) : createServer();
  const io = new Server(http, { serveClient: false, ...options });
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
  return io;
}
