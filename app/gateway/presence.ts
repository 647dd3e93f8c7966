import type { Server } from 'socket.io';
import { controlEnvelope, type PresenceSnapshot } from '../protocol/index.ts';
import type { Backplane } from './backplane/backplane.ts';
import type { Logger } from './logger.ts';

/**
 * Who is in each presence-enabled room, across the fleet. Each instance keeps its own connections per
 * (room, user) and writes them to the backplane with an expiry of FLEET_STATS_TTL_SECONDS, refreshed with
 * the fleet stats: a pod that dies without cleaning up drops out of every read once its entries expire.
 * `presence:join` goes to the room when a user's first connection in it (fleet-wide) arrives,
 * `presence:leave` when their last one leaves; the backplane answers both in one atomic step.
 */
export class Presence {
  readonly #io: Server;
  readonly #backplane: Backplane;
  readonly #pod: string;
  readonly #ttlSeconds: number;
  readonly #log: Logger;
  /** room → userId → this instance's connections of that user in the room. */
  readonly #local = new Map<string, Map<string, number>>();
  /** socket id → the presence rooms it is counted in. */
  readonly #bySocket = new Map<string, { userId: string; rooms: Set<string> }>();

  constructor(opts: { io: Server; backplane: Backplane; pod: string; ttlSeconds: number; log: Logger }) {
    this.#io = opts.io;
    this.#backplane = opts.backplane;
    this.#pod = opts.pod;
    this.#ttlSeconds = opts.ttlSeconds;
    this.#log = opts.log;
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

  /** Re-writes every entry of this instance with a fresh expiry; runs with the fleet-stats write. */
  async refresh(): Promise<void> {
    await Promise.all(
      [...this.#local].map(([room, users]) =>
        this.#backplane.writePresence(room, this.#pod, [...users], this.#ttlSeconds).catch((err: unknown) => this.#log.debug({ err, room }, 'presence refresh failed')),
      ),
    );
  }

  /** On close: this instance's entries go at once instead of at their expiry. */
  async clear(): Promise<void> {
    await Promise.all(
      [...this.#local].map(([room, users]) => this.#backplane.writePresence(room, this.#pod, [...users].map(([userId]) => [userId, 0]), this.#ttlSeconds).catch(() => {})),
    );
    this.#local.clear();
    this.#bySocket.clear();
  }

  #write(room: string, userId: string, count: number): void {
    this.#backplane
      .writePresence(room, this.#pod, [[userId, count]], this.#ttlSeconds)
      .then((changes) => {
        for (const change of changes) {
          const type = change.joined ? 'presence:join' : 'presence:leave';
          this.#io.to(room).emit(type, controlEnvelope(type, room, { userId: change.userId }));
        }
      })
      .catch((err: unknown) => this.#log.warn({ err, room }, 'presence write failed'));
  }
}
