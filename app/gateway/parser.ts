import type { Socket } from 'socket.io';
// The parser Socket.IO itself uses (a dependency of socket.io); only its decoder is wrapped here.
import { Decoder, Encoder } from 'socket.io-parser';
import { controlEnvelope } from '../protocol/index.ts';
import { TokenBucket } from './limits.ts';

/** Socket.IO packet types that announce binary attachments (BINARY_EVENT, BINARY_ACK). */
const BINARY_PACKET_TYPES: ReadonlySet<string> = new Set(['5', '6']);

/** What one frame costs the byte bucket at least (so at most INBOUND_BYTES_PER_SECOND / 256 frames a second). */
export const MIN_FRAME_COST = 256;

export type InboundRefusal = 'binary' | 'pre_auth_size' | 'byte_rate' | 'packet_rate';

export interface InboundParserOptions {
  /** Inbound bytes per second per connection (token bucket refill). */
  readonly bytesPerSecond: number;
  /** Byte bucket size; at least the largest allowed frame. */
  readonly burstBytes: number;
  /** Largest frame accepted before the connection has authenticated (the CONNECT packet with its token). */
  readonly preAuthMaxBytes: number;
  /** Counted and logged by the caller. */
  readonly onRefused: (why: InboundRefusal, socket: Socket | null) => void;
  readonly now?: () => number;
}

/** What the gateway sets on a connection's decoder once its socket has authenticated. */
export interface GuardedDecoder {
  owner: Socket | null;
}

/**
 * Socket.IO's parser with a decoder that refuses, before any JSON is parsed: binary frames and
 * binary packet headers (the protocol uses none, and attachments are held until their last part
 * arrives), frames over `preAuthMaxBytes` before authentication, and more bytes per second than the
 * connection's byte bucket allows. A refusal throws, which Socket.IO answers by closing only that
 * connection; an authenticated socket is told why first (`connection:closing`).
 */
export function createInboundParser(opts: InboundParserOptions): { Encoder: typeof Encoder; Decoder: typeof Decoder } {
  class LimitedDecoder extends Decoder implements GuardedDecoder {
    owner: Socket | null = null;
    readonly #bytes = new TokenBucket(opts.burstBytes, opts.bytesPerSecond, opts.now);

    override add(frame: unknown): void {
      if (typeof frame !== 'string') return this.#refuse('binary', 'binary frames are not accepted');
      if (BINARY_PACKET_TYPES.has(frame.charAt(0))) return this.#refuse('binary', 'binary attachments are not accepted');
      if (this.owner === null && frame.length > opts.preAuthMaxBytes) {
        return this.#refuse('pre_auth_size', `frames before authentication are limited to ${opts.preAuthMaxBytes} bytes`);
      }
      // A frame costs at least MIN_FRAME_COST: a flood of tiny frames is bounded like one of big ones.
      if (!this.#bytes.tryTake(Math.max(frame.length, MIN_FRAME_COST))) {
        return this.#refuse('byte_rate', `more than ${opts.bytesPerSecond} bytes per second (burst ${opts.burstBytes}) on this connection`);
      }
      super.add(frame);
    }

    #refuse(why: InboundRefusal, message: string): never {
      opts.onRefused(why, this.owner);
      if (this.owner?.connected) {
        const reason = why === 'byte_rate' ? 'rate_limited' : 'bad_request';
        this.owner.emit('connection:closing', controlEnvelope('connection:closing', null, { reason, message: `${message}; the connection is closed`, reconnect: why === 'byte_rate' }));
      }
      throw new Error(message);
    }
  }
  return { Encoder, Decoder: LimitedDecoder };
}
