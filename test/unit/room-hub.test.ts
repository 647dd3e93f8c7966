import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Backpressure } from '../../app/gateway/backpressure.ts';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { Logger } from '../../app/gateway/logger.ts';
import { createMetrics } from '../../app/gateway/metrics.ts';
import { RoomHub, type RoomMember } from '../../app/gateway/room-hub.ts';
import { type DurableEnvelope, type HistoryResult, PROTOCOL_VERSION } from '../../app/protocol/index.ts';

// RoomHub against a scripted backplane, to order the races a real one only hits now and then.
const envelope = (seq: number): DurableEnvelope => ({ v: PROTOCOL_VERSION, type: 'chat:message', room: 'chat:a', seq, payload: { text: String(seq) }, ts: 0 });
const silent = { warn() {}, info() {}, debug() {}, error() {} } as unknown as Logger;
const broadcast = { except: () => broadcast, emit: () => true };
const io = { local: { to: () => broadcast } } as never;

function scriptedBackplane() {
  let deliver: (e: DurableEnvelope) => void = () => {};
  const reads: ((result: HistoryResult) => void)[] = [];
  const backplane = {
    onEnvelope: (listener: (e: DurableEnvelope) => void) => void (deliver = listener),
    onReadyChange: () => {},
    subscribe: async () => {},
    unsubscribe: async () => {},
    history: () => new Promise<HistoryResult>((resolve) => reads.push(resolve)),
  } as unknown as Backplane;
  return { backplane, deliver: (e: DurableEnvelope) => deliver(e), reads };
}

function recorder(id: string): RoomMember & { seqs: number[] } {
  const seqs: number[] = [];
  return { id, seqs, send: (e) => void (e.seq !== null && seqs.push(e.seq)) };
}

