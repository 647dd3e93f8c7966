import { randomBytes } from 'node:crypto';
import type { Server } from 'socket.io';
import { controlEnvelope, type PresenceSnapshot } from '../protocol/index.ts';
import type { Backplane } from './backplane/backplane.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

/** Dead writers claimed per sweep tick, so one tick's work stays bounded. */
const WRITERS_PER_SWEEP = 4;
/** Rooms of one dead writer swept at a time (one script each, in the room's slot). */
const ROOMS_IN_FLIGHT = 16;

/**
 * Who is in each presence-enabled room, across the fleet. Each instance keeps its own connections per
 * (room, user) and writes them to the backplane with an expiry of FLEET_STATS_TTL_SECONDS, refreshed with
 * the fleet stats: a pod that dies without cleaning up drops out of every read once its entries expire.
 * `presence:join` goes to the room when a user's first connection in it (fleet-wide) arrives,
 * `presence:leave` when their last one leaves; the backplane answers both in one atomic step.
 *
 * A dead instance's entries are swept (decision 0019): after they expire, one surviving instance claims
 * the dead one, removes its entries room by room (its room index says where) and sends the
 * `presence:leave` of each user who has no live connection left.
 */
export class Presence {
  readonly #io: Server;
  readonly #backplane: Backplane;
  /**
   * This process as a presence writer: the pod name plus a boot id, so a container restarted in the
   * same pod (OOM) is a new writer and the old one's entries are swept, not overwritten.
   */
  readonly #writer: string;
  readonly #ttlSeconds: number;
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  /** Whether this instance ever wrote presence: only then does it keep a room index and heartbeat. */
  #wrote = false;
  #sweeping = false;
  /** room → userId → this instance's connections of that user in the room. */
  readonly #local = new Map<string, Map<string, number>>();
  /** socket id → the presence rooms it is counted in. */
  readonly #bySocket = new Map<string, { userId: string; rooms: Set<string> }>();

  constructor(opts: { io: Server; backplane: Backplane; pod: string; ttlSeconds: number; refreshIntervalMs: number; log: Logger; metrics: Metrics }) {
    this.#io = opts.io;
    this.#backplane = opts.backplane;
    this.#writer = `${opts.pod}/${randomBytes(4).toString('hex')}`;
    this.#ttlSeconds = opts.ttlSeconds;
    this.#intervalMs = opts.refreshIntervalMs;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
  }

