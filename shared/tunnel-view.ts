/** The public tunnel object of the contract, built from the stored record and its status. */
import { type ReverseCommands, renderReverseCommands } from './commands';
import { expectedConnectorsOf, hasConnectors, PRIMARY_CONNECTOR_ID } from './connectors';
import { hostProblem } from './hosts';
import { authorizedKeysLine, fingerprintOf, knownHostsLine } from './keys';
import type { Tunnel } from './schemas';
import type { StatusView } from './status';
import type { TunnelRecord } from './tunnel';

/** What customers need to know about our side: where to SSH to and which host key to expect. */
export interface GatewayInfo {
  sshHost: string;
  sshPort: number;
  hostPublicKey: string;
  keepaliveIntervalSec: number;
}

/** A host key as customers check it: type, fingerprint as `ssh-keygen -l` prints it, known_hosts line. */
export interface HostKeyView {
  type: string;
  fingerprint: string;
  knownHostsLine: string;
}

/** The gateway's host key, as every reverse tunnel and `GET /v1/info` show it. */
export function gatewayHostKey(gateway: GatewayInfo): HostKeyView {
  const [type = '', base64 = ''] = gateway.hostPublicKey.trim().split(/\s+/);
  return {
    type,
    fingerprint: fingerprintOf(Buffer.from(base64, 'base64')),
    knownHostsLine: knownHostsLine(gateway.sshHost, gateway.sshPort, gateway.hostPublicKey),
  };
}

/**
 * What the customer installs or runs, from the stored tunnel alone (no status): a standard
 * tunnel's authorized_keys line, a reverse tunnel's endpoint and commands.
 */
export function customerInstructions(
  record: TunnelRecord,
  gateway: GatewayInfo,
): Pick<Tunnel, 'authorizedKeysLine' | 'reverse'> {
  if (record.type === 'standard') {
    // A tunnel stored before hosts were checked as the renderers need (an IPv6 zone id, issue 12)
    // shows without the line rather than failing its whole workspace's listing.
    return hostProblem(record.service.host) === undefined
      ? { authorizedKeysLine: authorizedKeysLine(record.publicKey, record.service) }
      : {};
  }
  const hostKey = gatewayHostKey(gateway);
  return {
    reverse: {
      sshHost: gateway.sshHost,
      sshPort: gateway.sshPort,
      sshUser: record.id,
      remotePort: record.port,
      knownHostsLine: hostKey.knownHostsLine,
      commands: connectorCommands(record, gateway),
      ...(hasConnectors(record) ? { connectors: expectedConnectorsOf(record) } : {}),
    },
  };
}

/**
 * A reverse tunnel's commands for one connector: the tunnel's own key (`primary`, the default),
 * or a further connector's, whose key file and unit carry its id (connectors.ts).
 */
export function connectorCommands(
  record: TunnelRecord,
  gateway: GatewayInfo,
  connectorId: string = PRIMARY_CONNECTOR_ID,
): ReverseCommands {
  return renderReverseCommands({
    tunnelId: record.id,
    sshHost: gateway.sshHost,
    sshPort: gateway.sshPort,
    remotePort: record.port,
    service: record.service,
    keepaliveIntervalSec: gateway.keepaliveIntervalSec,
    hostKeyFingerprint: gatewayHostKey(gateway).fingerprint,
    ...(connectorId === PRIMARY_CONNECTOR_ID ? {} : { connectorId }),
  });
}

export function toTunnel(record: TunnelRecord, view: StatusView, gateway: GatewayInfo): Tunnel {
  const tunnel: Tunnel = {
    id: record.id,
    name: record.name,
    type: record.type,
    enabled: record.enabled,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    service: { host: record.service.host, port: record.service.port },
    publicKey: record.publicKey,
    publicKeyFingerprint: record.publicKeyFingerprint,
    connect: view.connect,
    status: view.status,
  };
  if (record.type === 'standard' && record.ssh) tunnel.ssh = { ...record.ssh };
  if (record.alerts?.mutedUntil) tunnel.alerts = { mutedUntil: record.alerts.mutedUntil };
  return Object.assign(tunnel, customerInstructions(record, gateway));
}
