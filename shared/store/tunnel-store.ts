/**
 * Storage port for workspaces, API keys and tunnels. Every tunnel query is scoped to a workspace:
 * another workspace's tunnel is indistinguishable from a missing one.
 */

import type { ApiKeyRecord } from '../api-keys';
import type { PortRange } from '../config';
import type { WorkerHeartbeat } from '../gateway-items';
import type { TunnelEvent } from '../schemas';
import type { TunnelRecord } from '../tunnel';
import type { FoundApiKey, StoredApiKey, WorkspacePage } from './dynamo-workspaces';
import type { UnreadableItem } from './read-items';
import type { StatusSources } from './status-store';

export interface Workspace {
  id: string;
  name: string;
  createdAt: string;
}

/** Workspaces and their API keys (dynamo-workspaces.ts says how they are kept). */
export interface WorkspaceStore {
  /** Creates the workspace with its first key; `ConflictError` if either exists. */
  createWorkspace(workspace: Workspace, key: ApiKeyRecord): Promise<void>;
  /** Creates the workspace with `key` unless it exists; says whether `key` is one of its keys. */
  ensureWorkspace(
    workspace: Workspace,
    key: ApiKeyRecord,
  ): Promise<{ created: boolean; keyIsTheWorkspaces: boolean }>;
  getWorkspace(id: string): Promise<Workspace | undefined>;
  listWorkspaces(page: { limit: number; cursor?: string }): Promise<WorkspacePage>;
  findApiKey(hash: string): Promise<FoundApiKey | undefined>;
  listApiKeys(workspaceId: string): Promise<StoredApiKey[]>;
  /** `NotFoundError` without the workspace; `QuotaExceededError` at `maxKeys`. */
  addApiKey(workspaceId: string, key: ApiKeyRecord, maxKeys: number): Promise<void>;
  /** Returns the revoked key's hash; `NotFoundError`, or `ConflictError` for the last key. */
  revokeApiKey(workspaceId: string, keyId: string): Promise<string>;
  markApiKeyUsed(workspaceId: string, keyId: string, at: string): Promise<void>;
  /** Gives a key from before key ids one (idempotent); undefined when the key is gone. */
  adoptLegacyKey(hash: string, found: FoundApiKey): Promise<string | undefined>;
}

export interface TunnelPage {
  items: TunnelRecord[];
  /** Tunnels of the page whose stored item cannot be read (read-items.ts); the others are served. */
  unreadable: UnreadableItem[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  cursor?: string;
}

export interface TunnelStore extends WorkspaceStore {
  /** Resolves when the table answers a read (readiness); throws `StorageUnavailableError` else. */
  ping(): Promise<void>;
  /**
   * Stores the tunnel and allocates a free port from `range` in one transaction, counting it
   * against its workspace's `maxTunnels` (`QuotaExceededError` beyond it).
   */
  createTunnel(
    tunnel: Omit<TunnelRecord, 'port' | 'version'>,
    range: PortRange,
    maxTunnels?: number,
  ): Promise<TunnelRecord>;
  /** Throws `UnreadableItemError` when the workspace's tunnel is stored but cannot be read. */
  getTunnel(workspaceId: string, id: string): Promise<TunnelRecord | undefined>;
  /** How many tunnels the workspace has (what its quota counts). */
  countTunnels(workspaceId: string): Promise<number>;
  listTunnels(workspaceId: string, page: { limit: number; cursor?: string }): Promise<TunnelPage>;
  /** Writes `next` if the stored version is still `next.version`; returns it with the version bumped. */
  updateTunnel(next: TunnelRecord): Promise<TunnelRecord>;
  /**
   * Deletes the tunnel with its state and frees its port (the port may be unknown for a tunnel
   * whose stored item cannot be read: then only its port item is left behind).
   */
  deleteTunnel(
    tunnel: Pick<TunnelRecord, 'id' | 'workspaceId'> & { port?: number; type?: string },
  ): Promise<void>;

  /**
   * What the status machine needs of the given tunnels, by id: STATE, STATUS and the owner's
   * heartbeat, in batch reads (never one read per tunnel).
   */
  getStatusSources(ids: string[]): Promise<Map<string, StatusSources>>;
  /** Status history, newest first. */
  listEvents(id: string, limit: number): Promise<TunnelEvent[]>;
  /** Every gateway worker's latest heartbeat (to reach one for a tunnel test). */
  listWorkers(): Promise<WorkerHeartbeat[]>;
}
