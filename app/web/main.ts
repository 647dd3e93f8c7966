import { type ConnectionState, createGatewayClient, type GatewayClient } from '../client/index.ts';
import type { DurableEnvelope, EnvelopePayloads, RoomSnapshot } from '../protocol/index.ts';
import { incrementCounter, sendChat } from '../client/demo.ts';
import { DEFAULT_CHAT_ROOM, DEFAULT_COUNTER_ROOM } from '../protocol/rooms.ts';
import { openReader, RateWindow, READ_ONLY_RUNGS, type Reader, RUNGS, type RungChoice } from './ladder.ts';

// The demo page, on the client SDK: it reconnects with jitter, moves when its pod drains, resumes
// both rooms from their last seq and hands us each message once, in order. `?rung=` picks the rung the
// counter and chat use; "Compare the rungs" runs one reader per rung side by side.

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
// With AUTH_MODE=jwt (the Kubernetes profiles) `make up` prints the page URL with `#token=<jwt>`;
// the embedded demo (AUTH_MODE=none) just names the tab's user.
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined;
const userId = sessionStorage.getItem('rt-user') ?? `guest-${Math.random().toString(36).slice(2, 7)}`;
sessionStorage.setItem('rt-user', userId);
$('user').textContent = token ? '…' : userId;
const credentials = token ? { token } : { userId };

const query = new URLSearchParams(location.search);
const requested = query.get('rung') ?? 'auto';
const rung: RungChoice = requested === 'auto' || (RUNGS as readonly string[]).includes(requested) ? (requested as RungChoice) : 'auto';
for (const input of document.querySelectorAll<HTMLInputElement>('input[name="rung"]')) {
  input.checked = input.value === rung;
  // A rung is a different client: load the page again with it.
  input.addEventListener('change', () => {
    query.set('rung', input.value);
    location.search = query.toString();
  });
}

function setState(state: ConnectionState | string): void {
  $('state').textContent = state;
  $('state').dataset.state = state;
}

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

/** What the client went through, newest first: states, pods, resumes, closes and why. */
function logEvent(text: string): void {
  const line = document.createElement('li');
  line.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('events').prepend(line);
  while ($('events').children.length > 30) $('events').lastElementChild!.remove();
}

function showError(message: string, retryable: boolean): void {
  logEvent(`error${retryable ? ' (retrying)' : ''}: ${message}`);
  // Retryable errors (a drain, a lost connection) are handled by the SDK; show only the rest.
  if (retryable) return;
  console.error(`gateway client: ${message}`);
  $('notice').textContent = message;
}

const main: Reader = openReader(rung, {
  url: location.origin,
  credentials,
  rooms: [DEFAULT_COUNTER_ROOM, DEFAULT_CHAT_ROOM],
  marker: 'main',
  callbacks: {
    message(envelope) {
      if (envelope.type === 'counter:changed') showCounter((envelope.payload as EnvelopePayloads['counter:changed']).value, envelope.seq);
      else if (envelope.type === 'chat:message') appendChat(envelope);
    },
    reset(room: string, seq: number, snapshot: RoomSnapshot) {
      if (room === DEFAULT_COUNTER_ROOM) {
        showCounter((snapshot.state as { value: number } | null)?.value ?? 0, seq);
      } else if (room === DEFAULT_CHAT_ROOM) {
        $('chat-log').replaceChildren();
        snapshot.recent.forEach(appendChat);
      }
    },
    state: (state) => {
      setState(state);
      logEvent(`state ${state}${main.transport() ? ` (${main.transport()})` : ''}`);
    },
    pod: (pod) => ($('pod').textContent = pod ?? '–'),
    error: showError,
  },
});

// SSE and short polling carry server→client only: this page then writes over its own WebSocket.
const writer: GatewayClient = READ_ONLY_RUNGS.has(rung)
  ? createGatewayClient({ url: location.origin, ...credentials, transports: ['websocket'], directMessages: false })
  : main.client!;
