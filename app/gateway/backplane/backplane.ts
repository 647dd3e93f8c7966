import type { DurableEnvelope, HistoryResult, PresenceSnapshot } from '../../protocol/index.ts';
import type { DrainPlan } from '../../protocol/drain-plan.ts';

export type { FleetStat } from '../../protocol/fleet.ts';
import type { FleetStat } from '../../protocol/fleet.ts';

/** A durable message to sequence and fan out; `counterBy` makes it a counter increment. */
export interface PublishRequest {
  readonly room: string;
  /** A demo type or an application type (`scope:event`, checked by the caller). */
  readonly type: string;
  /** Ignored when `counterBy` is set: the payload is then `{value, by, from}`. */
  readonly payload?: unknown;
  readonly counterBy?: number;
  /** Who asked (the counter payload's `from`). */
  readonly from: string;
  /** Stamped as the envelope's `from`: the user id of a client's `publish`; unset for server publishes. */
  readonly sender?: string;
  /** The room namespace's history: `size: 0` keeps none (live-only). Default: the backplane's own. */
  readonly history?: { readonly size: number; readonly ttlSeconds: number };
  /** TTL of the room's seq and state keys. Default: the backplane's history TTL. */
  readonly keyTtlSeconds?: number;
  /**
   * With a key, a second publish of the same key to the same room within `idempotencyWindowSeconds`
   * returns the first envelope (`duplicate: true`) instead of publishing again. The caller scopes the
   * key (per user, or per server API).
   */
  readonly idempotencyKey?: string;
  readonly idempotencyWindowSeconds?: number;
}

export interface PresenceChange {
  readonly userId: string;
  /** True: the user's first connection in the room; false: their last one left. */
  readonly joined: boolean;
}

export interface PublishOutcome {
  readonly envelope: DurableEnvelope;
  /** True when an earlier publish with the same idempotency key answered: nothing was published now. */
  readonly duplicate: boolean;
}

/**
 * A stock client's connection-state-recovery session (docs/stock-clients.md), keyed by its Socket.IO
 * `pid`: written at connect and on each join or leave, so it survives the pod that held it.
 */
export interface SessionRecord {
  /** The socket id that wrote it last; only that socket's disconnect may mark or delete it. */
  readonly sid: string;
  readonly userId: string;
  readonly pod: string;
  /** Rooms by offset index, append-only; `null` where the room was left. */
  readonly rooms: readonly (string | null)[];
  /** When the holding socket disconnected, when its pod could say so (not after a SIGKILL). */
  readonly disconnectedAt?: number;
}

export type BackplaneKind = 'memory' | 'redis' | 'redis-cluster';

/**
 * Where seqs are assigned, history is kept and envelopes fan out between instances. One interface,
 * two implementations (in-memory and Redis); everything above it is the same code path.
 *
 * Seq contract: within a room, seqs are contiguous, and envelopes reach subscribers in seq order.
 * A room's first seq is derived from the clock (microseconds since the epoch), so a seq never goes
 * backwards even when the backplane loses its data: a client then sees a gap and gets a reset.
 */
