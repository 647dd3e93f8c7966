import { PROTOCOL_VERSION } from './envelope.ts';

/**
 * The Redis side of publishing (contract 1 of DESIGN.md): the keys of a room, its channel, and the one
 * script that assigns the next seq, appends to history, remembers an idempotency key and publishes —
 * atomically, so publish order on the channel is seq order. The gateway's Redis backplane and the
 * backend publisher library (app/publisher) run this same script, so their seqs interleave correctly.
 */

// The hash tag keeps a room's keys and channel in one slot, as a script on Redis Cluster requires.
export function roomKeys(prefix: string, room: string): [seq: string, history: string, state: string] {
  return [`${prefix}:{${room}}:seq`, `${prefix}:{${room}}:hist`, `${prefix}:{${room}}:state`];
}

/** The pub/sub channel of a room's envelopes (`SPUBLISH` on Redis Cluster). */
export function roomChannel(prefix: string, room: string): string {
  return `${prefix}:{${room}}:env`;
}

/** The key remembering a publish's idempotency key; in the room's hash slot, as the script requires. */
export function idempotencyKeyOf(prefix: string, room: string, key: string): string {
  return `${prefix}:{${room}}:idem:${key}`;
}

// A missing seq key starts a new epoch at the clock in microseconds (see Backplane's contract).
// Numbers go through string.format('%d') because Lua's tostring drops digits past 14.
export const ORIGIN = `local function origin() local t = redis.call('TIME'); return tonumber(t[1]) * 1000000 + tonumber(t[2]) end`;

// KEYS: seq, history, state, idempotency key. ARGV: 1 type, 2 room (JSON), 3 payload (JSON), 4 history size
// (0: live-only), 5 key TTL, 6 channel, 7 sharded, 8 counter increment, 9 from (JSON), 10 sender (JSON or ''),
// 11 idempotency window in seconds (0: no key). A key seen within its window returns the first envelope
// and publishes nothing: the check and the publish are one script, so two retries racing cannot both publish.
// Commands are kept to what each publish needs (docs/benchmarks.md, "Redis per publish"): INCR creates
// a missing seq key at 1, which the same script replaces by a new epoch; the history is trimmed only
// once full; the state key (counters only) is only touched by counter publishes.
export const PUBLISH_SCRIPT = `${ORIGIN}
if ARGV[11] ~= '0' then
  local prior = redis.call('GET', KEYS[4])
  if prior then return {prior, 1} end
end
local seq = redis.call('INCR', KEYS[1])
if seq == 1 then seq = origin() + 1; redis.call('SET', KEYS[1], string.format('%d', seq)) end
local payload = ARGV[3]
if ARGV[8] ~= '' then
  local value = redis.call('INCRBY', KEYS[3], ARGV[8])
  payload = '{"value":' .. string.format('%d', value) .. ',"by":' .. ARGV[8] .. ',"from":' .. ARGV[9] .. '}'
end
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sender = ''
if ARGV[10] ~= '' then sender = ',"from":' .. ARGV[10] end
local envelope = '{"v":${PROTOCOL_VERSION},"type":"' .. ARGV[1] .. '","room":' .. ARGV[2] .. ',"seq":' .. string.format('%d', seq) ..
  ',"payload":' .. payload .. ',"ts":' .. string.format('%d', ts) .. sender .. '}'
if tonumber(ARGV[4]) > 0 then
  if redis.call('LPUSH', KEYS[2], envelope) > tonumber(ARGV[4]) then redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1) end
  redis.call('EXPIRE', KEYS[2], ARGV[5])
else
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[8] ~= '' then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
if ARGV[11] ~= '0' then redis.call('SET', KEYS[4], envelope, 'EX', ARGV[11]) end
if ARGV[7] == '1' then redis.call('SPUBLISH', ARGV[6], envelope) else redis.call('PUBLISH', ARGV[6], envelope) end
return {envelope, 0}`;