describe('RoomHub', () => {
  it('refuses a join whose member left while it was in flight, and keeps fanning out to the others', async () => {
    const { backplane, deliver, reads } = scriptedBackplane();
    const hub = new RoomHub({ io, backplane, metrics: createMetrics(), log: silent });
    const stays = recorder('stays');
    const leaves = recorder('leaves');
    const joinStays = hub.join(stays, 'chat:a', 99);
    const joinLeaves = hub.join(leaves, 'chat:a', 99);
    await new Promise((r) => setTimeout(r, 5));
    deliver(envelope(100));
    hub.leave(leaves, 'chat:a');
    reads[1]!({ mode: 'replay', seq: 102, envelopes: [envelope(100), envelope(101), envelope(102)] });
    await expect(joinLeaves).rejects.toMatchObject({ code: 'not_joined' });
    reads[0]!({ mode: 'replay', seq: 100, envelopes: [envelope(100)] });
    await joinStays;
    expect(() => deliver(envelope(101))).not.toThrow();
    expect(stays.seqs).toEqual([100, 101]);
    expect(leaves.seqs).toEqual([]);
    expect(hub.memberCount('chat:a')).toBe(1);
  });

  it('with offsets, one room broadcast when every recipient shares one; otherwise one copy per offset', async () => {
    const { backplane, deliver, reads } = scriptedBackplane();
    const emits: { to: unknown; except: unknown; args: unknown[] }[] = [];
    const written: string[] = [];
    const fakeIo = {
      local: {
        to: (to: unknown) => {
          const op = { except: (except: unknown) => ({ emit: (...args: unknown[]) => emits.push({ to, except, args }) }), emit: (...args: unknown[]) => emits.push({ to, except: null, args }) };
          return op;
        },
      },
    } as never;
    const offsetOf = new Map<string, string>([['a', 'r1.x'], ['b', 'r1.x'], ['c', 'r1.x']]);
    const offsets = { deliver: (socket: { id: string }) => offsetOf.get(socket.id) ?? null } as never;
    const member = (id: string): RoomMember => {
      const socket = { id, connected: true, join() {}, leave() {}, conn: { write: (packet: string) => written.push(`${id} ${packet}`) } } as never;
      return { id, socket, send() {} };
    };
    const hub = new RoomHub({ io: fakeIo, backplane, metrics: createMetrics(), log: silent, offsets });
    const joins = ['a', 'b', 'c'].map((id) => hub.join(member(id), 'chat:a', null));
    await new Promise((r) => setTimeout(r, 5));
    for (const read of reads) read({ mode: 'replay', seq: 0, envelopes: [] });
    await Promise.all(joins);
    deliver(envelope(1));
    expect(emits).toEqual([{ to: 'chat:a', except: null, args: ['chat:message', envelope(1), 'r1.x'] }]);
    emits.length = 0;
    offsetOf.set('c', 'r1.y');
    deliver(envelope(2));
    expect(emits).toEqual([{ to: ['a', 'b'], except: null, args: ['chat:message', envelope(2), 'r1.x'] }]);
    expect(written).toEqual([`c 2["chat:message",${JSON.stringify(envelope(2))},"r1.y"]`]);
  });

  it('with backpressure, asks only about watched sockets: a reader that stops is coalesced, then cut, while the others get everything', async () => {
    const { backplane, deliver, reads } = scriptedBackplane();
    const registry = new Registry();
    const backpressure = new Backpressure({ highWaterBytes: 1_000, limitBytes: 5_000, registry, log: silent });
    const delivered = new Map<string, DurableEnvelope[]>();
    const excepted: unknown[] = [];
    // Engine.IO's side of a socket: packetCreate, then the packet waits in its write buffer until read.
    const sockets = new Map<string, { id: string; conn: EventEmitter & { writeBuffer: unknown[]; transport: unknown; closed: boolean; close(): void; write(p: object): void } }>();
    const socketOf = (id: string) => {
      const conn = Object.assign(new EventEmitter(), {
        writeBuffer: [] as unknown[],
        transport: { name: 'websocket', socket: { bufferedAmount: 0 } },
        closed: false,
        close() {
          conn.closed = true;
        },
        write(packet: object) {
          if (conn.closed) return;
          conn.emit('packetCreate', packet);
          conn.writeBuffer.push(packet);
        },
      });
      const socket = {
        id,
        conn,
        connected: true,
        rooms: new Set([id, 'counter:c']),
        data: {},
        on: () => socket,
        join() {},
        leave() {},
        emit: (_type: string, envelope: DurableEnvelope) => {
          delivered.get(id)!.push(envelope);
          conn.write({ data: `42${JSON.stringify(['x', envelope])}` });
          return true;
        },
      };
      sockets.set(id, socket);
      delivered.set(id, []);
      backpressure.track(socket as never);
      return socket;
    };
    const fakeIo = {
      local: {
        to: (room: string) => {
          const emit = (except: readonly string[]) => (_type: string, envelope: DurableEnvelope) => {
            const frame = Buffer.from(`42${JSON.stringify(['x', envelope])}`);
            const options = { wsPreEncodedFrame: [Buffer.alloc(2), frame] }; // one frame for all recipients
            for (const socket of sockets.values()) {
              if (except.includes(socket.id) || socket.conn.closed) continue;
              delivered.get(socket.id)!.push(envelope);
              socket.conn.write({ data: frame.toString(), options });
            }
            return true;
          };
          expect(room).toBe('counter:c');
          return {
            except: (ids: string[]) => {
              excepted.push(ids);
              return { emit: emit(ids) };
            },
            emit: emit([]),
          };
        },
      },
    } as never;
    const hub = new RoomHub({ io: fakeIo, backplane, metrics: createMetrics(), log: silent, outbound: backpressure });
    const members = ['fast', 'slow'].map((id): RoomMember => ({ id, socket: socketOf(id) as never, send() {} }));
    const joins = members.map((member) => hub.join(member, 'counter:c', null));
    await new Promise((r) => setTimeout(r, 5));
    for (const read of reads) read({ mode: 'replay', seq: 0, envelopes: [] });
    await Promise.all(joins);
    const fast = sockets.get('fast')!.conn;
    const slow = sockets.get('slow')!.conn;
    let seq = 0;
    const update = (type: 'counter:changed' | 'chat:message'): DurableEnvelope => ({ v: PROTOCOL_VERSION, type, room: 'counter:c', seq: ++seq, payload: { value: seq, by: 1, from: 'u' }, ts: 0 });
    // 40 counter updates of ~100 bytes: "slow" reads nothing and passes the high-water mark on the way.
    for (let i = 0; i < 40; i += 1) {
      deliver(update('counter:changed'));
      fast.writeBuffer.length = 0; // "fast" reads everything
    }
    expect(backpressure.watched.has(sockets.get('slow') as never)).toBe(true);
    expect(backpressure.watched.has(sockets.get('fast') as never)).toBe(false);
    expect(delivered.get('fast')!.map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const slowSeqs = delivered.get('slow')!.map((e) => e.seq);
    expect(slowSeqs.length).toBeLessThan(15); // withheld past the high-water mark
    expect(slowSeqs).toEqual(Array.from({ length: slowSeqs.length }, (_, i) => i + 1));
    expect((await registry.getSingleMetric('rt_coalesced_updates_total')!.get()).values[0]!.value).toBe(40 - slowSeqs.length);
    // Chat messages are not coalescible: "slow"'s backlog grows to the limit and it is cut.
    for (let i = 0; i < 60 && !slow.closed; i += 1) {
      deliver(update('chat:message'));
      fast.writeBuffer.length = 0;
      await Promise.resolve();
    }
    expect(slow.closed).toBe(true);
    expect(delivered.get('slow')!.at(-1)).toMatchObject({ type: 'connection:closing', payload: { reason: 'slow_consumer' } });
    expect((await registry.getSingleMetric('rt_slow_consumer_disconnections_total')!.get()).values[0]!.value).toBe(1);
    deliver(update('chat:message'));
    expect(excepted.at(-1)).toEqual(['slow']);
    expect(delivered.get('fast')!.at(-1)!.seq).toBe(seq);
    backpressure.stop();
  });
});
