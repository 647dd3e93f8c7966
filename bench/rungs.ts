// What each rung of the transport ladder costs: CLIENTS readers per rung — short polling (GET /poll),
// Socket.IO long-polling, SSE, Socket.IO WebSocket — follow one chat room on a real gateway process while
// a publisher sends RATE messages a second for SECONDS. Each rung's clients go through their own counting
// TCP proxy, so the HTTP requests and the bytes on the wire (both ways, headers and heartbeats included)
// are measured per rung; delivery latency is measured by the clients. Writes rungs.json and rungs.svg.
//
//   node bench/rungs.ts [--clients 10] [--seconds 60] [--rate 1] [--out bench/results]
//   node bench/rungs.ts --chart-only   (redraws <out>/rungs.svg from <out>/rungs.json)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { createGatewayClient, type GatewayClient } from '../app/client/index.ts';
import { sendChat } from '../app/client/demo.ts';
import type { DurableEnvelope } from '../app/protocol/index.ts';
import { startGateway } from '../scripts/fleet/gateway.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '60' },
    rate: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results' },
    'chart-only': { type: 'boolean', default: false },
  },
});
const bounded = (name: string, raw: string, min: number, max: number): number => {
  const value = Number(raw);
  if (!(value >= min && value <= max)) {
    console.error(`--${name}=${raw}: must be a number from ${min} to ${max}`);
    process.exit(2);
  }
  return value;
};
const CLIENTS = Math.round(bounded('clients', args.clients, 1, 200));
const SECONDS = bounded('seconds', args.seconds, 3, 600);
const RATE = bounded('rate', args.rate, 0.1, 20);
const ROOM = 'chat:rungs';
const REQUEST_LINE = /(?:^|\r\n)(?:GET|POST|PUT|DELETE|HEAD|OPTIONS) \S+ HTTP\/1\.[01]\r\n/g;

const RUNG_NAMES = ['short poll', 'long poll', 'SSE', 'WebSocket'] as const;
type RungName = (typeof RUNG_NAMES)[number];

interface RungResult {
  readonly rung: RungName;
  readonly clients: number;
  readonly requestsPerClientMinute: number;
  readonly bytesPerClientMinute: { readonly down: number; readonly up: number; readonly total: number };
  readonly latencyMs: { readonly p50: number | null; readonly p95: number | null };
  readonly delivered: number;
  readonly expected: number;
}

interface RungsReport {
  readonly at: string;
  readonly seconds: number;
  readonly ratePerSecond: number;
  readonly clientsPerRung: number;
  readonly results: readonly RungResult[];
}

