import { PROTOCOL_VERSION, type DurableEnvelope, type HistoryResult, MAX_REPLAY } from '../../protocol/index.ts';
import { type DrainPlan, drainPlanSchema } from '../../protocol/drain-plan.ts';
import { type Backplane, DEFAULT_IDEMPOTENCY_WINDOW_SECONDS, type FleetStat, type PublishOutcome, type PublishRequest, type SessionRecord, seqOrigin } from './backplane.ts';

export interface MemoryBackplaneOptions {
  /** Envelopes kept per room. @default 1000 */
  readonly historySize?: number;
  /** A room nobody follows is forgotten this long after its last message, as Redis expires it. @default 86400 */
  readonly historyTtlSeconds?: number;
  /**
   * A room that never had a message is forgotten this long after its last member left (joining any
   * name creates one; a client reconnecting within it still resumes by replay). @default 60000
   */
  readonly emptyRoomGraceMs?: number;
  /** How often forgotten rooms are looked for. @default 10000 */
  readonly sweepIntervalMs?: number;
}

interface RoomLog {
  seq: number;
  state: unknown;
  /** Milliseconds since the epoch of the last publish (or creation). */
  lastAt: number;
  /** When the last subscriber left (null while followed). */
  idleSince: number | null;
  /** Oldest first. */
  readonly history: DurableEnvelope[];
}

