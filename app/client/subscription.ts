import type { DurableEnvelope, PresenceSnapshot } from '../protocol/index.ts';
import { TypedEmitter } from './emitter.ts';

/** An application's message map: type → payload, e.g. `{'order:updated': {id: string; status: string}}`. */
export type MessageMap = Record<string, unknown>;

/** A durable envelope of one type of `M`, its payload typed. */
export type MessageOf<M extends MessageMap, T extends keyof M & string = keyof M & string> = {
  [K in T]: DurableEnvelope<M[K]> & { readonly type: K };
}[T];

/** `subscribing`: the join is on its way (again after each reconnect); `failed`: the gateway refused it for good. */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed' | 'failed';

export interface PublishOptions {
  /**
   * Makes the publish exactly-once: a retry with the same key returns the first result. The SDK makes
   * one up (and reuses it for its own retries) when none is given.
   */
  readonly idempotencyKey?: string;
}

export interface PublishResult {
  readonly room: string;
  readonly seq: number;
  /** True when the gateway had already published it under this key (a retry of ours, or of yours). */
  readonly duplicate: boolean;
}

export interface SubscriptionEvents<M extends MessageMap> {
  /** A durable message of this room, in seq order, each exactly once. */
  message: (envelope: MessageOf<M>) => void;
  /** The room starts over from a snapshot (first join, or a gap older than the server's history). */
  reset: (event: { readonly seq: number; readonly snapshot: { readonly state: unknown; readonly recent: readonly DurableEnvelope[] } }) => void;
  state: (state: SubscriptionState, previous: SubscriptionState) => void;
  /** `presence:join` / `presence:leave` (namespaces with presence on). */
  presence: (event: { readonly userId: string; readonly joined: boolean }) => void;
  error: (error: Error) => void;
}

/** What a `Subscription` asks of its client. */
export interface SubscriptionHost<M extends MessageMap> {
  publish<T extends keyof M & string>(room: string, type: T, payload: M[T], options?: PublishOptions): Promise<PublishResult>;
  presence(room: string): Promise<PresenceSnapshot>;
  unsubscribe(room: string): Promise<void>;
  lastSeq(room: string): number | null;
}

/**
 * One room of a client, with its own events and state (`client.subscribe(room)`), in the manner of
 * centrifuge-js: the client joins it on every (re)connection, resuming from its last seq.
 */
export class Subscription<M extends MessageMap = MessageMap> extends TypedEmitter<SubscriptionEvents<M>> {
  readonly room: string;
  readonly #host: SubscriptionHost<M>;
  #state: SubscriptionState = 'subscribing';

  constructor(room: string, host: SubscriptionHost<M>) {
    super();
    this.room = room;
    this.#host = host;
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  /** The last seq delivered in this room, or null. */
  get lastSeq(): number | null {
    return this.#host.lastSeq(this.room);
  }

  publish<T extends keyof M & string>(type: T, payload: M[T], options?: PublishOptions): Promise<PublishResult> {
    return this.#host.publish(this.room, type, payload, options);
  }

  presence(): Promise<PresenceSnapshot> {
    return this.#host.presence(this.room);
  }

  unsubscribe(): Promise<void> {
    return this.#host.unsubscribe(this.room);
  }

  /** @internal The client routes this room's traffic here. */
  deliver(event: { kind: 'message'; envelope: DurableEnvelope } | { kind: 'reset'; seq: number; snapshot: { state: unknown; recent: readonly DurableEnvelope[] } } | { kind: 'presence'; userId: string; joined: boolean } | { kind: 'error'; error: Error }): void {
    if (event.kind === 'message') this.emit('message', event.envelope as MessageOf<M>);
    else if (event.kind === 'reset') this.emit('reset', { seq: event.seq, snapshot: event.snapshot });
    else if (event.kind === 'presence') this.emit('presence', { userId: event.userId, joined: event.joined });
    else this.emit('error', event.error);
  }

  /** @internal */
  setState(next: SubscriptionState): void {
    const previous = this.#state;
    if (previous === next || previous === 'unsubscribed') return;
    this.#state = next;
    this.emit('state', next, previous);
  }
}
