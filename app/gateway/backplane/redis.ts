import { type DurableEnvelope, type HistoryResult, MAX_REPLAY, ProtocolError } from '../../protocol/index.ts';
import { idempotencyKeyOf, ORIGIN, PUBLISH_SCRIPT, roomChannel, roomKeys } from '../../protocol/publish-script.ts';
import { fleetIndexKey, fleetStatKey } from '../../protocol/fleet.ts';
import { drainPlanKey, drainPlanSchema, parseDrainPlan } from '../../protocol/drain-plan.ts';
import { type Backplane, DEFAULT_IDEMPOTENCY_WINDOW_SECONDS, type FleetStat, type PublishOutcome, type PublishRequest } from './backplane.ts';
import { createRedisClient, type RedisClient, trackReadiness } from './redis-connection.ts';

export interface RedisBackplaneOptions {
  readonly url: string;
  /** Redis Cluster with sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`). @default false */
  readonly cluster?: boolean;
  readonly password?: string | undefined;
  /** @default 'rt' */
  readonly keyPrefix?: string;
  /** @default 1000 */
  readonly historySize?: number;
  /** @default 86400 */
  readonly historyTtlSeconds?: number;
  /** Fleet-stats entries expire after this. @default 10 */
  readonly fleetStatsTtlSeconds?: number;
  /** Connection names get this suffix. @default 'gateway' */
  readonly name?: string;
}

// Seq, history and fan-out happen in one script (PUBLISH_SCRIPT, shared with app/publisher), so
// publish order on the channel is seq order.

// Returns {mode, seq, state, envelope...}, envelopes newest first.
const HISTORY_SCRIPT = `${ORIGIN}
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
if latest == 0 then latest = origin(); redis.call('SET', KEYS[1], string.format('%d', latest), 'EX', ARGV[4]) end
local seq = string.format('%d', latest)
local function reset()
  local recent = {}
  if tonumber(ARGV[3]) > 0 then recent = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1) end
  return {'reset', seq, redis.call('GET', KEYS[3]) or '', unpack(recent)}
end
if ARGV[1] == '' then return reset() end
local after = tonumber(ARGV[1])
if after > latest then return reset() end
local missing = latest - after
if missing == 0 then return {'replay', seq, ''} end
if missing > tonumber(ARGV[2]) or missing > redis.call('LLEN', KEYS[2]) then return reset() end
local oldest = missing - math.min(missing, tonumber(ARGV[5]))
return {'replay', seq, '', unpack(redis.call('LRANGE', KEYS[2], oldest, missing - 1))}`;

const READ_COUNTER_SCRIPT = `${ORIGIN}
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
if latest == 0 then latest = origin(); redis.call('SET', KEYS[1], string.format('%d', latest), 'EX', ARGV[1]) end
return {string.format('%d', latest), redis.call('GET', KEYS[2]) or '0'}`;

// A session is marked or deleted only by the socket that wrote it last: after a blip, the old socket's
// late disconnect on its pod must not overwrite the session its client has since recovered elsewhere.
const SESSION_MARK_SCRIPT = `if redis.call('HGET', KEYS[1], 's') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'd', ARGV[2]); redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 0`;
const SESSION_DELETE_SCRIPT = `if redis.call('HGET', KEYS[1], 's') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * How much longer than three TTLs a dead writer's presence keys (its users' hashes, its per-room user
 * sets, its room index) outlive its last write: a sweep delayed by a busy fleet still finds the leaves
 * it owes. Live keys are rewritten every refresh, and a finished sweep deletes what it read.
 */
const PRESENCE_SWEEP_GRACE_MS = 60_000;

// `live` counts a user's connections that have not expired; with `prune` it also drops the expired
// fields. Only a write prunes: a read that dropped a dead pod's last field would lose the leave the
// sweep owes for it.
const NOW_MS = `local function nowMs() local t = redis.call('TIME'); return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end
local function live(key, now, prune)
  local total = 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local c, e = string.match(all[i + 1], '^(%d+):(%d+)$')
    if c and tonumber(e) > now then total = total + tonumber(c) elseif prune then redis.call('HDEL', key, all[i]) end
  end
  return total
