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
});
