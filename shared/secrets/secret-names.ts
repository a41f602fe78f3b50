/**
 * Every secret's name in the `SecretStore` (in Secrets Manager, under `<SECRET_PREFIX>/`): one home,
 * so the runtimes that read them and the stack that creates and grants them agree.
 */
export const secretNames = {
  /** The operator token for `/v1/admin/*` (created by the stack in AWS; a file under DATA_DIR locally). */
  adminToken: 'admin/token',
  /** The reverse-tunnel endpoint's SSH host key, shared by every gateway. */
  hostKey: 'gateway/host-key',
  /** The token the API presents to gateway workers' control endpoints. */
  controlToken: 'gateway/control-token',
  /**
   * The key that seals every alert channel's credentials in the table (shared/alerts/sealed-credentials.ts):
   * created by the API on first use, read by the API and the sweeper.
   */
  alertChannelKey: 'alerts/channel-key',
  /** A standard tunnel's credentials (`TunnelSecret`). */
  tunnel: (tunnelId: string): string => `tunnels/${tunnelId}`,
} as const;
