/**
 * What the tunnel routes do, apart from HTTP: keys and secrets handled in the right order so a
 * failure never leaves a tunnel without its secret, and never a secret in a response or log.
 */

import type { z } from 'zod';
import { serviceTagOf } from '../../shared/command-tag';
import type { PortRange } from '../../shared/config';
import {
  CONNECTOR_ID_PATTERN,
  connectorSlots,
  MAX_CONNECTORS,
  newConnectorId,
  PRIMARY_CONNECTOR_ID,
} from '../../shared/connectors';
import {
  ConflictError,
  NotFoundError,
  QuotaExceededError,
  tunnelQuotaExceeded,
  ValidationError,
} from '../../shared/errors';
import { newTunnelId, TUNNEL_ID_PATTERN } from '../../shared/ids';
import { inlineKeyCrypto, type KeyCrypto } from '../../shared/key-crypto';
import { type KeyType, parsePublicKey } from '../../shared/keys';
import type { Logger } from '../../shared/logger';
import type {
  CreateConnectorSchema,
  CreateReverseTunnelSchema,
  CreateStandardTunnelSchema,
  PatchTunnelSchema,
  RotateKeySchema,
} from '../../shared/schemas';
import { secretNames } from '../../shared/secrets/secret-names';
import type { SecretStore } from '../../shared/secrets/secret-store';
import { UnreadableItemError } from '../../shared/store/read-items';
import type { TunnelStore } from '../../shared/store/tunnel-store';
import {
  type ConnectorKey,
  type TunnelRecord,
  type TunnelSecret,
  TunnelSecretSchema,
} from '../../shared/tunnel';

type CreateStandard = z.infer<typeof CreateStandardTunnelSchema>;
type CreateReverse = z.infer<typeof CreateReverseTunnelSchema>;
type Patch = z.infer<typeof PatchTunnelSchema>;
type RotateKey = z.infer<typeof RotateKeySchema>;
type CreateConnector = z.infer<typeof CreateConnectorSchema>;

/** A connector just added, and its private key when we generated it (returned once). */
export interface ConnectorResult {
  record: TunnelRecord;
  connector: ConnectorKey;
  privateKey?: string;
}

/** A stored tunnel, plus the private key we generated for a reverse tunnel (returned once). */
export interface TunnelResult {
  record: TunnelRecord;
  privateKey?: string;
}

/** Optimistic updates that lose a race re-read and re-apply a few times before giving up. */
const UPDATE_ATTEMPTS = 3;

export interface TunnelServiceDeps {
  store: TunnelStore;
  secrets: SecretStore;
  logger: Logger;
  portRange: PortRange;
  /** `MAX_TUNNELS_PER_WORKSPACE`. */
  maxTunnelsPerWorkspace: number;
  now: () => Date;
  /** Told after a tunnel is changed or deleted. */
  onChanged?: (tunnelId: string) => void;
  /** Where key derivation and RSA generation run; inline (on the event loop) when absent. */
  keyCrypto?: KeyCrypto;
}

export class TunnelService {
  private readonly store: TunnelStore;
  private readonly secrets: SecretStore;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly onChanged: (tunnelId: string) => void;
  /** Key derivation and RSA generation: a worker pool where the process serves others meanwhile. */
  private readonly keys: KeyCrypto;

  constructor(private readonly deps: TunnelServiceDeps) {
    this.store = deps.store;
    this.secrets = deps.secrets;
    this.logger = deps.logger;
    this.now = deps.now;
    this.onChanged = deps.onChanged ?? (() => {});
    this.keys = deps.keyCrypto ?? inlineKeyCrypto;
  }

