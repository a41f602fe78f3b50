/**
 * The bastion session a key rotation replaced. New connections already go to the new session;
 * this one keeps carrying the connections it holds (a long query, a replication stream) and
 * closes as soon as the last of them ends, or when the drain limit (`ROTATION_DRAIN_MAX_MS`)
 * passes, or when the runner ends it (a newer rotation, a stop): whichever comes first.
 */
import type { Logger } from '../../shared/logger';
import type { BastionConnection } from './bastion-connection';

export interface SessionDrainOptions {
  /** Resolves once the session carries no connection any more. */
  drained: Promise<void>;
  /** Connections it carries now (for the logs). */
  connections: () => number;
  /** The longest it may go on carrying them. */
  maxMs: number;
  /** Fingerprint of the key of the session that replaced it. */
  replacedBy: string;
  logger: Logger;
}

/**
 * Why a drain ended: `drained` (its last connection ended), `drain limit reached`, `session ended`
 * (the bastion closed it), or the reason the runner gave.
 */
export type DrainEnd = string;

export class SessionDrain {
  /** Resolves with why the drain ended, once the session is closed. */
  readonly done: Promise<DrainEnd>;
  private finish: (why: DrainEnd) => void = () => {};
  private ended = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly session: BastionConnection,
    private readonly options: SessionDrainOptions,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
    options.logger.info('previous bastion session draining', {
      key: session.authenticatedWith,
      newKey: options.replacedBy,
      connections: options.connections(),
      maxMs: options.maxMs,
    });
    this.timer = setTimeout(() => this.end('drain limit reached'), options.maxMs);
    this.timer.unref();
    void options.drained.then(() => this.end('drained'));
    void session.closed.then(() => this.end('session ended'));
  }

  /** Ends the drain now: the session closes, cutting what it still carries. */
  close(why: string): void {
    this.end(why);
  }

  private end(why: DrainEnd): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    const cut = why === 'drained' ? 0 : this.options.connections();
    this.session.close();
    const fields = { key: this.session.authenticatedWith, reason: why, connectionsCut: cut };
    if (cut > 0) this.options.logger.warn('previous bastion session closed', fields);
    else this.options.logger.info('previous bastion session closed', fields);
    this.finish(why);
  }
}
