/**
 * What each kind of alert channel receives, as pure functions of the alert: the Standard Webhooks
 * request (signed), the Slack message (`text` + `blocks`) and the PagerDuty Events API v2 event.
 */
import { createHmac } from 'node:crypto';
import type { Alert } from '../schemas';

/** An alert on its way to a channel, or the test message `POST /v1/alert-channels/{id}/test` sends. */
export type ChannelMessage =
  | { kind: 'alert'; id: string; alert: Alert }
  | { kind: 'test'; id: string; at: string; channel: { id: string; name: string } };

export interface ChannelRequest {
  headers: Record<string, string>;
  body: string;
}

/** Settings shared by every channel: where the link in a message points. */
export interface MessageSettings {
  /** `ALERT_LINK_URL`, with `{tunnelId}` replaced per alert. */
  linkTemplate?: string;
}

/**
 * The incident an alert belongs to: the same for its `tunnel.down` and its `tunnel.up`
 * (`<tunnel id>@<down since>`, from the alert id `<tunnel id>:<type>@<since>`).
 */
export function incidentIdOf(alertId: string): string {
  const match = /^(.+):tunnel\.(?:down|up)@(.+)$/.exec(alertId);
  return match ? `${match[1]}@${match[2]}` : alertId;
}

export function linkFor(tunnelId: string, settings: MessageSettings): string | undefined {
  return settings.linkTemplate?.replaceAll('{tunnelId}', encodeURIComponent(tunnelId));
}

/** The JSON body of a webhook: the contract's alert object with the incident and link, or the test. */
export function webhookBody(message: ChannelMessage, settings: MessageSettings): string {
  if (message.kind === 'test') {
    return JSON.stringify({
      type: 'test',
      channel: message.channel,
      at: message.at,
      message: 'Test alert from Tunnelkeeper: this channel is wired correctly.',
    });
  }
  const { alert } = message;
  const link = linkFor(alert.tunnel.id, settings);
  return JSON.stringify({ ...alert, incidentId: incidentIdOf(message.id), ...(link ? { link } : {}) });
}

/**
 * Standard Webhooks headers: `webhook-signature` is `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
 * under the secret's base64-decoded bytes. The timestamp is the attempt's, so every retry is signed
 * afresh and receivers can drop anything older than their tolerance (5 minutes by default).
 */
export function standardWebhookHeaders(
  id: string,
  body: string,
  secret: string,
  nowMs: number,
): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${signature}`,
  };
}

/** Slack's mrkdwn treats these three as markup: a tunnel name must stay text. */
function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** A Slack incoming-webhook message: `text` for notifications, `blocks` for the readable version. */
export function slackBody(message: ChannelMessage, settings: MessageSettings): string {
  if (message.kind === 'test') {
    const text = `Test alert from Tunnelkeeper: channel ${slackEscape(message.channel.name)} is wired correctly.`;
    return JSON.stringify({ text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
  }
  const { alert } = message;
  const name = slackEscape(alert.tunnel.name);
  const isDown = alert.type === 'tunnel.down';
  const error = alert.status.error;
  const headline = isDown
    ? `:red_circle: Tunnel *${name}* is down${error ? `: \`${error.code}\`` : ''}`
    : `:large_green_circle: Tunnel *${name}* is up again`;
  const lines = [headline];
  if (isDown && error) {
    lines.push(slackEscape(error.message));
    lines.push(`*What to do:* ${slackEscape(error.hint)}`);
  }
  const link = linkFor(alert.tunnel.id, settings);
  const fields = [
    `*Tunnel*\n${name} (\`${alert.tunnel.id}\`)`,
    `*State*\n${alert.status.state} since ${alert.status.since}`,
  ];
  const blocks: unknown[] = [
    { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } },
    { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
  ];
  if (link)
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${link}|Open the tunnel>` }] });
  // Slack reads `text` as markup too (links, mentions): only what we wrote may be markup.
  const text = isDown
    ? `Tunnel ${name} is down${error ? `: ${error.code}. ${slackEscape(error.hint)}` : ''}`
    : `Tunnel ${name} is up again`;
  return JSON.stringify({ text: link ? `${text} ${link}` : text, blocks });
}

/**
 * A PagerDuty Events API v2 event: `trigger` for `tunnel.down`, `resolve` for `tunnel.up`, both with
 * the incident as `dedup_key`, so PagerDuty folds a redelivery into the same incident.
 */
export function pagerDutyBody(
  message: ChannelMessage,
  routingKey: string,
  settings: MessageSettings,
): string {
  if (message.kind === 'test') {
    return JSON.stringify({
      routing_key: routingKey,
      event_action: 'trigger',
      dedup_key: message.id,
      payload: {
        summary: `Tunnelkeeper test alert: channel ${message.channel.name} is wired correctly (resolve it by hand)`,
        source: 'tunnelkeeper',
        severity: 'info',
        timestamp: message.at,
      },
    });
  }
  const { alert } = message;
  const dedupKey = incidentIdOf(message.id);
  if (alert.type === 'tunnel.up') {
    return JSON.stringify({ routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKey });
  }
  const error = alert.status.error;
  const summary = `Tunnel ${alert.tunnel.name} is down${error ? `: ${error.code} (${error.message})` : ''}`;
  const link = linkFor(alert.tunnel.id, settings);
  return JSON.stringify({
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    payload: {
      // PagerDuty cuts summaries at 1024 characters.
      summary: summary.slice(0, 1024),
      source: alert.tunnel.name,
      severity: 'critical',
      timestamp: alert.status.since,
      component: alert.tunnel.id,
      group: alert.tunnel.workspaceId,
      ...(error ? { class: error.code } : {}),
      custom_details: {
        tunnelId: alert.tunnel.id,
        state: alert.status.state,
        since: alert.status.since,
        ...(error ? { error: error.code, message: error.message, hint: error.hint } : {}),
      },
    },
    client: 'Tunnelkeeper',
    ...(link ? { client_url: link, links: [{ href: link, text: 'Open the tunnel' }] } : {}),
  });
}
