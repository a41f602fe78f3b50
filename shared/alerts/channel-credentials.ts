/**
 * Seals and opens alert channels' credentials with the alert channel key from the secret store
 * (sealed-credentials.ts has the format). The key is read on first need, not at start (a sweep
 * with no channel to send to never asks for it), and kept for the life of the process or Lambda
 * container: one key, one read. The API creates it on first use, as the control token is; the
 * sweeper only reads it (in AWS it may not create it: a channel sealed under it exists only if the
 * API made it).
 */
import { ensureSecret } from '../secrets/ensure-secret';
import { secretNames } from '../secrets/secret-names';
import type { SecretStore } from '../secrets/secret-store';
import type { AlertChannelRecord, ChannelCredentials } from './channel-schemas';
import {
  newChannelKey,
  openCredentials,
  parseChannelKey,
  type SealedFor,
  sealCredentials,
} from './sealed-credentials';

/** What a send needs: the channel's credentials in clear, for the moment of one request. */
export interface ChannelCredentialsOpener {
  /** `SealedCredentialsError` when the sealed value does not open; secret store errors as they come. */
  open(channel: AlertChannelRecord): Promise<ChannelCredentials>;
}

/** Whether this runtime creates the key when it is missing (the API) or only reads it (the sweeper). */
export type ChannelKeyAccess = 'create' | 'read';

export class ChannelCredentialSealer implements ChannelCredentialsOpener {
  private key: Promise<Buffer> | undefined;

  constructor(
    private readonly secrets: SecretStore,
    private readonly access: ChannelKeyAccess,
  ) {}

  async seal(sealedFor: SealedFor, credentials: ChannelCredentials): Promise<string> {
    return sealCredentials(await this.channelKey(), sealedFor, credentials);
  }

  async open(channel: AlertChannelRecord): Promise<ChannelCredentials> {
    if (channel.sealedCredentials === undefined) return clearCredentials(channel);
    const sealedFor = { workspaceId: channel.workspaceId, channelId: channel.id };
    return openCredentials(await this.channelKey(), sealedFor, channel.sealedCredentials);
  }

  /** Read once and kept; a failed read is not kept, so the next need tries again. */
  private channelKey(): Promise<Buffer> {
    this.key ??= this.readKey().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  private async readKey(): Promise<Buffer> {
    const name = secretNames.alertChannelKey;
    const text =
      this.access === 'create'
        ? await ensureSecret(this.secrets, name, async () => newChannelKey())
        : await this.secrets.get(name);
    return parseChannelKey(text);
  }
}

/**
 * Channels created before credentials were sealed hold them in clear in their item. They are read as
 * they are, so those channels keep alerting without a migration: no route rewrites a channel, and
 * deleting and re-creating one stores it sealed.
 */
function clearCredentials(channel: AlertChannelRecord): ChannelCredentials {
  const credentials: ChannelCredentials = {};
  if (channel.type === 'webhook' && channel.secret !== undefined) credentials.secret = channel.secret;
  if (channel.type === 'slack' && channel.url !== undefined) credentials.url = channel.url;
  if (channel.type === 'pagerduty' && channel.routingKey !== undefined)
    credentials.routingKey = channel.routingKey;
  return credentials;
}
