import type { Cluster, Redis } from 'ioredis';
import type { DurableEnvelope } from '../protocol/envelope.ts';
import { idempotencyKeyOf, PUBLISH_SCRIPT, roomChannel, roomKeys } from '../protocol/publish-script.ts';
import { isReservedType, MESSAGE_TYPE_PATTERN, ROOM_PATTERN } from '../protocol/rooms.ts';

/**
 * Publish into the gateway's rooms from a Node backend that talks to its Redis directly — in the spirit
 * of `@socket.io/redis-emitter`, but through the gateway's own publish script, so the message gets the
 * room's next contiguous seq, lands in its history (clients resume it) and reaches every pod's
 * subscribers in order, interleaved correctly with what clients and the server API publish.
 * See docs/client-sdk.md#publishing-from-a-backend.
 */

/** An application's message map: type → payload. */
export type MessageMap = Record<string, unknown>;

export interface PublisherOptions {
  /** A connected ioredis client (or Cluster) for the gateway's Redis; the publisher does not close it. */
  readonly redis: Redis | Cluster;
  /** The gateways' `KEY_PREFIX`. @default 'rt' */
  readonly keyPrefix?: string;
  /** Redis Cluster with sharded pub/sub (the gateways run `ADAPTER=redis-cluster`). @default false */
  readonly cluster?: boolean;
  /**
   * History of the rooms published to, as the room's namespace declares it (`history.size`, `ttlSeconds`;
   * size 0: live-only). Per namespace; `default` for the others. @default {default: {size: 1000, ttlSeconds: 86400}}
   */
  readonly history?: Readonly<Record<string, { readonly size: number; readonly ttlSeconds: number }>>;
  /** The gateways' `IDEMPOTENCY_WINDOW_SECONDS`. @default 300 */
  readonly idempotencyWindowSeconds?: number;
}

export interface PublishOptions {
  /** A retry with the same key (for the same room, within the window) returns the first result. */
  readonly idempotencyKey?: string;
}

export interface Published<P = unknown> {
  readonly envelope: DurableEnvelope<P>;
  /** True when an earlier publish with the same key answered; nothing was published now. */
  readonly duplicate: boolean;
}

const DEFAULT_HISTORY = { size: 1000, ttlSeconds: 86_400 };
const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const COMMAND = 'rtGatewayPublish';

type ScriptedRedis = (Redis | Cluster) & { [COMMAND](...args: (string | number)[]): Promise<[string, number]> };

export class Publisher<M extends MessageMap = MessageMap> {
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;
  readonly #cluster: boolean;
  readonly #history: Readonly<Record<string, { readonly size: number; readonly ttlSeconds: number }>>;
  readonly #window: number;

  constructor(options: PublisherOptions) {
    this.#redis = options.redis as ScriptedRedis;
    this.#prefix = options.keyPrefix ?? 'rt';
    this.#cluster = options.cluster ?? false;
    this.#history = options.history ?? {};
    this.#window = options.idempotencyWindowSeconds ?? 300;
    // EVALSHA with a fallback to EVAL, as ioredis does for defined commands.
    if (typeof this.#redis[COMMAND] !== 'function') this.#redis.defineCommand(COMMAND, { numberOfKeys: 4, lua: PUBLISH_SCRIPT });
  }

  /** Publishes `payload` as `type` into `room`; resolves with the envelope as clients receive it. */
  async publish<T extends keyof M & string>(room: string, type: T, payload: M[T], options: PublishOptions = {}): Promise<Published<M[T]>> {
    if (!ROOM_PATTERN.test(room)) throw new TypeError(`room ${JSON.stringify(room)} must be "<namespace>:<name>" (docs/protocol.md#rooms)`);
    if (!MESSAGE_TYPE_PATTERN.test(type) || isReservedType(type)) {
      throw new TypeError(`type ${JSON.stringify(type)} must be an application type "scope:event", not a protocol type`);
    }
    if (payload === undefined) throw new TypeError('payload is required (null is allowed)');
    const key = options.idempotencyKey;
    if (key !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(key)) throw new TypeError('idempotencyKey must be 1-128 letters, digits, ".", "_", ":" or "-"');
    const history = this.#history[room.slice(0, room.indexOf(':'))] ?? this.#history.default ?? DEFAULT_HISTORY;
    const [raw, duplicate] = await this.#redis[COMMAND](
      ...roomKeys(this.#prefix, room),
      // Scoped like the server API's keys, so a backend retry and an API retry of one message match.
      idempotencyKeyOf(this.#prefix, room, key === undefined ? '' : `s:${key}`),
      type,
      JSON.stringify(room),
      JSON.stringify(payload),
      history.size,
      history.ttlSeconds || DEFAULT_HISTORY.ttlSeconds,
      roomChannel(this.#prefix, room),
      this.#cluster ? '1' : '0',
      '',
      JSON.stringify('server'),
      '',
      key === undefined ? 0 : this.#window,
    );
    return { envelope: JSON.parse(raw) as DurableEnvelope<M[T]>, duplicate: duplicate === 1 };
  }
}

/** A publisher for the gateway's Redis, typed by the application's message map. */
export function createPublisher<M extends MessageMap = MessageMap>(options: PublisherOptions): Publisher<M> {
  return new Publisher<M>(options);
}