$('writes').textContent = READ_ONLY_RUNGS.has(rung) ? 'writes: a separate WebSocket (this rung only reads)' : 'writes: the same connection';
writer.on('hello', ({ userId: who }) => ($('user').textContent = who));
if (writer !== main.client) writer.on('error', (err) => showError(err.message, err.retryable));
if (main.client) {
  const client = main.client;
  client.on('draining', ({ pod, reconnectAfterMs }) => {
    $('notice').textContent = `${pod} is draining: moving to another pod in ${(reconnectAfterMs / 1000).toFixed(1)} s`;
  });
  client.on('joined', ({ room, resume, replayed, seq }) => {
    $('notice').textContent = '';
    logEvent(`joined ${room} on ${client.pod ?? 'a pod'}: ${resume}${resume === 'replay' ? `, ${replayed} missed message(s) replayed` : ''}, at seq ${seq}`);
  });
  client.on('closing', ({ reason, message, reconnect }) => logEvent(`gateway closing the connection: ${reason} — ${message}${reconnect ? ' (the client reconnects and resumes)' : ''}`));
  client.on('draining', ({ pod, reconnectAfterMs }) => logEvent(`${pod} is draining: moving in ${reconnectAfterMs} ms`));
  client.on('members', ({ room, count }) => {
    if (room === DEFAULT_CHAT_ROOM) $('chat-members').textContent = `· ${count} here`;
  });
}

$('increment').addEventListener('click', () => {
  incrementCounter(writer, DEFAULT_COUNTER_ROOM).catch((err: Error) => showError(err.message, false));
});
$<HTMLFormElement>('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('chat-input');
  if (!input.value.trim()) return;
  sendChat(writer, DEFAULT_CHAT_ROOM, input.value).catch((err: Error) => showError(err.message, false));
  input.value = '';
});

// --- what each rung costs, live ----------------------------------------------------------------

const fmtRate = (perMinute: number | null): string => (perMinute === null ? '…' : perMinute.toFixed(perMinute < 10 ? 1 : 0));
const fmtMs = (ms: number | null): string => (ms === null ? '–' : `${ms} ms`);

const mainRate = new RateWindow();
function showMain(): void {
  $('transport').textContent = main.transport() ?? '–';
  $('main-rpm').textContent = fmtRate(mainRate.perMinute(main.requests()));
  $('main-latency').textContent = fmtMs(main.latency.median);
}

interface LadderRow {
  readonly reader: Reader;
  readonly rate: RateWindow;
  readonly cells: Record<'transport' | 'value' | 'requests' | 'rpm' | 'latency' | 'last', HTMLElement>;
}
const ladder: LadderRow[] = [];

function startLadder(): void {
  if (ladder.length > 0) return;
  $('ladder').hidden = false;
  $<HTMLButtonElement>('ladder-start').disabled = true;
  for (const each of RUNGS) {
    const row = document.querySelector<HTMLElement>(`#ladder tr[data-rung="${each}"]`)!;
    const cell = (name: string): HTMLElement => row.querySelector<HTMLElement>(`.${name}`)!;
    const cells = { transport: cell('transport'), value: cell('value'), requests: cell('requests'), rpm: cell('rpm'), latency: cell('latency'), last: cell('last') };
    const reader = openReader(each, {
      url: location.origin,
      credentials,
      rooms: [DEFAULT_COUNTER_ROOM],
      marker: `ladder-${each}`,
      callbacks: {
        message: (envelope) => void (cells.value.textContent = String((envelope.payload as EnvelopePayloads['counter:changed']).value)),
        reset: (_room, _seq, snapshot) => void (cells.value.textContent = String((snapshot.state as { value: number } | null)?.value ?? 0)),
        state: (state) => (row.dataset.state = state),
      },
    });
    ladder.push({ reader, rate: new RateWindow(), cells });
  }
}

function showLadder(): void {
  for (const { reader, rate, cells } of ladder) {
    cells.transport.textContent = reader.transport() ?? '–';
    cells.requests.textContent = String(reader.requests());
    cells.rpm.textContent = fmtRate(rate.perMinute(reader.requests()));
    cells.latency.textContent = fmtMs(reader.latency.median);
    cells.last.textContent = fmtMs(reader.latency.last);
  }
}

/** A steady message rate to compare the rungs by: +1 a second, for at most five minutes. */
let drive: ReturnType<typeof setInterval> | null = null;
function toggleDrive(): void {
  const button = $<HTMLButtonElement>('ladder-drive');
  if (drive) {
    clearInterval(drive);
    drive = null;
    button.textContent = 'Steady rate: +1 every second';
    return;
  }
  const until = Date.now() + 5 * 60_000;
  drive = setInterval(() => {
    if (Date.now() > until) return toggleDrive();
    incrementCounter(writer, DEFAULT_COUNTER_ROOM).catch((err: Error) => showError(err.message, false));
  }, 1_000);
  button.textContent = 'Stop the steady rate';
}

$('ladder-start').addEventListener('click', startLadder);
$('ladder-drive').addEventListener('click', toggleDrive);
if (query.get('ladder') === '1') startLadder();
setInterval(() => {
  showMain();
  showLadder();
}, 1_000);
showMain();
