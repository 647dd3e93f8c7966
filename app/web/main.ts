import { io } from 'socket.io-client';
import {
  type Ack,
  DEFAULT_CHAT_ROOM,
  DEFAULT_COUNTER_ROOM,
  type DurableEnvelope,
  type EnvelopePayloads,
  type TypedEnvelope,
  RoomSequence,
} from '../protocol/index.ts';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const userId = sessionStorage.getItem('rt-user') ?? `guest-${Math.random().toString(36).slice(2, 7)}`;
sessionStorage.setItem('rt-user', userId);
$('user').textContent = userId;

const sequences = new Map<string, RoomSequence>([
  [DEFAULT_COUNTER_ROOM, new RoomSequence()],
  [DEFAULT_CHAT_ROOM, new RoomSequence()],
]);
let myPod = '';

const socket = io({ auth: { userId } });

function setState(state: string): void {
  $('state').textContent = state;
  $('state').dataset.state = state;
}

function render(envelope: DurableEnvelope): void {
  if (envelope.type === 'counter:changed') {
    $('counter-value').textContent = String((envelope.payload as EnvelopePayloads['counter:changed']).value);
    $('counter-seq').textContent = String(envelope.seq);
  } else if (envelope.type === 'chat:message') {
    const { from, text } = envelope.payload as EnvelopePayloads['chat:message'];
    const line = document.createElement('div');
    const who = document.createElement('span');
    who.className = 'from';
    who.textContent = `${from}: `;
    line.append(who, text);
    $('chat-log').append(line);
    $('chat-log').scrollTop = $('chat-log').scrollHeight;
  }
}

function offer(envelope: DurableEnvelope): void {
  const sequence = sequences.get(envelope.room);
  if (!sequence) return;
  const outcome = sequence.offer(envelope);
  outcome.deliver.forEach(render);
  if (outcome.gap) socket.emit('history:fetch', { room: envelope.room, afterSeq: outcome.gap.from - 1 }, () => {});
}

socket.on('counter:changed', offer);
socket.on('chat:message', offer);
socket.on('server:hello', (envelope: TypedEnvelope<'server:hello'>) => {
  myPod = envelope.payload.pod;
  $('pod').textContent = myPod;
});
socket.on('room:members', (envelope: TypedEnvelope<'room:members'>) => {
  if (envelope.room === DEFAULT_CHAT_ROOM) $('chat-members').textContent = `· ${envelope.payload.count} here`;
});
socket.on('room:reset', (envelope: TypedEnvelope<'room:reset'>) => {
  const room = envelope.room!;
  const { state, recent } = envelope.payload.snapshot;
  if (room === DEFAULT_COUNTER_ROOM) {
    $('counter-value').textContent = String((state as { value: number } | null)?.value ?? 0);
    $('counter-seq').textContent = String(envelope.seq);
  } else {
    $('chat-log').replaceChildren();
    recent.forEach(render);
  }
  sequences.get(room)?.reset(envelope.seq!).forEach(render);
});
socket.on('server:draining', () => setState('draining'));
socket.on('connect', () => {
  setState('connected');
  for (const [room, sequence] of sequences) socket.emit('room:join', { room, lastSeq: sequence.lastSeq }, () => {});
});
socket.on('disconnect', () => setState('reconnecting'));

$('increment').addEventListener('click', () => socket.emit('counter:increment', { room: DEFAULT_COUNTER_ROOM }, (ack: Ack) => {
  if (!ack.ok) console.error(ack.error.message);
}));
$<HTMLFormElement>('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('chat-input');
  if (!input.value.trim()) return;
  socket.emit('chat:send', { room: DEFAULT_CHAT_ROOM, text: input.value }, (ack: Ack) => {
    if (!ack.ok) console.error(ack.error.message);
  });
  input.value = '';
});

interface FleetStat { pod: string; sockets: number; ready: boolean; draining: boolean; updatedAt: number }

async function refreshFleet(): Promise<void> {
  try {
    const { pods } = (await (await fetch('/fleet', { cache: 'no-store' })).json()) as { pods: FleetStat[] };
    $('fleet').replaceChildren(
      ...pods
        .sort((a, b) => a.pod.localeCompare(b.pod))
        .map((stat) => {
          const card = document.createElement('div');
          card.className = stat.pod === myPod ? 'pod mine' : 'pod';
          card.dataset.pod = stat.pod;
          card.dataset.ready = String(stat.ready);
          card.dataset.draining = String(stat.draining);
          const state = stat.draining ? 'draining' : stat.ready ? 'ready' : 'not ready';
          card.innerHTML = `<div><strong></strong></div><div class="sockets"></div><small></small>`;
          card.querySelector('strong')!.textContent = stat.pod;
          card.querySelector('.sockets')!.textContent = String(stat.sockets);
          card.querySelector('small')!.textContent = `sockets · ${state}`;
          return card;
        }),
    );
  } catch {
    // The fleet view is best effort; the next tick retries.
  }
}
void refreshFleet();
setInterval(() => void refreshFleet(), 1000);