  async create(workspaceId: string, body: CreateStandard | CreateReverse): Promise<TunnelResult> {
    // A workspace at its limit is told so before any key is made (the create itself checks again).
    const { maxTunnelsPerWorkspace: max } = this.deps;
    if ((await this.store.countTunnels(workspaceId)) >= max) throw tunnelQuotaExceeded(max);
    const id = newTunnelId();
    const at = this.now().toISOString();
    const base = { id, workspaceId, name: body.name, enabled: true, createdAt: at, updatedAt: at };
    if (body.type === 'reverse') {
      const key = await this.reverseKey(id, body.publicKey);
      const record = await this.store.createTunnel(
        {
          ...base,
          type: 'reverse',
          service: body.service,
          publicKey: key.publicKey,
          publicKeyFingerprint: key.fingerprint,
          ...(body.reverse?.connectors === undefined ? {} : { expectedConnectors: body.reverse.connectors }),
        },
        this.deps.portRange,
        this.deps.maxTunnelsPerWorkspace,
      );
      this.logger.info('tunnel created', { tunnelId: id, workspaceId, type: 'reverse', port: record.port });
      return key.privateKey === undefined ? { record } : { record, privateKey: key.privateKey };
    }

    const auth = body.auth ?? { method: 'generated', keyType: 'ed25519' };
    const secret = await this.standardSecret(id, auth);
    const [current] = secret.keys;
    if (!current) throw new Error('standard tunnel secret without a key');
    // The secret goes first: a tunnel item must never exist without the credentials it names.
    await this.secrets.put(secretNames.tunnel(id), JSON.stringify(secret));
    try {
      const record = await this.store.createTunnel(
        {
          ...base,
          type: 'standard',
          service: body.service,
          ssh: body.ssh,
          authMethod: auth.method,
          publicKey: current.publicKey,
          publicKeyFingerprint: current.fingerprint,
        },
        this.deps.portRange,
        this.deps.maxTunnelsPerWorkspace,
      );
      this.logger.info('tunnel created', { tunnelId: id, workspaceId, type: 'standard', port: record.port });
      this.onChanged(id);
      return { record };
    } catch (err) {
      await this.deleteSecretQuietly(id);
      throw err;
    }
  }

  async get(workspaceId: string, id: string): Promise<TunnelRecord> {
    // Anything that is not a tunnel id cannot name a tunnel: answer without a read.
    if (!TUNNEL_ID_PATTERN.test(id)) throw new NotFoundError('tunnel', id.slice(0, 40));
    const record = await this.store.getTunnel(workspaceId, id);
    if (!record) throw new NotFoundError('tunnel', id);
    return record;
  }

  async patch(workspaceId: string, id: string, body: Patch): Promise<TunnelRecord> {
    return this.update(workspaceId, id, (record) => {
      if (body.ssh && record.type === 'reverse') {
        throw ValidationError.field(
          'ssh',
          'applies to standard tunnels only; a reverse tunnel has no bastion',
        );
      }
      if (body.reverse && record.type !== 'reverse') {
        throw ValidationError.field(
          'reverse',
          'applies to reverse tunnels only; a standard tunnel has no connectors',
        );
      }
      const next: TunnelRecord = { ...record };
      if (body.reverse?.connectors !== undefined) next.expectedConnectors = body.reverse.connectors;
      if (body.name !== undefined) next.name = body.name;
      if (body.enabled !== undefined) next.enabled = body.enabled;
      if (body.service) {
        next.service = { ...record.service, ...definedFields(body.service) };
        // Commands issued before now forward elsewhere: the status says so until a new one runs.
        if (serviceTagOf(next.service) !== serviceTagOf(record.service)) {
          next.serviceChangedAt = this.now().toISOString();
        }
      }
      if (body.alerts?.mutedUntil !== undefined) {
        const { mutedUntil } = body.alerts;
        if (mutedUntil === null) delete next.alerts;
        else next.alerts = { ...next.alerts, mutedUntil: new Date(mutedUntil).toISOString() };
      }
      if (body.ssh && record.ssh) {
        const ssh = { ...record.ssh, ...definedFields(body.ssh) };
        const moved = ssh.host !== record.ssh.host || ssh.port !== record.ssh.port;
        // A new bastion has a new host key: keep the old pin only while host and port stay the same.
        if (moved && body.ssh.hostKeyFingerprint === undefined) delete ssh.hostKeyFingerprint;
        next.ssh = ssh;
      }
      return next;
    });
  }

