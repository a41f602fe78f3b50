/**
 * A platform connection whose channel is lost before the service sent a byte gets another
 * channel (another connector, another gateway) with what the client sent so far replayed, so a
 * connector that dies under a connection just opened costs nothing. Only when what carried the
 * channel is gone (the customer's SSH session ended): a service that closes without answering is
 * answered by its close, never asked again. Replay is bounded in bytes and attempts.
 */
import type { Socket } from 'node:net';
import { type JoinOptions, joinSocketAndChannel, type SshChannel } from './pipe';

export interface RetrySettings {
  /** Opens the next channel (the opener's own turn moves on to another carrier). */
  open: () => Promise<SshChannel>;
  /** Whether the channel ended because what carried it is gone (asked once it closed). */
  isCarrierLost: (channel: SshChannel) => boolean;
  maxAttempts: number;
  /** Past this many bytes from the client before the first answer, no retry (nothing is kept). */
  maxReplayBytes: number;
  join: JoinOptions;
  /** Told of each retry. */
  onRetry?: (attempt: number) => void;
  /** Told when the connection ends before the service answered, without a retry. */
  onEnd?: (attempts: number, isCarrierLost: boolean) => void;
}

/** Joins `socket` (paused) to `first`, replacing the channel while no byte came back and its carrier died. */
export function joinWithFirstByteRetry(socket: Socket, first: SshChannel, settings: RetrySettings): void {
  new FirstByteJoin(socket, settings).start(first);
}

class FirstByteJoin {
  private replay: Buffer[] = [];
  private replayBytes = 0;
  private isReplayable = true;
  private hasClientEnded = false;
  private attempts = 1;
  private channel: SshChannel | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly settings: RetrySettings,
  ) {}

  start(channel: SshChannel): void {
    // Until the plain join takes over (with its own idle timer), quiet both ways is bounded too.
    this.socket.setTimeout(this.settings.join.idleTimeoutMs, () => this.socket.destroy());
    this.socket.on('data', this.onClientData);
    this.socket.once('end', this.onClientEnd);
    this.socket.once('close', this.onSocketClose);
    this.use(channel);
    this.socket.resume();
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.isReplayable) {
      this.replayBytes += chunk.length;
      if (this.replayBytes > this.settings.maxReplayBytes) {
        this.isReplayable = false;
        this.replay = [];
      } else this.replay.push(chunk);
    }
    if (this.channel && !this.channel.write(chunk)) {
      this.socket.pause();
      this.channel.once('drain', () => this.socket.resume());
    }
  };

  private readonly onClientEnd = (): void => {
    this.hasClientEnded = true;
    this.endChannel();
  };

  private readonly onSocketClose = (): void => {
    this.channel?.destroy();
  };

  private use(channel: SshChannel): void {
    this.channel = channel;
    channel.on('error', () => {});
    const onData = (chunk: Buffer) => {
      channel.off('close', onClose);
      channel.off('data', onData);
      this.answered(channel, chunk);
    };
    const onClose = () => {
      channel.off('data', onData);
      // ssh2 tells the session's end after its channels': look once the close has settled.
      setImmediate(() => this.lost(channel));
    };
    channel.on('data', onData);
    channel.once('close', onClose);
    for (const chunk of this.replay) channel.write(chunk);
    if (this.hasClientEnded) this.endChannel();
  }

  /** The service answered: from here on a plain join, its first bytes first. */
  private answered(channel: SshChannel, chunk: Buffer): void {
    this.socket.off('data', this.onClientData);
    this.socket.off('end', this.onClientEnd);
    this.socket.off('close', this.onSocketClose);
    this.replay = [];
    channel.pause();
    this.socket.write(chunk);
    joinSocketAndChannel(this.socket, channel, this.settings.join);
    if (this.hasClientEnded) this.endChannel();
    channel.resume();
  }

  private lost(channel: SshChannel): void {
    if (this.socket.destroyed) return;
    const { maxAttempts, isCarrierLost, open, onRetry } = this.settings;
    if (!this.isReplayable || this.attempts >= maxAttempts || !isCarrierLost(channel)) {
      this.settings.onEnd?.(this.attempts, isCarrierLost(channel));
      // The service closed without a word (or no retry is left): the client sees that close.
      this.socket.end();
      return;
    }
    this.attempts++;
    onRetry?.(this.attempts);
    this.socket.pause();
    open().then(
      (next) => {
        if (this.socket.destroyed) {
          next.destroy();
          return;
        }
        this.use(next);
        this.socket.resume();
      },
      () => this.socket.destroy(),
    );
  }

  private endChannel(): void {
    const channel = this.channel;
    if (!channel) return;
    channel.write(Buffer.alloc(0), () => {
      if (channel.eof) channel.eof();
      else channel.end();
    });
  }
}