/** The embedded mode's backplane: one process, the same contract as Redis, nothing shared. */
export function createMemoryBackplane(opts: MemoryBackplaneOptions = {}): Backplane {
  const historySize = opts.historySize ?? 1000;
  const rooms = new Map<string, RoomLog>();
  const subscribed = new Set<string>();
  const envelopeListeners: ((e: DurableEnvelope) => void)[] = [];
  const fleet = new Map<string, FleetStat>();
  const drainPlans = new Map<string, { plan: DrainPlan; expiresAt: number }>();
  const sessions = new Map<string, { record: SessionRecord; expiresAt: number }>();
  const liveSession = (pid: string): { record: SessionRecord; expiresAt: number } | null => {
    const entry = sessions.get(pid);
    if (entry && entry.expiresAt <= Date.now()) sessions.delete(pid);
    return sessions.get(pid) ?? null;
  };
  /** room → userId → pod → {connections, expiresAt}. */
  const presence = new Map<string, Map<string, Map<string, { connections: number; expiresAt: number }>>>();
  const liveConnections = (pods: Map<string, { connections: number; expiresAt: number }>, now: number): number => {
    let total = 0;
    for (const [pod, entry] of pods) {
      if (entry.expiresAt > now) total += entry.connections;
      else pods.delete(pod);
    }
    return total;
  };
  /** `room \0 key` → the first envelope published with that key, until the window ends. */
  const idempotent = new Map<string, { envelope: DurableEnvelope; expiresAt: number }>();

  const ttlMs = (opts.historyTtlSeconds ?? 86_400) * 1000;
  const emptyGraceMs = opts.emptyRoomGraceMs ?? 60_000;
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [room, entry] of rooms) {
      if (subscribed.has(room)) continue;
      const emptyAndLeft = entry.history.length === 0 && now - (entry.idleSince ?? entry.lastAt) > emptyGraceMs;
      if (emptyAndLeft || now - entry.lastAt > ttlMs) rooms.delete(room);
    }
  }, opts.sweepIntervalMs ?? 10_000).unref();

  function log(room: string): RoomLog {
    let entry = rooms.get(room);
    if (!entry) {
      entry = { seq: seqOrigin(), state: null, history: [], lastAt: Date.now(), idleSince: null };
      rooms.set(room, entry);
    }
    return entry;
  }

  return {
    kind: 'memory',
    isReady: () => true,
    onReadyChange: () => {},
    onEnvelope: (listener) => void envelopeListeners.push(listener),

    async publish(req: PublishRequest) {
      return (await this.publishOnce(req)).envelope;
    },

    async publishOnce(req: PublishRequest): Promise<PublishOutcome> {
      const now = Date.now();
      const idemKey = req.idempotencyKey === undefined ? null : `${req.room}\0${req.idempotencyKey}`;
      if (idemKey !== null) {
        const prior = idempotent.get(idemKey);
        if (prior && prior.expiresAt > now) return { envelope: prior.envelope, duplicate: true };
        if (idempotent.size > 10_000) for (const [key, entry] of idempotent) if (entry.expiresAt <= now) idempotent.delete(key);
      }
      const entry = log(req.room);
      let payload = req.payload;
      if (req.counterBy !== undefined) {
        const value = (typeof entry.state === 'object' && entry.state ? (entry.state as { value: number }).value : 0) + req.counterBy;
        entry.state = { value };
        payload = { value, by: req.counterBy, from: req.from };
      }
      entry.seq += 1;
      const envelope: DurableEnvelope = {
        v: PROTOCOL_VERSION,
        type: req.type,
        room: req.room,
        seq: entry.seq,
        payload,
        ts: now,
        ...(req.sender === undefined ? {} : { from: req.sender }),
      };
      const keep = req.history?.size ?? historySize;
      entry.history.push(envelope);
      entry.lastAt = now;
      while (entry.history.length > keep) entry.history.shift();
      if (idemKey !== null) {
        idempotent.set(idemKey, { envelope, expiresAt: now + (req.idempotencyWindowSeconds ?? DEFAULT_IDEMPOTENCY_WINDOW_SECONDS) * 1000 });
      }
      // Deliver after the caller's await resolves, as a real backplane would.
      if (subscribed.has(req.room)) queueMicrotask(() => envelopeListeners.forEach((l) => l(envelope)));
      return { envelope, duplicate: false };
    },

    async history(room, afterSeq, recent, limit = MAX_REPLAY): Promise<HistoryResult> {
      const entry = log(room);
      const missing = afterSeq === null ? Infinity : entry.seq - afterSeq;
      if (missing >= 0 && missing <= Math.min(entry.history.length, MAX_REPLAY)) {
        const start = entry.history.length - missing;
        return { mode: 'replay', seq: entry.seq, envelopes: missing === 0 ? [] : entry.history.slice(start, start + Math.min(missing, limit)) };
      }
      return { mode: 'reset', seq: entry.seq, snapshot: { state: entry.state, recent: recent > 0 ? entry.history.slice(-recent) : [] } };
    },

    async readCounter(room) {
      const entry = log(room);
      const value = typeof entry.state === 'object' && entry.state ? (entry.state as { value: number }).value : 0;
      return { value, seq: entry.seq };
    },

    async subscribe(room) {
      subscribed.add(room);
      const entry = rooms.get(room);
      if (entry) entry.idleSince = null;
    },
    async unsubscribe(room) {
      subscribed.delete(room);
      const entry = rooms.get(room);
      if (entry) entry.idleSince = Date.now();
    },
    async writePresence(room, pod, counts, ttlSeconds) {
      const now = Date.now();
      let users = presence.get(room);
      if (!users) {
        users = new Map();
        presence.set(room, users);
      }
      const changes = [];
      for (const [userId, connections] of counts) {
        let pods = users.get(userId);
        if (!pods) {
          pods = new Map();
          users.set(userId, pods);
        }
        const before = liveConnections(pods, now);
        if (connections > 0) pods.set(pod, { connections, expiresAt: now + ttlSeconds * 1000 });
        else pods.delete(pod);
        const after = liveConnections(pods, now);
        if (after === 0) users.delete(userId);
        if (before === 0 && after > 0) changes.push({ userId, joined: true });
        else if (before > 0 && after === 0) changes.push({ userId, joined: false });
      }
      if (users.size === 0) presence.delete(room);
      return changes;
    },
    async readPresence(room) {
      const now = Date.now();
      const users = [];
      for (const [userId, pods] of presence.get(room) ?? []) {
        const connections = liveConnections(pods, now);
        if (connections > 0) users.push({ userId, connections });
      }
      users.sort((x, y) => x.userId.localeCompare(y.userId));
      return { room, users, connections: users.reduce((sum, u) => sum + u.connections, 0) };
    },
    // One process: no other writer can die under it, so there is nothing to sweep.
    async notePresenceRooms() {},
    async claimPresenceSweep() {
      return null;
    },
    async presenceRoomsOf() {
      return [];
    },
    async sweepPresenceRoom() {
      return { removed: 0, kept: 0, leaves: [] };
    },
    async finishPresenceSweep() {},
    async forgetPresenceWriter() {},
    async writeFleetStat(stat) {
      fleet.set(stat.pod, stat);
    },
    async readFleetStats() {
      return [...fleet.values()];
    },
    async removeFleetStat(pod) {
      fleet.delete(pod);
    },
    async readDrainPlan(pod) {
      const entry = drainPlans.get(pod);
      if (!entry || entry.expiresAt <= Date.now()) return null;
      return entry.plan;
    },
    async writeDrainPlan(pod, plan, ttlSeconds) {
      drainPlans.set(pod, { plan: drainPlanSchema.parse(plan), expiresAt: Date.now() + ttlSeconds * 1000 });
    },
    async writeSession(pid, record, ttlSeconds) {
      const { disconnectedAt: _, ...connected } = record;
      sessions.set(pid, { record: connected, expiresAt: Date.now() + ttlSeconds * 1000 });
    },
    async readSession(pid) {
      return liveSession(pid)?.record ?? null;
    },
    async markSessionDisconnected(pid, sid, at, ttlSeconds) {
      const entry = liveSession(pid);
      if (entry?.record.sid === sid) sessions.set(pid, { record: { ...entry.record, disconnectedAt: at }, expiresAt: Date.now() + ttlSeconds * 1000 });
    },
    async deleteSession(pid, sid) {
      if (liveSession(pid)?.record.sid === sid) sessions.delete(pid);
    },
    async touchSessions(pids, ttlSeconds) {
      for (const pid of pids) {
        const entry = liveSession(pid);
        if (entry) entry.expiresAt = Date.now() + ttlSeconds * 1000;
      }
    },
    async close() {
      clearInterval(sweeper);
      subscribed.clear();
      envelopeListeners.length = 0;
    },
  };
}