  async rotateKey(workspaceId: string, id: string, body: RotateKey): Promise<TunnelResult> {
    const record = await this.get(workspaceId, id);
    if (record.type === 'reverse') {
      const key = await this.reverseKey(id, body.publicKey);
      const updated = await this.update(workspaceId, id, ({ isPrimaryConnectorRemoved, ...r }) => {
        assertKeyUnused(r, key.fingerprint, { exceptPrimary: true });
        // The tunnel's own key comes back as its first connector; a removed one's key was another's.
        return isPrimaryConnectorRemoved
          ? { ...r, publicKey: key.publicKey, publicKeyFingerprint: key.fingerprint }
          : {
              ...r,
              previousPublicKey: r.publicKey,
              publicKey: key.publicKey,
              publicKeyFingerprint: key.fingerprint,
            };
      });
      this.logger.info('tunnel key rotated', { tunnelId: id, workspaceId, fingerprint: key.fingerprint });
      return key.privateKey === undefined
        ? { record: updated }
        : { record: updated, privateKey: key.privateKey };
    }

    if (body.publicKey !== undefined) {
      throw ValidationError.field(
        'publicKey',
        'standard tunnels rotate to a key pair we generate; omit publicKey',
      );
    }
    const old = TunnelSecretSchema.parse(JSON.parse(await this.secrets.get(secretNames.tunnel(id))));
    const pair = await this.keys.generateKeyPair(keyTypeOf(record.publicKey), `tunnelkeeper-${id}`);
    // Both keys stay valid until the gateway has connected with the new one and retires the old.
    const secret: TunnelSecret = {
      ...old,
      keys: [
        { privateKey: pair.privateKey, publicKey: pair.publicKey, fingerprint: pair.fingerprint },
        ...old.keys.slice(0, 1),
      ],
    };
    await this.secrets.put(secretNames.tunnel(id), JSON.stringify(secret));
    const updated = await this.update(workspaceId, id, (r) => ({
      ...r,
      authMethod: r.authMethod === 'password' ? 'password' : 'generated',
      previousPublicKey: r.publicKey,
      publicKey: pair.publicKey,
      publicKeyFingerprint: pair.fingerprint,
    }));
    this.logger.info('tunnel key rotated', { tunnelId: id, workspaceId, fingerprint: pair.fingerprint });
    return { record: updated };
  }

  /** A further connector of a reverse tunnel, with its own key (generated when none is given). */
  async addConnector(workspaceId: string, id: string, body: CreateConnector): Promise<ConnectorResult> {
    const record = await this.get(workspaceId, id);
    if (record.type !== 'reverse') {
      throw new ConflictError(`tunnel ${id} is a standard tunnel: only reverse tunnels have connectors`);
    }
    assertConnectorRoom(record);
    const key = await this.reverseKey(id, body.publicKey);
    const connector: ConnectorKey = {
      id: newConnectorId(),
      publicKey: key.publicKey,
      publicKeyFingerprint: key.fingerprint,
      createdAt: this.now().toISOString(),
    };
    const updated = await this.update(workspaceId, id, (r) => {
      assertConnectorRoom(r);
      assertKeyUnused(r, key.fingerprint);
      return { ...r, connectors: [...(r.connectors ?? []), connector] };
    });
    this.logger.info('tunnel connector added', {
      tunnelId: id,
      workspaceId,
      connectorId: connector.id,
      fingerprint: key.fingerprint,
    });
    return key.privateKey === undefined
      ? { record: updated, connector }
      : { record: updated, connector, privateKey: key.privateKey };
  }

  /**
   * Removes a connector; its session closes. The tunnel's own key may go while another connector
   * remains (`publicKey` then shows the next one's): a key rotation without a gap.
   */
  async removeConnector(workspaceId: string, id: string, connectorId: string): Promise<TunnelRecord> {
    const record = await this.get(workspaceId, id);
    if (!connectorSlots(record).some((c) => c.id === connectorId) || record.type !== 'reverse') {
      throw new NotFoundError(
        'connector',
        CONNECTOR_ID_PATTERN.test(connectorId) ? connectorId : connectorId.slice(0, 40),
      );
    }
    const updated = await this.update(workspaceId, id, (r) => {
      const slots = connectorSlots(r);
      if (!slots.some((c) => c.id === connectorId)) throw new NotFoundError('connector', connectorId);
      if (slots.length === 1) {
        throw new ConflictError(
          `connector ${connectorId} is the last connector of tunnel ${id}: add another first, or delete the tunnel`,
        );
      }
      const next: TunnelRecord = {
        ...r,
        connectors: (r.connectors ?? []).filter((c) => c.id !== connectorId),
      };
      if (connectorId === PRIMARY_CONNECTOR_ID) {
        next.isPrimaryConnectorRemoved = true;
        delete next.previousPublicKey;
      }
      if (next.connectors?.length === 0) delete next.connectors;
      // `publicKey` is always a key that logs in: with the primary gone, the first remaining connector's.
      const [first] = next.connectors ?? [];
      if (next.isPrimaryConnectorRemoved && first) {
        next.publicKey = first.publicKey;
        next.publicKeyFingerprint = first.publicKeyFingerprint;
      }
      return next;
    });
    this.logger.info('tunnel connector removed', { tunnelId: id, workspaceId, connectorId });
    return updated;
  }