end`;

// Presence of a room: a sorted set of user ids by latest expiry (KEYS[1]), per user a hash of
// pod → "connections:expiresAtMs" (KEYS[1]:<user>), and per pod the set of its users in the room
// (KEYS[2], what a sweep of that pod reads). All in the room's slot. Expiry uses Redis's clock, so
// pods' clocks do not matter. ARGV: pod, TTL seconds, then user id and count pairs (KEYS[3..] are
// their hashes). Returns user id / '1' (first live connection fleet-wide) or '0' (leave) pairs.
// A leave is owed while the user's hash holds any field, live or expired (a dead pod's field stays
// until its sweep): whoever empties the hash of live fields deletes it and says the leave, once.
const PRESENCE_WRITE_SCRIPT = `${NOW_MS}
local SWEEP_GRACE_MS = ${PRESENCE_SWEEP_GRACE_MS}
local now = nowMs()
local pod = ARGV[1]
local ttlMs = tonumber(ARGV[2]) * 1000
local expires = string.format('%d', now + ttlMs)
local changes = {}
for i = 3, #KEYS do
  local key, user, count = KEYS[i], ARGV[2 * i - 3], ARGV[2 * i - 2]
  local owed = redis.call('EXISTS', key) == 1
  local before = live(key, now, true)
  if tonumber(count) > 0 then
    redis.call('HSET', key, pod, count .. ':' .. expires)
    redis.call('PEXPIRE', key, ttlMs * 3 + SWEEP_GRACE_MS)
    redis.call('SADD', KEYS[2], user)
  else
    redis.call('HDEL', key, pod)
    redis.call('SREM', KEYS[2], user)
  end
  local after = live(key, now, false)
  if after > 0 then
    local score = redis.call('ZSCORE', KEYS[1], user)
    if not score or tonumber(score) < tonumber(expires) then redis.call('ZADD', KEYS[1], expires, user) end
  else
    redis.call('ZREM', KEYS[1], user)
    redis.call('DEL', key)
  end
  if before == 0 and after > 0 then table.insert(changes, user); table.insert(changes, '1')
  elseif owed and after == 0 then table.insert(changes, user); table.insert(changes, '0') end
end
-- Users whose hashes have expired (no sweep came in time) leave the set too.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttlMs * 2)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ttlMs * 3 + SWEEP_GRACE_MS) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttlMs * 3 + SWEEP_GRACE_MS) end
return changes`;

// Read only: expired fields are skipped, never dropped (see NOW_MS).
const PRESENCE_READ_SCRIPT = `${NOW_MS}
local now = nowMs()
local out = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local total = live(KEYS[1] .. ':' .. user, now, false)
  if total > 0 then table.insert(out, user); table.insert(out, tostring(total)) end
end
return out`;

// One room of a dead pod's sweep (KEYS: the room's presence set, the pod's user set in the room;
// ARGV: the pod). Drops the pod's expired fields; a user left with no live field is deleted and
// returned as a leave. A field not expired yet (clock skew, or the pod is back) stays, and so does the
// set, for a later sweep. Returns {entries removed, fields kept, leaving user ids...}.
const PRESENCE_SWEEP_ROOM_SCRIPT = `${NOW_MS}
local now = nowMs()
local pod = ARGV[1]
local removed, kept, leaves = 0, 0, {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = KEYS[1] .. ':' .. user
  local field = redis.call('HGET', key, pod)
  local e = field and tonumber(string.match(field, '^%d+:(%d+)$'))
  if e and e > now then
    kept = kept + 1
  else
    redis.call('SREM', KEYS[2], user)
    if field then
      redis.call('HDEL', key, pod)
      removed = removed + 1
      if live(key, now, false) == 0 then
        redis.call('DEL', key)
        redis.call('ZREM', KEYS[1], user)
        table.insert(leaves, user)
      end
    end
  end
end
return {removed, kept, unpack(leaves)}`;

// Sweep bookkeeping, in the {fleet} slot: KEYS[1] is the sorted set of presence writers (pod →
// Redis-clock ms after which all of its entries have expired), KEYS[2] the prefix of the claim keys.
const PRESENCE_HEARTBEAT_SCRIPT = `${NOW_MS}
redis.call('ZADD', KEYS[1], nowMs() + tonumber(ARGV[2]), ARGV[1])
return 0`;
// Claims one writer whose entries have all expired and that no one else is sweeping: ARGV claimer, lease ms.
const PRESENCE_CLAIM_SCRIPT = `${NOW_MS}
for _, pod in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs(), 'LIMIT', 0, 16)) do
  if redis.call('SET', KEYS[2] .. pod, ARGV[1], 'NX', 'PX', ARGV[2]) then return pod end
