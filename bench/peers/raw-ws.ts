// Peer: a raw `ws` server that broadcasts every text frame it receives to every connected client.
import { WebSocketServer, WebSocket } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT) });
wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => process.send?.('ready'));
