/**
 * What `GET /v1/info` says about the service, built from the values that run it: the endpoint's
 * public address and host key as customer commands carry them (tunnel-view.ts), the egress IPs from
 * configuration, the SSH algorithms from the lists the endpoint configures ssh2 with
 * (ssh-algorithms.ts), and the limits from the settings that enforce them. Nothing here is a
 * secret: the answer is public and cached.
 */
import type { Env } from './config';
import type { ServiceInfo } from './schemas';
import {
  CIPHERS_BY_PROFILE,
  HOST_KEY_ALGORITHMS,
  KEX_ALGORITHMS,
  MAC_ALGORITHMS,
  withPostQuantum,
} from './ssh-algorithms';
import { type GatewayInfo, gatewayHostKey } from './tunnel-view';

/** Limits the gateway enforces, read from the variables its own settings come from (gatewaySettingsFrom). */
export interface EndpointLimits {
  sessionsPerTunnel: number;
  connectionsPerTunnel: number;
  idleConnectionTimeoutMs: number;
  sshHandshakeTimeoutMs: number;
}

export function endpointLimitsFrom(env: Env): EndpointLimits {
  return {
    sessionsPerTunnel: env.MAX_SESSIONS_PER_TUNNEL,
    connectionsPerTunnel: env.MAX_CHANNELS_PER_TUNNEL,
    idleConnectionTimeoutMs: env.DATA_IDLE_TIMEOUT_MS,
    sshHandshakeTimeoutMs: env.SSH_HANDSHAKE_TIMEOUT_MS,
  };
}

/**
 * Everything the endpoint may offer. Ciphers: the compatible set, which holds the AES-GCM one
 * (clients known to have AES-GCM are offered that alone; the schema's description says so).
 */
export const OFFERED_ALGORITHMS: ServiceInfo['algorithms'] = {
  kex: withPostQuantum(KEX_ALGORITHMS),
  cipher: [...new Set([...CIPHERS_BY_PROFILE['aes-gcm'], ...CIPHERS_BY_PROFILE.compatible])],
  mac: [...MAC_ALGORITHMS],
  hostKey: [...HOST_KEY_ALGORITHMS],
};

export interface ServiceInfoSources {
  gateway: GatewayInfo;
  egressIps: readonly string[];
  limits: ServiceInfo['limits'];
}

export function serviceInfo({ gateway, egressIps, limits }: ServiceInfoSources): ServiceInfo {
  return {
    sshEndpoint: {
      host: gateway.sshHost,
      port: gateway.sshPort,
      // One key today; a list so that a second can be announced before a key rollover.
      hostKeys: [gatewayHostKey(gateway)],
    },
    egressIps: [...egressIps],
    algorithms: OFFERED_ALGORITHMS,
    limits,
  };
}