  /** When all of this writer's entries have expired, counted from a heartbeat: one TTL after the next refresh's writes. */
  get #expiresInMs(): number {
    return this.#ttlSeconds * 1000 + this.#intervalMs;
  }

  /** Counts `socketId` (of `userId`) in `room`; a no-op when it already is. */
  add(room: string, userId: string, socketId: string): void {
    let entry = this.#bySocket.get(socketId);
    if (!entry) {
      entry = { userId, rooms: new Set() };
      this.#bySocket.set(socketId, entry);
    }
    if (entry.rooms.has(room)) return;
    entry.rooms.add(room);
    let users = this.#local.get(room);
    if (!users) {
      users = new Map();
      this.#local.set(room, users);
      // Indexed before the entry is written (same connection, so in order): an entry a crash leaves
      // behind is always found. The first one also heartbeats; from then on each refresh does.
      const heartbeat = this.#wrote ? null : this.#expiresInMs;
      this.#wrote = true;
      this.#backplane.notePresenceRooms(this.#writer, [room], this.#ttlSeconds, heartbeat).catch((err: unknown) => this.#log.warn({ err, room }, 'presence index write failed'));
    }
    const count = (users.get(userId) ?? 0) + 1;
    users.set(userId, count);
    this.#write(room, userId, count);
  }

  remove(room: string, socketId: string): void {
    const entry = this.#bySocket.get(socketId);
    if (!entry?.rooms.delete(room)) return;
    if (entry.rooms.size === 0) this.#bySocket.delete(socketId);
    const users = this.#local.get(room);
    const count = (users?.get(entry.userId) ?? 1) - 1;
    if (count > 0) users!.set(entry.userId, count);
    else {
      users?.delete(entry.userId);
      if (users?.size === 0) this.#local.delete(room);
    }
    this.#write(room, entry.userId, count);
  }

  /** For a disconnect: removes the socket from every room it was counted in. */
  removeSocket(socketId: string): void {
    const entry = this.#bySocket.get(socketId);
    if (entry) for (const room of [...entry.rooms]) this.remove(room, socketId);
  }

  read(room: string): Promise<PresenceSnapshot> {
    return this.#backplane.readPresence(room);
  }

  /**
   * Re-writes every entry of this instance with a fresh expiry, then its room index and heartbeat; runs
   * with the fleet-stats write. A user whose entry had expired (Redis was away longer than the TTL, or a
   * sweep took it) is present again: the room gets their `presence:join`.
   */
  async refresh(): Promise<void> {
    const rooms = [...this.#local];
    await Promise.all(
      rooms.map(([room, users]) =>
        this.#backplane
          .writePresence(room, this.#writer, [...users], this.#ttlSeconds)
          .then((changes) => this.#announce(room, changes))
          .catch((err: unknown) => this.#log.debug({ err, room }, 'presence refresh failed')),
      ),
    );
    if (!this.#wrote) return;
    await this.#backplane
      .notePresenceRooms(this.#writer, rooms.map(([room]) => room), this.#ttlSeconds, this.#expiresInMs)
      .catch((err: unknown) => this.#log.debug({ err }, 'presence index refresh failed'));
  }

  /**
   * Sweeps the entries of dead writers (other instances that stopped refreshing without clearing), at
   * most a few per call; runs after each refresh. A claim in Redis makes one instance do each writer, so
   * each `presence:leave` is sent once, fleet-wide (the adapter carries it to every pod).
   */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const leaseMs = Math.max(5_000, this.#ttlSeconds * 1000);
      for (let i = 0; i < WRITERS_PER_SWEEP; i += 1) {
        const dead = await this.#backplane.claimPresenceSweep(this.#writer, leaseMs);
        if (dead === null) return;
        await this.#sweepWriter(dead);
      }
    } catch (err) {
      this.#log.debug({ err }, 'presence sweep claim failed');
    } finally {
      this.#sweeping = false;
    }
  }

  async #sweepWriter(dead: string): Promise<void> {
    let removed = 0;
    let kept = 0;
    let leaves = 0;
    try {
      const rooms = await this.#backplane.presenceRoomsOf(dead);
      for (let i = 0; i < rooms.length; i += ROOMS_IN_FLIGHT) {
        await Promise.all(
          rooms.slice(i, i + ROOMS_IN_FLIGHT).map(async (room) => {
            const swept = await this.#backplane.sweepPresenceRoom(room, dead);
            removed += swept.removed;
            kept += swept.kept;
            leaves += swept.leaves.length;
            this.#metrics.presenceSweptEntries.inc(swept.removed);
            this.#metrics.presenceSweepLeaves.inc(swept.leaves.length);
            this.#announce(room, swept.leaves.map((userId) => ({ userId, joined: false })));
          }),
        );
      }
      await this.#backplane.finishPresenceSweep(dead, this.#writer, kept === 0, 2 * this.#intervalMs);
      this.#metrics.presenceSweeps.inc({ outcome: kept === 0 ? 'complete' : 'partial' });
      this.#log.info({ writer: dead, removed, kept, leaves }, 'swept the presence of a dead gateway');
    } catch (err) {
      // The claim runs out and another sweep redoes it; entries already removed are not counted twice.
      this.#metrics.presenceSweeps.inc({ outcome: 'failed' });
      this.#log.warn({ err, writer: dead }, 'presence sweep failed');
    }
  }

  /**
   * On close: this instance's entries go at once instead of at their expiry (with the leaves they end;
   * the sockets are still open, so the adapter still carries them), and nothing is left to sweep.
   */
  async clear(): Promise<void> {
    const removals = await Promise.allSettled(
      [...this.#local].map(async ([room, users]) =>
        this.#announce(room, await this.#backplane.writePresence(room, this.#writer, [...users].map(([userId]) => [userId, 0]), this.#ttlSeconds)),
      ),
    );
    // A failed removal leaves entries behind: the writer stays known, so a survivor sweeps them.
    if (this.#wrote && removals.every((r) => r.status === 'fulfilled')) await this.#backplane.forgetPresenceWriter(this.#writer).catch(() => {});
    this.#local.clear();
    this.#bySocket.clear();
  }

  #write(room: string, userId: string, count: number): void {
    this.#backplane
      .writePresence(room, this.#writer, [[userId, count]], this.#ttlSeconds)
      .then((changes) => this.#announce(room, changes))
      .catch((err: unknown) => this.#log.warn({ err, room }, 'presence write failed'));
  }

  #announce(room: string, changes: readonly { userId: string; joined: boolean }[]): void {
    for (const change of changes) {
      const type = change.joined ? 'presence:join' : 'presence:leave';
      this.#io.to(room).emit(type, controlEnvelope(type, room, { userId: change.userId }));
    }
  }
}