/** A TCP proxy that counts bytes each way and the HTTP requests clients send through it. */
class CountingProxy {
  requests = 0;
  bytesUp = 0;
  bytesDown = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = new Socket();
      this.#sockets.add(client).add(upstream);
      let tail = '';
      client.on('data', (chunk: Buffer) => {
        this.bytesUp += chunk.length;
        // Request lines only start messages; after a WebSocket upgrade the frames are masked, never match.
        // A request line split over two chunks is found in tail + chunk, and counted once: when it ends past the tail.
        const text = tail + chunk.toString('latin1');
        for (const match of text.matchAll(REQUEST_LINE)) if (match.index + match[0].length > tail.length) this.requests += 1;
        tail = text.slice(-256);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        this.bytesDown += chunk.length;
        client.write(chunk);
      });
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
      upstream.connect(targetPort, '127.0.0.1');
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  reset(): void {
    this.requests = 0;
    this.bytesUp = 0;
    this.bytesDown = 0;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** One reader of the room; `latencies` in ms, `seqs` delivered. */
interface Reader {
  readonly latencies: number[];
  readonly seqs: Set<number>;
  close(): void;
}

function sdkReader(url: string, id: string, transports: ('polling' | 'websocket' | 'short-poll')[]): Reader {
  const reader = { latencies: [] as number[], seqs: new Set<number>() };
  const client: GatewayClient = createGatewayClient({ url, userId: id, transports, upgrade: false, rooms: [ROOM], directMessages: false });
  client.on('message', (e: DurableEnvelope) => {
    reader.latencies.push(Date.now() - e.ts);
    reader.seqs.add(e.seq);
  });
  return { ...reader, close: () => client.close() };
}

/** An SSE reader over fetch (Node has no EventSource): parses `id:`/`data:`, reconnects with Last-Event-ID. */
function sseReader(url: string, id: string): Reader {
  const reader = { latencies: [] as number[], seqs: new Set<number>() };
  const abort = new AbortController();
  let lastId: string | null = null;
  const run = async (): Promise<void> => {
    for (let attempt = 0; attempt < 20 && !abort.signal.aborted; attempt += 1) {
      try {
        const headers: Record<string, string> = lastId ? { 'last-event-id': lastId } : {};
        const res = await fetch(`${url}/sse?room=${ROOM}&userId=${id}`, { headers, signal: abort.signal });
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = /^data: (.*)$/m.exec(event)?.[1];
            lastId = /^id: (.*)$/m.exec(event)?.[1] ?? lastId;
            if (!data || !/^event: chat:message$/m.test(event)) continue;
            const envelope = JSON.parse(data) as DurableEnvelope;
            reader.latencies.push(Date.now() - envelope.ts);
            reader.seqs.add(envelope.seq);
          }
        }
      } catch {
        // aborted at the end, or the stream broke: reconnect below
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  void run();
  return { ...reader, close: () => abort.abort() };
}

function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Two bar groups: requests per client-minute and KiB per client-minute, one bar per rung (log scale). */
function renderRungsChart(report: RungsReport): string {
  const W = 960;
  const H = 350;
  const colours: Record<RungName, string> = { 'short poll': '#c0392b', 'long poll': '#b5651d', SSE: '#3465a4', WebSocket: '#2f8f4e' };
  const panels = [
    { title: 'HTTP requests per client-minute', value: (r: RungResult) => r.requestsPerClientMinute, fmt: (v: number) => v.toFixed(v < 10 ? 1 : 0) },
    { title: 'KiB on the wire per client-minute', value: (r: RungResult) => r.bytesPerClientMinute.total / 1024, fmt: (v: number) => v.toFixed(1) },
    { title: 'delivery latency, median (ms)', value: (r: RungResult) => r.latencyMs.p50 ?? 0, fmt: (v: number) => v.toFixed(0) },
  ];
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="20" y="24" font-size="14" font-weight="600">${escape(`The ladder's rungs: ${report.clientsPerRung} clients each, ${report.ratePerSecond} message/s for ${report.seconds} s`)}</text>`,
  );
  const panelW = (W - 40) / panels.length;
  const top = 84;
  const plotH = 200;
  panels.forEach((panel, i) => {
    const x0 = 20 + i * panelW;
    const max = Math.max(...report.results.map(panel.value), 1e-9);
    parts.push(`<text x="${x0 + panelW / 2}" y="${top - 30}" text-anchor="middle" font-weight="600">${escape(panel.title)}</text>`);
    const barW = (panelW - 40) / report.results.length;
    report.results.forEach((result, j) => {
      const value = panel.value(result);
      const h = (value / max) * plotH;
      const x = x0 + 20 + j * barW;
      parts.push(`<rect x="${x + 4}" y="${top + plotH - h}" width="${barW - 8}" height="${Math.max(h, 1)}" fill="${colours[result.rung]}"/>`);
      parts.push(`<text x="${x + barW / 2}" y="${top + plotH - h - 4}" text-anchor="middle">${panel.fmt(value)}</text>`);
      parts.push(`<text x="${x + barW / 2}" y="${top + plotH + 16}" text-anchor="middle" fill="#5b6475">${escape(result.rung)}</text>`);
    });
    parts.push(`<line x1="${x0 + 20}" x2="${x0 + panelW - 20}" y1="${top + plotH}" y2="${top + plotH}" stroke="#5b6475"/>`);
  });
  parts.push(`<text x="20" y="${H - 12}" fill="#5b6475">${escape('Bytes: both directions at a TCP proxy per rung (headers, heartbeats, handshakes included). Generated by bench/rungs.ts.')}</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

async function main(): Promise<void> {
  // The gateway's defaults (20 s heartbeats, 1–10 s short-poll hints), one process, in-memory backplane.
  const [gateway, stopGateway] = await startGateway({ env: { LOG_LEVEL: 'error' } });
  const proxies = new Map<RungName, CountingProxy>();
  const readers = new Map<RungName, Reader[]>();
  const cleanups: (() => unknown)[] = [stopGateway];
  try {
    for (const rung of RUNG_NAMES) {
      const proxy = new CountingProxy(gateway.port);
      const url = await proxy.listen();
      proxies.set(rung, proxy);
      cleanups.push(() => proxy.close());
      const list: Reader[] = [];
      for (let i = 0; i < CLIENTS; i += 1) {
        const id = `${rung.replace(' ', '-').toLowerCase()}-${i}`;
        if (rung === 'short poll') list.push(sdkReader(url, id, ['short-poll']));
        else if (rung === 'long poll') list.push(sdkReader(url, id, ['polling']));
        else if (rung === 'WebSocket') list.push(sdkReader(url, id, ['websocket']));
        else list.push(sseReader(url, id));
      }
      readers.set(rung, list);
      cleanups.push(() => list.forEach((r) => r.close()));
    }
    const publisher = createGatewayClient({ url: gateway.url, userId: 'publisher', transports: ['websocket'], directMessages: false });
    cleanups.push(() => publisher.close());
    // Everyone connected and joined before the clock starts: set-up traffic is not the steady state.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    for (const proxy of proxies.values()) proxy.reset();
    for (const r of [...readers.values()].flat()) {
      r.latencies.length = 0;
      r.seqs.clear();
    }

    console.log(`measuring ${RUNG_NAMES.length} rungs × ${CLIENTS} clients, ${RATE} message/s for ${SECONDS} s ...`);
    const started = Date.now();
    const sent: number[] = [];
    let next = started;
    let lastReport = started;
    while (Date.now() - started < SECONDS * 1000) {
      const ack = await sendChat(publisher, ROOM, `tick ${sent.length}`).catch(() => null);
      if (ack) sent.push(ack.seq);
      next += 1000 / RATE;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
      if (Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        const progress = RUNG_NAMES.map((rung) => `${rung} ${proxies.get(rung)!.requests} req`).join(', ');
        console.log(`  ${Math.round((Date.now() - started) / 1000)} s: ${sent.length} sent; ${progress}`);
      }
    }
    const elapsedMinutes = (Date.now() - started) / 60_000;
    // Let the slowest rung (short polling, up to one Retry-After) catch up before counting deliveries.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const expectedSeqs = new Set(sent.slice(0, -2));

    const results: RungResult[] = RUNG_NAMES.map((rung) => {
      const proxy = proxies.get(rung)!;
      const list = readers.get(rung)!;
      const perClientMinute = (n: number): number => n / CLIENTS / elapsedMinutes;
      const latencies = list.flatMap((r) => r.latencies);
      return {
        rung,
        clients: CLIENTS,
        requestsPerClientMinute: Number(perClientMinute(proxy.requests).toFixed(2)),
        bytesPerClientMinute: {
          down: Math.round(perClientMinute(proxy.bytesDown)),
          up: Math.round(perClientMinute(proxy.bytesUp)),
          total: Math.round(perClientMinute(proxy.bytesDown + proxy.bytesUp)),
        },
        latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95) },
        delivered: list.reduce((sum, r) => sum + [...expectedSeqs].filter((s) => r.seqs.has(s)).length, 0),
        expected: expectedSeqs.size * CLIENTS,
      };
    });
    const report: RungsReport = { at: new Date().toISOString(), seconds: SECONDS, ratePerSecond: RATE, clientsPerRung: CLIENTS, results };
    mkdirSync(args.out, { recursive: true });
    writeFileSync(`${args.out}/rungs.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${args.out}/rungs.svg`, renderRungsChart(report));
    console.log('\n| rung | requests / client-min | KiB / client-min (down + up) | latency p50 / p95 | delivered |');
    console.log('|---|---|---|---|---|');
    for (const r of results) {
      const kib = (n: number): string => (n / 1024).toFixed(1);
      console.log(
        `| ${r.rung} | ${r.requestsPerClientMinute} | ${kib(r.bytesPerClientMinute.total)} (${kib(r.bytesPerClientMinute.down)} + ${kib(r.bytesPerClientMinute.up)}) | ${r.latencyMs.p50} / ${r.latencyMs.p95} ms | ${r.delivered}/${r.expected} |`,
      );
    }
    console.log(`\nwrote ${args.out}/rungs.json and ${args.out}/rungs.svg`);
  } finally {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
  }
}

if (args['chart-only']) {
  writeFileSync(`${args.out}/rungs.svg`, renderRungsChart(JSON.parse(readFileSync(`${args.out}/rungs.json`, 'utf8')) as RungsReport));
  console.log(`wrote ${args.out}/rungs.svg`);
} else {
  await main();
}
process.exit(0);
