/** Alerts as log lines: always configured, so every alert leaves a trace even when others fail. */
import type { Logger } from '../logger';
import type { AlertDelivery, AlertSink } from './alert-sink';

export class LogAlertSink implements AlertSink {
  readonly name = 'log';
  constructor(private readonly logger: Logger) {}

  async send({ id, body }: AlertDelivery): Promise<void> {
    const fields = {
      alertId: id,
      type: body.type,
      tunnelId: body.tunnel.id,
      tunnelName: body.tunnel.name,
      workspaceId: body.tunnel.workspaceId,
      state: body.status.state,
      since: body.status.since,
      code: body.status.error?.code,
      at: body.at,
    };
    if (body.type === 'tunnel.down') this.logger.warn('tunnel alert', fields);
    else this.logger.info('tunnel alert', fields);
  }
}
