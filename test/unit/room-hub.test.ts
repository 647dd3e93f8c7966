import { describe, expect, it } from 'vitest';
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
});
