/** The public tunnel object of the contract, built from the stored record and its status. */
import { renderReverseCommands } from './commands';
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
  if (record.type === 'standard' && record.ssh) {
    tunnel.ssh = { ...record.ssh };
    // A tunnel stored before hosts were checked as the renderers need (an IPv6 zone id, issue 12)
    // shows without the line rather than failing its whole workspace's listing.
    if (hostProblem(record.service.host) === undefined) {
      tunnel.authorizedKeysLine = authorizedKeysLine(record.publicKey, record.service);
    }
  }
  if (record.type === 'reverse') {
    const [, hostKeyBase64 = ''] = gateway.hostPublicKey.trim().split(/\s+/);
    tunnel.reverse = {
      sshHost: gateway.sshHost,
      sshPort: gateway.sshPort,
      sshUser: record.id,
      remotePort: record.port,
      knownHostsLine: knownHostsLine(gateway.sshHost, gateway.sshPort, gateway.hostPublicKey),
      commands: renderReverseCommands({
        tunnelId: record.id,
        sshHost: gateway.sshHost,
        sshPort: gateway.sshPort,
        remotePort: record.port,
        service: record.service,
        keepaliveIntervalSec: gateway.keepaliveIntervalSec,
        hostKeyFingerprint: fingerprintOf(Buffer.from(hostKeyBase64, 'base64')),
      }),
    };
  }
  return tunnel;
}
