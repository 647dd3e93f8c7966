import { createGatewayClient, type ConnectionState } from '../client/index.ts';
import type { DurableEnvelope, EnvelopePayloads } from '../protocol/index.ts';
import { DEFAULT_CHAT_ROOM, DEFAULT_COUNTER_ROOM } from '../protocol/rooms.ts';

// The demo page, on the client SDK: it reconnects with jitter, moves when its pod drains, resumes
// both rooms from their last seq and hands us each message once, in order.

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
// With AUTH_MODE=jwt (the Kubernetes profiles) `make up` prints the page URL with `#token=<jwt>`;
// the embedded demo (AUTH_MODE=none) just names the tab's user.
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined;
const userId = sessionStorage.getItem('rt-user') ?? `guest-${Math.random().toString(36).slice(2, 7)}`;
sessionStorage.setItem('rt-user', userId);
$('user').textContent = token ? '…' : userId;

const client = createGatewayClient({ url: location.origin, ...(token ? { token } : { userId }), rooms: [DEFAULT_COUNTER_ROOM, DEFAULT_CHAT_ROOM] });

function setState(state: ConnectionState | string): void {
  $('state').textContent = state;
  $('state').dataset.state = state;
}
setState(client.state);

function showCounter(value: number, seq: number): void {
  $('counter-value').textContent = String(value);
  $('counter-seq').textContent = String(seq);
}

function appendChat(envelope: DurableEnvelope): void {
  const { from, text } = envelope.payload as EnvelopePayloads['chat:message'];
  const line = document.createElement('div');
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = `${from}: `;
  line.append(who, text);
  $('chat-log').append(line);
  $('chat-log').scrollTop = $('chat-log').scrollHeight;
}

client.on('message', (envelope) => {
  if (envelope.type === 'counter:changed') showCounter((envelope.payload as EnvelopePayloads['counter:changed']).value, envelope.seq);
  else if (envelope.type === 'chat:message') appendChat(envelope);
});
client.on('reset', ({ room, seq, snapshot }) => {
  if (room === DEFAULT_COUNTER_ROOM) {
    showCounter((snapshot.state as { value: number } | null)?.value ?? 0, seq);
  } else if (room === DEFAULT_CHAT_ROOM) {
    $('chat-log').replaceChildren();
    snapshot.recent.forEach(appendChat);
  }
});
client.on('state', (state) => {
  setState(state);
  if (state !== 'connected' && state !== 'draining') $('pod').textContent = '–';
});
client.on('hello', ({ pod, userId: who }) => {
  $('pod').textContent = pod;
  $('user').textContent = who;
});
client.on('draining', ({ pod, reconnectAfterMs }) => {
  $('notice').textContent = `${pod} is draining: moving to another pod in ${(reconnectAfterMs / 1000).toFixed(1)} s`;
});
client.on('joined', () => ($('notice').textContent = ''));
client.on('members', ({ room, count }) => {
  if (room === DEFAULT_CHAT_ROOM) $('chat-members').textContent = `· ${count} here`;
});
// Retryable errors (a drain, a lost connection) are handled by the SDK; show only the rest.
client.on('error', (err) => {
  if (err.retryable) return;
  console.error(`gateway client: ${err.message}`);
  $('notice').textContent = err.message;
});

$('increment').addEventListener('click', () => {
  client.incrementCounter(DEFAULT_COUNTER_ROOM).catch((err: Error) => console.error(err.message));
});
$<HTMLFormElement>('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('chat-input');
  if (!input.value.trim()) return;
  client.sendChat(DEFAULT_CHAT_ROOM, input.value).catch((err: Error) => console.error(err.message));
  input.value = '';
});
