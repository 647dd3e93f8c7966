import type { FleetStat } from '../protocol/fleet.ts';

// The fleet view, served on the gateway's internal port next to `/fleet` (same origin): every pod's
// sockets and state, from the same Redis entries the drain controller and KEDA read.

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

interface FleetReply {
  readonly pods?: FleetStat[];
  readonly sockets?: number;
  readonly error?: { code: string; message: string };
}

function card(stat: FleetStat): HTMLElement {
  const el = document.createElement('div');
  el.className = 'pod';
  el.dataset.pod = stat.pod;
  el.dataset.ready = String(stat.ready);
  el.dataset.draining = String(stat.draining);
  const state = stat.draining ? 'draining' : stat.ready ? 'ready' : 'not ready';
  el.innerHTML = `<div><strong></strong> <span class="state"></span></div><div class="sockets"></div><small>sockets</small>`;
  el.querySelector('strong')!.textContent = stat.pod;
  el.querySelector('.state')!.textContent = state;
  el.querySelector('.sockets')!.textContent = String(stat.sockets);
  el.title = `${stat.pod}: ${stat.sockets} sockets, ${state}`;
  return el;
}

async function refresh(): Promise<void> {
  const status = $('status');
  try {
    const res = await fetch('/fleet', { cache: 'no-store' });
    const reply = (await res.json()) as FleetReply;
    if (!res.ok || !reply.pods) {
      // A 503 means Redis could not be read: say so, and keep the last picture rather than an empty fleet.
      status.dataset.ok = 'false';
      status.textContent = `fleet stats unavailable (${res.status}): ${reply.error?.message ?? 'no answer'}`;
      return;
    }
    status.dataset.ok = 'true';
    status.textContent = `${reply.pods.length} pods, updated ${new Date().toLocaleTimeString()}`;
    $('total').textContent = String(reply.sockets ?? 0);
    $('fleet').replaceChildren(...[...reply.pods].sort((a, b) => a.pod.localeCompare(b.pod)).map(card));
  } catch (err) {
    status.dataset.ok = 'false';
    status.textContent = `fleet stats unavailable: ${(err as Error).message}`;
  }
}

void refresh();
setInterval(() => void refresh(), 1000);
