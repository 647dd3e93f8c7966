import type { Socket } from 'socket.io';
import { Counter, type Registry } from 'prom-client';
import { controlEnvelope } from '../protocol/index.ts';
import type { Identity } from './auth.ts';
import type { Logger } from './logger.ts';

/** setTimeout fires at once for delays past 2^31-1 ms; longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface TokenExpiryOptions {
  /** How long before `exp` the client is asked to refresh. */
  readonly leadMs: number;
  readonly registry: Registry;
  readonly log: Logger;
}

interface Watch {
  notice: Timer | null;
  expiry: Timer | null;
  /** The exp auth:refresh already went out for: a refresh that keeps it (a cached token) must not be asked again. */
  noticedExp: number | null;
}

/**
 * Enforces a token's `exp` for the life of a connection: `auth:refresh {exp, refreshBy}` goes out
 * `leadMs` before it; an `auth:refresh` event with a new token for the same subject moves both
 * deadlines; at `exp` without one, the client gets `connection:closing {reason: token_expired,
 * reconnect: false}` and a Socket.IO disconnect (so the stock client does not reconnect with the
 * dead token). `exp` is in seconds (as in the JWT), `refreshBy` in milliseconds since the epoch.
 */
export class TokenExpiry {
  readonly #opts: TokenExpiryOptions;
  readonly #watches = new Map<Socket, Watch>();
  readonly #expired: Counter;

  constructor(opts: TokenExpiryOptions) {
    this.#opts = opts;
    this.#expired = new Counter({
      name: 'rt_token_expired_disconnections_total',
      help: 'Connections closed at their token\'s exp because the client did not refresh it.',
      registers: [opts.registry],
    });
  }

  /**
   * Starts enforcing the `exp` of `socket.data.identity` (nothing is kept when it has none). The
   * owner calls `forget` at the socket's disconnect: one listener per socket does every module's
   * clean-up (docs/decisions/0018-per-connection-state.md).
   */
  watch(socket: Socket): void {
    if (identityOf(socket).exp === null) return;
    const watch: Watch = { notice: null, expiry: null, noticedExp: null };
    this.#watches.set(socket, watch);
    this.#schedule(socket, watch);
  }

  /** After a successful `auth:refresh`: the new `exp` replaces the old deadlines. */
  refreshed(socket: Socket): void {
    const watch = this.#watches.get(socket);
    if (watch) this.#schedule(socket, watch);
    else this.watch(socket);
  }

  /** The socket is gone: its deadlines are dropped. */
  forget(socket: Socket): void {
    const watch = this.#watches.get(socket);
    if (!watch) return;
    this.#clear(watch);
    this.#watches.delete(socket);
  }

  stop(): void {
    for (const watch of this.#watches.values()) this.#clear(watch);
    this.#watches.clear();
  }

  #schedule(socket: Socket, watch: Watch): void {
    this.#clear(watch);
    const { exp } = identityOf(socket);
    if (exp === null) return;
    const expMs = exp * 1000;
    if (watch.noticedExp !== exp) {
      watch.notice = at(expMs - this.#opts.leadMs, () => {
        watch.notice = null;
        watch.noticedExp = exp;
        socket.emit('auth:refresh', controlEnvelope('auth:refresh', null, { exp, refreshBy: expMs }));
      });
    }
    watch.expiry = at(expMs, () => {
      watch.expiry = null;
      // A refresh that raced this timer already moved the deadline.
      if (identityOf(socket).exp !== exp) return this.#schedule(socket, watch);
      this.#expire(socket, exp);
    });
  }

  #expire(socket: Socket, exp: number): void {
    this.#expired.inc();
    this.#opts.log.info({ socket: socket.id, userId: socket.data.identity?.userId, exp }, 'token expired without refresh; closing the connection');
    socket.emit(
      'connection:closing',
      controlEnvelope('connection:closing', null, {
        reason: 'token_expired',
        message: `the token expired at ${new Date(exp * 1000).toISOString()} and was not refreshed (auth:refresh); get a new token and reconnect`,
        reconnect: false,
      }),
    );
    // disconnect(true) sends DISCONNECT after what is queued, then closes the transport.
    socket.disconnect(true);
  }

  #clear(watch: Watch): void {
    watch.notice?.cancel();
    watch.expiry?.cancel();
    watch.notice = watch.expiry = null;
  }
}

function identityOf(socket: Socket): Identity {
  return socket.data.identity as Identity;
}

export interface Timer {
  cancel(): void;
}

/** Runs `fn` at `timeMs` (epoch ms), at once when that has passed; delays past setTimeout's 24.8-day limit are re-armed. */
export function at(timeMs: number, fn: () => void): Timer {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const delay = Math.max(0, timeMs - Date.now());
    timer = setTimeout(() => (delay > MAX_TIMER_MS ? arm() : fn()), Math.min(delay, MAX_TIMER_MS));
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}