export interface Backplane {
  readonly kind: BackplaneKind;
  /** True while every connection the backplane needs is up. */
  isReady(): boolean;
  /** Called with each readiness change. */
  onReadyChange(listener: (ready: boolean) => void): void;
  /** Called with every envelope of every subscribed room, in seq order per room. */
  onEnvelope(listener: (envelope: DurableEnvelope) => void): void;
  /** Assign the next seq, append to the bounded history and fan out — atomically. */
  publish(request: PublishRequest): Promise<DurableEnvelope>;
  /** `publish`, also saying whether the idempotency key made it a duplicate of an earlier publish. */
  publishOnce(request: PublishRequest): Promise<PublishOutcome>;
  /**
   * What a client at `afterSeq` missed: a replay when history still holds all of it, else a reset
   * with the room's state and the `recent` newest envelopes. `afterSeq: null` always resets. A replay
   * carries the oldest `limit` (default `MAX_REPLAY`) missing envelopes — one page — and `seq` is
   * still the room's latest, so the caller sees whether more follow.
   */
  history(room: string, afterSeq: number | null, recent: number, limit?: number): Promise<HistoryResult>;
  /** Current value of a counter room, with the seq it is valid at. */
  readCounter(room: string): Promise<{ value: number; seq: number }>;
  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): Promise<void>;
  /**
   * Sets this pod's connection counts of users in `room` (0 removes), each expiring after `ttlSeconds`
   * unless written again. Returns the users whose fleet-wide presence began (`joined`) or ended.
   */
  writePresence(room: string, pod: string, counts: readonly (readonly [string, number])[], ttlSeconds: number): Promise<PresenceChange[]>;
  /** Who is in `room` across the fleet, ignoring expired entries. */
  readPresence(room: string): Promise<PresenceSnapshot>;
  /*
   * The sweep of a dead writer's presence (docs/namespaces.md, "Presence"; decision 0019). A writer is
   * one gateway process. The memory backplane lives in one process, so it has nothing to sweep: its
   * claim always answers null.
   */
  /**
   * Lists `rooms` in the writer's room index (kept three TTLs plus a grace after the last write) and, unless `expiresInMs` is null,
   * says when all of the writer's entries will have expired (from now, Redis's clock).
   */
  notePresenceRooms(pod: string, rooms: readonly string[], ttlSeconds: number, expiresInMs: number | null): Promise<void>;
  /** Claims, for `leaseMs`, one writer whose entries have all expired and that no one else sweeps: its name, or null. */
  claimPresenceSweep(claimer: string, leaseMs: number): Promise<string | null>;
  /** The rooms in a writer's index. */
  presenceRoomsOf(pod: string): Promise<string[]>;
  /** Drops the writer's expired entries in `room`: how many, how many are not expired yet, and the users whose presence ended. */
  sweepPresenceRoom(room: string, pod: string): Promise<{ removed: number; kept: number; leaves: string[] }>;
  /**
   * Ends a claim. With `complete`, a writer that has not written since is forgotten with its index;
   * otherwise the claim is cut to `retryMs`, after which the writer may be claimed and swept again.
   */
  finishPresenceSweep(pod: string, claimer: string, complete: boolean, retryMs: number): Promise<void>;
  /** On a clean close, after the writer's entries were removed: nothing is left to sweep. */
  forgetPresenceWriter(pod: string): Promise<void>;
  writeFleetStat(stat: FleetStat): Promise<void>;
  readFleetStats(): Promise<FleetStat[]>;
  removeFleetStat(pod: string): Promise<void>;
  /** The controller's drain plan for `pod` (docs/drain.md), or null; throws when one is stored but malformed. */
  readDrainPlan(pod: string): Promise<DrainPlan | null>;
  /** Stores a drain plan for `pod` with a TTL (the controller's side of the contract; also for tests). */
  writeDrainPlan(pod: string, plan: DrainPlan, ttlSeconds: number): Promise<void>;
  /** Creates or replaces a recovery session (clears `disconnectedAt`), expiring after `ttlSeconds`. */
  writeSession(pid: string, record: SessionRecord, ttlSeconds: number): Promise<void>;
  /** The session of `pid`, or null when there is none (never written, expired, deleted). */
  readSession(pid: string): Promise<SessionRecord | null>;
  /** Marks the session disconnected (ttl from now), unless another socket has taken it over since. */
  markSessionDisconnected(pid: string, sid: string, at: number, ttlSeconds: number): Promise<void>;
  /** Deletes the session, unless another socket has taken it over since. */
  deleteSession(pid: string, sid: string): Promise<void>;
  /** Pushes back the expiry of the sessions of connected sockets. */
  touchSessions(pids: readonly string[], ttlSeconds: number): Promise<void>;
  close(): Promise<void>;
}

/** Default idempotency window of a publish with a key, when the request does not say. */
export const DEFAULT_IDEMPOTENCY_WINDOW_SECONDS = 300;

/** The first seq of a room: the clock in microseconds, so a new epoch always starts above any old seq. */
export function seqOrigin(nowMs = Date.now()): number {
  return Math.floor(nowMs * 1000) + Math.floor(Math.random() * 1000);
}
