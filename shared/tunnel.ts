/**
 * The stored shape of a tunnel's configuration (the `TUNNEL#<id>/META` item without its keys) and
 * of the secret that goes with a standard tunnel.
 */
import { z } from 'zod';

const Endpoint = z.object({ host: z.string(), port: z.number().int() });

/** A reverse tunnel's further connector (connectors.ts): a customer host with a key of its own. */
export const ConnectorKeySchema = z.object({
  id: z.string(),
  publicKey: z.string(),
  publicKeyFingerprint: z.string(),
  createdAt: z.string(),
});
export type ConnectorKey = z.infer<typeof ConnectorKeySchema>;

/** The two kinds of tunnel, in the order metrics and counts list them. */
export const TUNNEL_TYPES = ['reverse', 'standard'] as const;
export type TunnelType = (typeof TUNNEL_TYPES)[number];

export const TunnelRecordSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  name: z.string(),
  type: z.enum(TUNNEL_TYPES),
  enabled: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Optimistic-concurrency counter: every write is conditional on the version it read. */
  version: z.number().int(),
  /** The allocated port: reverse `remotePort`, and `connect.port` for both types. */
  port: z.number().int(),
  service: Endpoint,
  ssh: Endpoint.extend({ user: z.string(), hostKeyFingerprint: z.string().optional() }).optional(),
  authMethod: z.enum(['generated', 'private_key', 'password']).optional(),
  publicKey: z.string(),
  publicKeyFingerprint: z.string(),
  /** Key still accepted while a rotation completes (the gateway retires it once the new key worked). */
  previousPublicKey: z.string().optional(),
  /** When a PATCH last changed `service` (absent if it never did): commands issued before are outdated. */
  serviceChangedAt: z.string().optional(),
  /** Reverse: how many connectors should be live at once (absent: 1). */
  expectedConnectors: z.number().int().optional(),
  /** Reverse: connectors besides the tunnel's own key, oldest first. */
  connectors: z.array(ConnectorKeySchema).optional(),
  /** Reverse: the tunnel's own key was removed as a connector (`publicKey` then shows the next one's). */
  isPrimaryConnectorRemoved: z.boolean().optional(),
  /** Per-tunnel alerting (CONTRACT.md, Extensions): `mutedUntil` holds back `tunnel.down` (maintenance). */
  alerts: z.object({ mutedUntil: z.string().optional() }).optional(),
});
export type TunnelRecord = z.infer<typeof TunnelRecordSchema>;

/** A standard tunnel's credentials, kept only in the `SecretStore` under `tunnels/<id>`. */
export const TunnelSecretSchema = z.object({
  /** Newest first: after a rotation the pool tries `keys[0]`, then the older one. */
  keys: z
    .array(
      z.object({
        privateKey: z.string(),
        passphrase: z.string().optional(),
        publicKey: z.string(),
        fingerprint: z.string(),
      }),
    )
    .min(1),
  password: z.string().optional(),
});
export type TunnelSecret = z.infer<typeof TunnelSecretSchema>;
