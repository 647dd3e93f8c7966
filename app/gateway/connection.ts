import type { Socket } from 'socket.io';
import { type Envelope, type PresenceSnapshot, ProtocolError } from '../protocol/index.ts';
import type { Authenticator, Identity } from './auth.ts';
import type { Backplane } from './backplane/backplane.ts';
import type { ConnectionContext } from './handlers.ts';
import type { Hardening } from './hardening.ts';
import type { Metrics } from './metrics.ts';
import type { Namespaces } from './namespaces.ts';
import type { Presence } from './presence.ts';
import type { Recovery } from './recovery.ts';
import type { RoomHub, RoomMember } from './room-hub.ts';

/** What every connection of one gateway shares: built once, pointed to by each connection. */
export interface ConnectionShared {
  readonly hub: RoomHub;
  readonly backplane: Backplane;
  readonly auth: Authenticator;
  readonly hardening: Hardening;
  readonly recovery: Recovery | null;
  readonly namespaces: Namespaces;
  readonly limits: ConnectionContext['limits'];
  readonly idempotencyWindowSeconds: number;
  readonly presenceTracker: Presence;
  readonly metrics: Metrics;
  presence(room: string): Promise<PresenceSnapshot>;
  membersChanged(room: string): void;
}

const CONNECTION = Symbol('gateway connection');

/**
 * One Socket.IO connection: the handlers' context and the room hub's member. A class with its
 * methods on the prototype and one pointer to what every connection shares, so an idle connection
 * costs one small object instead of a dozen closures and their scopes (docs/benchmarks.md, "What
 * each idle socket keeps"; docs/decisions/0018-per-connection-state.md).
 */
export class Connection implements ConnectionContext, RoomMember {
  readonly id: string;
  readonly socket: Socket;
  readonly #shared: ConnectionShared;

  constructor(socket: Socket, shared: ConnectionShared) {
    this.id = socket.id;
    this.socket = socket;
    this.#shared = shared;
    // Kept on the socket itself, so the listeners every socket shares find it (no WeakMap: see 0018).
    (socket as SocketWithConnection)[CONNECTION] = this;
  }

  /** The connection of a socket of this gateway's namespace, once its `connection` handler ran. */
  static of(socket: Socket): Connection {
    return (socket as SocketWithConnection)[CONNECTION]!;
  }

  get member(): RoomMember {
    return this;
  }
  get hub(): RoomHub {
    return this.#shared.hub;
  }
  get backplane(): Backplane {
    return this.#shared.backplane;
  }
  get limits(): ConnectionContext['limits'] {
    return this.#shared.limits;
  }
  get namespaces(): Namespaces {
    return this.#shared.namespaces;
  }
  get verifySubscriptionToken(): ConnectionContext['verifySubscriptionToken'] {
    return this.#shared.auth.verifySubscriptionToken;
  }
  get idempotencyWindowSeconds(): number {
    return this.#shared.idempotencyWindowSeconds;
  }
  get presenceTracker(): Presence {
    return this.#shared.presenceTracker;
  }
  get metrics(): Metrics {
    return this.#shared.metrics;
  }
  /** The connection-state-recovery session hooks (`beforeJoin`, `left`), when recovery is on. */
  get session(): ConnectionContext['session'] {
    return this.#shared.recovery ? this : undefined;
  }

  /** As a room member: what the client asked for (replays, snapshots) goes straight to its socket. */
  send(envelope: Envelope): void {
    this.#shared.hardening.outbound.sendDirect(this.socket, envelope);
  }

  identity(): Identity {
    return this.socket.data.identity as Identity;
  }

  async refreshIdentity(token: string): Promise<Identity> {
    const next = await this.#shared.auth.authenticate({ token });
    if (next.userId !== this.identity().userId) {
      throw new ProtocolError('auth_subject_mismatch', `the new token is for ${next.userId}, this connection is ${this.identity().userId}`);
    }
    this.socket.data.identity = next;
    this.#shared.hardening.tokenRefreshed(this.socket);
    return next;
  }

  membersChanged(room: string): void {
    this.#shared.membersChanged(room);
  }

  presence(room: string): Promise<PresenceSnapshot> {
    return this.#shared.presence(room);
  }

  beforeJoin(room: string): Promise<void> {
    return this.#shared.recovery!.beforeJoin(this.socket, room);
  }

  left(room: string): void {
    this.#shared.recovery!.left(this.socket, room);
  }
}

type SocketWithConnection = Socket & { [CONNECTION]?: Connection };