  async delete(workspaceId: string, id: string): Promise<void> {
    let record: Pick<TunnelRecord, 'id' | 'workspaceId'> & { port?: number; type?: string };
    try {
      record = await this.get(workspaceId, id);
    } catch (err) {
      // A tunnel whose stored item cannot be read can still be deleted, from what can be salvaged.
      if (!(err instanceof UnreadableItemError)) throw err;
      record = { id, workspaceId, ...err.salvaged };
    }
    await this.store.deleteTunnel(record);
    this.onChanged(id);
    // Standard tunnels have a secret; an unreadable one might: deleting a missing secret is a no-op.
    if (record.type !== 'reverse') await this.deleteSecretQuietly(id);
    this.logger.info('tunnel deleted', { tunnelId: id, workspaceId, port: record.port });
  }

  private async update(
    workspaceId: string,
    id: string,
    change: (record: TunnelRecord) => TunnelRecord,
  ): Promise<TunnelRecord> {
    for (let attempt = 1; ; attempt++) {
      const record = await this.get(workspaceId, id);
      try {
        const updated = await this.store.updateTunnel({
          ...change(record),
          updatedAt: this.now().toISOString(),
        });
        this.onChanged(id);
        return updated;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= UPDATE_ATTEMPTS) throw err;
      }
    }
  }

  private async reverseKey(
    id: string,
    publicKey: string | undefined,
  ): Promise<{ publicKey: string; fingerprint: string; privateKey?: string }> {
    if (publicKey !== undefined) {
      const parsed = parsePublicKey(publicKey, 'publicKey');
      return { publicKey: parsed.publicKey, fingerprint: parsed.fingerprint };
    }
    const pair = await this.keys.generateKeyPair('ed25519', `tunnelkeeper-${id}`);
    return { publicKey: pair.publicKey, fingerprint: pair.fingerprint, privateKey: pair.privateKey };
  }

  private async standardSecret(id: string, auth: NonNullable<CreateStandard['auth']>): Promise<TunnelSecret> {
    if (auth.method === 'private_key') {
      const key = await this.keys.parsePrivateKey(auth.privateKey, auth.passphrase, 'auth.privateKey');
      const entry = { privateKey: key.privateKey, publicKey: key.publicKey, fingerprint: key.fingerprint };
      return { keys: [auth.passphrase === undefined ? entry : { ...entry, passphrase: auth.passphrase }] };
    }
    // Password tunnels get a key pair too, so the customer can move to key auth without a new tunnel.
    const pair = await this.keys.generateKeyPair(
      auth.method === 'generated' ? auth.keyType : 'ed25519',
      `tunnelkeeper-${id}`,
    );
    const keys = [{ privateKey: pair.privateKey, publicKey: pair.publicKey, fingerprint: pair.fingerprint }];
    return auth.method === 'password' ? { keys, password: auth.password } : { keys };
  }

  private async deleteSecretQuietly(id: string): Promise<void> {
    try {
      await this.secrets.delete(secretNames.tunnel(id));
    } catch (err) {
      this.logger.warn('tunnel secret left behind', { tunnelId: id, err });
    }
  }
}

function assertConnectorRoom(record: TunnelRecord): void {
  if (connectorSlots(record).length >= MAX_CONNECTORS) {
    throw new QuotaExceededError(
      'connectorsPerTunnel',
      MAX_CONNECTORS,
      `tunnel ${record.id} has ${MAX_CONNECTORS} connectors, the most a tunnel may hold; remove one first`,
    );
  }
}

/** Two connectors with one key could not be told apart at login. */
function assertKeyUnused(
  record: TunnelRecord,
  fingerprint: string,
  options = { exceptPrimary: false },
): void {
  const holder = connectorSlots(record).find(
    (c) => c.publicKeyFingerprint === fingerprint && !(options.exceptPrimary && c.isPrimary),
  );
  if (holder) {
    throw new ConflictError(
      `that key is already connector ${holder.id} of tunnel ${record.id}: each connector needs a key of its own`,
    );
  }
}

function definedFields<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function keyTypeOf(publicKey: string): KeyType {
  if (publicKey.startsWith('ssh-rsa')) return 'rsa';
  if (publicKey.startsWith('ecdsa-')) return 'ecdsa';
  return 'ed25519';
}