end
return false`;
// Ends a claim: ARGV pod, claimer, '1' when every entry was swept, retry ms. Returns 1 when the writer
// is gone for good (its room index may go). Otherwise (entries not expired yet, or it wrote again
// meanwhile) the claim is cut to the retry delay, after which any instance may sweep again.
const PRESENCE_FINISH_SCRIPT = `${NOW_MS}
local claim = KEYS[2] .. ARGV[1]
if redis.call('GET', claim) ~= ARGV[2] then return 0 end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[3] ~= '1' or (score and tonumber(score) > nowMs()) then redis.call('PEXPIRE', claim, ARGV[4]); return 0 end
redis.call('DEL', claim)
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`;

/** Rooms per ZADD of a writer's room index. */
const INDEX_CHUNK = 500;

type ScriptClient = RedisClient & {
  rtSessionMark(key: string, sid: string, at: number, ttl: number): Promise<number>;
  rtSessionDelete(key: string, sid: string): Promise<number>;
  rtPresenceWrite(numberOfKeys: number, ...args: (string | number)[]): Promise<string[]>;
  rtPresenceRead(...args: (string | number)[]): Promise<string[]>;
  rtPresenceSweepRoom(...args: (string | number)[]): Promise<(string | number)[]>;
  rtPresenceHeartbeat(...args: (string | number)[]): Promise<number>;
  rtPresenceClaim(...args: (string | number)[]): Promise<string | null>;
  rtPresenceFinish(...args: (string | number)[]): Promise<number>;
  rtPublish(...args: (string | number)[]): Promise<[string, number]>;
  rtHistory(...args: (string | number)[]): Promise<string[]>;
  rtReadCounter(...args: (string | number)[]): Promise<[string, string]>;
};

/** The Redis backplane: seq + history + state per room, one channel per room, fleet stats with TTL. */
export function createRedisBackplane(opts: RedisBackplaneOptions): Backplane {
  const cluster = opts.cluster ?? false;
  const prefix = opts.keyPrefix ?? 'rt';
  const historySize = opts.historySize ?? 1000;
  const ttl = opts.historyTtlSeconds ?? 86_400;
  const fleetTtl = opts.fleetStatsTtlSeconds ?? 10;
  const name = opts.name ?? 'gateway';
  const connection = { url: opts.url, cluster, password: opts.password };
  const commands = createRedisClient({ ...connection, name: `${name}-backplane` }) as ScriptClient;
  // The subscriber queues its (re)subscriptions while reconnecting; ioredis restores them after a restart.
  const subscriber = createRedisClient({ ...connection, name: `${name}-backplane-sub`, offlineQueue: true });
  commands.defineCommand('rtPublish', { numberOfKeys: 4, lua: PUBLISH_SCRIPT });
  commands.defineCommand('rtHistory', { numberOfKeys: 3, lua: HISTORY_SCRIPT });
  commands.defineCommand('rtReadCounter', { numberOfKeys: 2, lua: READ_COUNTER_SCRIPT });
  commands.defineCommand('rtSessionMark', { numberOfKeys: 1, lua: SESSION_MARK_SCRIPT });
  commands.defineCommand('rtSessionDelete', { numberOfKeys: 1, lua: SESSION_DELETE_SCRIPT });
  // The number of keys varies with the users written: it is the command's first argument.
  commands.defineCommand('rtPresenceWrite', { lua: PRESENCE_WRITE_SCRIPT });
  commands.defineCommand('rtPresenceRead', { numberOfKeys: 1, lua: PRESENCE_READ_SCRIPT });
  commands.defineCommand('rtPresenceSweepRoom', { numberOfKeys: 2, lua: PRESENCE_SWEEP_ROOM_SCRIPT });
  commands.defineCommand('rtPresenceHeartbeat', { numberOfKeys: 1, lua: PRESENCE_HEARTBEAT_SCRIPT });
  commands.defineCommand('rtPresenceClaim', { numberOfKeys: 2, lua: PRESENCE_CLAIM_SCRIPT });
  commands.defineCommand('rtPresenceFinish', { numberOfKeys: 2, lua: PRESENCE_FINISH_SCRIPT });
  const presenceKey = (room: string): string => `${prefix}:{${room}}:presence`;
  // `presence-pod:` cannot clash with a user's hash (`presence:<user>`).
  const podUsersKey = (room: string, pod: string): string => `${prefix}:{${room}}:presence-pod:${pod}`;
  // Each writer's rooms, in a slot of its own: a writer in many rooms does not load the {fleet} slot.
  const podRoomsKey = (pod: string): string => `${prefix}:{presence-rooms:${pod}}`;
  const presenceWriters = `${prefix}:{fleet}:presence-writers`;
  const sweepClaimPrefix = `${prefix}:{fleet}:presence-sweep:`;

  const keys = (room: string): [string, string, string] => roomKeys(prefix, room);
  const channelOf = (room: string): string => roomChannel(prefix, room);
  const channelPrefix = `${prefix}:{`;
  const roomOfChannel = (channel: string): string => channel.slice(channelPrefix.length, -'}:env'.length);
  const fleetIndex = fleetIndexKey(prefix);
  const fleetKey = (pod: string): string => fleetStatKey(prefix, pod);
  const sessionKey = (pid: string): string => `${prefix}:sess:{${pid}}`;

  const readyListeners: ((ready: boolean) => void)[] = [];
  const envelopeListeners: ((e: DurableEnvelope) => void)[] = [];
  const isReady = trackReadiness([commands, subscriber], (ready) => readyListeners.forEach((l) => l(ready)));

  const onMessage = (channel: string, message: string): void => {
    if (!channel.startsWith(channelPrefix)) return;
    let envelope: DurableEnvelope;
    try {
      envelope = JSON.parse(message) as DurableEnvelope;
    } catch {
      return; // Only the publish script writes here; anything else on the channel is not ours.
    }
    if (envelope.room !== roomOfChannel(channel)) return;
    for (const listener of envelopeListeners) listener(envelope);
  };
  subscriber.on(cluster ? 'smessage' : 'message', onMessage);

  async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (!isReady()) throw unavailable(what);
    try {
      return await run();
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw unavailable(what, err);
    }
  }

  return {
    kind: cluster ? 'redis-cluster' : 'redis',
    isReady,
    onReadyChange: (listener) => void readyListeners.push(listener),
    onEnvelope: (listener) => void envelopeListeners.push(listener),

    async publish(req: PublishRequest) {
      return (await this.publishOnce(req)).envelope;
    },

    async publishOnce(req: PublishRequest): Promise<PublishOutcome> {
      const [raw, duplicate] = await call('publish', () =>
        commands.rtPublish(
          ...keys(req.room),
          idempotencyKeyOf(prefix, req.room, req.idempotencyKey ?? ''),
          req.type,
          JSON.stringify(req.room),
          req.counterBy === undefined ? JSON.stringify(req.payload ?? null) : '',
          req.history?.size ?? historySize,
          req.keyTtlSeconds ?? (req.history?.ttlSeconds || ttl),
          channelOf(req.room),
          cluster ? '1' : '0',
          req.counterBy === undefined ? '' : String(req.counterBy),
          JSON.stringify(req.from),
          req.sender === undefined ? '' : JSON.stringify(req.sender),
          req.idempotencyKey === undefined ? 0 : (req.idempotencyWindowSeconds ?? DEFAULT_IDEMPOTENCY_WINDOW_SECONDS),
        ),
      );
      return { envelope: JSON.parse(raw) as DurableEnvelope, duplicate: duplicate === 1 };
    },

    async history(room, afterSeq, recent, limit = MAX_REPLAY): Promise<HistoryResult> {
      const [mode, seq, state, ...newestFirst] = await call('history read', () =>
        commands.rtHistory(...keys(room), afterSeq === null ? '' : String(afterSeq), MAX_REPLAY, recent, ttl, limit),
      );
      const envelopes = newestFirst.reverse().map((raw) => JSON.parse(raw) as DurableEnvelope);
      if (mode === 'replay') return { mode, seq: Number(seq), envelopes };
      return { mode: 'reset', seq: Number(seq), snapshot: { state: state ? { value: Number(state) } : null, recent: envelopes } };
    },

    async readCounter(room) {
      const [seq, value] = await call('counter read', () => commands.rtReadCounter(keys(room)[0], keys(room)[2], ttl));
      return { seq: Number(seq), value: Number(value) };
    },

    async subscribe(room) {
      // The subscriber queues commands while Redis is away; a join must not wait for that, it fails at once.
      if (!isReady()) throw unavailable('subscribe');
      await (cluster ? subscriber.ssubscribe(channelOf(room)) : subscriber.subscribe(channelOf(room)));
    },
    async unsubscribe(room) {
      // No readiness check: the subscriber's offline queue runs this after ioredis has restored the
      // channel on reconnect, so a room left during an outage does not stay subscribed forever.
      await (cluster ? subscriber.sunsubscribe(channelOf(room)) : subscriber.unsubscribe(channelOf(room)));
    },

    async writePresence(room, pod, counts, ttlSeconds) {
      if (counts.length === 0) return [];
      const key = presenceKey(room);
      const raw = await call('presence write', () =>
        commands.rtPresenceWrite(
          2 + counts.length,
          key,
          podUsersKey(room, pod),
          ...counts.map(([userId]) => `${key}:${userId}`),
          pod,
          ttlSeconds,
          ...counts.flatMap(([userId, n]) => [userId, n]),
        ),
      );
      const changes = [];
      for (let i = 0; i < raw.length; i += 2) changes.push({ userId: raw[i]!, joined: raw[i + 1] === '1' });
      return changes;
    },
    async readPresence(room) {
      const raw = await call('presence read', () => commands.rtPresenceRead(presenceKey(room)));
      const users = [];
      for (let i = 0; i < raw.length; i += 2) users.push({ userId: raw[i]!, connections: Number(raw[i + 1]) });
      // A hash's order is Redis's; sorted, as the memory backplane answers, so readers get one stable order.
      users.sort((x, y) => x.userId.localeCompare(y.userId));
      return { room, users, connections: users.reduce((sum, u) => sum + u.connections, 0) };
    },
    async notePresenceRooms(pod, rooms, ttlSeconds, expiresInMs) {
      const key = podRoomsKey(pod);
      const now = Date.now();
      // Scores are this writer's own clock, compared only with each other: a room written in the last
      // three TTLs is listed, longer than any of its entries can live unswept.
      const trim = now - ttlSeconds * 3000;
      await call('presence index write', async () => {
        if (rooms.length > 0) {
          // One key, so one transaction even on Redis Cluster; ZADDs of bounded size.
          const tx = commands.multi();
          for (let i = 0; i < rooms.length; i += INDEX_CHUNK) tx.zadd(key, ...rooms.slice(i, i + INDEX_CHUNK).flatMap((room) => [String(now), room]));
          await tx.zremrangebyscore(key, '-inf', trim).pexpire(key, ttlSeconds * 3000 + PRESENCE_SWEEP_GRACE_MS).exec();
        }
        if (expiresInMs !== null) await commands.rtPresenceHeartbeat(presenceWriters, pod, expiresInMs);
      });
    },
    async claimPresenceSweep(claimer, leaseMs) {
      return call('presence sweep claim', () => commands.rtPresenceClaim(presenceWriters, sweepClaimPrefix, claimer, leaseMs));
    },
    async presenceRoomsOf(pod) {
      return call('presence index read', () => commands.zrange(podRoomsKey(pod), '0', '-1'));
    },
    async sweepPresenceRoom(room, pod) {
      const [removed, kept, ...leaves] = await call('presence sweep', () => commands.rtPresenceSweepRoom(presenceKey(room), podUsersKey(room, pod), pod));
      return { removed: Number(removed), kept: Number(kept), leaves: leaves.map(String) };
    },
    async finishPresenceSweep(pod, claimer, complete, retryMs) {
      const gone = await call('presence sweep finish', () => commands.rtPresenceFinish(presenceWriters, sweepClaimPrefix, pod, claimer, complete ? '1' : '0', retryMs));
      if (gone === 1) await call('presence index delete', () => commands.del(podRoomsKey(pod)));
    },
    async forgetPresenceWriter(pod) {
      await call('presence writer remove', async () => {
        await commands.zrem(presenceWriters, pod);
        await commands.del(podRoomsKey(pod));
      });
    },
    async writeFleetStat(stat: FleetStat) {
      await call('fleet stats write', () =>
        commands
          .multi()
          .set(fleetKey(stat.pod), JSON.stringify(stat), 'EX', fleetTtl)
          .zadd(fleetIndex, stat.updatedAt, stat.pod)
          .zremrangebyscore(fleetIndex, '-inf', stat.updatedAt - fleetTtl * 1000)
          .exec(),
      );
    },
    async readFleetStats() {
      const pods = await call('fleet stats read', () => commands.zrange(fleetIndex, '0', '-1'));
      if (pods.length === 0) return [];
      const raw = await call('fleet stats read', () => commands.mget(pods.map(fleetKey)));
      return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as FleetStat);
    },
    async removeFleetStat(pod) {
      await call('fleet stats remove', () => commands.multi().del(fleetKey(pod)).zrem(fleetIndex, pod).exec());
    },
    async readDrainPlan(pod) {
      const raw = await call('drain plan read', () => commands.get(drainPlanKey(prefix, pod)));
      return raw === null ? null : parseDrainPlan(raw);
    },
    async writeDrainPlan(pod, plan, ttlSeconds) {
      const valid = drainPlanSchema.parse(plan);
      await call('drain plan write', () => commands.set(drainPlanKey(prefix, pod), JSON.stringify(valid), 'EX', ttlSeconds));
    },

    async writeSession(pid, record, ttlSeconds) {
      const key = sessionKey(pid);
      await call('session write', () =>
        commands
          .multi()
          .del(key)
          .hset(key, { s: record.sid, u: record.userId, p: record.pod, r: JSON.stringify(record.rooms) })
          .expire(key, ttlSeconds)
          .exec(),
      );
    },
    async readSession(pid) {
      const fields = await call('session read', () => commands.hgetall(sessionKey(pid)));
      if (!fields.s || !fields.u || !fields.r) return null;
      let rooms: unknown;
      try {
        rooms = JSON.parse(fields.r);
      } catch {
        return null;
      }
      if (!Array.isArray(rooms) || !rooms.every((room) => room === null || typeof room === 'string')) return null;
      const disconnectedAt = fields.d === undefined ? undefined : Number(fields.d);
      return { sid: fields.s, userId: fields.u, pod: fields.p ?? '', rooms: rooms as (string | null)[], ...(disconnectedAt === undefined ? {} : { disconnectedAt }) };
    },
    async markSessionDisconnected(pid, sid, at, ttlSeconds) {
      await call('session mark', () => commands.rtSessionMark(sessionKey(pid), sid, at, ttlSeconds));
    },
    async deleteSession(pid, sid) {
      await call('session delete', () => commands.rtSessionDelete(sessionKey(pid), sid));
    },
    async touchSessions(pids, ttlSeconds) {
      // One command each (a Redis Cluster pipeline must stay in one slot); ioredis writes them back to back.
      await call('session touch', () => Promise.all(pids.map((pid) => commands.expire(sessionKey(pid), ttlSeconds))));
    },

    async close() {
      envelopeListeners.length = 0;
      readyListeners.length = 0;
      await Promise.allSettled([commands.quit(), subscriber.quit()]);
      commands.disconnect();
      subscriber.disconnect();
    },
  };
}

function unavailable(what: string, cause?: unknown): ProtocolError {
  const detail = cause instanceof Error ? ` (${cause.message})` : '';
  return new ProtocolError('backplane_unavailable', `Redis is unreachable: ${what} failed${detail}. Retry when the backplane is back.`, 1_000);
}
